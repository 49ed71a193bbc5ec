"""A derived architecture (``arch.json``): the stage layout plus one operation and bitwidth per block."""
from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from autonba.config import format_validation_error
from autonba.errors import AutonbaError
from autonba.hw.workload import Workload
from autonba.io import read_json
from autonba.nas.layout import Layout
from autonba.nas.ops import OPS
from autonba.nas.workload import layers_from_arch


class BlockChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    op: str
    bits: int


class Arch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    layout: Layout
    blocks: list[BlockChoice]

    @model_validator(mode="after")
    def _check(self) -> Arch:
        if len(self.blocks) != self.layout.num_blocks:
            raise ValueError(f"blocks has {len(self.blocks)} entries but the layout has "
                             f"{self.layout.num_blocks} searchable blocks")
        for i, blk in enumerate(self.blocks):
            if blk.op not in OPS:
                raise ValueError(f"blocks[{i}].op '{blk.op}' is unknown; allowed: {', '.join(OPS.names())}")
            if not 1 <= blk.bits <= 32:
                raise ValueError(f"blocks[{i}].bits must be in 1..32, got {blk.bits}")
        return self

    def workload(self, name: str = "arch") -> Workload:
        return layers_from_arch(self.layout, [b.op for b in self.blocks], [b.bits for b in self.blocks], name)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.model_dump(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Arch:
        data = read_json(path, "arch")
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise AutonbaError(f"arch file {path}: {format_validation_error(e)}") from None
