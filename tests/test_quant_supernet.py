"""Quantisation, the supernet's sampling modes and their gradients, derivation."""
import copy

import pytest
import torch
import torch.nn.functional as F

from autonba.errors import AutonbaError
from autonba.nas.arch import Arch, BlockChoice
from autonba.nas.derived import DerivedNet, count_macs
from autonba.nas.modules import LayerPath, QuantSpec
from autonba.nas.quant import ActRange, cpp_compiler, mix_quant, quantize
from autonba.nas.space import SearchSpace, load_space
from autonba.nas.supernet import Supernet, _keep_mass


def test_mix_quant_value_and_gradients_match_a_plain_chain():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 6, 6)
    lo, hi = x.amin() * 0.8, x.amax() * 0.8          # some elements clip
    coef = torch.tensor([0.2, 0.5, 0.3], requires_grad=True)
    xa = x.clone().requires_grad_(True)
    y = mix_quant(xa, coef, (2, 4, 8), "act", lo, hi)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    qs = [quantize(x, b, "act", lo, hi) for b in (2, 4, 8)]
    assert torch.allclose(y.detach(), sum(c * q for c, (q, _) in zip(coef.detach(), qs)), atol=1e-6)
    want_gx = sum(c * torch.where(m, g, torch.zeros_like(g)) for c, (_, m) in zip(coef.detach(), qs))
    assert torch.allclose(xa.grad, want_gx, atol=1e-6)
    assert torch.allclose(coef.grad, torch.stack([(g * q).sum() for q, _ in qs]), rtol=1e-5)


@pytest.mark.parametrize("kind", ["act", "weight"])
def test_input_gradient_is_the_same_with_and_without_coefficient_gradients(kind):
    """The weight step's backward (no coefficient gradient) takes a shorter path; same result."""
    torch.manual_seed(1)
    x = torch.randn(5, 4, 3, 3)
    lo, hi = x.amin() * 0.7, x.amax() * 0.9
    g = torch.randn_like(x)
    grads = []
    for needs in (True, False):
        coef = torch.tensor([0.1, 0.6, 0.3], requires_grad=needs)
        xa = x.clone().requires_grad_(True)
        (mix_quant(xa, coef, (2, 4, 32), kind, lo, hi) * g).sum().backward()
        grads.append(xa.grad)
    assert torch.equal(grads[0], grads[1])


def test_quantisers_are_bit_identical_to_torch_fake_quantize():
    """Our elementwise form of fake quantisation (what the fused kernels compute) equals PyTorch's
    operators exactly, on rounding ties, clipped values and channels-last tensors, for every bitwidth:
    per tensor for activations, per output channel for weights."""
    from autonba.nas.quant import _qparams, minmax
    g = torch.Generator().manual_seed(5)
    for trial in range(40):
        x = torch.randn(6, 5, 7, 7, generator=g) * (0.1 + 5 * trial / 40) + (trial % 5 - 2) * 0.3
        if trial % 2:
            x = x.contiguous(memory_format=torch.channels_last)
        lo, hi = minmax(x)
        assert torch.equal(lo, x.amin()) and torch.equal(hi, x.amax())
        if trial % 3 == 0:
            lo, hi = lo * 0.6, hi * 0.7                # evaluation: a stored range clips some values
        for b in (2, 3, 4, 6, 8):
            scale, zero, qmin, qmax = _qparams(x, (b,), "act", lo, hi)[0]
            k = torch.arange(-2 * qmax, 2 * qmax, dtype=torch.float32)
            for t in (x, (k + 0.5) * scale, k * scale):  # values, exact ties, exact levels
                want = torch.fake_quantize_per_tensor_affine(t, scale, zero, qmin, qmax)
                assert torch.equal(quantize(t, b, "act", lo, hi)[0], want), (trial, b)
            ws, wz, wmin, wmax = _qparams(x, (b,), "weight", None, None)[0]
            want = torch.fake_quantize_per_channel_affine(x, ws, wz, 0, wmin, wmax)
            assert torch.equal(quantize(x, b, "weight")[0], want), (trial, b)


