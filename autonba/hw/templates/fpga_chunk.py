"""``fpga-chunk``: the project's corrected chunk-pipeline FPGA model (the default template).

Same chunk/pipeline structure and tiled-loop model as ``fpga-legacy``, corrected
(docs/cost_models.md lists every change): exact layer shapes, whole-tile trip counts
(ceil), effective tiles clipped to the layer, input tiles sized by stride and kernel, every
buffer counted (weights too, per buffer sized for the chunk's largest layer), whole DSPs with
bitwidth packing, a DRAM roofline on the traffic the tiling really moves, and a design space
in which the platform's budgets, not the space's edges, bound the best design.

Layers with identical shape and chunk form one class and are costed once.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from autonba.hw.space import DesignSpace
from autonba.hw.templates.base import ChunkCosts, ChunkTemplate, LayerClasses
from autonba.hw.templates.fpga_common import CONSTRAINTS, FACTORS, LayerTable, allocate_by_rule
from autonba.hw.workload import Workload


class ChunkOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    row_split: int = Field(16, gt=0, description="layers with >= this many output rows go to the '0' chunks")
    channel_tile_max: int = Field(64, ge=1, description="largest channel tile (Tmb, Tnb) in the space")
    max_ports: int = Field(16, ge=2, description="most 16-bit words a buffer loads or stores per cycle "
                                                 "(the reference model fixes 4)")


def _powers_of_two_upto(n: int) -> list[int]:
    """1, 2, 4, ... up to n (n itself only if a power of two)."""
    out, v = [], 1
    while v <= n:
        out.append(v)
        v *= 2
    return out


class FpgaChunk(ChunkTemplate):
    name = "fpga-chunk"
    Options = ChunkOptions

    def __init__(self, workload: Workload, platform, **options):
        self.options = ChunkOptions(**options)
        self.dims = dims = LayerTable(workload)
        super().__init__(workload, platform)
        columns = (dims.N, dims.M, dims.groups, dims.OH, dims.OW, dims.IH, dims.IW, dims.K, dims.S, dims.q, dims.dw)
        self._key = [tuple(float(x[i]) for x in columns) for i in range(len(workload.layers))]
        self._pad = (dims.K // 2) * 2                                          # total padding of a 'same' conv
        self._macs_per_dsp = torch.tensor([platform.macs_per_dsp_for(int(q)) for q in dims.q.tolist()],
                                          dtype=torch.float64)
        self._classes = lru_cache(maxsize=64)(self._make_classes)

    def allocate(self, workload: Workload) -> list[str]:
        return allocate_by_rule(workload, self.options.row_split)

    def build_space(self) -> DesignSpace:
        dims, cap = self.dims, self.options.channel_tile_max
        chunks = {}
        for ci, c in enumerate(self.chunk_names):
            ls = self.layers_of(ci)
            oh = sorted({int(v) for v in dims.OH[ls].tolist()})
            ow = sorted({int(v) for v in dims.OW[ls].tolist()})
            rows = sorted(set(_powers_of_two_upto(max(oh))) | set(oh), reverse=True)
            cols = sorted(set(_powers_of_two_upto(max(ow))) | set(ow), reverse=True)
            m = _powers_of_two_upto(min(cap, _ceil_pow2(int(dims.M[ls].max()))))[::-1]
            dw = bool(dims.dw[ls].all())
            n = [1] if dw else _powers_of_two_upto(min(cap, _ceil_pow2(int(dims.N[ls].max()))))[::-1]
            chunks[c] = dict(comp_mode=[0, 1] if dw else [0, 1, 2], Trb=rows, Tcb=cols, Tmb=m, Tnb=n,
                             Tr=rows, Tc=cols, Tm=m, Tn=n)
        return DesignSpace(FACTORS, CONSTRAINTS, chunks, closed=("comp_mode",))

    def _make_classes(self, chunks: tuple[int, ...]) -> tuple[LayerClasses, torch.Tensor]:
        cls = LayerClasses(self.layer_chunk, torch.tensor(chunks), self._key)
        return cls, cls.sum(torch.ones(len(self.layer_chunk), dtype=torch.float64))

    def layer_terms(self, d: torch.Tensor, li: torch.Tensor) -> dict[str, torch.Tensor]:
        """Costs of layers ``li`` (U,) on designs d (..., U, F): cycles, DSP, the three buffers' BRAM,
        multipliers and DRAM bytes. The formulas of docs/cost_models.md, in one place."""
        dw = self.dims.dw[li]
        if bool(dw.all()) or not bool(dw.any()):
            x = (self._depthwise if bool(dw.all()) else self._standard)(d, li)
        else:  # cost each kind on its own layers only, then put them back in order
            si, di = torch.nonzero(~dw).flatten(), torch.nonzero(dw).flatten()
            a, b = self._standard(d[..., si, :], li[si]), self._depthwise(d[..., di, :], li[di])
            axis = d.dim() - 2                                              # the layer axis
            x = {k: torch.empty(d.shape[:-1] + a[k].shape[axis + 1:], dtype=torch.float64)
                 .index_copy_(axis, si, a[k]).index_copy_(axis, di, b[k]) for k in a}
        q = self.dims.q[li]
        dram_bytes = x.pop("elems") * q / 8
        x["cycles"] = torch.maximum(x["cycles"], dram_bytes / self.platform.dram_bytes_per_cycle)
        x["dsp"] = torch.ceil(x["mults"] / self._macs_per_dsp[li])
        x["dram_bytes"] = dram_bytes
        return x

    def _tiles(self, d: torch.Tensor, li: torch.Tensor) -> dict[str, torch.Tensor]:
        """What both layer kinds share: effective tiles, trip counts, tile halos, port terms."""
        dims, max_ports = self.dims, self.options.max_ports
        c, Trb, Tcb, Tmb, Tnb, Tr, Tc, Tm, Tn = d.unbind(-1)
        OH, OW, K, S, q = dims.OH[li], dims.OW[li], dims.K[li], dims.S[li], dims.q[li]
        eRb, eCb, eMb = torch.minimum(Trb, OH), torch.minimum(Tcb, OW), torch.minimum(Tmb, dims.M[li])
        cm, cr = torch.ceil(eMb / Tm), torch.ceil(eRb / Tr)
        tile_out = eMb * eRb * eCb
        s = q / 16
        return dict(c=c, Tnb=Tnb, Tr=Tr, Tm=Tm, Tn=Tn, K=K, K2=K * K, s=s, q=q, eRb=eRb, eCb=eCb, eMb=eMb,
                    cm=cm, cr=cr, tile_out=tile_out,
                    trips=torch.ceil(OH / Trb) * torch.ceil(OW / Tcb) * torch.ceil(dims.M[li] / Tmb),
                    tri=torch.minimum((eRb - 1) * S + K, dims.IH[li] + self._pad[li]),
                    tci=torch.minimum((eCb - 1) * S + K, dims.IW[li] + self._pad[li]),
                    wr_m=(torch.ceil(tile_out / Tm.clamp(2, max_ports)) + eRb * eCb * cm) * s,
                    wr_r=(torch.ceil(tile_out / Tr.clamp(2, max_ports)) + eCb * eMb * cr) * s,
                    bank=float(self.platform.bram_bits))

    def _standard(self, d: torch.Tensor, li: torch.Tensor) -> dict[str, torch.Tensor]:
        """Standard and grouped convs (g sequential slices of N -> M channels)."""
        x, dims, P = self._tiles(d, li), self.dims, self.options.max_ports
        c, Tr, Tm, Tn, K, K2, s, q = (x[k] for k in ("c", "Tr", "Tm", "Tn", "K", "K2", "s", "q"))
        eRb, eCb, eMb, cm, cr, tri, tci = (x[k] for k in ("eRb", "eCb", "eMb", "cm", "cr", "tri", "tci"))
        N, g = dims.N[li], dims.groups[li]
        eNb = torch.minimum(x["Tnb"], N)
        cn, tN = torch.ceil(eNb / Tn), torch.ceil(N / x["Tnb"])
        m0, m1, m2 = c == 0, c == 1, c == 2

        def banks(v):
            return torch.ceil(v * q / x["bank"])

        mults = torch.where(m0, Tm, torch.where(m1, Tm * Tn, Tr))
        comp = torch.where(m0, eRb * eCb * K2 * eNb * cm,
                           torch.where(m1, eRb * eCb * K2 * cm * cn, cr * eCb * eMb * eNb * K2))
        rd_if = torch.ceil(eNb * tri * tci / torch.where(m2, tri, Tn).clamp(2, P)) * s
        rd_w = torch.where(m2, eMb * eNb * K * s, torch.ceil(eMb * eNb * K2 / Tm.clamp(2, P)) * s)
        trips = g * x["trips"]
        cycles = trips * (torch.where(m2, x["wr_r"], x["wr_m"]) + tN * (torch.maximum(comp, rd_if) + rd_w))
        elems = trips * (tN * (eNb * tri * tci + eMb * eNb * K2) + x["tile_out"])
        bram = torch.stack([
            torch.where(m2, 2 * tri * banks(tci * eNb), 2 * Tn * banks(tri * tci * cn)),
            torch.where(m2, Tr * banks(eCb * eMb * cr), Tm * banks(eRb * eCb * cm)),
            torch.where(m2, K * banks(K * eMb * eNb), torch.where(m1, Tm * Tn * banks(cm * cn * K2),
                                                                  Tm * banks(cm * eNb * K2)))], -1)
        return dict(cycles=cycles, mults=mults, elems=elems, bram=bram)

    def _depthwise(self, d: torch.Tensor, li: torch.Tensor) -> dict[str, torch.Tensor]:
        """Depthwise convs (modes 0 and 1)."""
        x, P = self._tiles(d, li), self.options.max_ports
        c, Tr, Tm, K, K2, s, q = (x[k] for k in ("c", "Tr", "Tm", "K", "K2", "s", "q"))
        eRb, eCb, eMb, cm, cr, tri, tci = (x[k] for k in ("eRb", "eCb", "eMb", "cm", "cr", "tri", "tci"))
        m0, m1 = c == 0, c == 1

        def banks(v):
            return torch.ceil(v * q / x["bank"])

        comp = torch.where(m0, eRb * eCb * K2 * cm, cr * eCb * eMb * K2)
        rd_if = torch.ceil(eMb * tri * tci / Tm.clamp(2, P)) * s
        rd_w = torch.where(m1, eMb * K * s, torch.ceil(eMb * K2 / Tm.clamp(2, P)) * s)
        cycles = x["trips"] * (torch.maximum(comp, rd_if) + rd_w + torch.where(m1, x["wr_r"], x["wr_m"]))
        elems = x["trips"] * (eMb * tri * tci + eMb * K2 + x["tile_out"])
        bram = torch.stack([
            torch.where(m0, 2 * Tm * banks(tri * tci * cm), 2 * tri * banks(tci * eMb)),
            torch.where(m0, Tm * banks(eRb * eCb * cm), Tr * banks(eCb * eMb * cr)),
            torch.where(m0, Tm * banks(cm * K2), K * banks(K * eMb))], -1)
        return dict(cycles=cycles, mults=torch.where(m0, Tm, Tr), elems=elems, bram=bram)

    def chunk_costs(self, vals: torch.Tensor, chunks: torch.Tensor, layers: bool = False) -> ChunkCosts:
        cls, count = self._classes(tuple(chunks.tolist()))
        x = self.layer_terms(vals[:, cls.chunk, :], cls.rep)                 # (B, U), bram (B, U, 3)
        cycles = cls.to_chunks_sum(x["cycles"] * count)
        b0, b1, b2 = (cls.to_chunks_max(x["bram"][..., i]) for i in range(3))  # per buffer, sized for the chunk
        bram = b0 + b1 + b2
        layer_cycles = x["cycles"][:, cls.of_layer] if layers else None
        return ChunkCosts(cycles, cls.to_chunks_max(x["dsp"]), bram, layer_cycles)

    def layer_report(self, vals: torch.Tensor) -> list[dict[str, Any]]:
        """Per-layer figures of one design (values (C, F)): cycles, bounds, utilisation, DSP, BRAM."""
        li = torch.arange(len(self.layer_chunk))
        x = self.layer_terms(vals[self.layer_chunk].unsqueeze(0), li)
        dims = self.dims
        # lower bound on traffic: every weight and output once, and every input pixel an output is centred on
        in_ch = torch.where(dims.dw, dims.M, dims.N * dims.groups)
        centres = (torch.minimum(dims.IH, (dims.OH - 1) * dims.S + 1)
                   * torch.minimum(dims.IW, (dims.OW - 1) * dims.S + 1))
        compulsory = (dims.weights + dims.M * dims.groups * dims.OH * dims.OW + in_ch * centres) * dims.q / 8
        rows = []
        for i, layer in enumerate(self.workload.layers):
            cyc, mults = float(x["cycles"][0, i]), float(x["mults"][0, i])
            rows.append(dict(name=layer.name, chunk=self.chunk_names[int(self.layer_chunk[i])], cycles=cyc,
                             macs=layer.macs, compute_cycles=layer.macs / mults,
                             memory_bound_cycles=float(x["dram_bytes"][0, i]) / self.platform.dram_bytes_per_cycle,
                             dram_bytes=float(x["dram_bytes"][0, i]), compulsory_bytes=float(compulsory[i]),
                             multipliers=int(mults), utilisation=layer.macs / (cyc * mults),
                             dsp=int(x["dsp"][0, i]), bram=int(x["bram"][0, i].sum())))
        return rows


def _ceil_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())
