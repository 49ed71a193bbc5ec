"""The fixed-point network as an hls4ml project (Vitis backend, ``io_stream``) whose C++ emulation
equals ``FixedNet`` bit for bit, with per-layer reuse factors from the searched accelerator.

The route is the one a user of the tools takes: a QONNX model of the *folded* network
(``to_deploy_qonnx``: activation ``Quant`` nodes on power-of-two grids, weights and biases behind a
``Quant`` node that states their exact type), ``qonnx``'s cleanup and channels-last conversion, then
hls4ml's ONNX converter with a per-layer configuration: the exact accumulator and result type of
every layer (``FixedNet.types``) and its ``ReuseFactor``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from autonba.deploy.fixed import Add, Conv, FixedNet, Pool, Quant
from autonba.deploy.qonnx_export import OPSET, QONNX_DOMAIN, _Graph

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
    for op in net.ops:
        if isinstance(op, Quant):
            src = names[op.src]
            if src.startswith("pool"):  # the classifier reads the pooled (N, C, 1, 1) tensor flattened
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
                k = op.weight.shape[2]
                out = g.node("Conv", [names[op.src], w, b], op.name, exact=True, kernel_shape=[k, k],
                             strides=[op.stride] * 2, pads=[op.pad] * 4, dilations=[1, 1], group=op.groups)
            if op.relu:
                out = g.node("Relu", [out], f"{op.name}_relu", exact=True)
        elif isinstance(op, Add):
            out = g.node("Add", [names[op.a], names[op.b]], op.name, exact=True)
        else:
            assert isinstance(op, Pool)   # a depthwise conv of weights 1 / pixels: exact, channels-last
            c = op.channels
            shift = op.shift
            w = _quant_const(g, np.full((c, 1, op.size, op.size), 2.0 ** -shift), shift, 2, f"{op.name}_w")
            b = _quant_const(g, np.zeros(c), 0, 2, f"{op.name}_b")
            out = g.node("Conv", [names[op.src], w, b], op.name, exact=True, kernel_shape=[op.size] * 2, strides=[1, 1],
                         pads=[0, 0, 0, 0], dilations=[1, 1], group=c)
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
    """qonnx's cleanup and channels-last conversion, every node named (hls4ml keys its configuration
    by node name; the conversion inserts unnamed transposes)."""
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


def reuse_factor(op: Conv, cycles_per_pixel: float, valid: list[int]) -> int:
    """The reuse factor (cycles between a multiplier's uses) nearest ``cycles_per_pixel``."""
    best = min(valid, key=lambda rf: (abs(rf - cycles_per_pixel), rf))
    return best


def hls_config(net: FixedNet, model: Any, reuse: dict[str, int]) -> dict[str, Any]:
    import hls4ml
    cfg = hls4ml.utils.config_from_onnx_model(model, granularity="name", backend="Vitis",
                                              default_precision="fixed<16,6>")
    types = net.types()
    layers = cfg["LayerName"]
    first = net.ops[0]
    assert isinstance(first, Quant)
    inp = [k for k in layers if k == INPUT]
    for k in inp:
        layers[k]["Precision"] = {"result": first.out.ap(quantiser=True)}
    for op in net.ops:
        if isinstance(op, Conv):
            acc = types[f"{op.name}/accum"].ap()
            layers.setdefault(op.name, {})["Precision"] = {"accum": acc, "result": acc}
            layers[op.name]["ReuseFactor"] = reuse.get(op.name, 1)
            if op.relu:
                layers.setdefault(f"{op.name}_relu", {})["Precision"] = {"result": types[op.name].ap()}
        elif isinstance(op, Add):
            layers.setdefault(op.name, {})["Precision"] = {"result": types[op.name].ap()}
        elif isinstance(op, Pool):
            layers.setdefault(op.name, {})["Precision"] = {"accum": types[f"{op.name}/accum"].ap(),
                                                           "result": types[op.name].ap()}
    return cfg


def export_hls4ml(net: FixedNet, out_dir: str | Path, reuse: dict[str, int] | None = None,
                  part: str | None = None) -> Any:
    import hls4ml
    model = hls_ready(to_deploy_qonnx(net))
    cfg = hls_config(net, model, reuse or {})
    kw: dict[str, Any] = {"part": part} if part else {}
    hm = hls4ml.converters.convert_from_onnx_model(model, output_dir=str(out_dir), io_type="io_stream",
                                                   backend="Vitis", hls_config=cfg, project_name="autonba", **kw)
    return hm, cfg, model


def predict(hm: Any, net: FixedNet, x: np.ndarray) -> np.ndarray:
    """The emulation's logits for NCHW float64 images."""
    y = hm.predict(np.ascontiguousarray(x.transpose(0, 2, 3, 1), dtype=np.float64))
    return np.asarray(y, dtype=np.float64).reshape(len(x), -1)


_ = math
