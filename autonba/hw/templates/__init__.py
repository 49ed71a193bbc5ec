"""Accelerator templates, created by name: ``TEMPLATES.get("fpga-chunk")(workload, platform, **options)``.

FPGA templates share the chunk-pipeline interface of :class:`Template`; ``asic-array`` (a systolic
array with a memory hierarchy, costed in latency, energy and area) has its own, in ``autonba.hw.asic``."""
from autonba.hw.asic.array import AsicArray
from autonba.hw.templates.base import Evaluation, ChunkCosts, Template
from autonba.hw.templates.fpga_chunk import FpgaChunk
from autonba.hw.templates.fpga_legacy import FpgaLegacy
from autonba.registry import Registry

TEMPLATES: Registry[type[Template] | type[AsicArray]] = Registry("template")
TEMPLATES.register("fpga-legacy", FpgaLegacy)
TEMPLATES.register("fpga-chunk", FpgaChunk)
TEMPLATES.register("asic-array", AsicArray)

__all__ = ["TEMPLATES", "Template", "Evaluation", "ChunkCosts"]
