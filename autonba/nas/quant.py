"""Fake quantisation with mixed bitwidths.

``mix_quant(x, coef, bits, ...)`` returns ``sum_j coef_j * Q_bits_j(x)`` as ONE autograd node that
saves only ``x``, ``coef`` and the grids' scalars: the per-bitwidth quantised tensors and clipping masks are
recomputed in the backward pass, so memory does not grow with the number of bitwidths. The gradient is
the straight-through estimator: ``d/dx = g * sum_j coef_j * inside_j(x)``, ``d/dcoef_j = <g, Q_j(x)>``.

Forward and backward are each one function of all the bitwidths at once: the quantisation parameters
of every bitwidth come from one range, and each element is read once and its ``J`` quantised values
summed in registers when the function is compiled (``compiled=True``: ``torch.compile``, one fused
C++ loop on CPU, one Triton kernel on CUDA, shapes dynamic so each layer does not recompile). Eager and
compiled forms are the same code and give the same values (the coefficients' gradient is a sum whose
order the compiler may change, so equal within rounding).

Weights are quantised symmetrically per output channel (range from ``max |w|``), activations
affinely per tensor (range from the batch in training, an EMA of it in evaluation). A zero range
never divides by zero; 32 bits (or more) means unquantised. Each quantised value is computed as
PyTorch's fake-quantize operators do (``round(x * (1 / s))`` clipped, times ``s``); tests check
they are bit-identical.

With ``pow2`` (fixed point, what FPGA datapaths and hls4ml compute exactly) every scale is the
smallest power of two whose grid covers the range, and every zero point is 0: weights per output
channel on the symmetric signed grid, activations per tensor on the unsigned grid [0, 2^b - 1]
when the range has no negative value (after a ReLU), else on the signed grid [-2^(b-1), 2^(b-1) - 1].
Nothing here reads a tensor's value on the host, so a GPU never waits on it.
"""
from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from autonba.errors import AutonbaError

EPS = 1e-8
FULL = 32

QParams = tuple[torch.Tensor, torch.Tensor, int, int]  # scale, zero point, qmin, qmax
Bound = torch.Tensor | int
ActGrid = tuple[torch.Tensor, torch.Tensor, Bound, Bound]  # scale, zero point (float), qmin, qmax


def pow2_ceil(x: torch.Tensor) -> torch.Tensor:
    """The smallest power of two >= x (x > 0)."""
    return torch.pow(2.0, torch.ceil(torch.log2(x)))  # (not exp2: ONNX export lacks it)


# ---- the grids: one place for the formulas -----------------------------------------------------------
def weight_grid(amax: torch.Tensor, b: int, pow2: bool) -> tuple[torch.Tensor, int]:
    """Per-output-channel scale of the symmetric signed ``b``-bit grid covering ``amax`` = max |w|, and
    its largest level (the grid is ``-levels .. levels``)."""
    levels = 2 ** (b - 1) - 1
    scale = (amax / levels).clamp(min=EPS)
    return (pow2_ceil(scale) if pow2 else scale), levels


def act_grids(lo: torch.Tensor, hi: torch.Tensor, bits: tuple[int, ...], pow2: bool) -> list[ActGrid | None]:
    """The per-tensor grid of each bitwidth (None: unquantised) over [lo, hi] widened to include 0 (so
    that 0 is exact)."""
    lo, hi = torch.clamp(lo, max=0.0).float(), torch.clamp(hi, min=0.0).float()
    return [None if b >= FULL else act_grid(lo, hi, b, pow2) for b in bits]


def act_grid(lo: torch.Tensor, hi: torch.Tensor, b: int, pow2: bool) -> ActGrid:
    """Scale, zero point (as a float) and integer range [qmin, qmax] of the per-tensor ``b``-bit grid over
    [lo, hi], lo <= 0 <= hi; with ``pow2`` the bounds are tensors (unsigned grid or signed one, chosen
    without reading the range on the host)."""
    if not pow2:
        qmax = 2 ** b - 1
        scale = ((hi - lo) / qmax).clamp(min=EPS)
        return scale, torch.clamp(torch.round(-lo / scale), 0, qmax), 0, qmax
    half = 2 ** (b - 1)
    unsigned = lo >= 0
    signed_scale = torch.maximum(-lo / half, hi / (half - 1) if half > 1 else hi)
    scale = pow2_ceil(torch.where(unsigned, hi / (2 ** b - 1), signed_scale).clamp(min=EPS))
    qmin = torch.where(unsigned, 0.0, -float(half))
    qmax = torch.where(unsigned, float(2 ** b - 1), float(half - 1))
    return scale, torch.zeros_like(scale), qmin, qmax