def _reference_mix(x, coef, bits, kind, lo, hi):
    """The mixture as a chain of PyTorch's fake-quantize operators, summed in order from zero, and its
    straight-through input gradient factor: the arithmetic the fused kernels must reproduce."""
    from autonba.nas.quant import _qparams
    out, factor = torch.zeros_like(x), torch.zeros_like(x)
    for c, p in zip(coef, _qparams(x, bits, kind, lo, hi)):
        if p is None:
            q, m = x, torch.ones_like(x)
        elif kind == "weight":
            q, m = torch.fake_quantize_per_channel_affine(x, p[0], p[1], 0, p[2], p[3]), torch.ones_like(x)
        else:
            q = torch.fake_quantize_per_tensor_affine(x, p[0], p[1], p[2], p[3])
            z = p[1].float()
            m = ((x >= (p[2] - z) * p[0]) & (x <= (p[3] - z) * p[0])).float()
        out.add_(q * c)
        factor.add_(m * c)
    return out, factor


NO_CXX = pytest.mark.skipif(cpp_compiler() is None, reason="torch.compile on CPU needs a C++ compiler")


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=[pytest.mark.slow, NO_CXX])])
def test_fused_mixture_is_bit_identical_to_the_chain_of_fake_quantize_operators(compiled):
    """Eager and compiled (torch.compile) fused kernels: the forward value and the input gradient are
    bit-identical to the per-bitwidth chain, the coefficients' gradient equal within rounding."""
    g = torch.Generator().manual_seed(7)
    cases = [("act", (4, 6, 8), (6, 16, 9, 9)), ("act", (4, 32), (3, 8, 5, 5)), ("weight", (4, 6, 8), (16, 8, 3, 3))]
    if not compiled:  # (each case compiles its own kernels: the search tests compile the others)
        cases += [("act", (8, 2), (3, 8, 5, 5)), ("weight", (5,), (10, 12)), ("wide", (4, 6, 8), (3, 8, 5, 5)),
                  ("act", (4,), (4, 1, 6, 6)), ("weight", (4,), (8, 1, 3, 3))]  # one channel: both layouts at once
    for case, (kind, bits, shape) in enumerate(cases):
        x = torch.randn(*shape, generator=g) * 1.7
        if case % 2 == 0 and len(shape) == 4:  # channels-last (as in retraining) stays channels-last
            x = x.contiguous(memory_format=torch.channels_last)
        shrink = 1.2 if kind == "wide" else 0.85  # nothing clipped (eager takes a shorter path) / some clipped
        kind = "act" if kind == "wide" else kind
        lo, hi = (x.amin() * shrink, x.amax() * shrink) if kind == "act" else (None, None)
        coef = torch.softmax(torch.randn(len(bits), generator=g), 0).requires_grad_(True)
        xa = x.clone().requires_grad_(True)
        y = mix_quant(xa, coef, bits, kind, lo, hi, compiled=compiled)
        gy = torch.randn(*shape, generator=g)
        (y * gy).sum().backward()
        want, factor = _reference_mix(x, coef.detach(), bits, kind, lo, hi)
        assert torch.equal(y.detach(), want) and y.stride() == x.stride(), (kind, bits)
        if kind == "act":
            assert torch.equal(xa.grad, gy * factor), (kind, bits)
        qs = [quantize(x, b, kind, lo, hi)[0] for b in bits]
        assert torch.allclose(coef.grad, torch.stack([(gy * q).sum() for q in qs]), rtol=1e-5, atol=1e-5)


def test_single_bitwidth_gradient_is_masked_straight_through():
    torch.manual_seed(3)
    for shrink in (1.0, 0.5):                          # nothing clipped / some clipped
        x = torch.randn(4, 6, 5, 5).contiguous(memory_format=torch.channels_last)
        lo, hi = x.amin() * shrink, x.amax() * shrink
        xa = x.clone().requires_grad_(True)
        g = torch.randn_like(x)
        (mix_quant(xa, None, (4,), "act", lo, hi) * g).sum().backward()
        _, m = quantize(x, 4, "act", lo, hi)
        assert torch.equal(xa.grad, torch.where(m, g, torch.zeros_like(g)))
        assert shrink == 1.0 or not bool(m.all())


