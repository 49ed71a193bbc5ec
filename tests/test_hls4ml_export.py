"""The fixed-point network and its hls4ml project: exact types, a bit-exact emulation, reuse factors
from the searched accelerator, and one test per hls4ml trap that fails without our workaround."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from test_deploy import trained_net
from test_joint import searched, tiny_config

from autonba.cli import main
from autonba.deploy.fixed import Conv, Quant, fold
from autonba.errors import AutonbaError

pytest.importorskip("qonnx", reason="the export needs autonba[deploy]")
BITS = [4, 6, 8, 5, 3, 8]


@pytest.fixture(scope="module")
def net():
    return fold(trained_net("pow2", BITS))


def test_every_tensor_lies_in_its_type(net):
    """On inputs far beyond the input quantiser's range, every tensor is on its grid and inside its
    type's range: the types hold every value for any input."""
    from autonba.deploy.hls4ml_export import probe_inputs
    x = torch.from_numpy(probe_inputs(net, 64, seed=1) * 4)
    types = net.types()
    env = net.trace(x)
    assert set(types) == set(env) - {"input"}
    for name, t in types.items():
        n = env[name].numpy() * 2.0 ** t.frac
        assert np.array_equal(n, np.round(n)), name                      # on the grid 2**-frac
        assert n.min() >= t.lo and n.max() <= t.hi, name
    acc = [types[f"{op.name}/accum"] for op in net.ops if isinstance(op, Conv)]
    assert all(t.shape[0] <= 32 for t in acc)                            # bounds, not blow-ups