def _qparams(x: torch.Tensor, bits: tuple[int, ...], kind: str, lo: torch.Tensor | None,
             hi: torch.Tensor | None, pow2: bool = False) -> list[QParams | None]:
    """Quantisation parameters of every bitwidth (None: unquantised) as ``(scale, int zero point, qmin,
    qmax)``, for export and inspection (the bounds are read on the host)."""
    out: list[QParams | None] = []
    if kind == "weight":
        amax = x.detach().abs().flatten(1).amax(1).float()
        zero = torch.zeros_like(amax, dtype=torch.int32)
        for b in bits:
            if b >= FULL:
                out.append(None)
                continue
            scale, levels = weight_grid(amax, b, pow2)
            out.append((scale, zero, -levels, levels))
        return out
    assert lo is not None and hi is not None  # activations are quantised over a given range
    for grid in act_grids(lo, hi, bits, pow2):
        out.append(None if grid is None else (grid[0], grid[1].to(torch.int32), int(grid[2]), int(grid[3])))
    return out


# ---- one pass over x for all bitwidths --------------------------------------------------------------
# (in place on fresh intermediates: eager, a term allocates one tensor, not four; compiled, it is the same loop)
def _act_q(x: torch.Tensor, grid: ActGrid) -> torch.Tensor:
    scale, zero, qmin, qmax = grid
    return torch.round(x * (1.0 / scale)).clamp_(qmin - zero, qmax - zero).mul_(scale)


def _act_inside(x: torch.Tensor, grid: ActGrid) -> torch.Tensor:
    """Whether each element lies inside the grid's clipping range."""
    lo, hi = _edges(grid)
    return (x >= lo) & (x <= hi)


def _edges(grid: ActGrid) -> tuple[torch.Tensor, torch.Tensor]:
    """The grid's clipping range, in the input's units."""
    scale, zero, qmin, qmax = grid
    return (qmin - zero) * scale, (qmax - zero) * scale


def _weight_q(w: torch.Tensor, amax: torch.Tensor, b: int, pow2: bool) -> torch.Tensor:
    scale, levels = weight_grid(amax, b, pow2)
    s = scale.view(-1, *([1] * (w.dim() - 1)))
    return torch.round(w * (1.0 / s)).clamp_(-levels, levels).mul_(s)


def _amax(w: torch.Tensor) -> torch.Tensor:
    return w.abs().flatten(1).amax(1).float()


def _terms_sum(terms: Iterable[torch.Tensor]) -> torch.Tensor:
    """The terms' sum in their order, accumulated into the first (each term a fresh tensor)."""
    it = iter(terms)
    out = next(it)
    for t in it:
        out = out.add_(t)
    return out


def act_forward(x: torch.Tensor, coef: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
                bits: tuple[int, ...], pow2: bool) -> tuple[torch.Tensor, list[ActGrid | None]]:
    """The mixture, and the grids (a few scalars, kept for the backward pass)."""
    grids = act_grids(lo, hi, bits, pow2)
    return _terms_sum(x * coef[j] if grid is None else _act_q(x, grid).mul_(coef[j])
                      for j, grid in enumerate(grids)), grids


def weight_forward(w: torch.Tensor, coef: torch.Tensor, bits: tuple[int, ...], pow2: bool) -> torch.Tensor:
    amax = _amax(w)
    return _terms_sum(w * coef[j] if b >= FULL else _weight_q(w, amax, b, pow2).mul_(coef[j])
                      for j, b in enumerate(bits))


def act_backward(x: torch.Tensor, g: torch.Tensor, coef: torch.Tensor, grids: list[ActGrid | None],
                 coef_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The input's straight-through gradient (through each bitwidth's clipping range) and, with
    ``coef_grad``, the coefficients' gradient."""
    gc = torch.stack([(g * x if grid is None else _act_q(x, grid).mul_(g)).sum() for grid in grids]) \
        if coef_grad else None
    if not torch.compiler.is_compiling() and x.is_cpu and _nothing_clipped(x, grids):
        # eager on CPU (where reading a value costs nothing): one min/max pass instead of the masks
        return g * _terms_sum(coef[j].clone() for j in range(len(grids))), gc
    factor = _terms_sum(torch.full_like(x, 1.0).mul_(coef[j]) if grid is None else
                        torch.where(_act_inside(x, grid), coef[j], 0.0) for j, grid in enumerate(grids))
    return factor.mul_(g), gc


