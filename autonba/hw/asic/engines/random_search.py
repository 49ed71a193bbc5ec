"""``random``: uniform sampling of the array factors and of every layer's mapping."""
from __future__ import annotations

from pydantic import Field

from autonba.hw.asic.engines.base import AsicEngine, AsicIncumbent
from autonba.hw.engines.base import EngineOptions, Outcome


class RandomOptions(EngineOptions):
    batch: int = Field(512, gt=0, description="designs sampled per vectorised call")


class AsicRandom(AsicEngine):
    """Uniform sampling of array factors and every layer's mapping."""

    name = "random"
    Options = RandomOptions

    def _run(self) -> Outcome:
        inc = AsicIncumbent()
        for n, done in self.batches(self.options.batch, "random"):
            hw, maps, _, _ = self.space.sample(n, generator=self.generator)
            inc.offer(*self.evaluate(hw, maps), done)
        return inc.outcome(self.budget)
