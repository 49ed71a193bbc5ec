"""Per-chunk Pareto fronts and their optimal combination under shared DSP/BRAM budgets.

Chunk costs are separable: the bottleneck is the max of chunk cycles and resources are sums.
So the best full design picks, per chunk, one point of that chunk's Pareto front in (cycles,
DSP, BRAM). For a bottleneck bound tau, a dynamic programme over chunks decides whether the
budgets can be met; a binary search over tau finds the smallest feasible bottleneck. Exact,
given the fronts.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

INF = float("inf")


@dataclass
class Front:
    """Non-dominated (cycles, dsp, bram) points of one chunk and the designs (values (n, F)) behind them."""

    cycles: torch.Tensor
    dsp: torch.Tensor
    bram: torch.Tensor
    designs: torch.Tensor

    @classmethod
    def empty(cls, num_factors: int) -> Front:
        z = torch.zeros(0, dtype=torch.float64)
        return cls(z, z, z, torch.zeros((0, num_factors), dtype=torch.float64))

    def merge(self, cycles, dsp, bram, designs, dsp_cap: float, bram_cap: float) -> Front:
        """This front plus new points (those over a budget on their own are dropped), re-pruned."""
        keep = (dsp <= dsp_cap + 1e-9) & (bram <= bram_cap + 1e-9)
        c = torch.cat([self.cycles, cycles[keep]])
        d = torch.cat([self.dsp, dsp[keep]])
        b = torch.cat([self.bram, bram[keep]])
        x = torch.cat([self.designs, designs[keep]])
        sel = pareto_3d(c, d, b)
        return Front(c[sel], d[sel], b[sel], x[sel])


def pareto_3d(cycles: torch.Tensor, dsp: torch.Tensor, bram: torch.Tensor) -> torch.Tensor:
    """Indices of the points not dominated in (cycles, dsp, bram), one per distinct point."""
    if len(cycles) == 0:
        return torch.zeros(0, dtype=torch.long)
    du, di = torch.unique(dsp, return_inverse=True)
    bu, bi = torch.unique(bram, return_inverse=True)
    key = di * len(bu) + bi
    grid = torch.full((len(du) * len(bu),), INF, dtype=torch.float64).scatter_reduce(
        0, key, cycles, "amin", include_self=True)
    # one representative point per grid cell: the first that attains the cell's minimum
    hit = cycles == grid[key]
    first = torch.full((len(grid),), len(cycles), dtype=torch.long).scatter_reduce(
        0, key[hit], torch.nonzero(hit).flatten(), "amin", include_self=True)
    g = grid.view(len(du), len(bu))
    pre = g.cummin(0).values.cummin(1).values             # best over (dsp' <= d, bram' <= b)
    up = torch.full_like(g, INF)
    up[1:] = pre[:-1]
    left = torch.full_like(g, INF)
    left[:, 1:] = pre[:, :-1]
    nondom = (g < torch.minimum(up, left)).flatten()
    return first[nondom]


def pareto_2d(dsp: torch.Tensor, bram: torch.Tensor) -> torch.Tensor:
    """Indices of points not dominated in (dsp, bram), ordered by dsp."""
    order = torch.argsort(bram, stable=True)
    order = order[torch.argsort(dsp[order], stable=True)]  # by dsp, then bram
    b = bram[order]
    best_before = torch.cat([torch.tensor([INF], dtype=torch.float64), b.cummin(0).values[:-1]])
    return order[b < best_before]


def reachable(fronts: list[Front], tau: float, dsp_cap: float, bram_cap: float
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """The Pareto set of (DSP, BRAM) totals reachable by choosing per chunk a point with cycles <= tau,
    within the budgets: totals (S,) each and the per-chunk choices behind them (S, C); None if nothing fits.

    A dynamic programme over chunks whose state is the Pareto set of reachable (DSP, BRAM) totals:
    exact, and small because dominated totals are dropped at every chunk."""
    dsp = torch.zeros(1, dtype=torch.float64)
    bram = torch.zeros(1, dtype=torch.float64)
    back = []
    for f in fronts:
        ok = torch.nonzero(f.cycles <= tau).flatten()
        if len(ok) == 0:
            return None
        ok = ok[pareto_2d(f.dsp[ok], f.bram[ok])]
        d = (dsp.unsqueeze(1) + f.dsp[ok].unsqueeze(0)).flatten()
        b = (bram.unsqueeze(1) + f.bram[ok].unsqueeze(0)).flatten()
        fits = torch.nonzero((d <= dsp_cap + 1e-9) & (b <= bram_cap + 1e-9)).flatten()
        if len(fits) == 0:
            return None
        keep = fits[pareto_2d(d[fits], b[fits])]
        back.append((keep // len(ok), ok[keep % len(ok)]))
        dsp, bram = d[keep], b[keep]
    picks, state = [], torch.arange(len(dsp))
    for parent, option in reversed(back):
        picks.append(option[state])
        state = parent[state]
    return dsp, bram, torch.stack(picks[::-1], 1)


def _fit(fronts: list[Front], tau: float, dsp_cap: float, bram_cap: float) -> list[int] | None:
    """Per chunk a point with cycles <= tau so that the summed (DSP, BRAM) fits the budgets, or None."""
    r = reachable(fronts, tau, dsp_cap, bram_cap)
    return None if r is None else r[2][0].tolist()


def combine(fronts: list[Front], dsp_cap: float, bram_cap: float) -> list[int] | None:
    """Per chunk, the index into its front of the optimal choice (smallest bottleneck), or None if
    no combination fits the budgets."""
    if any(len(f.cycles) == 0 for f in fronts):
        return None
    taus = torch.unique(torch.cat([f.cycles for f in fronts]))
    taus = taus[taus >= max(float(f.cycles.min()) for f in fronts)]
    lo, hi = 0, len(taus) - 1
    best = _fit(fronts, float(taus[hi]), dsp_cap, bram_cap)
    if best is None:
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        picks = _fit(fronts, float(taus[mid]), dsp_cap, bram_cap)
        if picks is not None:
            hi, best = mid, picks
        else:
            lo = mid + 1
    return best
