"""Fake quantisation with mixed bitwidths, built on PyTorch's fake-quantize operators.

``mix_quant(x, coef, bits, ...)`` returns ``sum_j coef_j * Q_bits_j(x)`` as ONE autograd node that
saves only ``x`` and ``coef``: the per-bitwidth quantised tensors and clipping masks are recomputed
in the backward pass, so memory does not grow with the number of bitwidths (a chain of
per-bitwidth fake-quantize calls would save one mask per bitwidth). The gradient is the
straight-through estimator: ``d/dx = g * sum_j coef_j * inside_j(x)``, ``d/dcoef_j = <g, Q_j(x)>``.

Weights are quantised symmetrically per output channel (range from ``max |w|``), activations
affinely per tensor (range from the batch in training, an EMA of it in evaluation). A zero range
never divides by zero; 32 bits (or more) means unquantised.

With ``pow2`` (fixed point, what FPGA datapaths and hls4ml compute exactly) every scale is the
smallest power of two whose grid covers the range, and every zero point is 0: weights per output
channel on the symmetric signed grid, activations per tensor on the unsigned grid [0, 2^b - 1]
when the range has no negative value (after a ReLU), else on the signed grid [-2^(b-1), 2^(b-1) - 1].
"""
from __future__ import annotations

import torch
from torch import nn

EPS = 1e-8
FULL = 32


QParams = tuple[torch.Tensor, torch.Tensor, int, int]  # scale, zero point, qmin, qmax


def pow2_ceil(x: torch.Tensor) -> torch.Tensor:
    """The smallest power of two >= x (x > 0)."""
    return torch.pow(2.0, torch.ceil(torch.log2(x)))  # (not exp2: ONNX export lacks it)


def _qparams(x: torch.Tensor, bits: tuple[int, ...], kind: str, lo: torch.Tensor | None,
             hi: torch.Tensor | None, pow2: bool = False) -> list[QParams | None]:
    """Quantisation parameters of every bitwidth (None: unquantised), from one range computation:
    weights symmetric per output channel (max |w|), activations affine per tensor over [lo, hi]
    widened to include 0 (so that 0 is exact); with ``pow2``, power-of-two scales, zero points 0."""
    out: list[QParams | None] = []
    if kind == "weight":
        amax = x.detach().abs().flatten(1).amax(1).float()
        zero = torch.zeros_like(amax, dtype=torch.int32)
        for b in bits:
            if b >= FULL:
                out.append(None)
                continue
            levels = 2 ** (b - 1) - 1
            scale = (amax / levels).clamp(min=EPS)
            out.append((pow2_ceil(scale) if pow2 else scale, zero, -levels, levels))
        return out
    assert lo is not None and hi is not None  # activations are quantised over a given range
    lo, hi = torch.clamp(lo, max=0.0), torch.clamp(hi, min=0.0)
    span = (hi - lo).float()
    for b in bits:
        if b >= FULL:
            out.append(None)
        elif pow2:
            out.append(_pow2_act(lo.float(), hi.float(), b))
        else:
            qmax = 2 ** b - 1
            scale = (span / qmax).clamp(min=EPS)
            out.append((scale, torch.clamp(torch.round(-lo / scale), 0, qmax).to(torch.int32), 0, qmax))
    return out


def _pow2_act(lo: torch.Tensor, hi: torch.Tensor, b: int) -> QParams:
    """Fixed-point activation parameters: unsigned b bits when nothing is negative, else signed."""
    zero = torch.zeros((), dtype=torch.int32, device=lo.device)
    if bool(lo >= 0):
        return pow2_ceil((hi / (2 ** b - 1)).clamp(min=EPS)), zero, 0, 2 ** b - 1
    half = 2 ** (b - 1)
    scale = torch.maximum(-lo / half, hi / (half - 1) if half > 1 else hi)
    return pow2_ceil(scale.clamp(min=EPS)), zero, -half, half - 1


def _fake_quant(x: torch.Tensor, p: QParams | None, kind: str) -> torch.Tensor:
    if p is None:
        return x
    scale, zero, qmin, qmax = p
    if kind == "weight":
        return torch.fake_quantize_per_channel_affine(x, scale, zero, 0, qmin, qmax)
    if not x.is_cpu:  # one fused kernel
        return torch.fake_quantize_per_tensor_affine(x, scale, zero, qmin, qmax)
    # On CPU: bit-identical to the operator (round(x / s) + z, clip, - z, * s, with 1 / s precomputed
    # as its kernel does; tests check equality) in four multithreaded elementwise passes, ~3x faster.
    z = zero.float()
    return torch.round(x * (1.0 / scale)).clamp_(qmin - z, qmax - z).mul_(scale)


def _edges(p: QParams) -> tuple[torch.Tensor, torch.Tensor]:
    """The clipping range of per-tensor activation parameters, in the input's units."""
    scale, zero, qmin, qmax = p
    z = zero.float()
    return (qmin - z) * scale, (qmax - z) * scale


def _inside(x: torch.Tensor, p: QParams | None, kind: str) -> torch.Tensor | None:
    """Mask of the elements inside the clipping range (None: everything; weights are never clipped)."""
    if p is None or kind == "weight":
        return None
    lo, hi = _edges(p)
    return (x >= lo) & (x <= hi)


def minmax(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x``'s smallest and largest element in one pass over its memory (``aminmax`` on a
    channels-last tensor would first copy it to the contiguous layout)."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        x = x.permute(0, 2, 3, 1)
    return torch.aminmax(x.reshape(-1))


