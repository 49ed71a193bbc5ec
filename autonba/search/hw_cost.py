"""The hardware side of the joint loop: cost a supernet single path on the current accelerator.

A single path (operation and bitwidth per searchable block) becomes the exact workload of that
network; the current accelerator design is carried over to the path's chunks (a chunk the design
lacks, e.g. for a bitwidth that just appeared, takes the design of the chunk of the same kind with
the nearest bitwidth); the template gives the cycles of every layer, summed per block. Accelerator
(re-)search runs any engine with a warm start from the current design.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any

import torch

from autonba.hw.engines import ENGINES
from autonba.hw.engines.das import nearest_indices
from autonba.hw.platform import Platform
from autonba.hw.templates import TEMPLATES, Template
from autonba.hw.workload import Workload
from autonba.nas.layout import Layout
from autonba.nas.workload import layers_from_arch

Design = dict[str, dict[str, float]]   # chunk name -> factor -> value (the JSON form)
Path = tuple[tuple[str, int], ...]     # (operation, bitwidth) per searchable block


class PathTemplates:
    """Templates bound to single-path workloads, the last ``cache`` of them kept (LRU); subclasses say
    how a workload is bound (``_bind``)."""

    def __init__(self, layout: Layout, platform: Any, template_options: dict[str, Any] | None = None,
                 cache: int = 256):
        self.layout = layout
        self.platform = platform
        self.template_options = template_options or {}
        self._cache: OrderedDict[Path, Any] = OrderedDict()
        self._cache_size = cache

    def template(self, path: Path):
        """The template bound to the path's workload."""
        path = tuple((str(o), int(b)) for o, b in path)
        if path in self._cache:
            self._cache.move_to_end(path)
            return self._cache[path]
        wl = layers_from_arch(self.layout, [o for o, _ in path], [b for _, b in path], name="single-path")
        t = self._bind(wl)
        self._cache[path] = t
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return t

    def _bind(self, wl: Workload):
        raise NotImplementedError


class HardwareCost(PathTemplates):
    def __init__(self, layout: Layout, template: str, platform: Platform,
                 template_options: dict[str, Any] | None = None, cache: int = 256):
        self.template_cls = TEMPLATES.get(template)
        super().__init__(layout, platform, template_options, cache)

    def _bind(self, wl: Workload) -> Template:
        return self.template_cls(wl, self.platform, **self.template_options)

    def adapt(self, template: Template, design: Design) -> torch.Tensor:
        """The design as factor values (C, F) for this template's chunks, snapped to its space."""
        sp = template.space
        rows = []
        for c in template.chunk_names:
            src = design.get(c) or _nearest_chunk(c, design)
            if src is None:  # nothing of this kind yet: the smallest design of the chunk
                rows.append(sp.values(sp.repair((sp.num_values - 1).unsqueeze(0)))[0, sp.chunk_names.index(c)])
            else:
                rows.append(torch.tensor([float(src[f]) for f in sp.factors], dtype=torch.float64))
        vals = torch.stack(rows)
        return sp.values(nearest_indices(sp, vals).unsqueeze(0))[0]

    def block_cycles(self, path: Path, design: Design) -> tuple[torch.Tensor, float, bool]:
        """Cycles per searchable block (L,), the FPS of the whole network and its feasibility."""
        t = self.template(path)
        vals = self.adapt(t, design)
        ev = t.evaluate(vals.unsqueeze(0), layers=True)
        return sum_per_block(t.workload, ev.layer_cycles[0], len(path)), float(ev.fps[0]), bool(ev.feasible[0])

    def search(self, path: Path, engine: str = "das", warm: Design | None = None, seed: int = 0,
               budget: int | None = None, **engine_options: Any) -> tuple[Design, float] | None:
        """Search an accelerator for the path (warm-started from ``warm``); None if nothing fits."""
        t = self.template(path)
        start = self.adapt(t, warm) if warm else None
        out = ENGINES.get(engine)(t, seed=seed, budget=budget, warm_start=start, progress=False,
                                  **engine_options).run()
        if out.best is None:
            return None
        return t.space.to_dicts(out.best.unsqueeze(0))[0], t.clock_hz / out.bottleneck


def sum_per_block(workload: Workload, per_layer, blocks: int) -> torch.Tensor:
    """A per-layer quantity summed over the layers of each searchable block (``block{i}.*``)."""
    out = torch.zeros(blocks, dtype=torch.float64)
    for i, layer in enumerate(workload.layers):
        m = re.match(r"block(\d+)\.", layer.name)
        if m:
            out[int(m.group(1))] += float(per_layer[i])
    return out


def _nearest_chunk(name: str, design: Design) -> dict[str, float] | None:
    """The design of the chunk of the same kind (``a0``, ``dwa1``, ...) with the nearest bitwidth."""
    m = re.fullmatch(r"(.*)q(\d+)", name)
    if not m:
        return None
    kind, bits = m.group(1), int(m.group(2))
    same = [(abs(int(mm.group(2)) - bits), c) for c in design
            if (mm := re.fullmatch(r"(.*)q(\d+)", c)) and mm.group(1) == kind]
    return design[min(same)[1]] if same else None
