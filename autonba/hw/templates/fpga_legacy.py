"""``fpga-legacy``: the published reference chunk model, reproduced bit for bit.

Kept for comparison with the reference implementation, including its known flaws (real-valued
tile counts, uncounted weight buffers, fractional DSPs, ``Tnb`` for ``Tmb`` in depthwise mode 1).
``fpga-chunk`` is the corrected model. Formulas: docs/cost_models.md.

Every term but the loop trip counts depends only on the chunk's design, the kernel and the
bitwidth, so layers are grouped into classes of equal (chunk, depthwise, K, q) and a chunk's
cycles are ``sum over classes (tiles * (wr_of * sum R^2 M g + Y / Tnb * sum R^2 M g N))``.
"""
from __future__ import annotations

from functools import lru_cache

import torch
from pydantic import BaseModel, ConfigDict

from autonba.errors import AutonbaError
from autonba.hw.space import DesignSpace
from autonba.hw.templates.base import ChunkCosts, ChunkTemplate, LayerClasses
from autonba.hw.templates.fpga_common import CONSTRAINTS, FACTORS, LayerTable, allocate_by_rule
from autonba.hw.workload import Workload

_P16 = [16, 8, 4, 2, 1]
_P8 = [8, 4, 2, 1]
_P4 = [4, 2, 1]
_P32 = [32, 16, 8, 4, 2, 1]
SPACES = {  # per chunk kind, from the reference implementation
    "a0": dict(comp_mode=[0, 1, 2], Trb=_P16, Tcb=_P16, Tmb=_P8, Tnb=_P8, Tr=_P16, Tc=_P16, Tm=_P8, Tn=_P8),
    "a1": dict(comp_mode=[0, 1, 2], Trb=_P4, Tcb=_P4, Tmb=_P32, Tnb=_P32, Tr=_P4, Tc=_P4, Tm=_P32, Tn=_P32),
    "dwa0": dict(comp_mode=[0, 1], Trb=_P16, Tcb=_P16, Tmb=_P8, Tnb=[1], Tr=_P16, Tc=_P16, Tm=_P8, Tn=[1]),
    "dwa1": dict(comp_mode=[0, 1], Trb=_P4, Tcb=_P4, Tmb=_P32, Tnb=[1], Tr=_P4, Tc=_P4, Tm=_P32, Tn=[1]),
}
BRAM_BITS = 18000.0


class LegacyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    row_split: int = 16


