"""Quantised building blocks: conv / linear layers that take their bitwidth mixture per call, the
candidate operations (inverted bottleneck, skip) and the stem-blocks-head network around them."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from autonba.nas.layout import Layout
from autonba.nas.ops import OPS, OpSpec
from autonba.nas.quant import ActRange, mix_quant


@dataclass
class QuantSpec:
    """How a layer is quantised in one forward: ``sum_j coef_j * Q_bits_j`` (``coef`` None: one bitwidth,
    coefficient 1); with ``multipath`` one conv per bitwidth, summed (the memory-hungry way, for the
    ablation)."""

    bits: tuple[int, ...]
    coef: torch.Tensor | None
    multipath: bool = False

    @classmethod
    def fixed(cls, bits: int) -> QuantSpec:
        return cls((int(bits),), None)


class QConv2d(nn.Conv2d):
    """A conv whose weights (per output channel) and input (per tensor) are fake-quantised (``pow2``:
    with power-of-two scales, set by the network from its layout; ``compiled``: through the compiled
    quantiser kernels, set by the network)."""

    pow2 = False
    compiled = False

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.act_range = ActRange()

    # takes its bitwidths per call: never used as a plain Conv2d
    def forward(self, x: torch.Tensor, spec: QuantSpec) -> torch.Tensor:  # type: ignore[override]
        if x.dtype == torch.bfloat16:  # under bf16 autocast the layer before gave bf16: quantise in float32
            x = x.float()
        lo, hi = self.act_range(x)
        c = self.compiled
        if spec.multipath:
            assert spec.coef is not None
            return sum(spec.coef[j] * self._conv_forward(
                mix_quant(x, None, (b,), "act", lo, hi, self.pow2, c),
                mix_quant(self.weight, None, (b,), "weight", pow2=self.pow2, compiled=c), None)
                for j, b in enumerate(spec.bits))
        return self._conv_forward(mix_quant(x, spec.coef, spec.bits, "act", lo, hi, self.pow2, c),
                                  mix_quant(self.weight, spec.coef, spec.bits, "weight", pow2=self.pow2,
                                            compiled=c), None)


class QLinear(nn.Linear):
    pow2 = False
    compiled = False

    def __init__(self, fin: int, fout: int):
        super().__init__(fin, fout)
        self.act_range = ActRange()

    # takes its bitwidths per call: never used as a plain Linear
    def forward(self, x: torch.Tensor, spec: QuantSpec) -> torch.Tensor:  # type: ignore[override]
        if x.dtype == torch.bfloat16:  # under bf16 autocast the layer before gave bf16: quantise in float32
            x = x.float()
        lo, hi = self.act_range(x)
        c = self.compiled
        return F.linear(mix_quant(x, spec.coef, spec.bits, "act", lo, hi, self.pow2, c),
                        mix_quant(self.weight, spec.coef, spec.bits, "weight", pow2=self.pow2, compiled=c), self.bias)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class MBConv(nn.Module):
    """1x1 expand -> BN -> ReLU -> kxk depthwise (stride) -> BN -> ReLU -> 1x1 project -> BN (+ residual)."""

    def __init__(self, spec: OpSpec, cin: int, cout: int, stride: int):
        super().__init__()
        hidden = cin * spec.expansion
        self.groups = spec.groups
        self.expand = QConv2d(cin, hidden, 1, groups=spec.groups)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.dw = QConv2d(hidden, hidden, spec.kernel, stride, groups=hidden)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.project = QConv2d(hidden, cout, 1, groups=spec.groups)
        self.bn3 = nn.BatchNorm2d(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor, q: QuantSpec) -> torch.Tensor:
        y = F.relu(self.bn1(self.expand(x, q)))
        if self.groups > 1:
            y = channel_shuffle(y, self.groups)
        y = F.relu(self.bn2(self.dw(y, q)))
        y = self.bn3(self.project(y, q))
        return x + y if self.residual else y


class Skip(nn.Module):
    """Identity, or a 1x1 conv + BN when the block changes shape."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv = QConv2d(cin, cout, 1, stride) if (cin != cout or stride != 1) else None
        self.bn = nn.BatchNorm2d(cout) if self.conv is not None else None

    def forward(self, x: torch.Tensor, q: QuantSpec) -> torch.Tensor:
        return x if self.conv is None or self.bn is None else self.bn(self.conv(x, q))


def build_op(name: str, cin: int, cout: int, stride: int) -> nn.Module:
    spec = OPS.get(name)
    return Skip(cin, cout, stride) if spec.skip else MBConv(spec, cin, cout, stride)


@dataclass
class LayerPath:
    """What one searchable layer executes in one forward: operations ``ops`` (indices into its
    candidates), their output coefficients (None: a single op, weight 1) and one QuantSpec each."""

    ops: list[int]
    op_coef: torch.Tensor | None
    quant: list[QuantSpec]


class QNetwork(nn.Module):
    """Stem, searchable layers (each a list of candidate operations), head, classifier. ``bf16``: the
    forwards that train (training mode, gradients on) run under bfloat16 autocast, set by ``use_bf16``."""

    bf16 = False

    def __init__(self, layout: Layout, candidates: list[list[str]]):
        super().__init__()
        self.layout = layout
        self.candidates = candidates
        self.fixed = QuantSpec.fixed(layout.fixed_bits)
        self.stem = QConv2d(layout.input_channels, layout.stem.channels, layout.stem.kernel, layout.stem.stride)
        self.stem_bn = nn.BatchNorm2d(layout.stem.channels)
        self.layers = nn.ModuleList(
            nn.ModuleList(build_op(op, cin, cout, s) for op in ops)
            for (cin, cout, s), ops in zip(layout.block_plan(), candidates, strict=True))
        last = layout.stages[-1].channels
        self.head = QConv2d(last, layout.head_channels, 1)
        self.head_bn = nn.BatchNorm2d(layout.head_channels)
        self.classifier = QLinear(layout.head_channels, layout.num_classes)
        for m in self.modules():
            if isinstance(m, (QConv2d, QLinear)):
                m.pow2 = layout.scales == "pow2"

    def compile_quantisers(self, on: bool = True) -> None:
        """Run every quantised layer through the compiled quantiser kernels (or back to eager)."""
        for m in self.modules():
            if isinstance(m, (QConv2d, QLinear)):
                m.compiled = on

    def use_bf16(self, on: bool = True) -> None:
        """Train with the convolutions and linear layers in bfloat16 (autocast: the quantisers, batch-norm
        statistics and the logits stay float32); evaluation and calibration, without gradients, stay
        float32 throughout."""
        self.bf16 = on

    def forward(self, x: torch.Tensor, path: list[LayerPath]) -> torch.Tensor:
        if not (self.bf16 and self.training and torch.is_grad_enabled()):
            return self._forward(x, path)
        with torch.autocast(x.device.type, torch.bfloat16):
            return self._forward(x, path).float()

    def _forward(self, x: torch.Tensor, path: list[LayerPath]) -> torch.Tensor:
        x = F.relu(self.stem_bn(self.stem(x, self.fixed)))
        for layer, lp in zip(cast(Iterable[nn.ModuleList], self.layers), path, strict=True):
            if lp.op_coef is None:
                x = layer[lp.ops[0]](x, lp.quant[0])
            else:
                x = sum(c * layer[o](x, q) for o, c, q in zip(lp.ops, lp.op_coef, lp.quant))
        x = F.relu(self.head_bn(self.head(x, self.fixed)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(x, self.fixed)