def _nothing_clipped(x: torch.Tensor, grids: list[ActGrid | None]) -> bool:
    x_lo, x_hi = torch.aminmax(x)
    return all(bool(x_lo >= lo) and bool(x_hi <= hi) for lo, hi in (_edges(g) for g in grids if g is not None))


def weight_coef_grad(w: torch.Tensor, g: torch.Tensor, bits: tuple[int, ...], pow2: bool) -> torch.Tensor:
    amax = _amax(w)
    return torch.stack([(g * w if b >= FULL else _weight_q(w, amax, b, pow2).mul_(g)).sum() for b in bits])


_KERNELS: dict[str, Callable[..., Any]] = {
    "act_forward": act_forward, "weight_forward": weight_forward, "act_backward": act_backward,
    "weight_coef_grad": weight_coef_grad}


@functools.cache
def kernel(name: str, compiled: bool) -> Callable[..., Any]:
    """One of the fused functions, eager or compiled (built once per process, compiled on first call per
    number of bitwidths and variant; the bitwidths' values and the shapes are dynamic)."""
    fn = _KERNELS[name]
    if not compiled:
        return fn
    # a run meets up to ~6 variants per function (1-3 bitwidths, with or without the coefficients' gradient);
    # a test process meets more (fixed point, 32-bit choices): more than dynamo's default limit of 8
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    return torch.compile(fn, dynamic=True)


def compile_wanted(setting: str, device: torch.device) -> bool:
    """Whether a run uses the compiled kernels: ``on``, ``off``, or ``auto`` (on CUDA). On CPU the compiled
    kernels are C++: without a compiler, ``on`` is an error here rather than a traceback at the first step."""
    on = setting == "on" or (setting == "auto" and device.type == "cuda")
    if on and device.type == "cpu" and not cpp_compiler():
        raise AutonbaError("compile: on needs a C++ compiler on CPU (g++ or clang++ on PATH, or CXX); install one "
                           "or set compile: off")
    return on


def cpp_compiler() -> str | None:
    """The C++ compiler torch.compile would use on CPU, if any."""
    return next((c for c in (os.environ.get("CXX"), "g++", "clang++") if c and shutil.which(c)), None)


