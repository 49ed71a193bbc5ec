"""FPGA platforms as data: shipped YAML files by name, or a user's YAML file by path."""
from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from autonba.config import load_model_yaml, shipped_names

_SHIPPED = Path(__file__).parent / "platforms"
BIG = 2 ** 24  # resources beyond any device (and beyond what float32-exact sums need)


class Platform(BaseModel):
    """Resources of a device. ``macs_per_dsp`` maps a bitwidth bound to the multipliers one DSP packs
    for operands up to that many bits (``{4: 4, 8: 2, 32: 1}``: 4 for q <= 4, 2 for q <= 8, 1 above)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    dsp: int = Field(gt=0, le=BIG)
    bram18k: int = Field(gt=0, le=BIG)
    clock_mhz: float = Field(ge=1e-3, le=1e6)
    macs_per_dsp: dict[int, int] = {4: 4, 8: 2, 32: 1}
    dram_bytes_per_cycle: float = Field(32.0, ge=1e-6, le=1e30, description="1e30: no DRAM limit")
    bram_bits: int = Field(18432, gt=0, le=BIG, description="bits per BRAM18K bank")
    part: str | None = Field(None, description="the device's part number, which an HLS project targets "
                                               "(autonba export --format hls4ml)")

    @field_validator("macs_per_dsp")
    @classmethod
    def _covers_32(cls, v: dict[int, int]) -> dict[int, int]:
        if not v or max(v) < 32 or min(v) < 1 or max(v) > 64 or min(v.values()) < 1 or max(v.values()) > 1024:
            raise ValueError("macs_per_dsp maps bit bounds in 1..64 (one >= 32) to counts in 1..1024, "
                             "e.g. {4: 4, 8: 2, 32: 1}")
        return dict(sorted(v.items()))

    @property
    def clock_hz(self) -> float:
        return self.clock_mhz * 1e6

    def macs_per_dsp_for(self, bits: int) -> int:
        return next(m for bound, m in self.macs_per_dsp.items() if bits <= bound)


def shipped_platforms() -> list[str]:
    return shipped_names(_SHIPPED)


def load_platform(name_or_path: str | Path) -> Platform:
    """A shipped platform by name (``zc706``) or a YAML file by path."""
    return load_model_yaml(name_or_path, _SHIPPED, Platform, "platform")
