"""The retrained network as a QONNX model: a ``Quant`` node on every weight and every quantised layer's
input activation, at the layer's searched bitwidth (stem, head and classifier at the layout's fixed
bitwidth), with the scales and zero points the network's quantisers use in evaluation.

The graph is written from the modules, not traced: Conv (per-layer groups, stride, 'same' padding),
BatchNormalization, Relu, residual Add, the channel shuffle of grouped blocks (Reshape, Transpose,
Reshape), GlobalAveragePool, Flatten, and MatMul + Add for the classifier (hls4ml reads no Gemm).
``Quant`` follows QONNX's definition
(``clamp(round(x / scale + zeropt)) - zeropt) * scale``, round half to even) and reproduces the
quantisers: weights signed and narrow per output channel, activations unsigned with an integer zero
point (float scales) or on the fixed-point grid (``layout.scales: pow2``, zero point 0).
Only ``onnx`` is needed to write it; ``qonnx`` executes and cleans it (``autonba[deploy]``). With
power-of-two scales its execution equals the PyTorch model bit for bit; with float scales QONNX
divides by the scale where the quantiser multiplies by its inverse (as torch's fake-quantize kernel
does), so an input within an ulp of a rounding boundary can land one step apart.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from autonba.io import write_atomic_bytes
from autonba.nas.derived import DerivedNet
from autonba.nas.modules import MBConv, QConv2d, QLinear, Skip
from autonba.nas.quant import FULL, _qparams

QONNX_DOMAIN = "qonnx.custom_op.general"
OPSET = 13


class _Graph:
    """Nodes, initializers and fresh names of the graph being written."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._count = 0

    def name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, stem: str, value: Any, dtype: Any = np.float32) -> str:
        from onnx import numpy_helper
        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(self, op: str, inputs: list[str], stem: str, domain: str = "", exact: bool = False, **attrs: Any) -> str:
        """Append a node; its name (and its output's) is ``stem`` when ``exact``, else ``stem`` numbered."""
        from onnx import helper
        out = stem if exact else self.name(stem)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, domain=domain, **attrs))
        return out

    def quant(self, x: str, scale: Any, zero: Any, bits: int, signed: bool, narrow: bool, stem: str) -> str:
        return self.node("Quant", [x, self.const(f"{stem}_scale", scale), self.const(f"{stem}_zeropt", zero),
                                   self.const(f"{stem}_bits", float(bits))], stem, QONNX_DOMAIN,
                         signed=int(signed), narrow=int(narrow), rounding_mode="ROUND")


def _act_quant(g: _Graph, x: str, m: QConv2d | QLinear, bits: int, stem: str) -> str:
    """The layer's input quantiser in evaluation (its EMA range), or ``x`` when unquantised."""
    if bits >= FULL:
        return x
    lo, hi = m.act_range.lo, m.act_range.hi
    p = _qparams(lo, (bits,), "act", lo, hi, m.pow2)[0]  # (an activation's parameters depend on its range only)
    assert p is not None
    scale, zero, qmin, _ = p
    return g.quant(x, float(scale), float(zero), bits, signed=qmin < 0, narrow=False, stem=f"{stem}_in")


def _weight(g: _Graph, m: QConv2d | QLinear, bits: int, stem: str) -> str:
    """The quantised weight: (K, C/g, k, k) for a conv; (in, out) for a linear layer, as MatMul takes it."""
    w = m.weight.detach().cpu().float().numpy()
    linear = isinstance(m, QLinear)
    name = g.const(f"{stem}_w", w.T if linear else w)
    if bits >= FULL:
        return name
    p = _qparams(m.weight, (bits,), "weight", None, None, m.pow2)[0]
    assert p is not None
    scale = p[0].cpu().numpy()
    scale = scale.reshape(1, -1) if linear else scale.reshape(-1, *([1] * (w.ndim - 1)))   # per output channel
    return g.quant(name, scale, np.zeros_like(scale), bits, signed=True, narrow=True, stem=f"{stem}_wq")


def _conv(g: _Graph, x: str, m: QConv2d, bits: int, stem: str) -> str:
    k, s = m.kernel_size[0], m.stride[0]
    p = m.padding[0]
    assert isinstance(p, int)
    return g.node("Conv", [_act_quant(g, x, m, bits, stem), _weight(g, m, bits, stem)], stem,
                  kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p], dilations=[1, 1], group=m.groups)


def _bn(g: _Graph, x: str, bn: torch.nn.BatchNorm2d, stem: str) -> str:
    assert bn.running_mean is not None and bn.running_var is not None
    args = [bn.weight, bn.bias, bn.running_mean, bn.running_var]
    return g.node("BatchNormalization", [x] + [g.const(f"{stem}_{n}", t.detach().cpu().float().numpy())
                                               for n, t in zip(("gamma", "beta", "mean", "var"), args)],
                  stem, epsilon=float(bn.eps))


