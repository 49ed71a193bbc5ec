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
        done = 0
        with self.progress_bar(self.budget, "random") as bar:
            while done < self.budget:
                n = min(self.options.batch, self.budget - done)
                idx, _ = self.space.sample(n, generator=self.generator)
                vals = self.space.values(idx)
                ev = self.template.evaluate(vals)
                done += n
                bar.update(n)
                inc.offer(vals, ev.bottleneck, ev.feasible, done)
        return inc.outcome(done)
