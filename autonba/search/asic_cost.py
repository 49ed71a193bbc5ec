"""The hardware side of the joint loop on the asic-array template: cost a supernet single path on the
current ASIC design (array factors plus a mapping per layer).

A design travels as its JSON form ``{"array": {...}, "layers": {name: {...}}}``. Carried over to
another path, the array factors stay; a layer keeps its mapping where the path has a layer of that
name, and otherwise starts from whole-layer tiles (halved by the template until they fit)."""
from __future__ import annotations

from typing import Any

import torch

from autonba.hw.asic.array import AsicArray
from autonba.hw.asic.engines import ASIC_ENGINES, nearest
from autonba.hw.asic.space import _code
from autonba.hw.workload import Workload
from autonba.search.hw_cost import Path, PathTemplates, sum_per_block

Design = dict[str, Any]


class AsicHardwareCost(PathTemplates):
    def _bind(self, wl: Workload) -> AsicArray:
        return AsicArray(wl, self.platform, **self.template_options)

    def adapt(self, template: AsicArray, design: Design) -> tuple[torch.Tensor, torch.Tensor]:
        """The design as factor values (H,), (L, M) for this template's layers, snapped to its space."""
        sp = template.space
        hw = torch.tensor([_code(f, design["array"][f]) for f in sp.hw_factors], dtype=torch.float64)
        rows = []
        for i, name in enumerate(sp.layer_names):
            d = design["layers"].get(name)
            if d is None:  # whole-layer tiles, the first loop order
                rows.append(torch.stack([sp.map_table[i, m][sp.map_valid[i, m]].max() if f in ("tk", "tc", "toy")
                                         else sp.map_table[i, m, 0] for m, f in enumerate(sp.map_factors)]))
            else:
                rows.append(torch.tensor([_code(f, d[f]) for f in sp.map_factors], dtype=torch.float64))
        maps = torch.stack(rows)
        hw = sp.hw_table.gather(1, nearest(sp.hw_table, sp.hw_valid, hw).unsqueeze(1)).squeeze(1)
        maps = sp.map_table.gather(-1, nearest(sp.map_table, sp.map_valid, maps).unsqueeze(-1)).squeeze(-1)
        return hw, maps

    def evaluate(self, path: Path, design: Design):
        t = self.template(path)
        hw, maps = self.adapt(t, design)
        return t, t.evaluate(hw.unsqueeze(0), maps.unsqueeze(0))

    def block_cycles(self, path: Path, design: Design) -> tuple[torch.Tensor, float, bool]:
        """Latency cycles per searchable block (L,), the FPS of the whole network and its feasibility."""
        t, ev = self.evaluate(path, design)
        return (sum_per_block(t.workload, ev.layer_latency[0], len(path)),
                t.tech.clock_hz / float(ev.latency[0]), bool(ev.feasible[0]))

    def block_edp_cost(self, path: Path, design: Design, target_edp: float) -> torch.Tensor:
        """Per block, its share of the network's EDP relative to the target: the first-order share
        (E_b / E + L_b / L) / 2 of log EDP, scaled by EDP / target (blocks sum to <= EDP / target)."""
        t, ev = self.evaluate(path, design)
        e, lat = float(ev.energy[0]), float(ev.latency[0])
        share = 0.5 * (sum_per_block(t.workload, ev.layer_energy[0], len(path)) / e
                       + sum_per_block(t.workload, ev.layer_latency[0], len(path)) / lat)
        return share * self.edp_uj_ms(t, ev) / target_edp

    @staticmethod
    def edp_uj_ms(t: AsicArray, ev) -> float:
        return float(ev.energy[0]) * 1e-6 * float(ev.latency[0]) / t.tech.clock_hz * 1e3

    def metrics(self, path: Path, design: Design) -> dict[str, Any]:
        t, ev = self.evaluate(path, design)
        return {"edp_uj_ms": self.edp_uj_ms(t, ev), "energy_uj": float(ev.energy[0]) * 1e-6,
                "area_mm2": float(ev.area[0])}

    def search(self, path: Path, engine: str = "das", warm: Design | None = None, seed: int = 0,
               budget: int | None = None, **engine_options: Any) -> tuple[Design, float] | None:
        """Search a design for the path (warm-started from ``warm``): the design and its FPS, or None."""
        t = self.template(path)
        start = self.adapt(t, warm) if warm else None
        out = ASIC_ENGINES.get(engine)(t, seed=seed, budget=budget, warm_start=start, progress=False,
                                       **engine_options).run()
        if out.best is None:
            return None
        hv, mv = out.best
        ev = t.evaluate(hv.unsqueeze(0), mv.unsqueeze(0))
        return t.space.to_dicts(hv.unsqueeze(0), mv.unsqueeze(0))[0], t.tech.clock_hz / float(ev.latency[0])
