"""Stage layout of a network family (stem, stages of blocks, head, classifier)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Stem(_Strict):
    channels: int = Field(16, gt=0)
    kernel: int = Field(3, gt=0)
    stride: int = Field(1, gt=0)


class Stage(_Strict):
    blocks: int = Field(gt=0)
    channels: int = Field(gt=0)
    stride: int = Field(1, gt=0, description="stride of the stage's first block")


class Layout(_Strict):
    """Where the searchable blocks sit; ``fixed_bits`` is the precision of stem, head and classifier."""

    input_size: int = Field(32, gt=0)
    input_channels: int = Field(3, gt=0)
    num_classes: int = Field(10, gt=0)
    stem: Stem = Stem()
    stages: list[Stage]
    head_channels: int = Field(1504, gt=0)
    fixed_bits: int = Field(8, gt=0, le=32)
    scales: Literal["float", "pow2"] = Field(
        "float", description="quantiser scales: float (ranges of each tensor) or pow2 (powers of two with zero "
                             "points 0: fixed point, which FPGA datapaths and hls4ml compute exactly)")

    @model_validator(mode="after")
    def _nonempty(self) -> Layout:
        if not self.stages:
            raise ValueError("stages must list at least one stage")
        return self

    @property
    def num_blocks(self) -> int:
        return sum(s.blocks for s in self.stages)

    def block_plan(self) -> list[tuple[int, int, int]]:
        """(in_channels, out_channels, stride) of every searchable block, in order."""
        plan, cin = [], self.stem.channels
        for stage in self.stages:
            for i in range(stage.blocks):
                plan.append((cin, stage.channels, stage.stride if i == 0 else 1))
                cin = stage.channels
        return plan


def reference_layout(input_size: int, num_classes: int, stem_stride: int, strides: list[int],
                     head_channels: int) -> Layout:
    """The FBNet-like reference layout: 22 searchable blocks in stages [1, 4, 4, 4, 4, 4, 1]."""
    return Layout(input_size=input_size, num_classes=num_classes, stem=Stem(channels=16, stride=stem_stride),
                  stages=[Stage(blocks=b, channels=c, stride=s) for b, c, s in zip(
                      [1, 4, 4, 4, 4, 4, 1], [16, 24, 32, 64, 112, 184, 352], strides)],
                  head_channels=head_channels)


REFERENCE_CIFAR = reference_layout(32, 10, 1, [1, 1, 2, 2, 1, 2, 1], 1504)
REFERENCE_IMAGENET = reference_layout(224, 1000, 2, [1, 2, 2, 2, 1, 2, 1], 1984)
