"""Fake quantisation with mixed bitwidths, built on PyTorch's fake-quantize operators.

``mix_quant(x, coef, bits, ...)`` returns ``sum_j coef_j * Q_bits_j(x)`` as ONE autograd node that
saves only ``x`` and ``coef``: the per-bitwidth quantised tensors and clipping masks are recomputed
in the backward pass, so memory does not grow with the number of bitwidths (a chain of
per-bitwidth fake-quantize calls would save one mask per bitwidth). The gradient is the
straight-through estimator: ``d/dx = g * sum_j coef_j * inside_j(x)``, ``d/dcoef_j = <g, Q_j(x)>``.

Weights are quantised symmetrically per output channel (range from ``max |w|``), activations
affinely per tensor (range from the batch in training, an EMA of it in evaluation). A zero range
never divides by zero; 32 bits (or more) means unquantised.
"""
from __future__ import annotations

import torch
from torch import nn

EPS = 1e-8
FULL = 32


def _qparams_weight(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    levels = 2 ** (bits - 1) - 1
    amax = w.detach().abs().flatten(1).amax(1)
    scale = (amax / levels).clamp(min=EPS).float()
    return scale, torch.zeros_like(scale, dtype=torch.int32), -levels, levels


def _qparams_act(lo: torch.Tensor, hi: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    lo, hi = torch.minimum(lo, torch.zeros_like(lo)), torch.maximum(hi, torch.zeros_like(hi))  # keep 0 exact
    qmax = 2 ** bits - 1
    scale = ((hi - lo) / qmax).clamp(min=EPS).float()
    zero = torch.clamp(torch.round(-lo / scale), 0, qmax).to(torch.int32)
    return scale, zero, 0, qmax


def quantize(x: torch.Tensor, bits: int, kind: str, lo: torch.Tensor | None = None,
             hi: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Fake-quantised ``x`` (no autograd) and the mask of elements inside the clipping range."""
    if bits >= FULL:
        return x, torch.ones_like(x, dtype=torch.bool)
    if kind == "weight":
        scale, zero, qmin, qmax = _qparams_weight(x, bits)
        q = torch.fake_quantize_per_channel_affine(x, scale, zero, 0, qmin, qmax)
        return q, torch.ones_like(x, dtype=torch.bool)
    scale, zero, qmin, qmax = _qparams_act(lo, hi, bits)
    q = torch.fake_quantize_per_tensor_affine(x, scale, zero, qmin, qmax)
    lo_c = (qmin - zero.float()) * scale
    hi_c = (qmax - zero.float()) * scale
    return q, (x >= lo_c) & (x <= hi_c)


def _inside_weight(x: torch.Tensor, coef: torch.Tensor, bits: tuple[int, ...], kind: str,
                   lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor | float:
    """``sum_j coef_j * inside_j(x)``: the straight-through factor of the input gradient, without
    recomputing the quantised tensors (weights are never clipped: their range is their own max)."""
    if kind == "weight" or all(b >= FULL for b in bits):
        return coef.sum()
    out = torch.zeros_like(x)
    for j, b in enumerate(bits):
        if b >= FULL:
            out.add_(coef[j])
            continue
        scale, zero, qmin, qmax = _qparams_act(lo, hi, b)
        lo_c, hi_c = (qmin - zero.float()) * scale, (qmax - zero.float()) * scale
        out.add_(((x >= lo_c) & (x <= hi_c)).to(x.dtype).mul_(coef[j]))
    return out


class _MixQuant(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, coef, bits, kind, lo, hi):
        out = torch.zeros_like(x)
        for j, b in enumerate(bits):
            q, _ = quantize(x, b, kind, lo, hi)
            out.add_(q.mul_(coef[j]) if q is not x else q * coef[j])
        ctx.save_for_backward(x, coef, lo, hi)
        ctx.bits, ctx.kind = bits, kind
        return out

    @staticmethod
    def backward(ctx, g):
        x, coef, lo, hi = ctx.saved_tensors
        gx = torch.zeros_like(x) if ctx.needs_input_grad[0] else None
        gc = torch.zeros_like(coef) if ctx.needs_input_grad[1] else None
        if gc is None and gx is not None:  # weight step: only the clipping masks are needed
            return g * _inside_weight(x, coef, ctx.bits, ctx.kind, lo, hi), None, None, None, None, None
        for j, b in enumerate(ctx.bits):
            q, inside = quantize(x, b, ctx.kind, lo, hi)
            if gx is not None:
                gx.add_(torch.where(inside, g, torch.zeros_like(g)) * coef[j])
            if gc is not None:
                gc[j] = (g * q).sum()
        return gx, gc, None, None, None, None


def plain_quantize(x: torch.Tensor, bits: int, kind: str, lo: torch.Tensor | None = None,
                   hi: torch.Tensor | None = None) -> torch.Tensor:
    """``quantize`` written with elementary ops (divide, round, clip, multiply), for ONNX export."""
    if bits >= FULL:
        return x
    if kind == "weight":
        scale, _, qmin, qmax = _qparams_weight(x, bits)
        s = scale.view(-1, *([1] * (x.dim() - 1)))
        return torch.clamp(torch.round(x / s), qmin, qmax) * s
    scale, zero, qmin, qmax = _qparams_act(lo, hi, bits)
    z = zero.float()
    return (torch.clamp(torch.round(x / scale) + z, qmin, qmax) - z) * scale


def mix_quant(x: torch.Tensor, coef: torch.Tensor, bits: tuple[int, ...], kind: str,
              lo: torch.Tensor | None = None, hi: torch.Tensor | None = None) -> torch.Tensor:
    """``sum_j coef_j * Q_bits_j(x)`` with a straight-through gradient, in constant memory."""
    if torch.jit.is_tracing():  # ONNX export (no gradients): elementary ops the exporter knows
        qs = [plain_quantize(x, int(b), kind, lo, hi) for b in bits]
        return qs[0] if len(bits) == 1 else sum(c * q for c, q in zip(coef, qs))
    if len(bits) == 1 and bits[0] >= FULL and not coef.requires_grad:
        return x * coef[0] if float(coef[0]) != 1.0 else x
    z = torch.zeros((), device=x.device)
    return _MixQuant.apply(x, coef.to(x.device, x.dtype), tuple(int(b) for b in bits), kind,
                           z if lo is None else lo, z if hi is None else hi)


class ActRange(nn.Module):
    """Per-tensor activation range: the batch's in training (also updating an EMA), the EMA in eval."""

    def __init__(self, momentum: float = 0.1):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("lo", torch.zeros(()))
        self.register_buffer("hi", torch.zeros(()))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training:
            lo, hi = x.detach().amin(), x.detach().amax()
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
