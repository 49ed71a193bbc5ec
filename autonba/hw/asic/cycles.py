"""Compute cycles of a convolution on a systolic array, counted as SCALE-Sim counts them.

With R rows, C cols, Sr = OX*OY output pixels, T = Cin*FX*FY (per group) and K filters (per group):

- output-stationary (os): ceil(Sr/R) * ceil(K/C) folds of T + R + C - 2 cycles
- weight-stationary (ws): ceil(T/R) * ceil(K/C) folds of Sr + 2R + C - 2 cycles
- input-stationary (is): ceil(T/R) * ceil(Sr/C) folds of K + 2R + C - 2 cycles

and the layer takes folds * per_fold - 1 cycles. A precision-scalable PE that performs ``m`` MACs
per cycle at the layer's bitwidths consumes the reduction dimension m at a time (T becomes
ceil(T/m)); m = 1 is SCALE-Sim's array. A layer of g groups runs them one after another, each a
standard convolution of Cin/g -> K/g channels (T and K of one group), and takes
g * (folds * per_fold - 1) cycles: SCALE-Sim runs a depthwise layer channel by channel as layers of
their own, and the groups of a grouped layer given as g layers the same way.
"""
from __future__ import annotations

import torch

DATAFLOWS = ("os", "ws", "is")  # the codes 0, 1, 2 of the ``dataflow`` design factor


def _ceil_div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.div(a + b - 1, b, rounding_mode="floor")


def fold_counts(dataflow: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, sr: torch.Tensor,
                t: torch.Tensor, k: torch.Tensor, macs_per_pe: torch.Tensor | int = 1
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(folds, cycles per fold) per group; all arguments broadcast (integer-valued float64 tensors)."""
    te = _ceil_div(t, torch.as_tensor(macs_per_pe, dtype=t.dtype))
    os_f = _ceil_div(sr, rows) * _ceil_div(k, cols)
    ws_f = _ceil_div(te, rows) * _ceil_div(k, cols)
    is_f = _ceil_div(te, rows) * _ceil_div(sr, cols)
    os_c = te + rows + cols - 2
    ws_c = sr + 2 * rows + cols - 2
    is_c = k + 2 * rows + cols - 2
    folds = torch.where(dataflow == 0, os_f, torch.where(dataflow == 1, ws_f, is_f))
    per = torch.where(dataflow == 0, os_c, torch.where(dataflow == 1, ws_c, is_c))
    return folds, per


def compute_cycles(dataflow, rows, cols, sr, t, k, macs_per_pe=1, groups=1) -> torch.Tensor:
    """Compute cycles (float64 tensor, broadcast over the arguments); ``dataflow`` 0/1/2 = os/ws/is."""
    args = [torch.as_tensor(x, dtype=torch.float64) for x in (dataflow, rows, cols, sr, t, k, macs_per_pe, groups)]
    df, r, c, s, tt, kk, m, g = args
    folds, per = fold_counts(df, r, c, s, tt, kk, m)
    return g * (folds * per - 1)
