"""ASIC technologies as data: per-operation and per-access energies, areas, clock and DRAM bandwidth.

A shipped technology by name (``generic-45nm``) or a user's YAML file by path. All cost functions
take and return torch tensors so a batch of designs is costed at once.
"""
from __future__ import annotations

from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field

from autonba.config import load_model_yaml, shipped_names

_SHIPPED = Path(__file__).parent / "techs"
TINY, HUGE = 1e-9, 1e9  # every figure of a technology in a physical range, so the costs stay finite


LEVELS = ("mac", "rf", "hop", "gb", "dram", "leakage")  # where the energy of a frame goes

class Energy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mult_8x8_pj: float = Field(ge=TINY, le=HUGE,
                               description="an 8x8-bit multiply; a b_w x b_a multiply costs b_w*b_a/64 of it")
    accumulate_pj: float = Field(ge=0, le=HUGE, description="the accumulation of one MAC")
    rf_pj_per_bit: float = Field(ge=TINY, le=HUGE)
    rf_ref_bytes: float = Field(ge=TINY, le=HUGE)
    hop_pj_per_bit: float = Field(ge=0, le=HUGE)
    gb_pj_per_bit: float = Field(ge=TINY, le=HUGE)
    gb_ref_kib: float = Field(ge=TINY, le=HUGE)
    dram_pj_per_bit: float = Field(ge=TINY, le=HUGE)
    size_exponent: float = Field(0.5, ge=0, le=1)
    leakage_mw_per_mm2: float = Field(0.0, ge=0, le=HUGE)


class Area(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mult_8x8_um2: float = Field(ge=TINY, le=HUGE)
    adder_32_um2: float = Field(ge=TINY, le=HUGE)
    flop_um2_per_bit: float = Field(ge=TINY, le=HUGE)
    rf_um2_per_byte: float = Field(ge=TINY, le=HUGE)
    sram_um2_per_kib: float = Field(ge=TINY, le=HUGE)
    sram_bank_um2: float = Field(ge=0, le=HUGE)


class Technology(BaseModel):
    """A technology node: ``energy`` (pJ), ``area`` (um^2), clock and DRAM bandwidth."""

    model_config = ConfigDict(extra="forbid")
    name: str
    clock_mhz: float = Field(ge=1e-3, le=1e6)
    dram_bytes_per_cycle: float = Field(ge=TINY, le=HUGE)
    energy: Energy
    area: Area

    @property
    def clock_hz(self) -> float:
        return self.clock_mhz * 1e6

    # ---- energies (pJ) ------------------------------------------------------------------
    def mac_pj(self, bw: torch.Tensor, ba: torch.Tensor) -> torch.Tensor:
        """One MAC at b_w x b_a bits: the multiplier scales with b_w * b_a, the accumulation is fixed."""
        return self.energy.mult_8x8_pj * bw * ba / 64.0 + self.energy.accumulate_pj

    def rf_pj_per_bit(self, rf_bytes: torch.Tensor) -> torch.Tensor:
        e = self.energy
        return e.rf_pj_per_bit * (rf_bytes / e.rf_ref_bytes) ** e.size_exponent

    def gb_pj_per_bit(self, kib: torch.Tensor) -> torch.Tensor:
        e = self.energy
        return e.gb_pj_per_bit * (kib / e.gb_ref_kib) ** e.size_exponent

    # ---- areas (mm^2) -------------------------------------------------------------------
    def pe_mm2(self, pe_bits: int, acc_bits: int, rf_bytes: torch.Tensor) -> torch.Tensor:
        """One precision-scalable PE: multiplier (B_pe^2), accumulator, pipeline registers, register file."""
        a = self.area
        logic = (a.mult_8x8_um2 * (pe_bits / 8) ** 2 + a.adder_32_um2 * acc_bits / 32
                 + a.flop_um2_per_bit * (2 * pe_bits + acc_bits))
        return (logic + a.rf_um2_per_byte * rf_bytes) * 1e-6

    def sram_mm2(self, kib: torch.Tensor, banks: torch.Tensor) -> torch.Tensor:
        return (self.area.sram_um2_per_kib * kib + self.area.sram_bank_um2 * banks) * 1e-6


def shipped_technologies() -> list[str]:
    return shipped_names(_SHIPPED)


def load_technology(name_or_path: str | Path) -> Technology:
    """A shipped technology by name (``generic-45nm``) or a YAML file by path."""
    return load_model_yaml(name_or_path, _SHIPPED, Technology, "technology")
