"""fpga-chunk: the listed corrections, physical bounds, and that budgets (not the space) bind."""
import pytest
import torch

from autonba.hw.engines import ENGINES
from autonba.hw.platform import Platform, load_platform
from autonba.hw.templates import TEMPLATES
from autonba.hw.workload import Layer, Workload
from autonba.hw.zoo import WORKLOADS


def make(layers, platform="zc706", **opt):
    return TEMPLATES.get("fpga-chunk")(Workload("t", layers), load_platform(platform) if isinstance(platform, str)
                                       else platform, **opt)


def conv(cin, cout, size, k=3, s=1, groups=1, bits=8, name="c"):
    out = (size + 2 * (k // 2) - k) // s + 1
    return Layer(name, cin, cout, size, size, out, out, k, s, groups, bits)


def design(t, **factors):
    base = dict(comp_mode=1, Trb=1, Tcb=1, Tmb=1, Tnb=1, Tr=1, Tc=1, Tm=1, Tn=1)
    return t.space.parse([{"chunks": {c: {**base, **factors} for c in t.chunk_names}}])


@pytest.fixture(scope="module")
def mbv2():
    return TEMPLATES.get("fpga-chunk")(WORKLOADS.get("mobilenetv2-cifar")(8), load_platform("zc706"))


def test_shipped_platforms():
    z = load_platform("zc706")
    assert (z.dsp, z.bram18k, z.clock_mhz) == (900, 1090, 200)
    assert (load_platform("zcu102").dsp, load_platform("zcu102").bram18k) == (2520, 1824)
    assert (load_platform("ultra96").dsp, load_platform("ultra96").bram18k) == (360, 432)
    assert [z.macs_per_dsp_for(q) for q in (2, 4, 6, 8, 16)] == [4, 4, 2, 2, 1]


def test_user_platform_from_yaml(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("name: mine\ndsp: 100\nbram18k: 50\nclock_mhz: 150\ndram_bytes_per_cycle: 8\n")
    plat = load_platform(str(p))
    assert plat.name == "mine" and plat.clock_hz == 150e6


def test_partial_tiles_cost_a_whole_tile():
    # 10 output channels with Tmb = 8: two output-channel tiles, not 1.25
    t = make([conv(8, 10, 8, k=1)])
    t2 = make([conv(8, 16, 8, k=1)])
    v = dict(Trb=8, Tcb=8, Tmb=8, Tnb=8, Tr=8, Tc=8, Tm=8, Tn=8)
    c10 = t.evaluate(design(t, **v)).chunk_cycles
    c16 = t2.evaluate(design(t2, **v)).chunk_cycles
    assert torch.equal(c10, c16)


def test_depthwise_mode1_counts_tmb_and_weight_buffers_are_counted():
    t = make([conv(256, 256, 16, k=3, groups=256)])
    small = t.evaluate(design(t, comp_mode=1, Trb=16, Tcb=16, Tmb=1, Tr=16, Tc=16, Tm=1)).chunk_bram
    large = t.evaluate(design(t, comp_mode=1, Trb=16, Tcb=16, Tmb=256, Tr=16, Tc=16, Tm=1)).chunk_bram
    assert float(large) > float(small)  # the legacy model read Tnb (= 1) here and saw no change
    rep = t.layer_report(design(t, comp_mode=1, Trb=16, Tcb=16, Tmb=256, Tr=16, Tc=16, Tm=1)[0])
    assert rep[0]["bram"] == int(large)
    # compulsory traffic of a depthwise layer counts all its channels: weights + outputs + inputs, 8 bits
    assert rep[0]["compulsory_bytes"] == 256 * 9 + 2 * 256 * 16 * 16


def test_weight_buffer_enters_bram_in_mode_1():
    # a 3x3 conv with many input channels per tile: the weight buffer dominates
    t = make([conv(64, 64, 4, k=3)])
    lo = t.evaluate(design(t, comp_mode=1, Trb=4, Tcb=4, Tmb=64, Tnb=1, Tr=4, Tc=4, Tm=1, Tn=1)).chunk_bram
    hi = t.evaluate(design(t, comp_mode=1, Trb=4, Tcb=4, Tmb=64, Tnb=64, Tr=4, Tc=4, Tm=1, Tn=1)).chunk_bram
    assert float(hi) > float(lo)


def test_whole_dsps_with_packing_by_bitwidth():
    for bits, per_dsp in ((4, 4), (8, 2), (16, 1)):
        t = make([conv(16, 16, 8, bits=bits)])
        ev = t.evaluate(design(t, comp_mode=1, Tmb=4, Tnb=2, Tm=4, Tn=2, Trb=8, Tcb=8, Tr=8, Tc=8))
        assert float(ev.chunk_dsp[0, 0]) == -(-8 // per_dsp)
    t = make([conv(16, 16, 8, bits=8)])
    ev = t.evaluate(design(t, comp_mode=1, Tmb=1, Tm=1, Tnb=1, Tn=1))
    assert float(ev.chunk_dsp[0, 0]) == 1.0  # one multiplier still takes a whole DSP


def test_memory_roofline_binds_on_a_slow_dram():
    slow = Platform(name="slow", dsp=900, bram18k=1090, clock_mhz=200, dram_bytes_per_cycle=0.01)
    t = make([conv(64, 64, 8, k=1)], platform=slow)
    vals = design(t, comp_mode=1, Trb=8, Tcb=8, Tmb=64, Tnb=64, Tr=8, Tc=8, Tm=8, Tn=8)
    rep = t.layer_report(vals[0])[0]
    assert rep["cycles"] == pytest.approx(rep["memory_bound_cycles"])
    assert rep["dram_bytes"] >= rep["compulsory_bytes"] * (1 - 1e-12)


def test_exact_shapes_of_the_real_network():
    w = WORKLOADS.get("mobilenetv2-cifar")(8)
    names = [l.name for l in w.layers]
    assert names[0] == "stem" and names[-2:] == ["head", "classifier"]
    dw = [l for l in w.layers if l.depthwise]
    assert all(l.stride in (1, 2) for l in dw) and any(l.stride == 2 for l in dw)
    s1 = next(l for l in w.layers if l.name == "s2b0.dw")  # stride 2 on the depthwise conv
    assert (s1.in_h, s1.out_h, s1.stride) == (32, 16, 2)
    cls = w.layers[-1]
    assert (cls.in_ch, cls.out_ch, cls.out_h, cls.kernel) == (1280, 10, 1, 1)


def random_designs(t, n, seed=0):
    idx, _ = t.space.sample(n, generator=torch.Generator().manual_seed(seed))
    return t.space.values(idx)


@pytest.mark.parametrize("net,bits,plat", [("mobilenetv2-cifar", 8, "zc706"), ("resnet18-cifar", 4, "ultra96"),
                                           ("vgg16-cifar", 6, "zcu102")])
def test_cycles_respect_compute_and_memory_bounds(net, bits, plat):
    t = TEMPLATES.get("fpga-chunk")(WORKLOADS.get(net)(bits), load_platform(plat))
    for vals in random_designs(t, 24, seed=bits):
        for r in t.layer_report(vals):
            assert r["cycles"] >= r["compute_cycles"] * (1 - 1e-12)
            assert r["cycles"] >= r["memory_bound_cycles"] * (1 - 1e-12)
            assert 0 < r["utilisation"] <= 1 + 1e-12
            # the tiling moves at least the compulsory traffic (weights, outputs, input centres)
            assert r["dram_bytes"] >= r["compulsory_bytes"] * (1 - 1e-12)


def test_chunk_aggregation(mbv2):
    vals = random_designs(mbv2, 16)
    ev = mbv2.evaluate(vals, layers=True)
    for i in range(mbv2.space.num_chunks):
        ls = mbv2.layers_of(i)
        assert torch.allclose(ev.chunk_cycles[:, i], ev.layer_cycles[:, ls].sum(1))
        cyc, dsp, bram = mbv2.evaluate_chunk(i, vals[:, i])
        assert torch.allclose(cyc, ev.chunk_cycles[:, i]) and torch.equal(dsp, ev.chunk_dsp[:, i])
        assert torch.equal(bram, ev.chunk_bram[:, i])
    assert torch.allclose(ev.bottleneck, ev.chunk_cycles.max(1).values)
    assert torch.allclose(ev.fps, 200e6 / ev.bottleneck)
    assert torch.equal(ev.feasible, (ev.total_dsp <= 900) & (ev.total_bram <= 1090))


def test_space_reaches_past_the_budget(mbv2):
    """Channel tiles go to at least 64 and the largest design of each chunk exceeds the platform."""
    for c in mbv2.chunk_names:
        assert max(mbv2.space.choices[c]["Tmb"]) >= 64
    top = mbv2.space.table.nan_to_num(nan=0.0).amax(-1).unsqueeze(0)  # every factor at its largest value
    top[..., 0] = 1  # mode 1: Tm * Tn multipliers
    ev = mbv2.evaluate(top)
    assert not bool(ev.feasible[0])


def test_budget_binds_at_the_optimum(mbv2):
    out = ENGINES.get("exact")(mbv2).run()
    ev = mbv2.evaluate(out.best.unsqueeze(0))
    assert max(float(ev.total_dsp[0]) / 900, float(ev.total_bram[0]) / 1090) >= 0.8


def test_larger_budget_never_lowers_the_exact_optimum():
    w = WORKLOADS.get("resnet18-cifar")(8)
    prev = 0.0
    for scale in (0.25, 0.5, 1.0, 2.0):
        plat = Platform(name="s", dsp=int(360 * scale), bram18k=int(432 * scale), clock_mhz=200)
        t = TEMPLATES.get("fpga-chunk")(w, plat, channel_tile_max=32)
        out = ENGINES.get("exact")(t).run()
        fps = t.clock_hz / out.score
        assert fps >= prev - 1e-9
        prev = fps


def test_lower_bitwidth_never_slows_a_design():
    for k, groups in ((3, 1), (1, 1), (3, 32)):
        ts = {q: make([conv(32, 32, 16, k=k, groups=groups, bits=q)]) for q in (4, 8)}
        v = design(ts[8], comp_mode=0, Trb=8, Tcb=8, Tmb=16, Tr=8, Tc=8, Tm=8,
                   **({} if groups > 1 else dict(Tnb=8, Tn=4)))
        e4, e8 = ts[4].evaluate(v), ts[8].evaluate(v)
        assert float(e4.bottleneck) <= float(e8.bottleneck)
        assert float(e4.total_dsp) <= float(e8.total_dsp) and float(e4.total_bram) <= float(e8.total_bram)