def _all_inside(x: torch.Tensor, p: QParams | None, kind: str) -> bool:
    """Whether no element is clipped, known without a mask: always for weights and unquantised
    tensors; on CPU from one min/max pass (on a GPU the host sync would cost more than the mask)."""
    if p is None or kind == "weight":
        return True
    if not x.is_cpu:
        return False
    (lo, hi), (x_lo, x_hi) = _edges(p), minmax(x)
    return bool(x_lo >= lo) and bool(x_hi <= hi)


def quantize(x: torch.Tensor, bits: int, kind: str, lo: torch.Tensor | None = None,
             hi: torch.Tensor | None = None, pow2: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Fake-quantised ``x`` (no autograd) and the mask of elements inside the clipping range."""
    p = _qparams(x, (bits,), kind, lo, hi, pow2)[0]
    mask = _inside(x, p, kind)
    return _fake_quant(x, p, kind), torch.ones_like(x, dtype=torch.bool) if mask is None else mask


class _MixQuant(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, coef, bits, kind, lo, hi, pow2):
        params = _qparams(x, bits, kind, lo, hi, pow2)
        if len(params) == 1:  # one bitwidth (a derived network, a sampled path): no accumulator
            out = _fake_quant(x, params[0], kind).mul_(coef[0]) if params[0] is not None else x * coef[0]
        else:
            out = torch.zeros_like(x)
            for j, p in enumerate(params):
                out.add_(_fake_quant(x, p, kind).mul_(coef[j]) if p is not None else x * coef[j])
        ctx.save_for_backward(x, coef)
        ctx.params, ctx.kind = params, kind  # a few scalars / per-channel vectors per bitwidth
        return out

    @staticmethod
    def backward(ctx, g):
        x, coef = ctx.saved_tensors
        gx = None
        if ctx.needs_input_grad[0]:  # straight through inside every bitwidth's clipping range
            if len(ctx.params) == 1:
                p = ctx.params[0]
                gx = g * coef[0]
                if not _all_inside(x, p, ctx.kind):
                    gx.masked_fill_(~_inside(x, p, ctx.kind), 0.0)
            else:
                masks = [_inside(x, p, ctx.kind) for p in ctx.params]
                if all(m is None for m in masks):
                    gx = g * coef.sum()
                else:
                    factor = torch.zeros_like(x)
                    for j, m in enumerate(masks):
                        factor.add_(coef[j] if m is None else m.to(x.dtype).mul_(coef[j]))
                    gx = g * factor
        gc = None
        if ctx.needs_input_grad[1]:
            gc = torch.stack([(g * _fake_quant(x, p, ctx.kind)).sum() for p in ctx.params])
        return gx, gc, None, None, None, None, None


def plain_quantize(x: torch.Tensor, bits: int, kind: str, lo: torch.Tensor | None = None,
                   hi: torch.Tensor | None = None, pow2: bool = False) -> torch.Tensor:
    """``quantize`` written with elementary ops (divide, round, clip, multiply), for ONNX export."""
    p = _qparams(x, (bits,), kind, lo, hi, pow2)[0]
    if p is None:
        return x
    scale, zero, qmin, qmax = p
    if kind == "weight":
        s = scale.view(-1, *([1] * (x.dim() - 1)))
        return torch.clamp(torch.round(x / s), qmin, qmax) * s
    z = zero.float()
    return (torch.clamp(torch.round(x / scale) + z, qmin, qmax) - z) * scale


def mix_quant(x: torch.Tensor, coef: torch.Tensor, bits: tuple[int, ...], kind: str,
              lo: torch.Tensor | None = None, hi: torch.Tensor | None = None, pow2: bool = False) -> torch.Tensor:
    """``sum_j coef_j * Q_bits_j(x)`` with a straight-through gradient, in constant memory; ``pow2``:
    power-of-two scales with zero points 0 (fixed point)."""
    if torch.jit.is_tracing():  # ONNX export (no gradients): elementary ops the exporter knows
        qs = [plain_quantize(x, int(b), kind, lo, hi, pow2) for b in bits]
        return qs[0] if len(bits) == 1 else sum(c * q for c, q in zip(coef, qs))
    if len(bits) == 1 and bits[0] >= FULL and not coef.requires_grad:
        return x * coef[0] if float(coef[0]) != 1.0 else x
    z = torch.zeros((), device=x.device)
    return _MixQuant.apply(x, coef.to(x.device, x.dtype), tuple(int(b) for b in bits), kind,
                           z if lo is None else lo, z if hi is None else hi, pow2)


class ActRange(nn.Module):
    """Per-tensor activation range: the batch's in training (also updating an EMA), the EMA in eval."""

    lo: torch.Tensor  # buffers (registered in __init__)
    hi: torch.Tensor
    initialised: torch.Tensor

    def __init__(self, momentum: float = 0.1):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("lo", torch.zeros(()))
        self.register_buffer("hi", torch.zeros(()))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training:
            lo, hi = minmax(x.detach())
            with torch.no_grad():
                if bool(self.initialised):
                    self.lo.lerp_(lo, self.momentum)
                    self.hi.lerp_(hi, self.momentum)
                else:
                    self.lo.copy_(lo)
                    self.hi.copy_(hi)
                    self.initialised.fill_(True)
            return lo, hi
        return self.lo, self.hi
