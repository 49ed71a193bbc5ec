"""The hardware side of the three search modes: the per-block cost of a single path that enters the
architecture loss, the accelerator it is measured on, and the per-epoch measurement that drives lambda.

* ``joint``: per-block cycles on the current accelerator, re-searched (warm start) for the current
  single path every N architecture steps; lambda follows the FPS of the derived network on an
  accelerator searched for it.
* ``fixed-accel``: per-block cycles on the accelerator of the initial network, never re-searched;
  lambda follows the FPS of the derived network on that accelerator.
* ``sequential``: per-block bit-operations (MACs x weight bits x activation bits), no accelerator
  in the loop; lambda follows the bit-operations of the derived network against a budget set once
  from the initial network (budget = its bit-ops x its FPS / target, i.e. FPS taken as inversely
  proportional to bit-ops). The accelerator is searched only for the final network.

Costs are normalised so that 1.0 means "one frame at the target": cycles / (clock / target FPS),
bit-ops / budget. On the asic-array template the spec may be an energy-delay product instead
(``target.edp_uj_ms``): a block then costs its first-order share of the network's EDP relative to
the target, lambda follows the derived network's EDP, and the sequential bit-op budget scales with
the square root of the EDP ratio (energy and latency each roughly proportional to bit-ops).
"""
from __future__ import annotations

from typing import Any

import torch

from autonba.errors import AutonbaError
from autonba.hw.asic.tech import load_technology
from autonba.hw.hardware import search_template
from autonba.hw.platform import load_platform
from autonba.nas.space import SearchSpace
from autonba.nas.workload import layers_from_arch
from autonba.search.asic_cost import AsicHardwareCost
from autonba.search.config import SearchConfig
from autonba.search.hw_cost import Design, HardwareCost, Path, sum_per_block


def block_bitops(space: SearchSpace, path: Path) -> torch.Tensor:
    """Bit-operations of every searchable block of a path."""
    wl = layers_from_arch(space.layout, [o for o, _ in path], [b for _, b in path], name="single-path")
    return sum_per_block(wl, [layer.bitops for layer in wl.layers], len(path))


