"""QONNX export of derived networks: qonnx executes it equal to PyTorch, cleanup keeps it so, and its
cost count agrees with ours; `autonba train` writes it and `autonba export` rewrites it."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_joint import searched, tiny_config

from autonba.cli import main
from autonba.deploy.qonnx_export import to_qonnx
from autonba.nas.arch import Arch, BlockChoice
from autonba.nas.derived import DerivedNet, count_macs
from autonba.nas.space import SearchSpace, load_space

qonnx = pytest.importorskip("qonnx", reason="QONNX checks need autonba[deploy]")
from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402
from qonnx.core.onnx_exec import execute_onnx  # noqa: E402
from qonnx.transformation.infer_shapes import InferShapes  # noqa: E402
from qonnx.util.cleanup import cleanup_model  # noqa: E402

OPS = ["k3_e3", "k3_e1_g2", "skip", "k5_e6", "k3_e1", "k5_e3"]   # residual, grouped + shuffle, identity, ...


def trained_net(scales: str, bits: list[int]) -> DerivedNet:
    """A derived network with non-trivial batch-norm statistics and activation ranges, in eval mode."""
    data = load_space("small").model_dump()
    data["layout"].update(input_size=16, input_channels=1, scales=scales)
    layout = SearchSpace.model_validate(data).layout
    torch.manual_seed(1)
    net = DerivedNet(Arch(layout=layout, blocks=[BlockChoice(op=o, bits=b) for o, b in zip(OPS, bits)]))
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 1.0
    with torch.no_grad():
        net.train()(torch.randn(32, 1, 16, 16))
    return net.eval()


def run_qonnx(model, x: np.ndarray) -> np.ndarray:
    w = ModelWrapper(model).transform(InferShapes())
    return execute_onnx(w, {w.graph.input[0].name: x})[w.graph.output[0].name]


@pytest.mark.parametrize("scales,bits", [("float", [4, 6, 8, 5, 3, 8]), ("pow2", [2, 4, 8, 6, 5, 3])])
def test_qonnx_executes_equal_to_pytorch(scales, bits):
    """Power-of-two scales: bit-exact. Float scales: QONNX divides by the scale where the quantiser (as
    torch's fake-quantize kernel) multiplies by its inverse, so an input within an ulp of a rounding
    boundary may land one step apart; the rest is bit-exact, and the predicted classes agree."""
    net = trained_net(scales, bits)
    x = torch.randn(64, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = net(x).numpy()
    model = to_qonnx(net, batch=64)
    quant = [n for n in model.graph.node if n.op_type == "Quant"]
    convs = [n for n in model.graph.node if n.op_type in ("Conv", "MatMul")]
    assert len(quant) == 2 * len(convs)                  # every weight and every layer input
    out = run_qonnx(model, x.numpy())
    clean = cleanup_model(ModelWrapper(model))
    assert np.array_equal(execute_onnx(clean, {clean.graph.input[0].name: x.numpy()})[clean.graph.output[0].name],
                          out)
    if scales == "pow2":
        assert np.array_equal(out, ref)
    else:
        same = (out == ref).all(1)
        assert same.mean() >= 0.9 and (out.argmax(1) == ref.argmax(1)).all()


def test_qonnx_inference_cost_counts_our_macs(tmp_path):
    from qonnx.util.inference_cost import inference_cost
    net = trained_net("pow2", [4, 6, 8, 5, 3, 8])
    path = tmp_path / "m.onnx"
    path.write_bytes(to_qonnx(net).SerializeToString())
    cost = inference_cost(str(path), discount_sparsity=False)["total_cost"]
    macs = count_macs(net, torch.zeros(1, 1, 16, 16))
    assert cost["total_macs"] == macs == net.arch.workload().macs


def test_train_writes_qonnx_and_export_rewrites_it(tmp_path, capsys):
    run, _, _ = searched(tmp_path, tiny_config(tmp_path, quant_scales="pow2", search={"epochs": 2, "warmup_epochs": 1}))
    assert main(["train", str(run), "--epochs", "1", "--no-progress"]) == 0
    written = run / "model_qonnx.onnx"
    import onnx
    model = onnx.load(str(written))
    arch = json.loads((run / "arch.json").read_text())
    for t in model.graph.initializer:                       # each block's quantisers at its searched bitwidth
        if t.name.startswith("block") and "_bits" in t.name:
            block = int(t.name[len("block"):].split("_")[0])
            assert float(onnx.numpy_helper.to_array(t)) == arch["blocks"][block]["bits"]
    capsys.readouterr()
    assert main(["export", str(run)]) == 2                                  # never overwritten unasked
    assert "already exists" in capsys.readouterr().err
    again = tmp_path / "again.onnx"
    assert main(["export", str(run), "--out", str(again)]) == 0
    assert again.read_bytes() == written.read_bytes()
    assert main(["export", str(tmp_path)]) == 2
    assert "holds no retrained network" in capsys.readouterr().err
    # the same network retrained with float scales: same hardware, other quantisers, no warning
    assert main(["train", str(run), "--epochs", "1", "--force", "--set", "quant_scales=float", "--no-progress"]) == 0
    final = json.loads((run / "final.json").read_text())
    assert final["quant_scales"] == "float" and not final["hardware_notes"]
    assert torch.load(run / "model.pt", weights_only=False)["arch"]["layout"]["scales"] == "float"


def test_round_trip_arch_to_qonnx_to_import(tmp_path):
    """arch.json -> retrain -> QONNX -> --onnx: the same layers (shapes, bitwidths) and the same FPS on the
    run's accelerator as --arch."""
    from autonba.hw.onnx_import import import_onnx
    run, _, _ = searched(tmp_path, tiny_config(tmp_path, quant_scales="pow2", search={"epochs": 2, "warmup_epochs": 1}))
    assert main(["train", str(run), "--epochs", "1", "--no-progress"]) == 0
    imported = import_onnx(run / "model_qonnx.onnx")
    assert imported.not_costed.keys() <= {"Quant", "BatchNormalization", "Relu", "Add", "Reshape", "Transpose",
                                          "GlobalAveragePool", "Flatten", "Identity"}
    shape = lambda wl: [(x.in_ch, x.out_ch, x.in_h, x.in_w, x.out_h, x.out_w, x.kernel, x.stride, x.groups,  # noqa
                         x.bits) for x in wl.layers]
    assert shape(imported.workload) == shape(Arch.load(run / "arch.json").workload())
    fps = {}
    for src in (["--arch", str(run / "arch.json")], ["--onnx", str(run / "model_qonnx.onnx")]):
        out = tmp_path / f"{src[0][2:]}.json"
        assert main(["accel", "eval", *src, "--design", str(run / "accelerator.json"), "--out", str(out)]) == 0
        fps[src[0]] = json.loads(out.read_text())["fps"]
    assert fps["--arch"] == fps["--onnx"] == json.loads((run / "result.json").read_text())["fps"]
