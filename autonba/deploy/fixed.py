"""The retrained network as the fixed-point network a hardware flow builds, and its exact reference.

``fold(model)`` turns a derived network into a ``FixedNet``:

- every batch-norm is folded into the conv before it (``W * gamma / sigma``, bias
  ``beta - gamma * mu / sigma``); the folded weights are quantised again per output channel, at the
  layer's searched bitwidth, on power-of-two grids, and the bias onto a power-of-two grid that
  float32 holds exactly;
- a grouped 1x1 conv becomes a dense one with zero weights outside its groups, and the channel
  shuffle after it moves into the order of its output channels (no reshape, no transpose);
- every activation quantiser keeps its place, on a power-of-two grid with zero point 0.

Every tensor of a ``FixedNet`` then lies on a fixed-point grid, and ``types()`` gives each one the
narrowest fixed-point type that holds it for *any* input (bounds from the weights, not from data):
the types an HLS flow needs to compute it without a rounding or an overflow. ``FixedNet.forward``
computes it in float64, where every sum of these values is exact: the reference an emulation must
equal bit for bit.

Folding changes the network: a batch-norm's per-channel factor moves into weights that are then
rounded again. The accuracy of the folded network is measured, not assumed (``docs/deploy.md``).
A network with float scales has no fixed-point equivalent: ``fold`` refuses it unless
``approximate`` is given, and then puts its activation quantisers on the power-of-two grids that
cover the same ranges.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autonba.deploy.qonnx_export import out_size
from autonba.errors import AutonbaError
from autonba.nas.derived import DerivedNet
from autonba.nas.modules import MBConv, QConv2d, QLinear, Skip
from autonba.nas.quant import EPS, FULL, _qparams

FLOAT32_BITS = 24  # significant bits a float32 holds exactly: weights and biases are written as float32


@dataclass(frozen=True)
class Fixed:
    """A fixed-point type: the values ``n * 2**-frac`` for the integers ``lo <= n <= hi`` (signed when
    ``lo < 0``). ``frac`` may be negative (a grid coarser than 1)."""

    frac: int
    lo: int
    hi: int

    @property
    def signed(self) -> bool:
        return self.lo < 0

    @property
    def bound(self) -> float:
        """The largest magnitude it holds."""
        return math.ldexp(max(-self.lo, self.hi), -self.frac)

    @property
    def shape(self) -> tuple[int, int]:
        """(W, I) of the ap_[u]fixed<W, I> that holds exactly it (I may exceed W or be negative)."""
        if self.signed:
            w = max(self.hi.bit_length(), (-self.lo - 1).bit_length()) + 1
        else:
            w = max(1, self.hi.bit_length())
        return w, w - self.frac

    def ap(self, quantiser: bool = False) -> str:
        """The Vitis HLS type; ``quantiser``: round half to even and saturate on conversion, as a
        quantiser does."""
        w, i = self.shape
        modes = ",AP_RND_CONV,AP_SAT" if quantiser else ""
        return f"ap_{'fixed' if self.signed else 'ufixed'}<{w},{i}{modes}>"

    def __str__(self) -> str:
        return self.ap()


def _sum_type(bound: float, frac: int, signed: bool) -> Fixed:
    """The type on the grid ``2**-frac`` that holds every value of magnitude <= ``bound``."""
    n = math.ceil(math.ldexp(bound, frac))
    return Fixed(frac, -n if signed else 0, n)


@dataclass
class Quant:
    """An activation quantiser: ``clamp(round_half_even(x * 2**frac), qmin, qmax) * 2**-frac``."""

    name: str
    src: str
    bits: int
    frac: int
    signed: bool

    @property
    def out(self) -> Fixed:
        return Fixed(self.frac, *self.limits)

    @property
    def limits(self) -> tuple[int, int]:
        return (-(2 ** (self.bits - 1)), 2 ** (self.bits - 1) - 1) if self.signed else (0, 2 ** self.bits - 1)


@dataclass
class Conv:
    """A conv (or, with a 2-D weight, a dense layer) with a bias, on quantised input; ``relu`` after.
    ``layer`` is its name in the workload (what the accelerator search costed); ``bits`` its width."""

    name: str
    src: str
    layer: str
    bits: int
    weight: np.ndarray  # float64 (K, C/groups, k, k) or (out, in), every value on its channel's grid
    wfrac: np.ndarray   # per output channel: the weight grid is 2**-wfrac
    bias: np.ndarray    # float64 (K,) on the grid 2**-bfrac
    bfrac: int
    stride: int = 1
    pad: int = 0
    groups: int = 1
    relu: bool = False

    @property
    def dense(self) -> bool:
        return self.weight.ndim == 2

    @property
    def weight_type(self) -> Fixed:
        """One type for the whole layer: the finest channel's grid, the largest weight."""
        frac = int(self.wfrac.max())
        n = int(np.abs(self.weight * 2.0 ** frac).max())
        return Fixed(frac, -n, n)

    @property
    def bias_type(self) -> Fixed:
        n = int(np.abs(self.bias * 2.0 ** self.bfrac).max())
        return Fixed(self.bfrac, -n, n)

    @property
    def spatial_taps(self) -> int:
        return 1 if self.dense else int(self.weight.shape[2] * self.weight.shape[3])