class Costing:
    def __init__(self, cfg: SearchConfig, space: SearchSpace):
        self.cfg, self.space, self.mode = cfg, space, cfg.mode
        h = cfg.hardware
        self.asic = h.template == "asic-array"
        if self.asic:
            self.hw = AsicHardwareCost(space.layout, load_technology(h.resolved_platform), h.template_options)
        else:
            self.hw = HardwareCost(space.layout, h.template, load_platform(h.resolved_platform), h.template_options)
        self.edp = cfg.target.edp_uj_ms          # the spec is an EDP (asic-array) instead of an FPS
        self.frame_cycles = self.hw.platform.clock_hz / cfg.target.fps
        self.design: Design | None = None        # the current accelerator (joint, fixed-accel)
        self.bitops_budget: float | None = None  # sequential
        self._cache: dict[Path, torch.Tensor] = {}

    # ---- the spec ---------------------------------------------------------------------------------
    def cheapest_path(self) -> Path:
        """Per block the operation with the fewest MACs, at the lowest bitwidth."""
        b = min(self.space.bits)
        per_op = {op: block_bitops(self.space, tuple((op, b) for _ in range(self.space.layout.num_blocks)))
                  for op in self.space.ops}
        return tuple((min(self.space.ops, key=lambda o: float(per_op[o][i])), b)
                     for i in range(self.space.layout.num_blocks))

    def check_reachable(self) -> float:
        """The FPS of the cheapest network on its best accelerator; an error if the target is above it."""
        path = self.cheapest_path()
        found = self._search(path, "exact", None, 0, None)
        best = found[1] if found else 0.0
        if self.edp is not None:
            edp = self.hw.metrics(path, found[0])["edp_uj_ms"] if found else float("inf")
            if self.edp < edp:
                raise AutonbaError(
                    f"target.edp_uj_ms {self.edp:g} is out of reach: the cheapest network of the space (fewest "
                    f"MACs per block, {min(self.space.bits)} bits) reaches at best {edp:.4g} uJ*ms on "
                    f"{self.cfg.hardware.resolved_platform}; raise target.edp_uj_ms or the area budget")
            return best
        if self.cfg.target.fps > best:
            raise AutonbaError(
                f"target.fps {self.cfg.target.fps:g} is out of reach: the cheapest network of the space "
                f"(fewest MACs per block, {min(self.space.bits)} bits) reaches at most {best:,.0f} FPS on "
                f"{self.cfg.hardware.resolved_platform} with {self.cfg.hardware.template}; lower target.fps "
                f"or pick a larger platform")
        return best

    def start(self, path: Path, seed: int) -> dict[str, Any]:
        """Set up the accelerator (or the bit-op budget) from the initial network ``path``."""
        found = self._search(path, self.cfg.hardware.engine, None, seed, self.cfg.hardware.final_budget)
        if found is None:
            raise AutonbaError("no accelerator for the initial network fits the platform's budgets")
        self.design, fps = found
        info = {"initial_path": [list(p) for p in path], "initial_fps": fps}
        if self.asic:
            info.update({f"initial_{k}": v for k, v in self.hw.metrics(path, self.design).items()})
        if self.mode == "sequential":
            ratio = (self.edp / info["initial_edp_uj_ms"]) ** 0.5 if self.edp else fps / self.cfg.target.fps
            self.bitops_budget = float(block_bitops(self.space, path).sum()) * ratio
            info["bitops_budget"] = self.bitops_budget
            self.design = None
        return info

    # ---- the architecture step ---------------------------------------------------------------------
    def block_cost(self, path: Path) -> torch.Tensor:
        """The normalised cost (L,) of every block of the path (1.0 = one frame at the target)."""
        if path not in self._cache:
            if self.mode == "sequential":
                cost = block_bitops(self.space, path) / self.bitops_budget
            elif self.edp is not None:
                cost = self.hw.block_edp_cost(path, self.design, self.edp)
            else:
                cycles, _, _ = self.hw.block_cycles(path, self.design)
                cost = cycles / self.frame_cycles
            self._cache[path] = cost.float()
        return self._cache[path]

    def research(self, path: Path, seed: int) -> float | None:
        """Joint mode: re-search the accelerator for the path, warm-started; its FPS (None: kept)."""
        if self.mode != "joint":
            return None
        found = self._search(path, self.cfg.hardware.engine, self.design, seed, self.cfg.hardware.engine_budget)
        if found is None:
            return None
        self.design = found[0]
        self._cache.clear()
        return found[1]

    # ---- per epoch: measure the derived network, adapt lambda -------------------------------------
    def measure(self, path: Path, seed: int) -> dict[str, Any]:
        bitops = float(block_bitops(self.space, path).sum())
        design = self.design
        if self.mode == "fixed-accel":
            _, fps, feasible = self.hw.block_cycles(path, self.design)
        else:
            found = self._search(path, self.cfg.hardware.engine, self.design, seed, self.cfg.hardware.engine_budget)
            fps, feasible = (found[1], True) if found else (0.0, False)
            design = found[0] if found else None
        m = {"fps": fps, "accel_feasible": feasible, "bitops": bitops}
        if self.asic:
            m.update(self.hw.metrics(path, design) if design else {"edp_uj_ms": float("inf")})
        return m

    def meets(self, m: dict[str, Any]) -> bool:
        """Whether a measured network meets the spec as this mode sees it (bit-op budget in sequential)."""
        if self.mode == "sequential":
            return m["bitops"] <= self.bitops_budget
        if self.edp is not None:
            return m["accel_feasible"] and m["edp_uj_ms"] <= self.edp
        return m["fps"] >= self.cfg.target.fps

    def final_meets(self, accel) -> bool:
        """Whether the final accelerator meets the spec (FPS, or EDP on asic-array)."""
        if self.edp is not None:
            return accel.feasible and accel.edp_uj_ms <= self.edp
        return accel.fps >= self.cfg.target.fps

    def adapt(self, lam: float, m: dict[str, Any]) -> float:
        """Raise lambda below the target, lower it above the band (bit-ops budget in sequential): x2 and /2,
        or (``target.lambda_update: proportional``) by the distance to the spec, clipped to [1/2, 2]."""
        t = self.cfg.target
        if self.mode == "sequential":
            over = m["bitops"] / self.bitops_budget           # > 1: over the spec
        elif self.edp is not None:
            over = m["edp_uj_ms"] / self.edp
        else:
            over = t.fps / max(m["fps"], 1e-9)
        high = over < 1 / t.band
        if not self.meets(m):
            step = 2.0 if t.lambda_update == "double" else min(2.0, max(over, 1.0))
            lam = min(t.lambda_max, max(lam, 1e-3) * step)
        elif high:
            lam *= 0.5 if t.lambda_update == "double" else max(0.5, over * t.band)
        return lam

    # ---- the final accelerator -----------------------------------------------------------------------
    def final(self, path: Path, seed: int):
        """The final accelerator of the derived network: ``final_engine`` (exact where tractable,
        else ``das`` with ``final_budget``), as an ``AccelResult``."""
        h = self.cfg.hardware
        t = self.hw.template(path)
        if h.final_engine == "exact":
            try:
                return search_template(t, "exact", seed=seed, progress=False)
            except AutonbaError:  # intractable (or nothing fits: das then says so too)
                return search_template(t, "das", seed=seed, budget=h.final_budget, progress=False)
        warm = self.hw.adapt(t, self.design) if self.design else None
        return search_template(t, h.final_engine, seed=seed, budget=h.final_budget, warm_start=warm, progress=False)

    def _search(self, path: Path, engine: str, warm: Design | None, seed: int, budget: int | None):
        return self.hw.search(path, engine=engine, warm=warm, seed=seed,
                              budget=None if engine == "exact" else budget)

    def state(self) -> dict[str, Any]:
        return {"design": self.design, "bitops_budget": self.bitops_budget}

    def load_state(self, s: dict[str, Any]) -> None:
        self.design, self.bitops_budget = s["design"], s["bitops_budget"]
        self._cache.clear()