def _ports(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(2, 4)


class FpgaLegacy(ChunkTemplate):
    name = "fpga-legacy"
    Options = LegacyOptions
    default_platform = "zc706-legacy"

    def __init__(self, workload: Workload, platform, **options):
        self.options = LegacyOptions(**options)
        self.dims = LayerTable(workload)
        super().__init__(workload, platform)
        dims = self.dims
        self._key = [(bool(dims.dw[i]), float(dims.K[i]), float(dims.q[i])) for i in range(len(workload.layers))]
        self._work = dims.OH * dims.OW * dims.M * dims.groups     # R^2 M g: trip-count numerator per layer
        self._classes = lru_cache(maxsize=64)(self._make_classes)

    def allocate(self, workload: Workload) -> list[str]:
        return allocate_by_rule(workload, self.options.row_split)

    def build_space(self) -> DesignSpace:
        chunks = {}
        for c in self.chunk_names:
            kind = c.split("q")[0]
            if kind not in SPACES:
                raise AutonbaError(f"fpga-legacy: chunk '{c}' has no design space; chunk names must start with "
                                   f"one of {', '.join(SPACES)} followed by q<bits>")
            chunks[c] = SPACES[kind]
        return DesignSpace(FACTORS, CONSTRAINTS, chunks, closed=("comp_mode",))

    def _make_classes(self, chunks: tuple[int, ...]) -> tuple[LayerClasses, torch.Tensor, torch.Tensor]:
        cls = LayerClasses(self.layer_chunk, torch.tensor(chunks), self._key)
        return cls, cls.sum(self._work), cls.sum(self._work * self.dims.N)

    def class_terms(self, d: torch.Tensor, rep: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-class terms for designs d (..., U, F) and class representatives rep (U,)."""
        dims = self.dims
        c, Trb, Tcb, Tmb, Tnb, Tr, Tc, Tm, Tn = d.unbind(-1)
        K, q, dw = dims.K[rep], dims.q[rep], dims.dw[rep]
        s = q / 16
        K2 = K * K
        tri = torch.maximum(Tr + K - 1, Trb)
        tci = torch.maximum(Tc + K - 1, Tcb)
        m0, m1, m2 = c == 0, c == 1, c == 2
        wr_m = (torch.ceil(Tmb * Trb * Tcb / _ports(Tm)) + Trb * Tcb * Tmb / Tm) * s
        wr_r = (torch.ceil(Tmb * Trb * Tcb / _ports(Tr)) + Tcb * Tmb * Trb / Tr) * s

        def banks(x):
            return torch.ceil(x * q / BRAM_BITS)

        # standard convolution: cycles per tile = wr_of + (N / Tnb) * Y
        D = torch.where(m0, Tm, torch.where(m1, Tm * Tn, Tr))
        comp = Trb * Tcb * Tmb * Tnb * K2 / D
        rd_if = torch.ceil(Tnb * tri * tci / torch.where(m2, _ports(tri), _ports(Tn))) * s
        rd_w = torch.where(m2, Tmb * Tnb * K * s, torch.ceil(Tmb * Tnb * K2 / _ports(Tm)) * s)
        Y = torch.maximum(comp, rd_if) + rd_w
        wr_of = torch.where(m2, wr_r, wr_m)
        std_bram = torch.where(
            m2, 2 * tri * banks(tci * Tnb) + Tr * banks(Tcb * Tmb) + K * banks(K * Tmb * Tnb),
            2 * Tn * banks(tri * tci * Tnb / Tn) + Tm * banks(Trb * Tcb * Tmb / Tm))
        # depthwise convolution (modes 0 and 1): cycles per tile = Z
        dcomp = Trb * Tcb * Tmb * K2 / torch.where(m0, Tm, Tr)
        drd_if = torch.ceil(Tmb * tri * tci / _ports(Tm)) * s
        drd_w = torch.where(m1, Tmb * K * s, torch.ceil(Tmb * K2 / _ports(Tm)) * s)
        Z = torch.maximum(dcomp, drd_if) + drd_w + torch.where(m1, wr_r, wr_m)
        dw_bram = torch.where(
            m0, 2 * Tm * banks(tri * tci * Tmb / Tm) + Tm * banks(Trb * Tcb * Tmb / Tm),
            2 * tri * banks(tci * Tnb) + Tr * banks(Tcb * Tmb) + K * banks(K * Tmb))
        return dict(
            inv_tiles=1.0 / (Tcb * Trb * Tmb),
            per_work=torch.where(dw, Z, wr_of),              # multiplies R^2 M g
            per_work_n=torch.where(dw, 0.0, Y / Tnb),        # multiplies R^2 M g N
            dsp=torch.where(dw, torch.where(m0, Tm, Tr), D) * s,
            bram=torch.where(dw, dw_bram, std_bram),
        )

    def chunk_costs(self, vals: torch.Tensor, chunks: torch.Tensor, layers: bool = False) -> ChunkCosts:
        cls, work, work_n = self._classes(tuple(chunks.tolist()))
        x = self.class_terms(vals[:, cls.chunk, :], cls.rep)                 # (B, U) each
        cycles = cls.to_chunks_sum(x["inv_tiles"] * (x["per_work"] * work + x["per_work_n"] * work_n))
        layer_cycles = None
        if layers:
            lw, ln = self._work[cls.layers], self.dims.N[cls.layers]
            g = {k: v[:, cls.of_layer] for k, v in x.items()}
            layer_cycles = g["inv_tiles"] * lw * (g["per_work"] + g["per_work_n"] * ln)
        return ChunkCosts(cycles, cls.to_chunks_max(x["dsp"]), cls.to_chunks_max(x["bram"]), layer_cycles)