def quantize(x: torch.Tensor, bits: int, kind: str, lo: torch.Tensor | None = None,
             hi: torch.Tensor | None = None, pow2: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Fake-quantised ``x`` (no autograd) and the mask of elements inside the clipping range."""
    if bits >= FULL:
        return x, torch.ones_like(x, dtype=torch.bool)
    if kind == "weight":
        return _weight_q(x, _amax(x), bits, pow2), torch.ones_like(x, dtype=torch.bool)
    assert lo is not None and hi is not None
    grid = act_grids(lo, hi, (bits,), pow2)[0]
    assert grid is not None
    return _act_q(x, grid), _act_inside(x, grid)


def _channels_last(x: torch.Tensor) -> bool:
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def _flat(x: torch.Tensor, like: torch.Tensor | None = None, rows: bool = False) -> torch.Tensor:
    """``x`` in the memory order of ``like`` (default ``x``), as one dimension, or with ``rows`` as one row per
    index of the first dimension (a weight's output channels): a view where the layouts allow. The kernels
    see 1-D activations and 2-D weights, so no layer's shape (a 1x1 kernel, a single image) recompiles them."""
    like = x if like is None else like
    if _channels_last(like):
        x = x.permute(0, 2, 3, 1)
    return x.reshape(x.shape[0], -1) if rows else x.reshape(-1)


def _unflat(flat: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The inverse of ``_flat``: shape and memory layout of ``like`` (a channels-last weight stays
    channels-last, so the convolution computes exactly as before)."""
    if _channels_last(like):
        n, c, h, w = like.shape
        return flat.view(n, h, w, c).permute(0, 3, 1, 2)
    out = flat.view(like.shape)
    # a tensor both contiguous and channels-last (one channel) keeps its own strides: convolutions pick
    # their algorithm by them
    if like.is_contiguous() and out.stride() != like.stride():
        return out.as_strided(like.shape, like.stride())
    return out


class _MixQuant(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, coef, bits, kind, lo, hi, pow2, compiled):
        ctx.save_for_backward(x, coef)
        ctx.bits, ctx.kind, ctx.pow2, ctx.compiled = bits, kind, pow2, compiled
        if kind == "weight":
            return _unflat(kernel("weight_forward", compiled)(_flat(x, rows=True), coef, bits, pow2), x)
        out, ctx.grids = kernel("act_forward", compiled)(_flat(x), coef, lo, hi, bits, pow2)
        return _unflat(out, x)

    @staticmethod
    def backward(ctx, g):
        x, coef = ctx.saved_tensors
        need_x, need_coef = ctx.needs_input_grad[:2]
        bits, pow2, compiled = ctx.bits, ctx.pow2, ctx.compiled
        if ctx.kind == "weight":  # never clipped: straight through
            gx = (g * coef[0] if len(bits) == 1 else g * coef.sum()) if need_x else None
            gc = kernel("weight_coef_grad", compiled)(_flat(x, rows=True), _flat(g, like=x, rows=True), bits,
                                                      pow2) if need_coef else None
            return gx, gc, None, None, None, None, None, None
        gx, gc = kernel("act_backward", compiled)(_flat(x, like=g), _flat(g), coef, ctx.grids, need_coef)
        return _unflat(gx, g), gc, None, None, None, None, None, None  # (in the incoming gradient's layout)


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


def mix_quant(x: torch.Tensor, coef: torch.Tensor | None, bits: tuple[int, ...], kind: str,
              lo: torch.Tensor | None = None, hi: torch.Tensor | None = None, pow2: bool = False,
              compiled: bool = False) -> torch.Tensor:
    """``sum_j coef_j * Q_bits_j(x)`` with a straight-through gradient, in constant memory (``coef`` None:
    one bitwidth, coefficient 1); ``pow2``: power-of-two scales with zero points 0 (fixed point);
    ``compiled``: through the compiled kernels."""
    if len(bits) == 1 and bits[0] >= FULL and (coef is None or not coef.requires_grad):
        return x if coef is None else x * coef[0]
    if coef is None:
        coef = torch.ones(1, device=x.device, dtype=x.dtype)
    if torch.jit.is_tracing():  # ONNX export (no gradients): elementary ops the exporter knows
        qs = [plain_quantize(x, int(b), kind, lo, hi, pow2) for b in bits]
        return qs[0] if len(bits) == 1 else sum(c * q for c, q in zip(coef, qs))
    if coef.device != x.device or coef.dtype != x.dtype:
        coef = coef.to(x.device, x.dtype)
    if lo is None or hi is None:  # weights: no range (any tensor holds the place)
        lo = hi = coef
    return _MixQuant.apply(x, coef, tuple(int(b) for b in bits), kind, lo, hi, pow2, compiled)


def minmax(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x``'s smallest and largest element in one pass over its memory (``aminmax`` on a
    channels-last tensor would first copy it to the contiguous layout)."""
    return torch.aminmax(_flat(x))


class ActRange(nn.Module):
    """Per-tensor activation range: the batch's in training (also updating an EMA), the EMA in eval.
    Whether the EMA has started is read from its buffer once (after construction or loading), not at
    every call, so a training step never waits on the GPU for it."""

    lo: torch.Tensor  # buffers (registered in __init__)
    hi: torch.Tensor
    initialised: torch.Tensor

    def __init__(self, momentum: float = 0.1):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("lo", torch.zeros(()))
        self.register_buffer("hi", torch.zeros(()))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))
        self._started: bool | None = None  # the buffer's value, once read

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._started = None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.training:
            return self.lo, self.hi
        lo, hi = minmax(x.detach())
        with torch.no_grad():
            if self._started is None:
                self._started = bool(self.initialised)
            if self._started:
                torch._foreach_lerp_([self.lo, self.hi], [lo, hi], self.momentum)
            else:
                self.lo.copy_(lo)
                self.hi.copy_(hi)
                self.initialised.fill_(True)
                self._started = True
        return lo, hi