def test_onnx_form_of_the_quantiser_matches_fake_quantize():
    from autonba.nas.quant import plain_quantize
    torch.manual_seed(2)
    x = torch.randn(64, 8, 5, 5)
    for b in (2, 4, 8):
        w, _ = quantize(x, b, "weight")
        assert torch.allclose(plain_quantize(x, b, "weight"), w, atol=1e-6)
        a, _ = quantize(x, b, "act", x.amin(), x.amax())
        diff = (plain_quantize(x, b, "act", x.amin(), x.amax()) - a).abs()
        step = (x.amax() - x.amin()) / (2 ** b - 1)
        assert float(diff.max()) <= float(step) + 1e-6 and float((diff > 1e-5).float().mean()) < 1e-3


def test_quantisation_levels_zero_range_and_full_precision():
    w = torch.randn(8, 4, 3, 3)
    q, _ = quantize(w, 4, "weight")
    for c in range(8):
        assert len(torch.unique(q[c])) <= 15
    assert torch.equal(mix_quant(w, torch.ones(1), (32,), "weight"), w)
    z = torch.zeros(2, 3, 4, 4)
    assert not torch.isnan(mix_quant(z, torch.ones(1), (4,), "weight")).any()
    assert not torch.isnan(mix_quant(z, torch.ones(1), (4,), "act", z.amin(), z.amax())).any()


def test_activation_range_uses_ema_in_eval():
    r = ActRange(momentum=0.5)
    r.train()
    r(torch.tensor([0.0, 2.0]))
    r(torch.tensor([0.0, 4.0]))
    assert float(r.hi) == 3.0
    r.eval()
    lo, hi = r(torch.tensor([0.0, 100.0]))
    assert float(hi) == 3.0


@pytest.fixture(scope="module")
def space():
    return load_space("small")


def batch(space, n=4):
    lay = space.layout
    return torch.randn(n, lay.input_channels, lay.input_size, lay.input_size), torch.randint(0, 10, (n,))


def step(net, kind, x, y, seed=0):
    net.zero_grad(set_to_none=True)
    s = net.sample(kind, 1.0, torch.Generator().manual_seed(seed))
    F.cross_entropy(net(x, s), y).backward()
    return s


@pytest.mark.parametrize("mode", ["hetero", "hard", "multipath", "soft"])
def test_weight_step_leaves_architecture_untouched(space, mode):
    net = Supernet(space, mode)
    x, y = batch(space)
    s = step(net, "weight", x, y)
    assert net.alpha.grad is None and net.beta.grad is None
    if mode != "soft":  # only the executed operation's weights get gradients
        for l, layer in enumerate(net.net.layers):
            for o, op in enumerate(layer):
                grads = [p.grad is not None and bool(p.grad.abs().sum() > 0) for p in op.parameters()]
                if o == s.op[l]:
                    assert not grads or any(grads)
                else:
                    assert not any(grads)


@pytest.mark.parametrize("mode", ["hetero", "hard"])
def test_arch_step_moves_exactly_k_alpha_logits_and_active_bits(space, mode):
    net = Supernet(space, mode, top_k=2)
    x, y = batch(space)
    s = step(net, "arch", x, y, seed=3)
    assert ((net.alpha.grad != 0).sum(1) == 2).all()
    for l in range(space.layout.num_blocks):
        nz = torch.nonzero(net.beta.grad[l]).tolist()
        allowed = {(s.op[l], b) for b in s.active_bits[l]}
        assert {tuple(i) for i in nz} <= allowed
        # a layer whose chosen op holds a conv moves exactly its K active bitwidths
        if any(True for _ in net.net.layers[l][s.op[l]].parameters()):
            assert {tuple(i) for i in nz} == allowed


