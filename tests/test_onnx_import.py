"""ONNX / QONNX import (autonba.hw.onnx_import): zoo networks exported from PyTorch import to the zoo's layers,
bitwidths come from QONNX Quant nodes, QuantizeLinear/DequantizeLinear pairs and integer convolutions, what
no template costs is an error naming the node, and the CLI and Python API take an ONNX model."""
import json
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from autonba import accel
from autonba.cli import main
from autonba.errors import AutonbaError
from autonba.hw.onnx_import import import_onnx
from autonba.hw.zoo import WORKLOADS

SHAPE = ("in_ch", "out_ch", "in_h", "in_w", "out_h", "out_w", "kernel", "stride", "groups")
QONNX = "qonnx.custom_op.general"


def shapes(workload):
    return [tuple(getattr(l, f) for f in SHAPE) for l in workload.layers]


# --- the zoo's CIFAR networks, as PyTorch modules -------------------------------------------------------------


class BasicBlock(nn.Module):
    def __init__(self, cin: int, c: int, stride: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, c, 3, stride, 1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c)
        self.downsample = None
        if stride != 1 or cin != c:
            self.downsample = nn.Sequential(nn.Conv2d(cin, c, 1, stride, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)  # first, as in the zoo's layer order
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + shortcut)


class ResNet18Cifar(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        blocks, cin = [], 64
        for si, c in enumerate((64, 128, 256, 512)):
            for i in range(2):
                blocks.append(BasicBlock(cin, c, 2 if si > 0 and i == 0 else 1))
                cin = c
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    mods = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*mods, nn.ReLU6()) if act else nn.Sequential(*mods)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers = [conv_bn(cin, hidden, 1)] if expand != 1 else []
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden), conv_bn(hidden, cout, 1, act=False)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV2Cifar(nn.Module):
    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1)]  # the CIFAR variant: stem and second stage at stride 1

    def __init__(self, classes: int = 10):
        super().__init__()
        layers, cin = [conv_bn(3, 32, 3)], 32
        for e, c, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, e))
                cin = c
        layers.append(conv_bn(cin, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(1280, classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x).mean((2, 3), keepdim=True), 1))


def export(model: nn.Module, path):
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is deprecated, not gone
        torch.onnx.export(model.eval(), torch.zeros(1, 3, 32, 32), str(path), dynamo=False)
    return path


@pytest.fixture(scope="module")
def resnet_onnx(tmp_path_factory):
    torch.manual_seed(0)
    return export(ResNet18Cifar(), tmp_path_factory.mktemp("onnx") / "resnet18.onnx")


@pytest.fixture(scope="module")
def mobilenet_onnx(tmp_path_factory):
    torch.manual_seed(0)
    return export(MobileNetV2Cifar(), tmp_path_factory.mktemp("onnx") / "mobilenetv2.onnx")


def test_resnet18_cifar_imports_as_the_zoo_network(resnet_onnx):
    imported = import_onnx(resnet_onnx)
    zoo = WORKLOADS.get("resnet18-cifar")(8)
    assert imported.workload.macs == zoo.macs
    assert shapes(imported.workload) == shapes(zoo)
    assert imported.workload.name == "resnet18"
    assert all(l.bits == 8 for l in imported.workload.layers)
    assert imported.stated_bits == {l.name: (None, None) for l in imported.workload.layers}
    skipped = imported.not_costed
    assert {"Relu": 17, "Add": 8, "GlobalAveragePool": 1, "Flatten": 1}.items() <= skipped.items()
    assert set(skipped) <= {"Relu", "Add", "GlobalAveragePool", "Flatten", "Identity", "Reshape"}
    assert "BatchNormalization" not in skipped  # folded into the convolutions by the exporter in eval mode
    summary = imported.summary()
    assert summary["layers"] == 21 and summary["macs"] == zoo.macs and summary["not_costed"] == dict(
        sorted(skipped.items()))


