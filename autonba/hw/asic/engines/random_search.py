"""``random`` on the asic-array template: the shared engine, in batches of 512 (a design holds a mapping
per layer, so a batch costs more than an FPGA one)."""
from __future__ import annotations

from pydantic import Field

from autonba.hw.engines.random_search import RandomOptions, RandomSearch


class AsicRandomOptions(RandomOptions):
    batch: int = Field(512, gt=0, description="designs sampled per vectorised call")


class AsicRandom(RandomSearch):
    Options = AsicRandomOptions