def test_fold_keeps_bitwidths_and_changes_little(net):
    """Folding keeps every layer's searched bitwidth (weights on its grid per channel) and most of
    the network's decisions (a random network with 3-bit layers: the hardest case)."""
    model = trained_net("pow2", BITS)
    arch = model.arch
    convs = {op.layer: op for op in net.ops if isinstance(op, Conv)}
    for i, blk in enumerate(arch.blocks):
        for name, op in convs.items():
            if name.startswith(f"block{i}."):
                assert op.bits == blk.bits
                levels = 2 ** (op.bits - 1) - 1
                n = op.weight * np.ldexp(1.0, op.wfrac).reshape(-1, *([1] * (op.weight.ndim - 1)))
                assert np.array_equal(n, np.round(n)) and np.abs(n).max() <= levels
    x = torch.randn(256, 1, 16, 16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        agree = (model(x).argmax(1) == net(x).argmax(1)).double().mean()
    assert agree >= 0.75


def test_float_scales_are_refused_unless_approximate():
    model = trained_net("float", BITS)
    with pytest.raises(AutonbaError, match="float quantiser scales"):
        fold(model)
    approx = fold(model, approximate=True)
    assert approx.approximate and any("float scales" in n for n in approx.notes)


def test_deploy_qonnx_executes_equal_to_the_fixed_network(net):
    """The QONNX model hls4ml reads (folded, every constant behind a Quant node stating its type, no
    batch-norm, reshape or transpose) computes the reference exactly in qonnx's executor."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    from autonba.deploy.hls4ml_export import INPUT, probe_inputs, to_deploy_qonnx
    x = probe_inputs(net, 8, seed=2)
    ref = net(torch.from_numpy(x)).numpy()
    model = ModelWrapper(to_deploy_qonnx(net)).transform(InferShapes())
    assert not [n for n in model.graph.node if n.op_type in ("BatchNormalization", "Reshape", "Transpose")]
    for i in range(len(x)):
        y = execute_onnx(model, {INPUT: x[i:i + 1].astype(np.float32)})[model.graph.output[0].name]
        assert np.array_equal(y[0], ref[i])


# ---- hls4ml: compiled emulations (about 25 s each) ---------------------------------------------------
hls4ml = pytest.importorskip("hls4ml", reason="the hls4ml export needs autonba[deploy]")


def build(net, out, qonnx_edit=None, config_edit=None):
    """convert() with one step undone: ``qonnx_edit`` on the (channels-first) QONNX model, ``config_edit``
    on hls4ml's configuration."""
    import contextlib
    import io
    import warnings

    from autonba.deploy import hls4ml_export as hx
    plans = hx.plan_layers(net, None, [])
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = hx.to_deploy_qonnx(net)
        model = hx.hls_ready(qonnx_edit(model) if qonnx_edit else model)
        cfg = hx.hls_config(net, model, plans)
        if config_edit:
            config_edit(cfg)
        hm = hls4ml.converters.convert_from_onnx_model(model, output_dir=str(out), io_type="io_stream",
                                                       backend="Vitis", hls_config=cfg, project_name="autonba")
    return hm


def emulate(hm, net, x):
    from autonba.deploy.hls4ml_export import predict
    from autonba.deploy.hls4ml_project import _quiet
    with _quiet():
        hm.compile()
    return predict(hm, x), net(torch.from_numpy(x)).numpy()


@pytest.mark.slow
def test_export_of_a_run_is_bit_exact_with_the_searched_reuse_factors(tmp_path, capsys):
    """`autonba export --format hls4ml` of a trained run: the emulation equals the fixed-point network
    on every probe image; every layer's ReuseFactor in firmware/parameters.h is the one derived from
    the searched accelerator (compute cycles per output pixel, nearest valid)."""
    run, _, _ = searched(tmp_path, tiny_config(tmp_path, quant_scales="pow2", search={"epochs": 2, "warmup_epochs": 1}))
    assert main(["train", str(run), "--epochs", "1", "--no-progress"]) == 0
    assert main(["export", str(run), "--format", "hls4ml", "--verify", "24"]) == 0
    out = run / "hls4ml"
    doc = json.loads((out / "deploy.json").read_text())
    assert doc["exact"] and doc["verify"]["inputs"] == doc["verify"]["equal"] == 24
    assert doc["verify"]["max_abs_diff"] == 0.0
    assert (out / "build_prj.tcl").is_file() and (out / "hls4ml_config.yml").is_file()
    accel = json.loads((run / "accelerator.json").read_text())
    cycles = {r["name"]: r["compute_cycles"] for r in accel["layers"]}
    params = (out / "firmware" / "parameters.h").read_text()
    blocks = re.split(r"\n// (\w+)\n(?=struct)", params)            # each layer's config structs, by layer
    config_rf = {name: int(m.group(1)) for name, body in zip(blocks[1::2], blocks[2::2])
                 if (m := re.search(r"reuse_factor = (\d+);", body))}
    convs = [r for r in doc["layers"] if "workload_layer" in r]
    assert convs and all(r["searched_cycles_per_pixel"] is not None for r in convs)
    from autonba.deploy.hls4ml_export import valid_reuse_factors
    for r in convs:
        assert r["searched_cycles_per_pixel"] == pytest.approx(cycles[r["workload_layer"]] / _pixels(run, r))
        valid = valid_reuse_factors(*r["mult_size"])
        assert r["reuse_factor"] == min(valid, key=lambda v: (abs(v - r["searched_cycles_per_pixel"]), v))
        n = r["name"]
        found = [v for k, v in config_rf.items()
                 if k in (f"Conv2D_{n}", f"DepthwiseConv2D_{n}", f"PointwiseConv2D_{n}", f"Dense_{n}_matmul")]
        assert found == [r["reuse_factor"]], r["name"]
    capsys.readouterr()
    assert main(["export", str(run), "--format", "hls4ml", "--verify", "0"]) == 2   # never overwritten unasked
    assert "already exists" in capsys.readouterr().err
    assert main(["export", str(run), "--format", "hls4ml", "--verify", "0", "--force"]) == 0
    assert "verify" not in json.loads((out / "deploy.json").read_text())


def _pixels(run, row):
    from autonba.nas.arch import Arch
    arch = Arch.model_validate_json((run / "arch.json").read_text())
    lay = {x.name: x for x in arch.workload().layers}[row["workload_layer"]]
    return lay.out_h * lay.out_w


def _to_gap(model):
    """The deploy model with the pool as ONNX writes it: a GlobalAveragePool."""
    from onnx import helper
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.general import RemoveUnusedTensors
    pool = next(n for n in model.graph.node if n.name == "pool")
    for n in [n for n in model.graph.node if set(n.output) & set(pool.input[1:])]:
        model.graph.node.remove(n)                              # the pooling conv's weight and bias
    i = list(model.graph.node).index(pool)
    model.graph.node.remove(pool)
    model.graph.node.insert(i, helper.make_node("GlobalAveragePool", [pool.input[0]], list(pool.output), name="pool"))
    return ModelWrapper(model).transform(RemoveUnusedTensors()).model


def gap_emulation(out: str) -> None:
    """(Run in a child process.) Emulate the network with a GlobalAveragePool; save its logits."""
    net = fold(trained_net("pow2", BITS))
    y, _ = emulate(build(net, f"{out}/gap", qonnx_edit=_to_gap), net, _x(net))
    np.save(f"{out}/y.npy", y)


@pytest.mark.slow
def test_trap_global_average_pool_layout(net, tmp_path):
    """A GlobalAveragePool after qonnx's channels-last conversion: hls4ml's emulation of it dies (an
    illegal instruction on this machine) or computes wrong values; it runs in a child process here.
    We write the pool as a depthwise conv of weights 1/pixels (the other tests: exact)."""
    import subprocess
    import sys
    from pathlib import Path
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_hls4ml_export as t; " \
           f"t.gap_emulation({str(tmp_path)!r})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True)
    if done.returncode == 0:
        y = np.load(tmp_path / "y.npy")
        assert not np.array_equal(y, net(torch.from_numpy(_x(net))).numpy())
    else:
        assert done.returncode < 0, done.stderr.decode()[-2000:]    # killed by a signal, not a Python error