def _shuffle(g: _Graph, x: str, channels: int, groups: int, size: int, stem: str) -> str:
    y = g.node("Reshape", [x, g.const(f"{stem}_s1", [0, groups, channels // groups, size, size], np.int64)], stem)
    y = g.node("Transpose", [y], stem, perm=[0, 2, 1, 3, 4])
    shape = g.const(f"{stem}_s2", [0, channels, size, size], np.int64)
    return g.node("Reshape", [y, shape], stem)


def _block(g: _Graph, x: str, op: Any, bits: int, size: int, stem: str) -> tuple[str, int]:
    """One searchable block; its output and spatial size."""
    if isinstance(op, Skip):
        if op.conv is None or op.bn is None:
            return x, size
        return _bn(g, _conv(g, x, op.conv, bits, f"{stem}_conv"), op.bn, f"{stem}_bn"), out_size(size, op.conv)
    assert isinstance(op, MBConv)
    y = g.node("Relu", [_bn(g, _conv(g, x, op.expand, bits, f"{stem}_expand"), op.bn1, f"{stem}_bn1")], stem)
    if op.groups > 1:
        y = _shuffle(g, y, op.expand.out_channels, op.groups, size, f"{stem}_shuffle")
    y = g.node("Relu", [_bn(g, _conv(g, y, op.dw, bits, f"{stem}_dw"), op.bn2, f"{stem}_bn2")], stem)
    size = out_size(size, op.dw)
    y = _bn(g, _conv(g, y, op.project, bits, f"{stem}_project"), op.bn3, f"{stem}_bn3")
    return (g.node("Add", [x, y], f"{stem}_add") if op.residual else y), size


def out_size(size: int, m: QConv2d) -> int:
    """The output size of a conv module on ``size`` x ``size`` input."""
    p = m.padding[0]
    assert isinstance(p, int)
    return (size + 2 * p - m.kernel_size[0]) // m.stride[0] + 1


def to_qonnx(model: DerivedNet, batch: int = 1) -> Any:
    """The QONNX ``ModelProto`` of a derived network (in evaluation: its quantisers' EMA ranges), for
    inputs of ``batch`` images (QONNX's executor and hls4ml need fixed shapes)."""
    from onnx import TensorProto, helper

    net, arch = model.net, model.arch
    layout, fixed = arch.layout, arch.layout.fixed_bits
    g = _Graph()
    x = "input"
    y = g.node("Relu", [_bn(g, _conv(g, x, net.stem, fixed, "stem"), net.stem_bn, "stem_bn")], "stem")
    size = out_size(layout.input_size, net.stem)
    for i, (layer, blk) in enumerate(zip(net.layers, arch.blocks, strict=True)):
        assert isinstance(layer, torch.nn.ModuleList)  # one candidate: the derived operation
        y, size = _block(g, y, layer[0], blk.bits, size, f"block{i}")
    y = g.node("Relu", [_bn(g, _conv(g, y, net.head, fixed, "head"), net.head_bn, "head_bn")], "head")
    y = g.node("Flatten", [g.node("GlobalAveragePool", [y], "pool")], "flatten")
    fc = net.classifier
    y = g.node("MatMul", [_act_quant(g, y, fc, fixed, "classifier"), _weight(g, fc, fixed, "classifier")],
               "classifier")
    logits = g.node("Add", [y, g.const("classifier_b", fc.bias.detach().cpu().float().numpy())], "classifier")
    g.nodes.append(helper.make_node("Identity", [logits], ["logits"], name="logits"))
    graph = helper.make_graph(
        g.nodes, "autonba", [helper.make_tensor_value_info(x, TensorProto.FLOAT, [batch, layout.input_channels,
                                                                                layout.input_size, layout.input_size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, layout.num_classes])], g.inits)
    m = helper.make_model(graph, producer_name="autonba", opset_imports=[helper.make_opsetid("", OPSET),
                                                                        helper.make_opsetid(QONNX_DOMAIN, 1)])
    m.ir_version = 8
    return m


def export_qonnx(model: DerivedNet, path: str | Path) -> Path:
    """Write the QONNX model of a derived network (one image per inference) to ``path``, atomically."""
    out = Path(path)
    write_atomic_bytes(out, to_qonnx(model.eval()).SerializeToString(), "QONNX model")
    return out


def load_trained(run_dir: str | Path) -> DerivedNet:
    """The retrained network of a run (``model.pt``), in evaluation mode on the CPU."""
    from autonba.errors import AutonbaError
    from autonba.io import load_checkpoint
    from autonba.nas.arch import Arch

    path = Path(run_dir) / "model.pt"
    if not path.is_file():
        raise AutonbaError(f"{run_dir} holds no retrained network (model.pt); run 'autonba train {run_dir}' first")
    state = load_checkpoint(path)
    try:
        model = DerivedNet(Arch.model_validate(state["arch"]))
        model.load_state_dict(state["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise AutonbaError(f"{path} is not a network 'autonba train' wrote ({type(e).__name__}: {e})") from None
    return model.eval()
