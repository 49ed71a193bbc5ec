"""Accelerator search engines behind one interface, created by name: ``ENGINES.get("das")``."""
from autonba.hw.engines.base import Engine, EngineOptions, Outcome
from autonba.hw.engines.das import Das
from autonba.hw.engines.evolution import Evolution
from autonba.hw.engines.exact import Exact
from autonba.hw.engines.random_search import RandomSearch
from autonba.registry import Registry

ENGINES: Registry[type[Engine]] = Registry("engine")
for _e in (Das, RandomSearch, Evolution, Exact):
    ENGINES.register(_e.name, _e)

__all__ = ["ENGINES", "Engine", "EngineOptions", "Outcome"]
