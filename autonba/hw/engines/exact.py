"""``exact``: enumerate every chunk's space, keep its Pareto front, combine optimally."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from pydantic import Field

from autonba.errors import Intractable
from autonba.hw.engines.base import Engine, EngineOptions, Outcome
from autonba.hw.engines.combine import Front, combine

if TYPE_CHECKING:
    from autonba.hw.space import DesignSpace
    from autonba.hw.templates.base import ChunkTemplate


class ExactOptions(EngineOptions):
    max_designs: int = Field(200_000_000, gt=0,
                             description="refuse spaces with more layer-design evaluations than this")
    block: int = Field(1 << 15, gt=0, description="designs evaluated per vectorised call")


class Exact(Engine):
    """Provably optimal: the bottleneck it returns is the smallest over the whole chunk template's space.

    ``budget`` does not apply (it evaluates each chunk's space once)."""
    options: ExactOptions
    template: ChunkTemplate
    space: DesignSpace


    name = "exact"
    Options = ExactOptions

    def _run(self) -> Outcome:
        t = self.template
        fronts, evaluations = self.fronts()
        picks = combine(fronts, *t.budgets)
        if picks is None:
            return Outcome(None, float("inf"), evaluations, 0.0, info={"front_sizes": [len(f.cycles) for f in fronts]})
        best = torch.stack([f.designs[p] for f, p in zip(fronts, picks)])
        bottleneck = max(float(f.cycles[p]) for f, p in zip(fronts, picks))
        return Outcome(best, bottleneck, evaluations, 0.0, [(evaluations, t.trace_figure(bottleneck))],
                       {"front_sizes": [len(f.cycles) for f in fronts]})

    def fronts(self) -> tuple[list[Front], int]:
        """Every chunk's Pareto front in (cycles, DSP, BRAM) over its whole space (points over a budget on
        their own dropped), and the chunk designs evaluated; ``Intractable`` over ``max_designs``."""
        t, sp = self.template, self.space
        dsp_cap, bram_cap = t.budgets
        sizes = [sp.size(c) for c in range(sp.num_chunks)]
        work = sum(s * len(t.layers_of(c)) for c, s in enumerate(sizes))
        if work > self.options.max_designs:
            raise Intractable(f"exact: the space needs {work:,} layer evaluations (> max_designs="
                               f"{self.options.max_designs:,}); pin factors with --fix, or use das / evolution")
        fronts, evaluations = [], 0
        with self.progress_bar(sum(sizes), "exact") as bar:
            for c in range(sp.num_chunks):
                front = Front.empty(len(sp.factors))
                for idx in sp.enumerate(c, self.options.block):
                    vals = sp.chunk_values(c, idx)                             # (n, F)
                    cyc, dsp, bram = t.evaluate_chunk(c, vals)
                    front = front.merge(cyc, dsp, bram, vals, dsp_cap, bram_cap)
                    evaluations += len(idx)
                    bar.update(len(idx))
                fronts.append(front)
        return fronts, evaluations