def test_soft_arch_step_reaches_every_logit(space):
    net = Supernet(space, "soft")
    x, y = batch(space)
    step(net, "arch", x, y)
    assert (net.alpha.grad != 0).all()


def test_hard_weight_step_runs_one_bitwidth_and_hetero_mixes_all(space):
    g = torch.Generator().manual_seed(0)
    hard = Supernet(space, "hard").sample("weight", 1.0, g)
    assert all(len(p.quant[0].bits) == 1 for p in hard.paths)
    het = Supernet(space, "hetero").sample("weight", 1.0, g)
    assert all(p.quant[0].bits == tuple(space.bits) and not p.quant[0].coef.requires_grad for p in het.paths)


def test_offset_keeps_the_active_mass():
    logits = torch.tensor([0.5, -1.0, 2.0, 0.0])
    before = logits.clone()
    logits[[0, 2]] += torch.tensor([0.7, -0.3])    # what an optimiser step might do
    _keep_mass(logits, before, [0, 2])
    sm_b, sm_a = torch.softmax(before, 0), torch.softmax(logits, 0)
    assert torch.isclose(sm_b[[0, 2]].sum(), sm_a[[0, 2]].sum(), atol=1e-6)
    assert torch.allclose(sm_b[[1, 3]], sm_a[[1, 3]], atol=1e-6)


def test_offset_after_an_arch_step(space):
    net = Supernet(space, "hetero")
    x, y = batch(space)
    s = step(net, "arch", x, y)
    a0, b0 = net.alpha.detach().clone(), net.beta.detach().clone()
    with torch.no_grad():
        net.alpha -= 0.5 * net.alpha.grad
        net.beta -= 0.5 * net.beta.grad
    net.offset_(s, a0, b0)
    for l, ops in enumerate(s.active_ops):
        assert torch.isclose(torch.softmax(net.alpha[l], 0)[ops].sum(), torch.softmax(a0[l], 0)[ops].sum(), atol=1e-5)


def test_single_path_and_derivation(space):
    net = Supernet(space)
    with torch.no_grad():
        net.alpha[:, 2] = 5.0
        net.beta[:, 2, 1] = 5.0
    arch = net.derive()
    assert all(b.op == space.ops[2] and b.bits == space.bits[1] for b in arch.blocks)
    s = net.sample("arch", 1.0, torch.Generator().manual_seed(0))
    path = net.single_path(s)
    assert len(path) == space.layout.num_blocks and all(op in space.ops and b in space.bits for op, b in path)


@pytest.mark.parametrize("name", ["small", "cifar"])
def test_derived_model_macs_equal_the_workload_macs(name):
    sp = load_space(name)
    lay = sp.layout
    ops = (sp.ops * 4)[:lay.num_blocks]
    arch = Arch(layout=lay, blocks=[BlockChoice(op=o, bits=sp.bits[i % len(sp.bits)]) for i, o in enumerate(ops)])
    model = DerivedNet(arch)
    x = torch.randn(1, lay.input_channels, lay.input_size, lay.input_size)
    assert count_macs(model, x) == arch.workload().macs
    assert model(x).shape == (1, lay.num_classes)


def test_derived_model_uses_the_chosen_bitwidths():
    sp = load_space("small")
    arch = Arch(layout=sp.layout, blocks=[BlockChoice(op="k3_e3", bits=2)] * sp.layout.num_blocks)
    m = DerivedNet(arch)
    m.eval()
    seen = []
    conv = m.net.layers[0][0].dw
    conv.register_forward_hook(lambda mod, inp, out: seen.append(inp[0]))
    x = torch.randn(2, 1, 16, 16)
    m.train()
    m(x)
    # the 2-bit weights of the conv have at most 3 levels per output channel
    q, _ = quantize(conv.weight.detach(), 2, "weight")
    assert all(len(torch.unique(q[c])) <= 3 for c in range(q.shape[0]))
    assert m.paths[0].quant[0].bits == (2,)


