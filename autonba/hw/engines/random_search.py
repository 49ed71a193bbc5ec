"""``random``: batched uniform sampling of the constrained space, keeping the best feasible design."""
from __future__ import annotations

from pydantic import Field

from autonba.hw.engines.base import Engine, EngineOptions, Incumbent, Outcome


class RandomOptions(EngineOptions):
    batch: int = Field(1024, gt=0, description="designs sampled per vectorised call")


class RandomSearch(Engine):
    name = "random"
    Options = RandomOptions

    def _run(self) -> Outcome:
        inc = Incumbent(self.template.clock_hz)
        for n, done in self.batches(self.options.batch, "random"):
            idx, _ = self.space.sample(n, generator=self.generator)
            vals = self.space.values(idx)
            ev = self.template.evaluate(vals)
            inc.offer(vals, ev.bottleneck, ev.feasible, done)
        return inc.outcome(self.budget)
