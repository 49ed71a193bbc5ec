"""Accelerator templates, created by name: ``TEMPLATES.get("fpga-chunk")(workload, platform, **options)``."""
from autonba.hw.templates.base import Evaluation, ChunkCosts, Template
from autonba.hw.templates.fpga_chunk import FpgaChunk
from autonba.hw.templates.fpga_legacy import FpgaLegacy
from autonba.registry import Registry

TEMPLATES: Registry[type[Template]] = Registry("template")
TEMPLATES.register("fpga-legacy", FpgaLegacy)
TEMPLATES.register("fpga-chunk", FpgaChunk)

__all__ = ["TEMPLATES", "Template", "Evaluation", "ChunkCosts"]
