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
bit-ops / budget. The spec may bound another metric the template family reports instead
(``target.latency_ms``, ``energy_uj``, ``edp_uj_ms``; energy needs a family with an energy model):
a block then costs its first-order share of that metric (its share of the cycles, of the energy,
or the mean of both for EDP) relative to the target, lambda follows the derived network's value,
and the sequential bit-op budget scales with the metric's ratio to the power 1 / its order in
bit-ops (EDP: energy and latency each roughly proportional to bit-ops, so order 2).
"""
from __future__ import annotations

from typing import Any

import torch

from autonba.errors import AutonbaError, Intractable
from autonba.hw.hardware import search_template
from autonba.hw.template import Figures, HardwareResult, worst
from autonba.hw.templates import TEMPLATES
from autonba.nas.space import SearchSpace
from autonba.nas.workload import layers_from_arch
from autonba.search.config import SPEC_METRICS, SearchConfig
from autonba.search.hw_cost import Design, HardwareCost, SinglePath, sum_per_block


def block_bitops(space: SearchSpace, path: SinglePath) -> torch.Tensor:
    """Bit-operations of every searchable block of a path."""
    wl = layers_from_arch(space.layout, [o for o, _ in path], [b for _, b in path], name="single-path")
    return sum_per_block(wl, [layer.bitops for layer in wl.layers], len(path))


class Costing:
    def __init__(self, cfg: SearchConfig, space: SearchSpace):
        self.cfg, self.space, self.mode = cfg, space, cfg.mode
        h = cfg.hardware
        self.target = cfg.target
        platform = TEMPLATES.get(h.template).load_platform(h.resolved_platform)
        self.hw = HardwareCost(space.layout, h.template, platform, h.template_options)
        self.frame_cycles = self.hw.platform.clock_hz / cfg.target.fps
        self.design: Design | None = None        # the current accelerator (joint, fixed-accel)
        self.bitops_budget: float | None = None  # sequential
        self._cache: dict[SinglePath, torch.Tensor] = {}

    # ---- the spec ---------------------------------------------------------------------------------
    def cheapest_path(self) -> SinglePath:
        """Per block the operation with the fewest MACs, at the lowest bitwidth."""
        b = min(self.space.bits)
        per_op = {op: block_bitops(self.space, tuple((op, b) for _ in range(self.space.layout.num_blocks)))
                  for op in self.space.ops}
        return tuple((min(self.space.ops, key=lambda o: float(per_op[o][i])), b)
                     for i in range(self.space.layout.num_blocks))

    def check_reachable(self) -> float:
        """The FPS of the cheapest network on its best accelerator; an error if the spec is beyond it."""
        path = self.cheapest_path()
        found = self._search(path, "exact", None, 0, None)
        t, metric = self.target, self.target.metric
        value = found[1].metrics[metric] if found else worst(metric)
        if not t.met(value, found is not None):
            h = self.cfg.hardware
            better = "lower" if metric == "fps" else "raise"
            raise AutonbaError(
                f"target.{metric} {t.bound:g} is out of reach: the cheapest network of the space (fewest "
                f"MACs per block, {min(self.space.bits)} bits) reaches at best {value:,.4g} {metric} on "
                f"{h.resolved_platform} with {h.template}; {better} target.{metric} or give the hardware more "
                "resources (a larger platform or budget)")
        return found[1].fps if found else 0.0

    def start(self, path: SinglePath, seed: int) -> dict[str, Any]:
        """Set up the accelerator (or the bit-op budget) from the initial network ``path``."""
        found = self._search(path, self.cfg.hardware.engine, None, seed, self.cfg.hardware.final_budget)
        if found is None:
            raise AutonbaError("no accelerator for the initial network fits the platform's budgets")
        self.design, fig = found
        info = {"initial_path": [list(p) for p in path], **{f"initial_{k}": v for k, v in fig.metrics.items()}}
        if self.mode == "sequential":
            t = self.target
            ratio = (fig.fps / t.fps if t.metric == "fps"
                     else (t.bound / fig.metrics[t.metric]) ** (1 / SPEC_METRICS[t.metric][0]))
            self.bitops_budget = float(block_bitops(self.space, path).sum()) * ratio
            info["bitops_budget"] = self.bitops_budget
            self.design = None
        return info

    # ---- the architecture step ---------------------------------------------------------------------
    def block_cost(self, path: SinglePath) -> torch.Tensor:
        """The normalised cost (L,) of every block of the path (1.0 = one frame at the target)."""
        if path not in self._cache:
            if self.mode == "sequential":
                assert self.bitops_budget is not None  # set by start()
                cost = block_bitops(self.space, path) / self.bitops_budget
            else:
                assert self.design is not None         # set by start()
                cost = self._spec_share(path, self.hw.figures(path, self.design))
            self._cache[path] = cost.float()
        return self._cache[path]

    def _spec_share(self, path: SinglePath, fig: Figures) -> torch.Tensor:
        """Per block, its share of the network's spec metric relative to the target: its cycles per
        frame at the target FPS, or (another metric) its first-order share of the metric (share of the
        cycles, of the energy, or their mean for EDP) times the network's value / the target."""
        wl, n, t = self.hw.template(path).workload, len(path), self.target
        cycles = sum_per_block(wl, fig.layer_cycles, n)
        if t.metric == "fps":
            return cycles / self.frame_cycles
        _, w_cycles, w_energy = SPEC_METRICS[t.metric]
        share = w_cycles * cycles / fig.cycles
        if w_energy:  # the template's spec metrics include energy only with an energy model
            assert fig.layer_energy is not None and fig.energy is not None
            share = share + w_energy * sum_per_block(wl, fig.layer_energy, n) / fig.energy
        return share * fig.metrics[t.metric] / t.bound

    def research(self, path: SinglePath, seed: int) -> float | None:
        """Joint mode: re-search the accelerator for the path, warm-started; its FPS (None: kept)."""
        if self.mode != "joint":
            return None
        found = self._search(path, self.cfg.hardware.engine, self.design, seed, self.cfg.hardware.engine_budget)
        if found is None:
            return None
        self.design = found[0]
        self._cache.clear()
        return found[1].fps

    # ---- per epoch: measure the derived network, adapt lambda -------------------------------------
    def measure(self, path: SinglePath, seed: int) -> dict[str, Any]:
        bitops = float(block_bitops(self.space, path).sum())
        if self.mode == "fixed-accel":
            assert self.design is not None
            fig: Figures | None = self.hw.figures(path, self.design)
        else:
            found = self._search(path, self.cfg.hardware.engine, self.design, seed, self.cfg.hardware.engine_budget)
            fig = found[1] if found else None
        names = self.hw.template_cls.metric_names
        metrics = fig.metrics if fig else {k: worst(k) for k in names}
        return {"fps": metrics["fps"], "accel_feasible": fig.feasible if fig else False, "bitops": bitops,
                **{k: v for k, v in metrics.items() if k != "fps"}}

    def meets(self, m: dict[str, Any]) -> bool:
        """Whether a measured network meets the spec as this mode sees it (bit-op budget in sequential)."""
        if self.mode == "sequential":
            return self.bitops_budget is not None and m["bitops"] <= self.bitops_budget
        return self.target.met(m[self.target.metric], m["accel_feasible"])

    def final_meets(self, accel: HardwareResult) -> bool:
        """Whether the final accelerator meets the spec."""
        return self.target.met(accel.metrics()[self.target.metric], accel.feasible)

    def adapt(self, lam: float, m: dict[str, Any]) -> float:
        """Raise lambda below the target, lower it above the band (bit-ops budget in sequential): x2 and /2,
        or (``target.lambda_update: proportional``) by the distance to the spec, clipped to [1/2, 2]."""
        t = self.target
        if self.mode == "sequential":
            assert self.bitops_budget is not None
            over = m["bitops"] / self.bitops_budget
        else:
            over = t.over(m[t.metric])
        high = over < 1 / t.band
        if not self.meets(m):
            step = 2.0 if t.lambda_update == "double" else min(2.0, max(over, 1.0))
            lam = min(t.lambda_max, max(lam, 1e-3) * step)
        elif high:
            lam *= 0.5 if t.lambda_update == "double" else max(0.5, over * t.band)
        return lam

    # ---- the final accelerator -----------------------------------------------------------------------
    def final(self, path: SinglePath, seed: int) -> HardwareResult:
        """The final accelerator of the derived network: ``final_engine`` (exact where tractable,
        else ``das`` with ``final_budget``)."""
        h = self.cfg.hardware
        t = self.hw.template(path)
        if h.final_engine == "exact":
            try:
                return search_template(t, "exact", seed=seed, progress=False)
            except Intractable:
                return search_template(t, "das", seed=seed, budget=h.final_budget, progress=False)
        warm = t.adapt(self.design) if self.design else None
        return search_template(t, h.final_engine, seed=seed, budget=h.final_budget, warm_start=warm, progress=False)

    def _search(self, path: SinglePath, engine: str, warm: Design | None, seed: int, budget: int | None):
        return self.hw.search(path, engine=engine, warm=warm, seed=seed,
                              budget=None if engine == "exact" else budget)

    def state(self) -> dict[str, Any]:
        return {"design": self.design, "bitops_budget": self.bitops_budget}

    def load_state(self, s: dict[str, Any]) -> None:
        self.design, self.bitops_budget = s["design"], s["bitops_budget"]
        self._cache.clear()