@dataclass
class Add:
    name: str
    a: str
    b: str


@dataclass
class Pool:
    """Global average pooling over ``size`` x ``size`` pixels (a power of two of them: exact)."""

    name: str
    src: str
    size: int
    channels: int

    @property
    def shift(self) -> int:
        """log2 of the pixel count, rounded up (exact for a power of two)."""
        return math.ceil(math.log2(self.size * self.size))


Op = Quant | Conv | Add | Pool


class FixedNet(nn.Module):
    """A fixed-point network: ``ops`` in order, each writing the tensor named after it; the input is
    ``input`` (N, C, H, W) and the output the last op's tensor (the logits). ``notes``: what an
    ``approximate`` fold approximated."""

    def __init__(self, ops: list[Op], input_shape: tuple[int, int, int], approximate: bool = False,
                 notes: list[str] | None = None):
        super().__init__()
        self.ops, self.input_shape = ops, input_shape
        self.approximate, self.notes = approximate, notes or []

    def types(self) -> dict[str, Fixed]:
        """The exact type of every tensor (keyed by the op that writes it) and of every conv's
        accumulator before its ReLU (``<name>/accum``)."""
        t: dict[str, Fixed] = {}
        for op in self.ops:
            if isinstance(op, Quant):
                t[op.name] = op.out
            elif isinstance(op, Conv):
                x = t[op.src]
                frac = x.frac + op.weight_type.frac
                w = np.abs(op.weight).reshape(len(op.weight), -1).sum(1)   # per output channel
                bound = float((w * x.bound + np.abs(op.bias)).max())
                acc = _sum_type(bound, max(frac, op.bfrac), True)
                t[f"{op.name}/accum"] = acc
                t[op.name] = Fixed(acc.frac, 0, acc.hi) if op.relu else acc
            elif isinstance(op, Add):
                a, b = t[op.a], t[op.b]
                t[op.name] = _sum_type(a.bound + b.bound, max(a.frac, b.frac), a.signed or b.signed)
            else:
                x = t[op.src]
                shift = op.shift   # the mean's sum of n_i * 2**-(frac + shift): |mean| <= max
                t[op.name] = t[f"{op.name}/accum"] = Fixed(x.frac + shift, x.lo << shift, x.hi << shift)
        return t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logits in float64: every operation is exact, so this is the value any exact
        fixed-point implementation computes."""
        return self.trace(x)[self.ops[-1].name].flatten(1)

    def trace(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every tensor (float64) of one forward, keyed as ``types()``: ``input``, each op's output,
        each conv's accumulator before its ReLU."""
        env = {"input": x.double()}
        for op in self.ops:
            if isinstance(op, Quant):
                lo, hi = op.limits
                s = 2.0 ** op.frac
                y = torch.clamp(torch.round(env[op.src] * s), lo, hi) / s
            elif isinstance(op, Conv):
                w, b = torch.from_numpy(op.weight), torch.from_numpy(op.bias)
                src = env[op.src]
                y = (F.linear(src.flatten(1), w, b) if op.dense
                     else F.conv2d(src, w, b, op.stride, op.pad, groups=op.groups))
                env[f"{op.name}/accum"] = y
                if op.relu:
                    y = torch.relu(y)
            elif isinstance(op, Add):
                y = env[op.a] + env[op.b]
            else:
                y = env[op.src].mean((2, 3), keepdim=True)   # exact: a power-of-two count
                env[f"{op.name}/accum"] = y
            env[op.name] = y
        return env


