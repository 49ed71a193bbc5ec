"""The hardware side of the joint loop: cost a supernet single path on the current accelerator, for
any template family.

A single path (operation and bitwidth per searchable block) becomes the exact workload of that
network; the current accelerator design (its JSON form) is carried over to the path's workload by
the template (``adapt``: e.g. a chunk that just appeared borrows the design of its nearest kin, a
layer mapping is kept by name); the template gives the cycles (and energy) of every layer, summed
per block. Accelerator (re-)search runs any of the family's engines, warm-started from the design.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any

import torch

from autonba.hw.template import Figures, HardwareTemplate
from autonba.hw.templates import TEMPLATES
from autonba.hw.workload import Workload
from autonba.nas.layout import Layout
from autonba.nas.workload import layers_from_arch

Design = dict[str, Any]                   # a design in its JSON form (the family's design-file format)
SinglePath = tuple[tuple[str, int], ...]  # (operation, bitwidth) per searchable block


class HardwareCost:
    """Templates of one family bound to single-path workloads (the last ``cache`` of them kept, LRU)."""

    def __init__(self, layout: Layout, template: str, platform: Any, template_options: dict[str, Any] | None = None,
                 cache: int = 256):
        self.layout = layout
        self.template_cls = TEMPLATES.get(template)
        self.platform = platform
        self.template_options = template_options or {}
        self._cache: OrderedDict[SinglePath, HardwareTemplate] = OrderedDict()
        self._cache_size = cache

    def template(self, path: SinglePath) -> HardwareTemplate:
        """The template bound to the path's workload."""
        path = tuple((str(o), int(b)) for o, b in path)
        if path in self._cache:
            self._cache.move_to_end(path)
            return self._cache[path]
        wl = layers_from_arch(self.layout, [o for o, _ in path], [b for _, b in path], name="single-path")
        t = self.template_cls(wl, self.platform, **self.template_options)
        self._cache[path] = t
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return t

    def figures(self, path: SinglePath, design: Design) -> Figures:
        """The design carried over to the path: its per-layer costs, feasibility and metrics."""
        t = self.template(path)
        return t.figures(t.adapt(design))

    def search(self, path: SinglePath, engine: str = "das", warm: Design | None = None, seed: int = 0,
               budget: int | None = None, **engine_options: Any) -> tuple[Design, Figures] | None:
        """Search an accelerator for the path (warm-started from ``warm``): the design and its figures,
        or None if nothing fits."""
        t = self.template(path)
        start = t.adapt(warm) if warm else None
        out = t.engines().get(engine)(t, seed=seed, budget=budget, warm_start=start, progress=False,
                                      **engine_options).run()
        if out.best is None:
            return None
        return t.to_json(out.best), t.figures(out.best)


def sum_per_block(workload: Workload, per_layer, blocks: int) -> torch.Tensor:
    """A per-layer quantity summed over the layers of each searchable block (``block{i}.*``)."""
    out = torch.zeros(blocks, dtype=torch.float64)
    for i, layer in enumerate(workload.layers):
        m = re.match(r"block(\d+)\.", layer.name)
        if m:
            out[int(m.group(1))] += float(per_layer[i])
    return out
