"""What the asic-array engines share: the engine base class, and the costing of whole buffer
configurations exactly (:mod:`autonba.hw.asic.fronts`) that ``exact`` and ``das`` use."""
from __future__ import annotations

import torch

from autonba.hw.asic.array import AsicArray
from autonba.hw.asic.fronts import MappingTable
from autonba.hw.asic.space import AsicSpace
from autonba.hw.engines.base import Engine, Incumbent


class AsicEngine(Engine):
    """An engine over an :class:`AsicSpace`; ``warm_start`` is a design ``(hw values, map values)``."""

    template: AsicArray
    space: AsicSpace

    def evaluate(self, hw_idx: torch.Tensor, map_idx: torch.Tensor):
        hv, mv = self.space.values(hw_idx, map_idx)
        return hv, mv, self.template.evaluate(hv, mv)

    def warm_indices(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        return None if self.warm_start is None else self.space.encode(self.warm_start)


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


def offer_buffer(table: MappingTable, key: tuple[int, int], hv: torch.Tensor, inc: Incumbent, done: int,
                 block: int) -> None:
    """Offer ``inc`` the best of array designs ``hv`` (values, from :func:`buffer_designs`) on one buffer
    configuration (indices ``key``), each with its best mappings; nothing if no mapping fits the buffer."""
    fronts = table.fronts(key)
    if fronts is None:
        return
    for b in range(0, len(hv), block):
        table.offer_best(hv[b:b + block], fronts, inc, done + min(len(hv), b + block))
