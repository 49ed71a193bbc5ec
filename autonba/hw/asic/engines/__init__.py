"""Search engines of the asic-array template, created by name: ``AsicArray.engines().get("das")``.

They minimise the template's objective (latency, energy or EDP) under its area budget and count
their budget in full-design evaluations. ``random`` and ``evolution`` are the engines every family
shares; ``exact`` and the last stage of ``das`` use the structure of the cost model
(:mod:`autonba.hw.asic.fronts`): given the buffer, each layer's best mapping for an array design
can be chosen exactly from a small Pareto front.
"""
from autonba.hw.asic.engines.base import AsicEngine
from autonba.hw.asic.engines.das import AsicDas
from autonba.hw.asic.engines.exact import AsicExact
from autonba.hw.asic.engines.random_search import AsicRandom
from autonba.hw.engines.base import Engine
from autonba.hw.engines.evolution import Evolution
from autonba.registry import Registry

ASIC_ENGINES: Registry[type[Engine]] = Registry("engine")
for _e in (AsicDas, AsicRandom, Evolution, AsicExact):
    ASIC_ENGINES.register(_e.name, _e)

__all__ = ["ASIC_ENGINES", "AsicEngine"]
