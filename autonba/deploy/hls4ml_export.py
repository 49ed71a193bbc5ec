"""The fixed-point network as an hls4ml project (Vitis backend, ``io_stream``) whose C++ emulation
equals ``FixedNet`` bit for bit, with per-layer reuse factors from the searched accelerator.

The route is the one a user of the tools takes: a QONNX model of the *folded* network
(``to_deploy_qonnx``: activation ``Quant`` nodes on power-of-two grids, weights and biases behind a
``Quant`` node that states their exact type), ``qonnx``'s cleanup and channels-last conversion, then
hls4ml's ONNX converter with a per-layer configuration: the exact accumulator and result type of
every layer (``FixedNet.types``) and its ``ReuseFactor``.
"""
from __future__ import annotations

import contextlib
import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autonba.deploy.fixed import Add, Conv, FixedNet, Pool, Quant
from autonba.deploy.qonnx_export import OPSET, QONNX_DOMAIN, _Graph
from autonba.errors import AutonbaError

INPUT = "image"  # ('input' is a name hls4ml reserves)


def _quant_const(g: _Graph, value: np.ndarray, frac: int, bits: int, stem: str) -> str:
    """A constant behind a Quant node that is the identity on it and states its type (signed, ``bits``
    wide, grid ``2**-frac``): hls4ml types the constant from it."""
    name = g.const(stem, value.astype(np.float32))
    return g.quant(name, 2.0 ** -frac, 0.0, bits, signed=True, narrow=False, stem=f"{stem}_q")


def to_deploy_qonnx(net: FixedNet) -> Any:
    """The QONNX ``ModelProto`` of a fixed-point network (one image per inference), nodes named after
    the ops (hls4ml's layer names)."""
    from onnx import TensorProto, helper

    g = _Graph()
    names: dict[str, str] = {"input": INPUT}
    pooled = {op.name for op in net.ops if isinstance(op, Pool)}

    def conv(src: str, w: str, b: str, name: str, k: int, stride: int, pad: int, groups: int) -> str:
        return g.node("Conv", [src, w, b], name, exact=True, kernel_shape=[k, k], strides=[stride] * 2,
                      pads=[pad] * 4, dilations=[1, 1], group=groups)

    for op in net.ops:
        if isinstance(op, Quant):
            src = names[op.src]
            if op.src in pooled:  # the classifier reads the pooled (N, C, 1, 1) tensor flattened
                src = g.node("Flatten", [src], "flatten")
            out = g.node("Quant", [src, g.const(f"{op.name}_scale", 2.0 ** -op.frac),
                                   g.const(f"{op.name}_zeropt", 0.0), g.const(f"{op.name}_bits", float(op.bits))],
                         op.name, QONNX_DOMAIN, exact=True, signed=int(op.signed), narrow=0, rounding_mode="ROUND")
        elif isinstance(op, Conv):
            wt, bt = op.weight_type, op.bias_type
            w = _quant_const(g, op.weight.T if op.dense else op.weight, wt.frac, wt.shape[0], f"{op.name}_w")
            b = _quant_const(g, op.bias, bt.frac, max(bt.shape[0], 2), f"{op.name}_b")
            if op.dense:
                out = g.node("Add", [g.node("MatMul", [names[op.src], w], f"{op.name}_matmul", exact=True), b],
                             op.name, exact=True)
            else:
                out = conv(names[op.src], w, b, op.name, op.weight.shape[2], op.stride, op.pad, op.groups)
            if op.relu:
                out = g.node("Relu", [out], f"{op.name}_relu", exact=True)
        elif isinstance(op, Add):
            out = g.node("Add", [names[op.a], names[op.b]], op.name, exact=True)
        else:
            assert isinstance(op, Pool)   # a depthwise conv of weights 1 / pixels: exact, channels-last
            c, shift = op.channels, op.shift
            w = _quant_const(g, np.full((c, 1, op.size, op.size), 2.0 ** -shift), shift, 2, f"{op.name}_w")
            b = _quant_const(g, np.zeros(c), 0, 2, f"{op.name}_b")
            out = conv(names[op.src], w, b, op.name, op.size, 1, 0, c)
        names[op.name] = out
    logits = names[net.ops[-1].name]   # (hls4ml loses an output behind an Identity)
    c, h, w_ = net.input_shape
    num_classes = net.ops[-1].weight.shape[0]  # type: ignore[union-attr]
    graph = helper.make_graph(g.nodes, "autonba_fixed",
                              [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [1, c, h, w_])],
                              [helper.make_tensor_value_info(logits, TensorProto.FLOAT, [1, num_classes])], g.inits)
    m = helper.make_model(graph, producer_name="autonba", opset_imports=[helper.make_opsetid("", OPSET),
                                                                        helper.make_opsetid(QONNX_DOMAIN, 1)])
    m.ir_version = 8
    return m


