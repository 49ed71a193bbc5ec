"""Pareto fronts of the asic-array template in its metrics (fps, latency_ms, energy_uj, edp_uj_ms,
area_mm2).

Every metric is monotone in a design's latency L, energy E and area A (FPS falls with L, EDP rises
with E and L), so a design weakly dominated in (L, E, A) is weakly dominated in any choice of metrics,
and a front in (L, E, A) holds every front. Area is a closed form of the array factors. Given the
array design, a layer's mapping changes only that layer's energy and latency, and only through its
DRAM traffic, so only the mappings on the per-layer fronts of :class:`MappingTable` matter, and the
(E, L) trade-offs of one array design are the Pareto set of sums of one front point per layer: a
dynamic programme over layers (:func:`sum_fronts`), vectorised over array designs.

The exact front runs it for every array design within the area budget. The searched front runs the
family's engine (once per objective the template offers: latency, energy, EDP), keeps the array
designs of everything it evaluated that lie on the (L, E, A) front, and then a Pareto local search over
array designs (every single array-factor move of each front design not yet explored, each costed with
its exact mapping trade-offs) while the evaluation budget lasts. An array design costed with its best
mappings counts one evaluation, and the mapping table its full-design equivalents, as in the engines.
"""
from __future__ import annotations

import copy
from typing import Any

import torch

from autonba.errors import Intractable
from autonba.hw.asic.array import OBJECTIVES, AsicArray
from autonba.hw.asic.engines.base import buffer_configs, buffer_designs
from autonba.hw.asic.engines.exact import AsicExact, ExactOptions
from autonba.hw.asic.fronts import MappingTable
from autonba.hw.asic.space import AsicSpace
from autonba.hw.pareto import Candidates, nondominated, run_budget