def test_space_validation_errors(tmp_path):
    with pytest.raises(AutonbaError, match="unknown search space"):
        load_space("nope")
    p = tmp_path / "s.yaml"
    p.write_text("layout: {stages: [{blocks: 1, channels: 8}]}\nops: [k3_e1, k9]\n")
    with pytest.raises(AutonbaError, match="allowed: k3_e1"):
        load_space(str(p))
    p.write_text("layout: {stages: [{blocks: 1, channels: 8}]}\nbits: [1, 4]\n")
    with pytest.raises(AutonbaError, match="bits must be"):
        load_space(str(p))
    with pytest.raises(AutonbaError, match="unknown sampling mode"):
        Supernet(SearchSpace(layout={"stages": [{"blocks": 1, "channels": 8}]}), "bogus")


def test_shipped_spaces():
    assert load_space("small").ops == ["k3_e1", "k3_e3", "k5_e6", "skip"]
    cifar = load_space("cifar")
    assert cifar.layout.num_blocks == 22 and cifar.layout.head_channels == 1504
    assert [s.channels for s in cifar.layout.stages] == [16, 24, 32, 64, 112, 184, 352]
    assert load_space("imagenet").layout.stem.stride == 2


def test_supernet_weight_steps_learn():
    """Hetero weight steps train the executed paths: the loss on a batch falls. (Two candidate
    operations: with all nine, uniform path sampling learns far more slowly, see the notes.)"""
    from autonba.data import DataConfig, load_data
    sp = load_space("small").model_copy(update={"ops": ["k3_e3", "k5_e3"], "bits": [8]})
    data = load_data(DataConfig(name="digits", input_size=16))
    x, y = next(iter(torch.utils.data.DataLoader(data.train, batch_size=64, shuffle=True,
                                                 generator=torch.Generator().manual_seed(0))))
    torch.manual_seed(0)
    net = Supernet(sp, "hetero")
    opt = torch.optim.SGD(net.weight_parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(80):
        loss = F.cross_entropy(net(x, net.sample("weight", 1.0, g)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:10]) / 10


def _is_pow2(t: torch.Tensor) -> bool:
    e = torch.log2(t)
    return bool(torch.equal(e, torch.round(e)))


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_pow2_quantiser_is_fixed_point(bits):
    """Power-of-two scales, zero points 0, values on the integer grid, and no clipping of the range's ends:
    weights signed per channel, a non-negative activation unsigned, a signed one signed."""
    from autonba.nas.quant import _qparams, plain_quantize
    g = torch.Generator().manual_seed(bits)
    w = torch.randn(8, 4, 3, 3, generator=g)
    (scale, zero, qmin, qmax), = _qparams(w, (bits,), "weight", None, None, pow2=True)
    assert _is_pow2(scale) and not zero.any() and (qmin, qmax) == (-(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1)
    assert (w.abs().flatten(1).amax(1) <= qmax * scale).all()
    q, _ = quantize(w, bits, "weight", pow2=True)
    steps = q / scale.view(-1, 1, 1, 1)
    assert torch.equal(steps, torch.round(steps)) and steps.abs().max() <= qmax
    for x, signed in ((torch.rand(2, 4, 5, 5, generator=g) * 3, False), (torch.randn(2, 4, 5, 5, generator=g), True)):
        lo, hi = x.min(), x.max()
        (scale, zero, qmin, qmax), = _qparams(x, (bits,), "act", lo, hi, pow2=True)
        assert _is_pow2(scale) and int(zero) == 0
        assert (qmin < 0) == signed and qmax * scale >= hi and (not signed or qmin * scale <= lo)
        q, inside = quantize(x, bits, "act", lo, hi, pow2=True)
        assert inside.all() and torch.equal(q / scale, torch.round(q / scale))
        assert torch.equal(plain_quantize(x, bits, "act", lo, hi, pow2=True), q)   # the ONNX form agrees
    assert not _is_pow2(_qparams(w, (bits,), "weight", None, None)[0][0])    # float scales stay the default


def test_pow2_scales_go_from_the_layout_into_every_quantised_layer():
    space = load_space("small")
    data = space.model_dump()
    data["layout"]["scales"] = "pow2"
    pow2 = SearchSpace.model_validate(data)
    net = Supernet(pow2)
    from autonba.nas.modules import QConv2d, QLinear
    layers = [m for m in net.modules() if isinstance(m, (QConv2d, QLinear))]
    assert layers and all(m.pow2 for m in layers)
    arch = net.derive()
    assert arch.layout.scales == "pow2" and Arch.model_validate_json(arch.model_dump_json()).layout.scales == "pow2"
    assert all(m.pow2 for m in DerivedNet(arch).modules() if isinstance(m, (QConv2d, QLinear)))
    assert not any(m.pow2 for m in Supernet(space).modules() if isinstance(m, (QConv2d, QLinear)))


@pytest.mark.parametrize("kind", ["weight", "arch"])
def test_saved_memory_does_not_grow_with_the_number_of_bitwidths(space, kind):
    """What autograd keeps for the backward pass (each storage once) is the same with 1 and 6 bitwidth
    choices: the fused quantiser saves its input, coefficients and range, never one tensor per bitwidth."""
    saved = []
    for bits in ([8], [2, 3, 4, 5, 6, 8]):
        torch.manual_seed(0)
        net = Supernet(space.model_copy(update={"bits": bits}))
        x, y = batch(space, 8)
        s = net.sample(kind, 1.0, torch.Generator().manual_seed(0))
        seen: set[tuple[int, int]] = set()

        def pack(t, seen=seen):
            seen.add((t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()))
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = F.cross_entropy(net(x, s), y)
        loss.backward()
        saved.append(sum(n for _, n in seen))
    assert saved[1] <= 1.15 * saved[0], saved


def test_compile_on_cpu_without_a_compiler_is_a_clear_error(monkeypatch):
    from autonba.nas.quant import compile_wanted
    cpu = torch.device("cpu")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(AutonbaError, match="C\\+\\+ compiler.*compile: off"):
        compile_wanted("on", cpu)
    assert not compile_wanted("off", cpu) and not compile_wanted("auto", cpu)


def test_bf16_trains_the_convolutions_in_bfloat16_and_quantises_in_float32(space):
    """use_bf16: a training forward runs its convolutions in bfloat16 while every quantiser sees float32
    and the logits and gradients are float32; evaluation (no gradients) is float32, bit-identical to a
    network without it."""
    torch.manual_seed(0)
    net = Supernet(space)
    x, y = batch(space, 8)
    s = net.sample("weight", 1.0, torch.Generator().manual_seed(0))
    # at 8 bits bfloat16's rounding rarely moves a value to another level (at 2 bits it often does)
    paths = [LayerPath(lp.ops, None, [QuantSpec.fixed(8)]) for lp in s.paths]
    ref = copy.deepcopy(net.net)(x, paths)  # (a training forward moves the activation ranges)
    quantised, convolved = [], []
    conv = net.net.layers[0][s.op[0]].dw
    hooks = [m.register_forward_pre_hook(lambda mod, inp: quantised.append(inp[0].dtype))
             for m in net.net.modules() if isinstance(m, ActRange)]
    real_conv = conv._conv_forward

    def conv_forward(i, w, b):
        out = real_conv(i, w, b)
        convolved.append(out.dtype)
        return out

    conv._conv_forward = conv_forward
    net.net.use_bf16()
    out = net.net(x, paths)
    assert convolved == [torch.bfloat16] and set(quantised) == {torch.float32} and out.dtype == torch.float32
    assert not torch.equal(out, ref) and torch.allclose(out, ref, rtol=0.05, atol=0.05)
    F.cross_entropy(out, y).backward()
    assert all(p.grad.dtype == torch.float32 for p in net.weight_parameters() if p.grad is not None)
    for h in hooks:
        h.remove()
    net.eval()
    with torch.no_grad():
        evaluated = net.net(x, paths)
        net.net.use_bf16(False)
        assert torch.equal(evaluated, net.net(x, paths))