def _fold_bn(conv: QConv2d, bn: nn.BatchNorm2d | None) -> tuple[np.ndarray, np.ndarray]:
    w = conv.weight.detach().cpu().double().numpy()
    if bn is None:
        return w, np.zeros(w.shape[0])
    assert bn.running_mean is not None and bn.running_var is not None
    g = (bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)).cpu().numpy()
    beta = (bn.bias.detach().double() - bn.running_mean.double() * torch.from_numpy(g)).cpu().numpy()
    return w * g.reshape(-1, *([1] * (w.ndim - 1))), beta


def _quant_weight(w: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel, symmetric, narrow, power-of-two scale: the values and each grid's frac."""
    levels = 2 ** (bits - 1) - 1
    amax = np.abs(w.reshape(len(w), -1)).max(1)
    frac = -np.ceil(np.log2(np.maximum(amax / levels, EPS))).astype(np.int64)
    s = np.ldexp(1.0, frac).reshape(-1, *([1] * (w.ndim - 1)))
    return np.clip(np.round(w * s), -levels, levels) / s, frac


def _quant_bias(b: np.ndarray, frac: int) -> tuple[np.ndarray, int]:
    """The bias on the grid ``2**-frac``, coarsened until float32 holds every value exactly."""
    top = float(np.abs(b).max())
    if top > 0:
        frac = min(frac, FLOAT32_BITS - 1 - math.ceil(math.log2(top)))
    return np.round(b * 2.0 ** frac) / 2.0 ** frac, frac


class _Folder:
    """Walks a derived network in order, appending its fixed-point ops."""

    def __init__(self, approximate: bool):
        self.ops: list[Op] = []
        self.approximate = approximate
        self.notes: list[str] = []

    def _check_bits(self, layer: str, bits: int) -> int:
        if bits >= FULL or bits > FLOAT32_BITS:
            if not self.approximate:
                raise AutonbaError(f"layer {layer} computes at {bits} bits: no fixed-point type of a deployable width "
                                   "holds it exactly (use 16 bits or fewer, or --approximate)")
            self.notes.append(f"{layer}: {bits} bits taken as 16")
            return 16
        return bits

    def _layer(self, src: str, m: QConv2d | QLinear, bits: int, name: str, layer: str, w: np.ndarray,
               b: np.ndarray, **conv: Any) -> str:
        """The input quantiser of ``m`` (power-of-two parameters of its EMA range), then the layer with
        weights ``w`` and bias ``b`` quantised onto grids at ``bits``."""
        bits = self._check_bits(layer, bits)
        p = _qparams(m.act_range.lo, (bits,), "act", m.act_range.lo, m.act_range.hi, pow2=True)[0]
        assert p is not None
        q = Quant(f"{name}_in", src, bits, -int(round(math.log2(float(p[0])))), p[2] < 0)
        wq, wfrac = _quant_weight(w, bits)
        bq, bfrac = _quant_bias(b, q.frac + int(wfrac.max()))
        self.ops += [q, Conv(name, q.name, layer, bits, wq, wfrac, bq, bfrac, **conv)]
        return name

    def conv(self, src: str, m: QConv2d, bn: nn.BatchNorm2d | None, bits: int, name: str, layer: str,
             relu: bool, shuffle: int = 1) -> str:
        w, b = _fold_bn(m, bn)
        groups = m.groups
        if 1 < groups < m.in_channels or shuffle > 1:   # grouped 1x1: dense, with the shuffle in its output order
            k, cg = w.shape[0] // groups, w.shape[1]
            dense = np.zeros((w.shape[0], cg * groups, *w.shape[2:]))
            for j in range(groups):
                dense[j * k:(j + 1) * k, j * cg:(j + 1) * cg] = w[j * k:(j + 1) * k]
            w, groups = dense, 1
            if shuffle > 1:
                c = w.shape[0]
                perm = [(j % shuffle) * (c // shuffle) + j // shuffle for j in range(c)]
                w, b = w[perm], b[perm]
        pad = m.padding[0]
        assert isinstance(pad, int)
        return self._layer(src, m, bits, name, layer, w, b, stride=m.stride[0], pad=pad, groups=groups, relu=relu)

    def dense(self, src: str, m: QLinear, bits: int, name: str) -> str:
        w, b = (t.detach().cpu().double().numpy() for t in (m.weight, m.bias))
        return self._layer(src, m, bits, name, name, w, b)


def fold(model: DerivedNet, approximate: bool = False) -> FixedNet:
    """The fixed-point network of a derived network (in evaluation: its quantisers' EMA ranges).
    Refuses float scales, unquantised layers and a non-power-of-two pooling area unless
    ``approximate``; what was approximated is listed in the result's ``notes``."""
    net, arch = model.net, model.arch
    layout = arch.layout
    f = _Folder(approximate)
    if layout.scales != "pow2":
        if not approximate:
            raise AutonbaError("the network was trained with float quantiser scales (layout.scales: float), which no "
                               "fixed-point datapath computes exactly; retrain with '--set quant_scales=pow2' or "
                               "accept approximate emulation (--approximate)")
        f.notes.append("float scales: activations put on the power-of-two grids covering the same ranges")
    fixed = layout.fixed_bits
    y = f.conv("input", net.stem, net.stem_bn, fixed, "stem", "stem", relu=True)
    size = out_size(layout.input_size, net.stem)
    for i, (layer, blk) in enumerate(zip(net.layers, arch.blocks, strict=True)):
        assert isinstance(layer, nn.ModuleList)
        op, stem, q = layer[0], f"block{i}", blk.bits
        if isinstance(op, Skip):
            if op.conv is not None:
                y = f.conv(y, op.conv, op.bn, q, f"{stem}_skip", f"{stem}.skip", relu=False)
                size = out_size(size, op.conv)
            continue
        assert isinstance(op, MBConv)
        x = y
        y = f.conv(x, op.expand, op.bn1, q, f"{stem}_expand", f"{stem}.expand", relu=True, shuffle=op.groups)
        y = f.conv(y, op.dw, op.bn2, q, f"{stem}_dw", f"{stem}.dw", relu=True)
        size = out_size(size, op.dw)
        y = f.conv(y, op.project, op.bn3, q, f"{stem}_project", f"{stem}.project", relu=False)
        if op.residual:
            f.ops.append(Add(f"{stem}_add", x, y))
            y = f"{stem}_add"
    y = f.conv(y, net.head, net.head_bn, fixed, "head", "head", relu=True)
    if size & (size - 1):
        if not approximate:
            raise AutonbaError(f"the global average pool spans {size}x{size} pixels, not a power of two: its mean "
                               "has no exact fixed-point value; accept approximate emulation (--approximate)")
        f.notes.append(f"pooling over {size}x{size} pixels: the mean is rounded")
    f.ops.append(Pool("pool", y, size, layout.head_channels))
    f.dense("pool", net.classifier, fixed, "classifier")
    shape = (layout.input_channels, layout.input_size, layout.input_size)
    return FixedNet(f.ops, shape, approximate, f.notes).eval()
