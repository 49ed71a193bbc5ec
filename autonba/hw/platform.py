"""FPGA platforms as data: shipped YAML files by name, or a user's YAML file by path."""
from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from autonba.config import format_validation_error
from autonba.errors import AutonbaError

_SHIPPED = Path(__file__).parent / "platforms"


class Platform(BaseModel):
    """Resources of a device. ``macs_per_dsp`` maps a bitwidth bound to the multipliers one DSP packs
    for operands up to that many bits (``{4: 4, 8: 2, 32: 1}``: 4 for q <= 4, 2 for q <= 8, 1 above)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    dsp: int = Field(gt=0)
    bram18k: int = Field(gt=0)
    clock_mhz: float = Field(gt=0)
    macs_per_dsp: dict[int, int] = {4: 4, 8: 2, 32: 1}
    dram_bytes_per_cycle: float = Field(32.0, gt=0)
    bram_bits: int = Field(18432, gt=0, description="bits per BRAM18K bank")

    @field_validator("macs_per_dsp")
    @classmethod
    def _covers_32(cls, v: dict[int, int]) -> dict[int, int]:
        if not v or max(v) < 32 or min(v.values()) < 1:
            raise ValueError("macs_per_dsp needs positive counts and a bound >= 32 bits, e.g. {4: 4, 8: 2, 32: 1}")
        return dict(sorted(v.items()))

    @property
    def clock_hz(self) -> float:
        return self.clock_mhz * 1e6

    def macs_per_dsp_for(self, bits: int) -> int:
        return next(m for bound, m in self.macs_per_dsp.items() if bits <= bound)


def shipped_platforms() -> list[str]:
    return sorted(p.stem for p in _SHIPPED.glob("*.yaml"))


def load_platform(name_or_path: str | Path) -> Platform:
    """A shipped platform by name (``zc706``) or a YAML file by path."""
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") or path.exists()):
        path = _SHIPPED / f"{name_or_path}.yaml"
        if not path.exists():
            raise AutonbaError(f"unknown platform '{name_or_path}'; allowed: {', '.join(shipped_platforms())} "
                               "or a path to a platform YAML file")
    if not path.is_file():
        raise AutonbaError(f"platform file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
        return Platform.model_validate(data)
    except yaml.YAMLError as e:
        raise AutonbaError(f"platform file {path} is not valid YAML: {e}") from None
    except ValidationError as e:
        raise AutonbaError(f"platform file {path}: {format_validation_error(e)}") from None