def hls_ready(model: Any) -> Any:
    """qonnx's shape and datatype inference and channels-last conversion (not its cleanup, which
    renames every node), the one-pixel transposes removed, every node named (hls4ml keys its
    configuration by node name; the conversion inserts unnamed transposes)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    m = ModelWrapper(model).transform(InferShapes()).transform(InferDataTypes())
    m = m.transform(ConvertToChannelsLastAndClean())
    _drop_pixel_transposes(m)
    for i, n in enumerate(m.graph.node):
        if not n.name:
            n.name = f"{n.op_type}_{i}"
    return m


def _drop_pixel_transposes(m: Any) -> None:
    """Remove the transposes of a one-pixel tensor (the pooled features before the classifier) that
    the channels-last conversion leaves: they move nothing, and hls4ml's streamed transpose of them
    leaves data in its stream and feeds the classifier wrong values."""
    for n in list(m.graph.node):
        shape = m.get_tensor_shape(n.input[0]) if n.op_type == "Transpose" else None
        if shape is None or len(shape) != 4 or shape[1] * shape[2] * shape[3] != max(shape[1:]):
            continue
        for consumer in m.find_consumers(n.output[0]) or []:
            for i, name in enumerate(consumer.input):
                if name == n.output[0]:
                    consumer.input[i] = n.input[0]
        m.graph.node.remove(n)


@dataclass
class LayerPlan:
    """How one layer of the searched accelerator becomes an hls4ml layer: the multiplications hls4ml
    schedules per output pixel (``n_in * n_out``), the searched accelerator's compute cycles per output
    pixel, and the reuse factor nearest them that hls4ml accepts."""

    name: str
    layer: str
    n_in: int
    n_out: int
    cycles_per_pixel: float | None
    reuse_factor: int
    depthwise: bool = False

    @property
    def multipliers(self) -> int:
        """Multipliers the layer's products per output pixel share (a depthwise layer computes
        ``n_in`` products per pixel, one per channel and tap)."""
        return -(-(self.n_in if self.depthwise else self.n_in * self.n_out) // self.reuse_factor)


def _mult_size(op: Conv) -> tuple[int, int]:
    """(n_in, n_out) as hls4ml counts a layer's multiplications per output pixel (a depthwise layer:
    channels x taps by channels, as its backend validates reuse factors)."""
    if op.dense:
        return op.weight.shape[1], op.weight.shape[0]
    c_in = op.weight.shape[1] * op.groups
    return c_in * op.spatial_taps, op.weight.shape[0]


def valid_reuse_factors(n_in: int, n_out: int) -> list[int]:
    """The reuse factors hls4ml's Vitis backend accepts for a layer (they divide ``n_in * n_out``)."""
    import hls4ml
    backend = hls4ml.backends.get_backend("Vitis")
    n = n_in * n_out
    divisors = sorted({d for i in range(1, math.isqrt(n) + 1) if n % i == 0 for d in (i, n // i)})
    return [rf for rf in divisors if backend._validate_reuse_factor(n_in, n_out, rf)]


def plan_layers(net: FixedNet, workload: Any | None, layer_rows: list[dict[str, Any]]) -> list[LayerPlan]:
    """Every conv and dense layer's reuse factor: the searched accelerator's compute cycles for the
    layer divided by its output pixels (the cycles between two uses of one multiplier in a pipeline
    that emits one pixel per that many cycles), rounded to the nearest factor hls4ml accepts (ties:
    the smaller). Without a figure for a layer (the pooling) it is 1, fully parallel."""
    rows = {r["name"]: r for r in layer_rows if "compute_cycles" in r}
    shapes = {lay.name: lay for lay in workload.layers} if workload is not None else {}
    plans = []
    for op in net.ops:
        if not isinstance(op, (Conv, Pool)):
            continue
        if isinstance(op, Pool):
            taps = op.size * op.size
            plans.append(LayerPlan(op.name, "", op.channels * taps, op.channels, None, 1, True))
            continue
        n_in, n_out = _mult_size(op)
        dw = op.groups > 1
        row, shape = rows.get(op.layer), shapes.get(op.layer)
        if row is None or shape is None:
            plans.append(LayerPlan(op.name, op.layer, n_in, n_out, None, 1, dw))
            continue
        target = float(row["compute_cycles"]) / (shape.out_h * shape.out_w)
        valid = valid_reuse_factors(n_in, n_out)
        rf = min(valid, key=lambda v: (abs(v - target), v))
        plans.append(LayerPlan(op.name, op.layer, n_in, n_out, target, rf, dw))
    return plans


def hls_config(net: FixedNet, model: Any, plans: list[LayerPlan], clock_ns: float | None = None) -> dict[str, Any]:
    """hls4ml's per-layer configuration: the input read as the first quantiser rounds (no double
    rounding), every conv's accumulator and result at its exact type, every ReLU, residual add and
    the pooling at theirs, the reuse factors of ``plans``, the Latency strategy."""
    import hls4ml
    cfg = hls4ml.utils.config_from_onnx_model(model, granularity="name", backend="Vitis",
                                              default_precision="fixed<16,6>")
    types = net.types()
    layers = cfg["LayerName"]
    first = net.ops[0]
    assert isinstance(first, Quant)
    layers.setdefault(INPUT, {})["Precision"] = {"result": first.out.ap(quantiser=True)}
    reuse = {p.name: p.reuse_factor for p in plans}
    for op in net.ops:
        if isinstance(op, (Conv, Pool)):
            acc = types[f"{op.name}/accum"].ap()
            # a dense layer is hls4ml's MatMul with the bias Add fused into it: both are configured
            for key in (op.name, f"{op.name}_matmul") if isinstance(op, Conv) and op.dense else (op.name,):
                layers.setdefault(key, {})["Precision"] = {"accum": acc, "result": acc}
                layers[key]["ReuseFactor"] = reuse[op.name]
            if isinstance(op, Conv) and op.relu:
                layers.setdefault(f"{op.name}_relu", {})["Precision"] = {"result": types[op.name].ap()}
        elif isinstance(op, Add):
            layers.setdefault(op.name, {})["Precision"] = {"result": types[op.name].ap()}
    if clock_ns:
        cfg["Model"]["ClockPeriod"] = clock_ns
    return cfg


def convert(net: FixedNet, out_dir: str | Path, plans: list[LayerPlan], part: str | None = None,
            clock_ns: float | None = None) -> Any:
    """The hls4ml model (project files not yet written) of a fixed-point network."""
    import hls4ml
    kw: dict[str, Any] = {"part": part} if part else {}
    # hls4ml prints every layer it reads; qonnx warns of a transpose it leaves (removed here)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = hls_ready(to_deploy_qonnx(net))
        cfg = hls_config(net, model, plans, clock_ns)
        hm = hls4ml.converters.convert_from_onnx_model(model, output_dir=str(out_dir), io_type="io_stream",
                                                       backend="Vitis", hls_config=cfg, project_name="autonba",
                                                       **kw)
    want = {p.name: p.reuse_factor for p in plans}
    for layer in hm.get_layers():
        name = _origin(layer.name, want)
        if name is not None and layer.get_attr("reuse_factor") != want[name]:
            raise AutonbaError(f"hls4ml changed layer {name}'s reuse factor from {want[name]} to "
                               f"{layer.get_attr('reuse_factor')}")
    return hm


def _origin(hls_name: str, names: dict[str, Any]) -> str | None:
    """Our layer behind an hls4ml layer ('Conv2D_block1_dw' -> 'block1_dw')."""
    for prefix in ("", "Conv2D_", "DepthwiseConv2D_", "PointwiseConv2D_", "Dense_"):
        name = hls_name[len(prefix):] if hls_name.startswith(prefix) else None
        if name in names:
            return name
        if name and name.endswith("_matmul") and name[:-7] in names:
            return name[:-7]
    return None


def predict(hm: Any, x: np.ndarray) -> np.ndarray:
    """The emulation's logits (float64) for NCHW images."""
    y = hm.predict(np.ascontiguousarray(x.transpose(0, 2, 3, 1), dtype=np.float64))
    return np.asarray(y, dtype=np.float64).reshape(len(x), -1)


def probe_inputs(net: FixedNet, count: int, seed: int = 0) -> np.ndarray:
    """``count`` images drawn uniformly over the first quantiser's range and a quarter beyond it on
    both sides (saturation included), off its grid (the rounding included)."""
    first = net.ops[0]
    assert isinstance(first, Quant)
    lo, hi = (math.ldexp(v, -first.frac) for v in first.limits)
    span = hi - lo
    g = np.random.default_rng(seed)
    return g.uniform(lo - span / 4, hi + span / 4, size=(count, *net.input_shape))
