"""Exact best mappings of the asic-array template for given array designs.

A layer's mapping (tiles and loop order) changes only its DRAM traffic and whether its tiles fit
the buffer, and a layer's energy and latency never fall when the traffic of an operand rises. The
footprint and per-operand traffic of a mapping depend on neither the array nor the buffer, so
:class:`MappingTable` costs every mapping of every layer once; per buffer configuration (size,
split) only the mappings on the Pareto front of (traffic energy, traffic bits) matter, and for
each array design the best choice per layer on those fronts is found exactly (for EDP, a product
of sums, by a bound and, where the bound is not tight, a dynamic programme over layers).
``exact`` runs this over every buffer configuration, ``das`` over the ones its sampling ranks best.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from autonba.hw.engines.combine import pareto_2d

if TYPE_CHECKING:
    from autonba.hw.asic.array import AsicArray
    from autonba.hw.asic.space import AsicSpace
    from autonba.hw.engines.base import Incumbent

Front = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]  # pJ, bits, mapping values, dataflow


class MappingTable:
    """Footprint and per-operand DRAM traffic of every mapping of every layer, costed once."""

    def __init__(self, template: AsicArray, space: AsicSpace):
        self.template, self.sp = template, space
        self.rows: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []       # per layer: values, fp, traffic
        for layer in range(space.num_layers):
            lay = template.lay.select([layer])
            idx = space.enumerate_maps(layer)                                             # (n, M)
            vals = space.map_table[layer].gather(1, idx.T).T.unsqueeze(1)               # (n, 1, M)
            tk, tc, toy, order = (vals[..., space.map_index(f)] for f in ("tk", "tc", "toy", "order"))
            tk, tc, toy = template.clip(tk, tc, toy, lay)
            fp = template.footprint(tk, tc, toy, lay)[:, 0]                              # (n, 3)
            tr = template.traffic(tk, tc, toy, order, lay)[:, 0]                         # (n, 3)
            self.rows.append((vals[:, 0], fp, tr))
        self._fronts: dict[tuple[int, int], list[Front] | None] = {}

    @staticmethod
    def size(space: AsicSpace) -> int:
        """Layer mappings the table costs (the sum over layers of each layer's mapping count)."""
        return space.size()[1]

    @staticmethod
    def design_equivalents(space: AsicSpace) -> int:
        """The table's cost in full-design evaluations (a design costs one mapping of every layer)."""
        return math.ceil(MappingTable.size(space) / space.num_layers)

    def fronts(self, key: tuple[int, int]) -> list[Front] | None:
        """Per layer, the mappings that fit one buffer configuration (``key``: indices of its size and
        split) and lie on the Pareto front of (traffic pJ, traffic bits); None if some layer has no
        mapping that fits. Computed once per configuration."""
        if key not in self._fronts:
            sp = self.sp
            gb = float(sp.hw_table[sp.hw_index("gb_kib"), key[0]])
            split = float(sp.hw_table[sp.hw_index("gb_split"), key[1]])
            self._fronts[key] = self._compute_fronts(gb, split)
        return self._fronts[key]

    def _compute_fronts(self, gb: float, split: float) -> list[Front] | None:
        t, sp = self.template, self.sp
        g = torch.tensor([[gb]], dtype=torch.float64)
        s = torch.tensor([[split]], dtype=torch.float64)
        cap = (t.buffer_kib(g, s) * 8192)[0, 0]                                          # (3,)
        pj = t.traffic_pj_per_bit(g, s)[0, 0]                                            # (3,)
        out: list[Front] = []
        for layer, (vals, fp, tr) in enumerate(self.rows):
            fits = (fp.sum(-1) <= gb * 8192) if split == 0 else (fp <= cap).all(-1)
            if not bool(fits.any()):
                return None
            e, bits, keep_vals = (tr[fits] * pj).sum(-1), tr[fits].sum(-1), vals[fits]
            keep = pareto_2d(e, bits)
            e, bits, keep_vals = e[keep], bits[keep], keep_vals[keep]
            if "dataflow" not in sp.map_factors:
                out.append((e, bits, keep_vals, None))
                continue
            # per-layer dataflow: traffic does not depend on it, so every front point comes in every dataflow
            m = sp.map_index("dataflow")
            codes = sp.map_table[layer, m][sp.map_valid[layer, m]]
            reps = keep_vals.repeat(len(codes), 1)
            reps[:, m] = codes.repeat_interleave(len(keep_vals))
            out.append((e.repeat(len(codes)), bits.repeat(len(codes)), reps, reps[:, m]))
        return out

    def point_costs(self, hv: torch.Tensor, fronts: list[Front]
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Array designs (values (n, H)) sharing the buffer configuration of ``fronts``: per layer, the
        energy (pJ) and latency (cycles) of each front point (n, L, P; inf where a layer has fewer points),
        and each design's area (n,) and whether it fits the area budget (n,)."""
        sp, t = self.sp, self.template
        per_layer_df = "dataflow" in sp.map_factors
        n, L = len(hv), sp.num_layers
        col = lambda f: hv[:, sp.hw_index(f)].unsqueeze(1)  # noqa: E731
        P = max(len(f[0]) for f in fronts)
        e_tr = torch.full((L, P), float("inf"), dtype=torch.float64)
        bits = torch.zeros((L, P), dtype=torch.float64)
        dfs = torch.zeros((L, P), dtype=torch.float64)
        for layer, f in enumerate(fronts):
            e_tr[layer, :len(f[0])], bits[layer, :len(f[0])] = f[0], f[1]
            if per_layer_df and f[3] is not None:
                dfs[layer, :len(f[0])] = f[3]
        if per_layer_df:  # compute costs per front point's dataflow
            R, C, rf = (col(x).unsqueeze(-1) for x in ("rows", "cols", "rf_bytes"))
            lay = type(t.lay)(**{k: v.unsqueeze(-1) for k, v in vars(t.lay).items()})   # (L, 1): against points
            compute, _, fixed = t.array_costs(R, C, rf, dfs.unsqueeze(0), col("gb_kib").unsqueeze(-1),
                                              col("gb_split").unsqueeze(-1), lay)
        else:
            compute, _, fixed = t.array_costs(col("rows"), col("cols"), col("rf_bytes"), col("dataflow"),
                                              col("gb_kib"), col("gb_split"))
            compute, fixed = compute.unsqueeze(-1), fixed.unsqueeze(-2)
        area = t.area(hv)
        leak = t.leak_pj_per_cycle(area).view(n, 1, 1)
        lat = torch.maximum(compute, t.dram_cycles(bits).unsqueeze(0))                     # (n, L, P)
        energy = fixed.sum(-1) + e_tr.unsqueeze(0) + leak * lat
        absent = ~torch.isfinite(e_tr).unsqueeze(0)
        energy = energy.masked_fill(absent, float("inf"))
        lat = lat.masked_fill(absent, float("inf"))
        cap = t.options.area_mm2
        ok = torch.ones(n, dtype=torch.bool) if cap is None else area <= cap + 1e-12
        return energy, lat, area, ok

    def best(self, hv: torch.Tensor, fronts: list[Front], bound: float = float("inf")
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Array designs (values (n, H)) sharing the buffer configuration of ``fronts``, each with its
        best mapping per layer: the objective (n,; inf over the area budget) and the chosen front
        point per layer (n, L). ``bound``: designs that cannot beat it may keep a worse choice."""
        t = self.template
        energy, lat, _, ok = self.point_costs(hv, fronts)
        obj = t.options.objective
        if obj == "latency":
            pick = (lat + energy * 1e-30).argmin(-1)
        elif obj == "energy":
            pick = (energy + lat * 1e-30).argmin(-1)
        else:
            pick = _edp_picks(energy, lat, ok, bound)
        e_sel = energy.gather(-1, pick.unsqueeze(-1)).squeeze(-1).sum(-1)
        l_sel = lat.gather(-1, pick.unsqueeze(-1)).squeeze(-1).sum(-1)
        return torch.where(ok, t.objective(e_sel, l_sel), torch.full_like(e_sel, float("inf"))), pick

    def offer_best(self, hv: torch.Tensor, fronts: list[Front], inc: Incumbent, done: int) -> None:
        """Offer ``inc`` the best of array designs sharing the buffer configuration of ``fronts``."""
        self.offer(hv, fronts, *self.best(hv, fronts, inc.score), inc, done)

    def offer(self, hv: torch.Tensor, fronts: list[Front], value: torch.Tensor, pick: torch.Tensor,
              inc: Incumbent, done: int) -> None:
        """Offer ``inc`` the best of costed designs (``value``, ``pick`` from :meth:`best`)."""
        i = int(value.argmin())
        if float(value[i]) < inc.score:
            maps = torch.stack([fronts[layer][2][int(pick[i, layer])] for layer in range(self.sp.num_layers)])
            inc.propose(float(value[i]), (hv[i], maps), done)


def _edp_picks(energy: torch.Tensor, lat: torch.Tensor, ok: torch.Tensor, bound: float) -> torch.Tensor:
    """Per design (n), the per-layer front points minimising (sum E)(sum L): (n, L)."""
    lb = energy.min(-1).values.sum(-1) * lat.min(-1).values.sum(-1)
    # a first choice: the linearisation at the per-layer minima
    e0, l0 = energy.min(-1).values.sum(-1), lat.min(-1).values.sum(-1)
    pick = (energy / e0.view(-1, 1, 1) + lat / l0.view(-1, 1, 1)).argmin(-1)
    def chosen(x: torch.Tensor) -> torch.Tensor:
        return x.gather(-1, pick.unsqueeze(-1)).squeeze(-1).sum(-1)

    value = chosen(energy) * chosen(lat)
    best = min(bound, float(torch.where(ok, value, torch.full_like(value, float("inf"))).min()))
    # designs whose bound could beat the best so far and whose first choice is not provably optimal
    todo = torch.nonzero(ok & (lb < best) & (value > lb * (1 + 1e-12))).flatten()
    for i in todo[torch.argsort(lb[todo])].tolist():
        if float(lb[i]) >= best:
            break
        choice, v = _edp_dp(energy[i], lat[i])
        if v < float(value[i]):
            pick[i], value[i] = choice, v
            best = min(best, v)
    return pick


def _edp_dp(energy: torch.Tensor, lat: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Exact min over one point per layer of (sum E)(sum L): DP over layers on the Pareto set of
    partial sums. energy, lat: (L, P) with inf for absent points."""
    E = torch.zeros(1, dtype=torch.float64)
    T = torch.zeros(1, dtype=torch.float64)
    back = []
    for layer in range(energy.shape[0]):
        ok = torch.isfinite(energy[layer])
        pe, pl = energy[layer][ok], lat[layer][ok]
        ids = torch.nonzero(ok).flatten()
        e = (E.unsqueeze(1) + pe.unsqueeze(0)).flatten()
        tt = (T.unsqueeze(1) + pl.unsqueeze(0)).flatten()
        keep = pareto_2d(e, tt)
        back.append((keep // len(pe), ids[keep % len(pe)]))
        E, T = e[keep], tt[keep]
    value = E * T
    state = int(value.argmin())
    best = float(value[state])
    picks = []
    for parent, option in reversed(back):
        picks.append(int(option[state]))
        state = int(parent[state])
    return torch.tensor(picks[::-1]), best
