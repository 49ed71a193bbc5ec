"""Search spaces as data: a stage layout, the candidate operations and the bitwidth choices."""
from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from autonba.config import load_model_yaml
from autonba.nas.layout import Layout
from autonba.nas.ops import OPS

_SHIPPED = Path(__file__).parent / "spaces"


class SearchSpace(BaseModel):
    model_config = ConfigDict(extra="forbid")
    layout: Layout
    ops: list[str] = Field(default_factory=lambda: ["k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1",
                                                    "k5_e1_g2", "k5_e3", "k5_e6", "skip"])
    bits: list[int] = [4, 6, 8]

    @field_validator("ops")
    @classmethod
    def _known_ops(cls, v: list[str]) -> list[str]:
        unknown = [o for o in v if o not in OPS]
        if unknown or not v or len(set(v)) != len(v):
            raise ValueError(f"ops must be distinct known operations; unknown: {unknown}; "
                             f"allowed: {', '.join(OPS.names())}")
        return v

    @field_validator("bits")
    @classmethod
    def _bits(cls, v: list[int]) -> list[int]:
        if not v or len(set(v)) != len(v) or any(not 2 <= b <= 32 for b in v):
            raise ValueError("bits must be distinct integers in 2..32 (32 = unquantised)")
        return sorted(v)


def load_space(name_or_path: str | Path) -> SearchSpace:
    """A shipped space by name (``cifar``, ``imagenet``, ``small``) or a YAML file by path."""
    return load_model_yaml(name_or_path, _SHIPPED, SearchSpace, "search space")
