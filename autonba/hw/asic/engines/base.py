"""What the asic-array engines share: the incumbent, the engine base class, and the costing of whole
buffer configurations exactly (:mod:`autonba.hw.asic.fronts`) that ``exact`` and ``das`` use."""
from __future__ import annotations

from typing import Any

import torch

from autonba.hw.asic.array import AsicArray
from autonba.hw.asic.fronts import MappingTable
from autonba.hw.asic.space import AsicSpace
from autonba.hw.engines.base import Engine, Outcome, nearest


class AsicIncumbent:
    """The best feasible design seen so far (values), and the objective trace; changed only by
    :meth:`offer` and :meth:`propose`."""

    def __init__(self):
        self.best: tuple[torch.Tensor, torch.Tensor] | None = None
        self.objective = float("inf")
        self.trace: list[tuple[int, float]] = []

    @classmethod
    def at(cls, objective: float, hw: torch.Tensor, maps: torch.Tensor) -> "AsicIncumbent":
        """An incumbent that starts from a design (values) with a known objective, without a trace entry."""
        inc = cls()
        inc.best, inc.objective = (hw, maps), objective
        return inc

    def offer(self, hw: torch.Tensor, maps: torch.Tensor, ev, evaluations: int) -> bool:
        """Consider a batch of evaluated designs (values); True if the incumbent improved."""
        score = torch.where(ev.feasible, ev.objective, torch.full_like(ev.objective, float("inf")))
        i = int(torch.argmin(score))
        return self.propose(float(score[i]), hw[i], maps[i], evaluations)

    def propose(self, objective: float, hw: torch.Tensor, maps: torch.Tensor, evaluations: int) -> bool:
        """Consider one design (values) with its objective; True if the incumbent improved."""
        if objective < self.objective:
            self.objective = objective
            self.best = (hw.clone(), maps.clone())
            self.trace.append((evaluations, self.objective))
            return True
        return False

    def outcome(self, evaluations: int, **info: Any) -> Outcome:
        return Outcome(self.best, self.objective, evaluations, 0.0, self.trace, info)


class AsicEngine(Engine):
    """An engine over an :class:`AsicSpace`; ``warm_start`` is a design ``(hw values, map values)``."""

    template: AsicArray
    space: AsicSpace

    def evaluate(self, hw_idx: torch.Tensor, map_idx: torch.Tensor):
        hv, mv = self.space.values(hw_idx, map_idx)
        return hv, mv, self.template.evaluate(hv, mv)

    def indices(self, hw: torch.Tensor, maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The indices of the allowed values nearest to a design's values."""
        sp = self.space
        return nearest(sp.hw_table, sp.hw_valid, hw), nearest(sp.map_table, sp.map_valid, maps)

    def warm_indices(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        return None if self.warm_start is None else self.indices(*self.warm_start)

    def penalised(self, ev, penalty: float) -> torch.Tensor:
        """Objective x (1 + penalty x relative area overflow); designs whose tiles cannot fit rank last."""
        cap = self.template.options.area_mm2
        over = torch.zeros_like(ev.area) if cap is None else (ev.area / cap - 1).clamp(min=0)
        finite = torch.isfinite(ev.objective)
        worst = ev.objective[finite].max() * 10 if bool(finite.any()) else torch.tensor(1.0, dtype=torch.float64)
        return torch.where(finite, ev.objective, worst) * (1 + penalty * over)


def buffer_configs(space: AsicSpace) -> list[tuple[int, int]]:
    """Every buffer configuration, as (gb_kib, gb_split) index pairs."""
    return [(g, s) for g in torch.nonzero(space.hw_valid[space.hw_index("gb_kib")]).flatten().tolist()
            for s in torch.nonzero(space.hw_valid[space.hw_index("gb_split")]).flatten().tolist()]


def array_factors(space: AsicSpace) -> list[int]:
    """Indices of the array factors other than the buffer's size and split."""
    return [f for f in range(len(space.hw_factors)) if space.hw_factors[f] not in ("gb_kib", "gb_split")]


def buffer_designs(template: AsicArray, space: AsicSpace, key: tuple[int, int],
                   arrays: torch.Tensor | None = None) -> torch.Tensor:
    """Array designs (values (n, H)) on one buffer configuration (indices ``key``) that fit the area
    budget (a closed form of the array factors, checked before any costing): every combination of
    the other array factors, or the given ones (indices (n, H - 2) of the non-buffer factors)."""
    sp = space
    gi, si = sp.hw_index("gb_kib"), sp.hw_index("gb_split")
    rest = array_factors(sp)
    if arrays is None:
        arrays = torch.cartesian_prod(*[torch.nonzero(sp.hw_valid[f]).flatten() for f in rest]).reshape(-1, len(rest))
    idx = torch.zeros((len(arrays), len(sp.hw_factors)), dtype=torch.long)
    idx[:, rest] = arrays
    idx[:, gi], idx[:, si] = key
    hv = sp.hw_table.gather(1, idx.T).T
    cap = template.options.area_mm2
    return hv if cap is None else hv[template.area(hv) <= cap + 1e-12]


def offer_buffer(table: MappingTable, key: tuple[int, int], hv: torch.Tensor, inc: AsicIncumbent, done: int,
                 block: int) -> None:
    """Offer ``inc`` the best of array designs ``hv`` (values, from :func:`buffer_designs`) on one buffer
    configuration (indices ``key``), each with its best mappings; nothing if no mapping fits the buffer."""
    fronts = table.fronts(key)
    if fronts is None:
        return
    for b in range(0, len(hv), block):
        table.offer_best(hv[b:b + block], fronts, inc, done + min(len(hv), b + block))
