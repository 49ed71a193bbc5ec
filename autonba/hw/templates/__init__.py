"""Hardware templates of every family, created by name: ``TEMPLATES.get("fpga-chunk")(workload, platform,
**options)``. Each implements :class:`~autonba.hw.template.HardwareTemplate`; registering a class here
is all a new family needs (see docs/architecture.md)."""
from autonba.hw.asic.array import AsicArray
from autonba.hw.template import HardwareTemplate
from autonba.hw.templates.base import ChunkCosts, ChunkTemplate, Evaluation
from autonba.hw.templates.fpga_chunk import FpgaChunk
from autonba.hw.templates.fpga_legacy import FpgaLegacy
from autonba.registry import Registry

TEMPLATES: Registry[type[HardwareTemplate]] = Registry("template")
for _t in (FpgaLegacy, FpgaChunk, AsicArray):
    TEMPLATES.register(_t.name, _t)

__all__ = ["TEMPLATES", "HardwareTemplate", "ChunkTemplate", "Evaluation", "ChunkCosts"]
