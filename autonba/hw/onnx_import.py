"""A workload from an ONNX (or QONNX) model: every convolution and fully connected layer, with its
weight and activation bitwidths where the model states them.

After ONNX shape inference, every ``Conv`` (any groups and strides, dilation 1), ``ConvInteger``,
``QLinearConv``, and ``Gemm``/``MatMul`` with a constant weight (as a 1x1 convolution on a 1x1 input)
becomes a layer. Bitwidths come from QONNX ``Quant``/``BipolarQuant`` nodes (their ``bitwidth``
input) or from QuantizeLinear/DequantizeLinear pairs and integer convolutions (the integer type),
traced back from the layer's weight and activation inputs through operators that keep the values
(reshapes, pads, transposes); a side without a stated bitwidth takes ``bits``. A layer's ``bits``
is the wider of the two (autonba's cost models give a layer one datapath width); both are listed.
Every other operator is listed with its count as not costed (batch-norm, activations, adds, pools,
reshapes: no MACs in the templates), never dropped silently; an operator that computes what the
templates cannot cost (a transposed convolution, a recurrent cell, a product of two activations)
is an error that names it.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autonba.errors import AutonbaError
from autonba.hw.workload import Layer, Workload

LAYER_OPS = ("Conv", "ConvInteger", "QLinearConv", "Gemm", "MatMul")
REFUSED = {"ConvTranspose": "a transposed convolution", "DeformConv": "a deformable convolution",
           "LSTM": "a recurrent cell", "GRU": "a recurrent cell", "RNN": "a recurrent cell",
           "Einsum": "an einsum", "Attention": "an attention block", "MatMulInteger": "an integer matmul",
           "QLinearMatMul": "a quantised matmul", "Loop": "a loop", "Scan": "a scan", "If": "a branch"}
# operators that pass values through unchanged in value (a bitwidth found behind them still holds)
_SAME_VALUES = {"Reshape", "Flatten", "Transpose", "Pad", "Identity", "Squeeze", "Unsqueeze", "MaxPool",
                "Relu", "Dropout", "Cast"}
_INT_WIDTH = {2: 8, 3: 8, 4: 16, 5: 16, 6: 32, 12: 32, 21: 4, 22: 4, 25: 2, 26: 2}  # TensorProto type -> bits
_QUANT_OPS = {"Quant", "BipolarQuant", "IntQuant", "QuantizeLinear", "DequantizeLinear"}
# QONNX's operators, unknown to ONNX shape inference; each keeps the shape of its first input
_QONNX_SAME_SHAPE = {"Quant", "BipolarQuant", "IntQuant", "Trunc"}


@dataclass
class ImportedModel:
    """A model's workload, what was not costed (operator -> count), and each layer's stated
    (weight, activation) bitwidths (None: not stated, ``bits`` used)."""

    workload: Workload
    not_costed: dict[str, int]
    stated_bits: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"layers": len(self.workload.layers), "macs": self.workload.macs,
                "not_costed": dict(sorted(self.not_costed.items())),
                "bits": {n: {"weights": w, "activations": a} for n, (w, a) in self.stated_bits.items()}}


def import_onnx(model: str | Path | Any, bits: int = 8, name: str | None = None) -> ImportedModel:
    """The workload of an ONNX model (a path or an ``onnx.ModelProto``); ``bits`` where it states none."""
    import onnx
    from onnx import numpy_helper

    where = str(model) if isinstance(model, (str, Path)) else "the ONNX model"
    if isinstance(model, (str, Path)):
        if not Path(model).is_file():
            raise AutonbaError(f"--onnx {model}: no such file")
        try:
            model = onnx.load(str(model))
        except Exception as e:  # protobuf's DecodeError and friends: not an ONNX file
            raise AutonbaError(f"--onnx {where}: not an ONNX model ({type(e).__name__}: {e})") from None
    if not isinstance(model, onnx.ModelProto):
        raise AutonbaError(f"expected an onnx.ModelProto or a path, got {type(model).__name__}")
    try:
        model = _infer_shapes(model)
    except Exception as e:
        raise AutonbaError(f"{where}: ONNX shape inference failed ({type(e).__name__}: {e})") from None
    g = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for n in g.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":  # a tensor constant
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    infos = list(g.value_info) + list(g.input) + list(g.output)
    shapes = {v.name: _dims(v) for v in infos}
    shapes.update({k: list(v.shape) for k, v in consts.items()})
    types = {v.name: v.type.tensor_type.elem_type for v in infos}
    types.update({t.name: t.data_type for t in g.initializer})
    producer = {o: n for n in g.node for o in n.output}
    graph = _Graph(consts, shapes, types, producer, where)
    layers: list[Layer] = []
    stated: dict[str, tuple[int | None, int | None]] = {}
    skipped: Counter[str] = Counter()
    names: set[str] = set()
    for i, n in enumerate(g.node):
        if n.op_type in REFUSED:
            raise AutonbaError(f"{where}: node '{n.name or i}' is {REFUSED[n.op_type]} ({n.op_type}), which no "
                               "template costs; remove it or cost the model without it")
        if n.op_type not in LAYER_OPS:
            if n.op_type != "Constant":
                skipped[n.op_type] += 1
            continue
        label = _unique(n.name or f"{n.op_type.lower()}{i}", names)
        w_bits, a_bits = graph.bits(n)
        layer = graph.layer(n, label, max(w_bits or bits, a_bits or bits))
        layers.append(layer)
        stated[label] = (w_bits, a_bits)
    if not layers:
        raise AutonbaError(f"{where}: no convolution or fully connected layer to cost "
                           f"(operators: {', '.join(sorted(skipped)) or 'none'})")
    wl = Workload(name or (Path(where).stem if where != "the ONNX model" else (g.name or "onnx-model")), layers)
    return ImportedModel(wl, dict(skipped), stated)


def _infer_shapes(model: Any) -> Any:
    """ONNX shape inference, carried through QONNX's quantisers (ONNX does not know them, so every shape
    behind one would stay unknown): inferred on a copy where each is an Identity (the same shape), then
    given back with the original nodes. The model given is not changed."""
    import onnx
    from onnx import shape_inference

    stand_in = onnx.ModelProto()
    stand_in.CopyFrom(model)
    for n in stand_in.graph.node:
        if n.op_type in _QONNX_SAME_SHAPE and n.domain not in ("", "ai.onnx") and n.input:
            del n.input[1:]
            del n.attribute[:]
            n.op_type, n.domain = "Identity", ""
    inferred = shape_inference.infer_shapes(stand_in, strict_mode=False)
    del inferred.graph.node[:]
    inferred.graph.node.extend(model.graph.node)
    return inferred


class _Graph:
    """Lookups over one inferred graph: constant tensors, shapes, producers."""

    def __init__(self, consts: dict[str, Any], shapes: dict[str, list[int | None] | None], types: dict[str, int],
                 producer: dict[str, Any], where: str):
        self.consts, self.shapes, self.types, self.producer, self.where = consts, shapes, types, producer, where

    def shape(self, tensor: str, node: Any, rank: int) -> list[int]:
        s = self.shapes.get(tensor)
        if s is None or len(s) != rank or any(d is None or d <= 0 for d in s[1:]):
            raise AutonbaError(f"{self.where}: node '{node.name}' ({node.op_type}): the shape of '{tensor}' is "
                               f"{s if s is not None else 'unknown'}, not {rank} fixed sizes; export the model with a "
                               "fixed input size")
        return [1 if d is None or d <= 0 else int(d) for d in s]

    def layer(self, n: Any, label: str, bits: int) -> Layer:
        attrs = {a.name: _attr(a) for a in n.attribute}
        if n.op_type in ("Gemm", "MatMul"):
            w = n.input[1]
            if self._source(w) not in self.consts:  # a weight is a constant, maybe behind quantisers
                raise AutonbaError(f"{self.where}: node '{n.name}' ({n.op_type}) multiplies two activations, which no "
                                   "template costs; only a layer with a constant weight is a layer")
            wshape = self._weight_shape(w)
            if len(wshape) != 2:
                raise AutonbaError(f"{self.where}: node '{n.name}' ({n.op_type}): weight of rank {len(wshape)}; "
                                   "only a 2-D weight (a fully connected layer) is costed")
            k_in, k_out = wshape[::-1] if attrs.get("transB") else wshape
            return self._make(n, label, k_in, k_out, 1, 1, 1, 1, 1, 1, 1, bits)
        x, w = (n.input[0], n.input[3]) if n.op_type == "QLinearConv" else (n.input[0], n.input[1])
        _, cin, h, wd = self.shape(x, n, 4)
        out = self.shape(n.output[0], n, 4)
        wshape = self._weight_shape(w)
        if len(wshape) != 4:
            raise AutonbaError(f"{self.where}: node '{n.name}' ({n.op_type}): only 2-D convolutions are costed "
                               f"(weight of rank {len(wshape)})")
        kh, kw = wshape[2], wshape[3]
        sh, sw = (attrs.get("strides") or [1, 1])[:2]
        if any(d != 1 for d in attrs.get("dilations") or [1, 1]):
            raise AutonbaError(f"{self.where}: node '{n.name}' ({n.op_type}): dilated convolutions are not costed")
        if kh != kw or sh != sw:
            raise AutonbaError(f"{self.where}: node '{n.name}' ({n.op_type}): a {kh}x{kw} kernel at stride "
                               f"{sh}x{sw}; the templates cost square kernels and equal strides")
        return self._make(n, label, cin, out[1], h, wd, out[2], out[3], kh, sh, int(attrs.get("group", 1)), bits)

    def _make(self, n: Any, label: str, cin: int, cout: int, h: int, w: int, oh: int, ow: int, k: int, s: int,
              groups: int, bits: int) -> Layer:
        try:
            return Layer(label, int(cin), int(cout), int(h), int(w), int(oh), int(ow), int(k), int(s), groups, bits)
        except AutonbaError as e:
            raise AutonbaError(f"{self.where}: node '{n.name}' ({n.op_type}): {e}") from None

    def _weight_shape(self, tensor: str) -> list[int]:
        """The weight's shape where the layer takes it (after any reshape or transpose); else its source's."""
        s = self.shapes.get(tensor)
        if s is None or any(d is None for d in s):
            s = self.shapes.get(self._source(tensor))
        if s is None or any(d is None for d in s):
            raise AutonbaError(f"{self.where}: the shape of weight '{tensor}' is unknown")
        return [int(d or 0) for d in s]

    def _source(self, tensor: str) -> str:
        """The tensor behind quantisers and value-keeping operators (a weight's initializer)."""
        seen = 0
        while tensor in self.producer and seen < 64:
            p = self.producer[tensor]
            if p.op_type not in _QUANT_OPS | _SAME_VALUES or not p.input:
                break
            tensor, seen = p.input[0], seen + 1
        return tensor

    def bits(self, n: Any) -> tuple[int | None, int | None]:
        """The stated bitwidths of a layer's weights and activations (None: not stated)."""
        if n.op_type == "QLinearConv":
            return self._int_bits(n.input[3]), self._int_bits(n.input[0])
        if n.op_type == "ConvInteger":
            return self._int_bits(n.input[1]), self._int_bits(n.input[0])
        return self._stated(n.input[1]), self._stated(n.input[0])

    def _stated(self, tensor: str) -> int | None:
        seen = 0
        while tensor in self.producer and seen < 64:
            p = self.producer[tensor]
            if p.op_type in ("Quant", "IntQuant") and len(p.input) >= 4 and p.input[3] in self.consts:
                return int(round(float(self.consts[p.input[3]].reshape(-1)[0])))
            if p.op_type == "BipolarQuant":
                return 1
            if p.op_type == "DequantizeLinear":
                return self._int_bits(p.input[0])
            if p.op_type == "QuantizeLinear":
                return self._int_bits(p.output[0])
            if p.op_type not in _SAME_VALUES or not p.input:
                return None
            tensor, seen = p.input[0], seen + 1
        return None

    def _int_bits(self, tensor: str) -> int | None:
        """The width of an integer tensor's element type (None: not an integer type, or unknown)."""
        return _INT_WIDTH.get(self.types.get(tensor, 0))


def _attr(a: Any) -> Any:
    from onnx import helper
    return helper.get_attribute_value(a)


def _dims(v: Any) -> list[int | None] | None:
    t = v.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]


def _unique(name: str, taken: set[str]) -> str:
    label = "".join(c if c.isprintable() and not c.isspace() else "_" for c in name) or "layer"
    out, i = label, 1
    while out in taken:
        i += 1
        out = f"{label}_{i}"
    taken.add(out)
    return out