def sum_fronts(energy: torch.Tensor, lat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For n designs with per-layer options (energy and latency (n, L, P), inf where absent): the Pareto
    set of (sum of energies, sum of latencies) over one option per layer, as totals (n, S) (inf where a
    design has fewer than S) and the option chosen per layer (n, S, L). A dynamic programme over layers
    whose state is the Pareto set of partial sums, per design."""
    n, L, P = energy.shape
    E = torch.zeros((n, 1), dtype=torch.float64)
    T = torch.zeros((n, 1), dtype=torch.float64)
    back = []
    for layer in range(L):
        e = (E.unsqueeze(2) + energy[:, layer].unsqueeze(1)).flatten(1)              # (n, S * P)
        t = (T.unsqueeze(2) + lat[:, layer].unsqueeze(1)).flatten(1)
        order = torch.argsort(t, dim=1, stable=True)
        order = order.gather(1, torch.argsort(e.gather(1, order), dim=1, stable=True))   # by energy, then latency
        es, ts = e.gather(1, order), t.gather(1, order)
        before = torch.cat([torch.full((n, 1), float("inf"), dtype=torch.float64), ts.cummin(1).values[:, :-1]], 1)
        keep = ts < before                                                              # beats every cheaper sum
        width = max(1, int(keep.sum(1).max()))
        first = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :width]      # kept ones first, in order
        sel = order.gather(1, first)
        ok = keep.gather(1, first)
        E = torch.where(ok, es.gather(1, first), float("inf"))
        T = torch.where(ok, ts.gather(1, first), float("inf"))
        back.append((sel // P, sel % P))
    state = torch.arange(E.shape[1]).expand(n, -1)
    picks = []
    for parent, option in reversed(back):
        picks.append(option.gather(1, state))
        state = parent.gather(1, state)
    return E, T, torch.stack(picks[::-1], 2)


Found = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (L, E, A) (m, 3), array designs (m, H), mappings (m, L, M)


class AsicFronts:
    objectives: tuple[str, ...] = ("fps", "latency_ms", "energy_uj", "edp_uj_ms", "area_mm2")
    defaults: tuple[str, ...] = ("latency_ms", "energy_uj", "area_mm2")
    default_budget = 8192
    engine_share = 0.25  # of a searched front's budget, for the engine runs (the rest: the local search)

    def __init__(self, template: AsicArray, space: AsicSpace | None = None):
        self.t = template
        self.space = space or template.space
        self._table: MappingTable | None = None

    @property
    def table(self) -> MappingTable:
        if self._table is None:
            self._check_size(ExactOptions().max_evaluations)
            self._table = MappingTable(self.t, self.space)
        return self._table

    def _check_size(self, cap: int) -> None:
        work = MappingTable.size(self.space)
        if work > cap:
            raise Intractable(f"Pareto front: the space has {work:,} layer mappings (> {cap:,}); pin factors with "
                              "--fix")

    def exact(self, progress: bool | None, **options: Any) -> Candidates:
        self._check_size(AsicExact(self.t, self.space, **options).options.max_evaluations)
        found, done = [self._empty()], 0
        for key in buffer_configs(self.space):
            hv = buffer_designs(self.t, self.space, key)
            if len(hv) and self.table.fronts(key) is not None:
                found.append(self.trade_offs(hv, key))
                done += len(hv)
        return self._candidates(_pruned(found), done + MappingTable.design_equivalents(self.space),
                                {"array_designs": done, "layer_mappings": MappingTable.size(self.space)})

    def search(self, engine: str, budget: int | None, seed: int, progress: bool | None, **options: Any) -> Candidates:
        t, sp = self.t, self.space
        budget = budget or self.default_budget
        per_run = run_budget(budget, self.engine_share, len(OBJECTIVES))
        seen, used = [self._empty()], 0
        for i, objective in enumerate(OBJECTIVES):
            run = self._observed(objective, seen)
            out = t.engines().get(engine)(run, sp, seed=seed + i, budget=per_run, progress=progress, **options).run()
            used += out.evaluations
            if out.best is not None:  # re-evaluated, so that it reaches ``seen`` (not counted again)
                run.evaluate(out.best[0].unsqueeze(0), out.best[1].unsqueeze(0))
        front = _ArrayFront(self, _pruned(seen))
        spent, table = 0, MappingTable.design_equivalents(sp)
        if budget - used > table:  # the local search needs the mapping table, charged once
            spent = front.local_search(budget - used - table)
            used += table + spent
        return self._candidates(front.found, used, {"engine": engine, "runs": len(OBJECTIVES),
                                                    "local_search_array_designs": spent})

    def _observed(self, objective: str, seen: list[Found]) -> AsicArray:
        """A copy of the template minimising ``objective``, whose feasible evaluations all reach ``seen``."""
        t = self.t
        run = copy.copy(t)
        run.options = t.options.model_copy(update={"objective": objective})

        def evaluate(hw: torch.Tensor, maps: torch.Tensor):
            ev = type(t).evaluate(run, hw, maps)
            f = ev.feasible
            seen.append((torch.stack([ev.latency[f], ev.energy[f], ev.area[f]], 1), hw[f], maps[f]))
            return ev

        vars(run)["evaluate"] = evaluate
        return run

    def trade_offs(self, hv: torch.Tensor, key: tuple[int, int], block: int = 512) -> Found:
        """Array designs (values (n, H)) on one buffer configuration (``key``), each with the mappings of
        its (L, E) trade-offs (:func:`sum_fronts`), within the area budget, pruned to the non-dominated."""
        fronts = self.table.fronts(key)
        assert fronts is not None
        parts = [self._empty()]
        for s in range(0, len(hv), block):
            h = hv[s:s + block]
            energy, lat, area, ok = self.table.point_costs(h, fronts)
            E, T, picks = sum_fronts(energy, lat)
            i, j = torch.nonzero(torch.isfinite(E) & ok.unsqueeze(1), as_tuple=True)
            maps = torch.stack([fronts[layer][2][picks[i, j, layer]] for layer in range(len(fronts))], 1)
            parts.append((torch.stack([T[i, j], E[i, j], area[i]], 1), h[i], maps))
        return _pruned(parts)

    def _empty(self) -> Found:
        sp = self.space
        return (torch.zeros((0, 3), dtype=torch.float64), torch.zeros((0, len(sp.hw_factors)), dtype=torch.float64),
                torch.zeros((0, sp.num_layers, len(sp.map_factors)), dtype=torch.float64))

    def _candidates(self, found: Found, evaluations: int, info: dict[str, Any]) -> Candidates:
        p, hv, mv = found
        return Candidates((hv, mv), self.t.metrics(p[:, 0], p[:, 1], p[:, 2]), evaluations, info)


def _pruned(parts: list[Found]) -> Found:
    """The non-dominated designs in (L, E, A) of several sets."""
    p, hv, mv = (torch.cat(x) for x in zip(*parts))
    keep = nondominated(p)
    return p[keep], hv[keep], mv[keep]


class _ArrayFront:
    """The (L, E, A) front of what was costed so far, grown by a Pareto local search over array designs,
    each costed with its exact mapping trade-offs."""

    def __init__(self, model: AsicFronts, found: Found):
        self.model, self.sp = model, model.space
        self.found = found
        self.explored = torch.zeros((0, len(self.sp.hw_factors)), dtype=torch.float64)
        self.costed = self.explored

    def local_search(self, budget: int) -> int:
        """Rounds of: every array design of the front not yet explored, and each one array-factor value
        away from it, costed exactly where not costed before; while ``budget`` evaluations last. Returns
        the evaluations spent."""
        spent = 0
        while spent < budget:
            hv = _without(torch.unique(self.found[1], dim=0), self.explored)
            moves = _without(torch.unique(torch.cat([hv, self._moves(hv)]), dim=0), self.costed)[:budget - spent]
            if len(moves) == 0:
                break
            self.explored = torch.cat([self.explored, hv])
            self.costed = torch.cat([self.costed, moves])
            spent += len(moves)
            keys = self._keys(moves)
            parts = [self.found]
            for k in torch.unique(keys, dim=0).tolist():
                key = (int(k[0]), int(k[1]))
                if self.model.table.fronts(key) is not None:
                    parts.append(self.model.trade_offs(moves[(keys == keys.new_tensor(k)).all(1)], key))
            self.found = _pruned(parts)
        return spent

    def _moves(self, hv: torch.Tensor) -> torch.Tensor:
        """Array designs (values) one factor value away from each of ``hv`` (n, H), within the area budget."""
        sp, t = self.sp, self.model.t
        out = []
        for f in range(len(sp.hw_factors)):
            vals = sp.hw_table[f][sp.hw_valid[f]]
            m = hv.unsqueeze(1).repeat(1, len(vals), 1)
            m[:, :, f] = vals
            out.append(m.flatten(0, 1))
        moves = torch.cat(out)
        cap = t.options.area_mm2
        return moves if cap is None else moves[t.area(moves) <= cap + 1e-12]

    def _keys(self, hv: torch.Tensor) -> torch.Tensor:
        """Buffer configurations (indices of gb_kib and gb_split) of array designs (values (n, H)): (n, 2)."""
        sp = self.sp
        cols = [sp.hw_index("gb_kib"), sp.hw_index("gb_split")]
        return torch.stack([(hv[:, f].unsqueeze(1) == sp.hw_table[f]).to(torch.int8).argmax(1) for f in cols], 1)


def _without(rows: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """The rows of ``rows`` (n, H) that are not rows of ``other`` (m, H)."""
    return rows[~(rows.unsqueeze(1) == other.unsqueeze(0)).all(-1).any(-1)]