def test_mobilenetv2_cifar_imports_as_the_zoo_network(mobilenet_onnx):
    imported = import_onnx(mobilenet_onnx, bits=4, name="mbv2")
    zoo = WORKLOADS.get("mobilenetv2-cifar")(4)
    assert imported.workload.macs == zoo.macs
    assert shapes(imported.workload) == shapes(zoo)
    assert [l.bits for l in imported.workload.layers] == [4] * len(zoo.layers)
    assert imported.workload.name == "mbv2"
    depthwise = [l for l in imported.workload.layers if l.groups > 1]
    assert len(depthwise) == 17 and all(l.groups == l.in_ch == l.out_ch for l in depthwise)
    skipped = imported.not_costed
    # ReLU6 exports as Clip; 10 residual adds; the mean over H and W as ReduceMean
    assert {"Clip": 35, "Add": 10, "ReduceMean": 1, "Flatten": 1}.items() <= skipped.items()
    assert set(skipped) <= {"Clip", "Add", "ReduceMean", "Flatten", "Identity", "Reshape"}


# --- hand-built graphs ----------------------------------------------------------------------------------------


class Graph:
    """A small ONNX graph under construction: nodes, initializers, opsets."""

    def __init__(self, opset: int = 13):
        self.nodes, self.inits, self.opset, self.n = [], [], opset, 0

    def const(self, name: str, value, dtype=None) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(self, op: str, inputs, name: str | None = None, domain: str = "", **attrs) -> str:
        self.n += 1
        out = f"{name or op.lower()}_out{self.n}"
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=name or f"{op.lower()}{self.n}",
                                           domain=domain, **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int = 3, name: str | None = None, w: str | None = None,
             **attrs) -> str:
        w = w or self.weight(f"{name}_w", (cout, cin, k, k))
        return self.node("Conv", [x, w], name=name, pads=[k // 2] * 4, **attrs)

    def weight(self, name: str, shape) -> str:
        return self.const(name, np.random.default_rng(0).standard_normal(shape).astype(np.float32))

    def quant(self, x: str, bits: int, signed: int = 1, name: str | None = None) -> str:
        tag = name or f"q{self.n}"
        s = self.const(f"{tag}_scale", np.float32(0.05))
        z = self.const(f"{tag}_zero", np.float32(0.0))
        b = self.const(f"{tag}_bits", np.float32(bits))
        return self.node("Quant", [x, s, z, b], name=tag, domain=QONNX, signed=signed, narrow=0,
                         rounding_mode="ROUND")

    def qdq(self, x: str, zero, name: str, zero_type=None) -> str:
        s = self.const(f"{name}_scale", np.float32(0.05))
        if zero_type is None:
            z = self.const(f"{name}_zero", zero)
        else:  # a type numpy cannot hold (int4): a tensor made by onnx.helper
            self.inits.append(helper.make_tensor(f"{name}_zero", zero_type, [], [zero]))
            z = f"{name}_zero"
        q = self.node("QuantizeLinear", [x, s, z], name=f"{name}_q")
        return self.node("DequantizeLinear", [q, s, z], name=f"{name}_dq")

    def model(self, inputs: dict[str, tuple], out: str, in_type=TensorProto.FLOAT,
              out_type=TensorProto.FLOAT) -> onnx.ModelProto:
        ins = [helper.make_tensor_value_info(k, in_type, v) for k, v in inputs.items()]
        g = helper.make_graph(self.nodes, "g", ins, [helper.make_tensor_value_info(out, out_type, None)], self.inits)
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", self.opset), helper.make_opsetid(QONNX, 1)])


def test_qonnx_quant_bitwidths():
    g = Graph()
    x = g.quant("x", 6, signed=0, name="in_quant")
    y = g.conv(x, 3, 8, name="conv1", w=g.quant(g.weight("w1", (8, 3, 3, 3)), 4, name="w1_quant"))
    y = g.node("Relu", [y], name="relu1")
    y = g.quant(y, 8, signed=0, name="act_quant")
    y = g.conv(y, 8, 16, name="conv2", strides=[2, 2], w=g.quant(g.weight("w2", (16, 8, 3, 3)), 2, name="w2_quant"))
    y = g.conv(y, 16, 16, k=1, name="conv3")  # no quantiser: the bits argument
    y = g.node("GlobalAveragePool", [y], name="pool")
    y = g.node("Flatten", [y], name="flat")
    fc_w = g.quant(g.const("fc_w", np.zeros((16, 10), np.float32)), 3, name="fc_quant")
    y = g.node("MatMul", [y, fc_w], name="fc")
    model = g.model({"x": (1, 3, 16, 16)}, y)
    imported = import_onnx(model, bits=5)
    assert imported.stated_bits == {"conv1": (4, 6), "conv2": (2, 8), "conv3": (None, None), "fc": (3, None)}
    wl = imported.workload
    assert [(l.name, l.bits) for l in wl.layers] == [("conv1", 6), ("conv2", 8), ("conv3", 5), ("fc", 5)]
    assert shapes(wl) == [(3, 8, 16, 16, 16, 16, 3, 1, 1), (8, 16, 16, 16, 8, 8, 3, 2, 1),
                          (16, 16, 8, 8, 8, 8, 1, 1, 1), (16, 10, 1, 1, 1, 1, 1, 1, 1)]
    assert imported.not_costed == {"Quant": 5, "Relu": 1, "GlobalAveragePool": 1, "Flatten": 1}
    assert imported.summary()["bits"]["conv2"] == {"weights": 2, "activations": 8}
    assert model.graph.value_info == []  # the model given is not changed


def test_qonnx_bipolar_quant_and_value_keeping_ops():
    g = Graph()
    x = g.node("BipolarQuant", ["x", g.const("bq_scale", np.float32(1.0))], name="bq", domain=QONNX)
    x = g.node("Pad", [x, g.const("pads", np.array([0, 0, 0, 0, 0, 0, 0, 0], np.int64))], name="pad")
    w = g.node("Reshape", [g.quant(g.weight("w_flat", (8 * 3 * 9,)), 3, name="wq"),
                           g.const("w_shape", np.array([8, 3, 3, 3], np.int64))], name="reshape_w")
    y = g.conv(x, 3, 8, name="conv", w=w)
    imported = import_onnx(g.model({"x": (1, 3, 8, 8)}, y))
    assert imported.stated_bits == {"conv": (3, 1)}
    assert imported.workload.layers[0].bits == 3
    assert shapes(imported.workload) == [(3, 8, 8, 8, 8, 8, 3, 1, 1)]


def test_quantize_dequantize_pairs():
    g = Graph(opset=13)
    y = g.conv(g.qdq("x", np.uint8(128), "in"), 3, 8, name="conv_u8", w=g.qdq(g.weight("w1", (8, 3, 3, 3)),
                                                                              np.int8(0), "w1"))
    y = g.node("Relu", [y], name="relu")
    y = g.conv(y, 8, 8, name="conv_plain")
    model = g.model({"x": (1, 3, 8, 8)}, y)
    imported = import_onnx(model, bits=4)
    # a convolution's output is not its input's width: the plain conv behind the Relu takes the bits argument
    assert imported.stated_bits == {"conv_u8": (8, 8), "conv_plain": (None, None)}
    assert [l.bits for l in imported.workload.layers] == [8, 4]
    assert imported.not_costed == {"QuantizeLinear": 2, "DequantizeLinear": 2, "Relu": 1}


def test_quantized_weights_stored_as_integers():
    """QDQ format as quantisation tools write it: int8 weights in an initializer, dequantised in the graph."""
    g = Graph(opset=13)
    w = g.const("w_int8", np.ones((8, 3, 3, 3), np.int8))
    w = g.node("DequantizeLinear", [w, g.const("w_scale", np.float32(0.1)), g.const("w_zero", np.int8(0))],
               name="w_dq")
    y = g.conv(g.qdq("x", np.int8(0), "in"), 3, 8, name="conv", w=w)
    imported = import_onnx(g.model({"x": (1, 3, 8, 8)}, y), bits=2)
    assert imported.stated_bits == {"conv": (8, 8)} and imported.workload.layers[0].bits == 8


def test_int4_quantize_dequantize():
    g = Graph(opset=21)
    w = g.qdq(g.weight("w", (8, 3, 3, 3)), 0, "w", zero_type=TensorProto.INT4)
    y = g.conv(g.qdq("x", np.uint8(0), "in"), 3, 8, name="conv", w=w)
    w2 = g.qdq(g.weight("w2", (8, 8, 1, 1)), 0, "w2", zero_type=TensorProto.INT4)
    y = g.conv(g.qdq(y, 0, "act", zero_type=TensorProto.UINT4), 8, 8, k=1, name="conv2", w=w2)
    model = g.model({"x": (1, 3, 8, 8)}, y)
    try:
        onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as e:  # an onnx without 4-bit types in QuantizeLinear
        pytest.skip(f"this onnx's shape inference refuses int4 QuantizeLinear: {e}")
    imported = import_onnx(model, bits=16)
    assert imported.stated_bits == {"conv": (4, 8), "conv2": (4, 4)}
    assert [l.bits for l in imported.workload.layers] == [8, 4]


def test_integer_convolutions_read_their_input_types():
    g = Graph(opset=13)
    y = g.node("QLinearConv", ["x", g.const("x_s", np.float32(0.1)), g.const("x_z", np.uint8(0)),
                               g.const("w", np.ones((8, 3, 3, 3), np.int8)), g.const("w_s", np.float32(0.1)),
                               g.const("w_z", np.int8(0)), g.const("y_s", np.float32(0.1)),
                               g.const("y_z", np.uint8(0))], name="qconv", pads=[1, 1, 1, 1], strides=[2, 2])
    y = g.node("ConvInteger", [y, g.const("w2", np.ones((4, 8, 1, 1), np.int8)), g.const("y_zp", np.uint8(0))],
               name="iconv")
    model = g.model({"x": (1, 3, 16, 16)}, y, in_type=TensorProto.UINT8, out_type=TensorProto.INT32)
    imported = import_onnx(model, bits=3)
    assert imported.stated_bits == {"qconv": (8, 8), "iconv": (8, 8)}
    assert [l.bits for l in imported.workload.layers] == [8, 8]
    assert shapes(imported.workload) == [(3, 8, 16, 16, 8, 8, 3, 2, 1), (8, 4, 8, 8, 8, 8, 1, 1, 1)]
    assert imported.not_costed == {}


def test_gemm_with_transposed_weight():
    g = Graph()
    y = g.node("Flatten", ["x"], name="flat")
    y = g.node("Gemm", [y, g.const("fc_w", np.zeros((10, 48), np.float32))], name="fc", transB=1)
    wl = import_onnx(g.model({"x": (1, 3, 4, 4)}, y)).workload
    assert shapes(wl) == [(48, 10, 1, 1, 1, 1, 1, 1, 1)] and wl.macs == 480


def test_weight_transposed_in_the_graph():
    """A quantised (out, in) weight transposed before a MatMul (as Brevitas exports a linear layer): the layer
    has the shape the MatMul takes, not its source's, and the bitwidth found behind the Transpose."""
    g = Graph()
    y = g.node("Flatten", ["x"], name="flat")
    w = g.node("Transpose", [g.quant(g.const("fc_w", np.zeros((10, 48), np.float32)), 4, name="wq")],
               name="wt", perm=[1, 0])
    y = g.node("MatMul", [y, w], name="fc")
    imported = import_onnx(g.model({"x": (1, 3, 4, 4)}, y))
    assert shapes(imported.workload) == [(48, 10, 1, 1, 1, 1, 1, 1, 1)]
    assert imported.stated_bits == {"fc": (4, None)} and imported.workload.layers[0].bits == 8


# --- what no template costs -----------------------------------------------------------------------------------


def _raises(model, *words):
    with pytest.raises(AutonbaError) as e:
        import_onnx(model)
    for w in words:
        assert w in str(e.value), (w, str(e.value))
    return str(e.value)


def test_transposed_convolution_is_refused():
    g = Graph()
    y = g.conv("x", 3, 8, name="conv")
    y = g.node("ConvTranspose", [y, g.weight("wt", (8, 4, 2, 2))], name="upsample", strides=[2, 2])
    _raises(g.model({"x": (1, 3, 8, 8)}, y), "'upsample'", "ConvTranspose", "transposed convolution")


def test_product_of_two_activations_is_refused():
    g = Graph()
    a = g.node("Flatten", [g.conv("x", 3, 4, name="conv")], name="flat")
    t = g.node("Transpose", [a], name="t", perm=[1, 0])
    y = g.node("MatMul", [t, a], name="gram")
    _raises(g.model({"x": (1, 3, 4, 4)}, y), "'gram'", "MatMul", "two activations")


def test_dilated_convolution_is_refused():
    g = Graph()
    y = g.conv("x", 3, 8, name="atrous", dilations=[2, 2])
    _raises(g.model({"x": (1, 3, 16, 16)}, y), "'atrous'", "Conv", "dilated")


def test_non_square_kernel_is_refused():
    g = Graph()
    y = g.node("Conv", ["x", g.weight("w", (8, 3, 1, 3))], name="wide", pads=[0, 1, 0, 1])
    _raises(g.model({"x": (1, 3, 16, 16)}, y), "'wide'", "Conv", "1x3 kernel")


def test_not_an_onnx_file(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_text('{"layers": []}\n')
    _raises(bad, str(bad), "not an ONNX model")


def test_missing_file(tmp_path):
    _raises(tmp_path / "nothing.onnx", "nothing.onnx", "no such file")


def test_model_without_layers():
    g = Graph()
    y = g.node("Relu", ["x"], name="relu")
    y = g.node("MaxPool", [y], name="pool", kernel_shape=[2, 2])
    _raises(g.model({"x": (1, 3, 8, 8)}, y), "no convolution or fully connected layer", "MaxPool, Relu")


def test_not_a_model():
    _raises(b"not a model", "onnx.ModelProto", "bytes")


# --- the CLI and the Python API -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory):
    """A small QONNX model on disk: 4-bit weights and 6-bit activations in its first conv."""
    g = Graph()
    x = g.quant("x", 6, signed=0, name="in_quant")
    y = g.conv(x, 3, 16, name="conv1", w=g.quant(g.weight("w1", (16, 3, 3, 3)), 4, name="w1_quant"))
    y = g.node("Relu", [y], name="relu1")
    y = g.conv(y, 16, 32, name="conv2", strides=[2, 2])
    y = g.node("Relu", [y], name="relu2")
    y = g.conv(y, 32, 32, k=3, name="conv3", group=32)
    y = g.node("Flatten", [g.node("GlobalAveragePool", [y], name="gap")], name="flat")
    y = g.node("Gemm", [y, g.const("fc_w", np.zeros((10, 32), np.float32))], name="fc", transB=1)
    path = tmp_path_factory.mktemp("onnx") / "small.onnx"
    onnx.save(g.model({"x": (1, 3, 16, 16)}, y), str(path))
    return path


def test_cli_search_and_eval_take_an_onnx_model(small_onnx, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["accel", "search", "--onnx", str(small_onnx), "--engine", "random", "--budget", "256",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "imported 4 layers" in err and "Quant x2" in err
    r = json.loads(out.read_text())
    imported = r["workload_import"]
    wl = import_onnx(small_onnx).workload
    assert imported["layers"] == 4 and imported["macs"] == wl.macs
    assert imported["not_costed"] == {"Flatten": 1, "GlobalAveragePool": 1, "Quant": 2, "Relu": 2}
    assert imported["bits"]["conv1"] == {"weights": 4, "activations": 6}
    assert r["config"]["workload"]["onnx"] == str(small_onnx)
    assert r["fps"] > 0

    evaluated = tmp_path / "e.json"
    assert main(["accel", "eval", "--onnx", str(small_onnx), "--design", str(out), "--out", str(evaluated)]) == 0
    e = json.loads(evaluated.read_text())
    assert e["fps"] == r["fps"]
    assert e["workload_import"] == imported


def test_cli_bad_onnx_path_is_one_error_line(small_onnx, tmp_path, capsys):
    missing = tmp_path / "missing.onnx"
    assert main(["accel", "search", "--onnx", str(missing), "--engine", "random", "--budget", "16"]) == 2
    cap = capsys.readouterr()
    err = cap.err.splitlines()
    assert len(err) == 1 and err[0].startswith("autonba: error:") and "missing.onnx: no such file" in err[0]
    assert cap.out == ""

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\x01 not protobuf")
    design = tmp_path / "r.json"
    assert main(["accel", "search", "--onnx", str(small_onnx), "--engine", "random", "--budget", "16",
                 "--out", str(design)]) == 0
    capsys.readouterr()
    assert main(["accel", "eval", "--onnx", str(bad), "--design", str(design)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("autonba: error:") and "not an ONNX model" in err[0]


def test_api_takes_a_path_a_model_proto_or_a_workload(small_onnx):
    kw = {"engine": "random", "budget": 256, "seed": 3}
    from_proto = accel.search(workload=onnx.load(str(small_onnx)), **kw)
    from_path = accel.search(onnx=str(small_onnx), **kw)
    workload = import_onnx(small_onnx).workload
    from_workload = accel.search(workload=workload, **kw)
    assert from_proto.fps == from_path.fps == from_workload.fps > 0
    [again] = accel.evaluate([from_path.to_dict()["design"]], workload=onnx.load(str(small_onnx)))
    assert again.fps == from_path.fps
    with pytest.raises(AutonbaError):
        accel.search(onnx=str(small_onnx.parent / "none.onnx"), **kw)