def _x(net, n=16):
    from autonba.deploy.hls4ml_export import probe_inputs
    return probe_inputs(net, n, seed=3)


@pytest.mark.slow
def test_trap_one_pixel_transpose(net, tmp_path, monkeypatch):
    """The transpose qonnx leaves before the classifier's flatten makes hls4ml's stream feed the
    classifier wrong values; we remove it (it moves nothing)."""
    from autonba.deploy import hls4ml_export as hx
    monkeypatch.setattr(hx, "_drop_pixel_transposes", lambda m: None)
    y, ref = emulate(build(net, tmp_path / "tr"), net, _x(net))
    assert not np.array_equal(y, ref)


@pytest.mark.slow
def test_trap_default_accumulator_precision(net, tmp_path):
    """hls4ml's default precision (fixed<16,6>) for accumulators and results rounds and wraps; we set
    every layer's exact type."""
    def drop(cfg):
        for name, layer in cfg["LayerName"].items():
            if name != "image" and "accum" in layer.get("Precision", {}):
                layer.pop("Precision")
    y, ref = emulate(build(net, tmp_path / "acc", config_edit=drop), net, _x(net))
    assert not np.array_equal(y, ref)


@pytest.mark.slow
def test_trap_input_rounded_twice(net, tmp_path):
    """With hls4ml's default input type, an input off the first quantiser's grid is truncated to it
    before the quantiser rounds it: images whose pixels sit just below a rounding tie come out wrong.
    We read the input with the quantiser's own type (round half to even, saturate)."""
    first = net.ops[0]
    assert isinstance(first, Quant)
    step = 2.0 ** -first.frac
    g = np.random.default_rng(4)
    ties = (g.integers(0, 2 ** (first.bits - 2), size=(16, *net.input_shape)) + 0.5) * step
    x = ties + 2.0 ** -(first.frac + 12)   # just above a tie: rounds up; truncated first, it is the tie: half to even

    def default_input(cfg):
        cfg["LayerName"]["image"].pop("Precision")
    hm = build(net, tmp_path / "in", config_edit=default_input)
    y, ref = emulate(hm, net, x)
    assert not np.array_equal(y, ref)
    good, _ = emulate(build(net, tmp_path / "in_ok"), net, x)
    assert np.array_equal(good, ref)
