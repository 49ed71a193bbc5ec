"""``random``: batched uniform sampling of the constrained space, keeping the best feasible design.
Shared by every template family (it needs only the space's ``draw``/``decode`` and ``cost``)."""
from __future__ import annotations

from pydantic import Field

from autonba.hw.engines.base import Engine, EngineOptions, Incumbent, Outcome


class RandomOptions(EngineOptions):
    batch: int = Field(1024, gt=0, description="designs sampled per vectorised call")


class RandomSearch(Engine):
    options: RandomOptions
    name = "random"
    Options = RandomOptions

    def _run(self) -> Outcome:
        inc = Incumbent(self.template.trace_figure)
        for n, done in self.batches(self.options.batch, "random"):
            vals = self.space.decode(self.space.draw(n, self.generator))
            c = self.template.cost(vals)
            inc.offer(vals, c.objective, c.feasible, done)
        return inc.outcome(self.budget)
