"""``exact``: every buffer configuration, every array design on it, each with its best mapping per layer."""
from __future__ import annotations

from pydantic import Field

from autonba.errors import Intractable
from autonba.hw.asic.engines.base import AsicEngine, Incumbent, buffer_configs, buffer_designs, offer_buffer
from autonba.hw.asic.fronts import MappingTable
from autonba.hw.engines.base import EngineOptions, Outcome


class ExactOptions(EngineOptions):
    max_evaluations: int = Field(5_000_000, gt=0, description="refuse spaces with more layer mappings than this "
                                                               "(the table holds about 80 bytes per mapping)")
    block: int = Field(4096, gt=0, description="array designs costed per vectorised call")


class AsicExact(AsicEngine):
    """Provably optimal over the whole space (``budget`` does not apply): every buffer configuration,
    every array design on it, each with its best mapping per layer (:mod:`autonba.hw.asic.fronts`)."""
    options: ExactOptions


    name = "exact"
    Options = ExactOptions

    def _run(self) -> Outcome:
        sp, o = self.space, self.options
        work = MappingTable.size(sp)
        if work > o.max_evaluations:
            raise Intractable(f"exact: the space has {work:,} layer mappings (> max_evaluations="
                               f"{o.max_evaluations:,}); pin factors with --fix, or use das / evolution")
        table = MappingTable(self.template, sp)
        inc, done = Incumbent(), 0
        with self.progress_bar(sp.size()[0], "exact") as bar:
            for key in buffer_configs(sp):
                if table.fronts(key) is not None:  # else no mapping fits this buffer: nothing to cost
                    hv = buffer_designs(self.template, sp, key)
                    offer_buffer(table, key, hv, inc, done, o.block)
                    done += len(hv)
                bar.update(done - bar.n)
        return inc.outcome(done, layer_mapping_evaluations=work)
