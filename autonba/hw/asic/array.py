"""The ``asic-array`` template: a rows x cols systolic array of precision-scalable PEs, a per-PE
register file, a global buffer (shared or split per operand) and DRAM, costed for a batch of
designs at once on torch tensors.

Per layer (formulas in docs/asic.md):

- compute cycles as SCALE-Sim counts them (``cycles.py``), a PE built for B_pe-bit operands doing
  floor(B_pe/b_w) * floor(B_pe/b_a) MACs per cycle;
- global-buffer accesses from the dataflow's folds: the stationary operand is read once, the
  streamed one once per fold of the other operand (the register file keeps a fold's stream for the
  next fold where it fits), partial sums of weight/input-stationary folds go back to the buffer;
- DRAM traffic from the buffer-level tiling (tk output channels, tc input channels, toy output
  rows, a loop order): an operand is reloaded once per iteration of the loops it does not depend
  on that sit outside its innermost loop; partial sums spill when the reduction loop sits outside;
  tiles (double-buffered) must fit their buffer and are halved until they do;
- latency max(compute, DRAM traffic / bandwidth), energy MACs + register file + array hops +
  global buffer + DRAM (+ leakage), area PEs + SRAM.

A grouped layer (g groups, not depthwise) runs its groups one after another, each a standard
convolution of Cin/g -> K/g channels with tiles within the group (tk <= K/g, tc <= Cin/g), so it
costs what g such layers cost; a depthwise layer runs channel by channel in the array and tiles
tk channels at a time at the buffer level.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from autonba.errors import AutonbaError
from autonba.hw.asic.cycles import fold_counts
from autonba.hw.asic.result import AsicResult
from autonba.hw.asic.space import DATAFLOWS, GB_SPLITS, ORDERS, SPLIT_FRACTIONS, AsicSpace, _code
from autonba.hw.asic.tech import Technology, load_technology, shipped_technologies
from autonba.hw.template import Costs, Figures, HardwareTemplate
from autonba.hw.workload import Workload

Design = tuple[torch.Tensor, torch.Tensor]  # factor values: array (H,) and per-layer mappings (L, M)

OBJECTIVES = ("latency", "energy", "edp")


class AsicOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    objective: Literal["latency", "energy", "edp"] = "edp"
    area_mm2: float | None = Field(None, gt=0, description="area budget (none: unconstrained)")
    pe_bits: int = Field(8, ge=1, le=32, description="operand width B_pe the PEs are built for")
    acc_bits: int = Field(32, ge=8, le=64, description="partial-sum width")
    dataflow: Literal["per-accelerator", "per-layer"] = "per-accelerator"
    rows: list[int] = [4, 8, 16, 32, 64, 128]
    cols: list[int] = [4, 8, 16, 32, 64, 128]
    rf_bytes: list[int] = [4, 16, 64, 256]
    gb_kib: list[int] = [16, 32, 64, 128, 256, 512, 1024]

    @field_validator("rows", "cols")
    @classmethod
    def _at_least_2(cls, v: list[int]) -> list[int]:
        if not v or min(v) < 2:
            raise ValueError("array sizes must be >= 2 (a 1-wide array has no systolic fill to count)")
        return sorted(set(v))

    @field_validator("rf_bytes", "gb_kib")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if not v or min(v) <= 0:
            raise ValueError("sizes must be positive")
        return sorted(set(v))


@dataclass
class AsicEval:
    """Costs of B designs: totals (B,), per layer (B, L), energy per level (B, len(LEVELS))."""

    latency: torch.Tensor            # cycles
    energy: torch.Tensor             # pJ
    area: torch.Tensor               # mm^2
    objective: torch.Tensor
    feasible: torch.Tensor
    fits: torch.Tensor               # every layer's tiles fit its buffers (B,)
    layer_fits: torch.Tensor         # (B, L)
    energy_levels: torch.Tensor
    layer_latency: torch.Tensor
    layer_energy: torch.Tensor
    layer_compute: torch.Tensor
    layer_dram_bits: torch.Tensor
    layer_utilisation: torch.Tensor
    tiles: torch.Tensor              # legalised (tk, tc, toy) (B, L, 3)


@dataclass
class LayerTensors:
    """The layer dimensions the cost model reads, as (L,) float64 tensors (``select`` takes a subset)."""

    dw: torch.Tensor
    groups: torch.Tensor
    k: torch.Tensor          # output channels (all groups)
    cin: torch.Tensor
    kg: torch.Tensor         # per group
    cg: torch.Tensor
    f: torch.Tensor
    s: torch.Tensor
    oy: torch.Tensor
    ox: torch.Tensor
    bits: torch.Tensor
    in_rows: torch.Tensor    # input rows / cols a layer reads (padding is not fetched)
    in_cols: torch.Tensor
    macs: torch.Tensor
    macs_per_pe: torch.Tensor

    @classmethod
    def of(cls, workload: Workload, pe_bits: int) -> LayerTensors:
        L = workload.layers
        col = lambda xs: torch.tensor(xs, dtype=torch.float64)  # noqa: E731
        oy, ox = col([x.out_h for x in L]), col([x.out_w for x in L])
        s, f = col([x.stride for x in L]), col([x.kernel for x in L])
        bits = col([x.bits for x in L])
        per_pe = torch.where(bits <= pe_bits, torch.floor(pe_bits / bits) ** 2, 1 / torch.ceil(bits / pe_bits) ** 2)
        return cls(dw=torch.tensor([x.depthwise for x in L]), groups=col([x.groups for x in L]),
                   k=col([x.out_ch for x in L]), cin=col([x.in_ch for x in L]),
                   kg=col([x.out_ch // x.groups for x in L]), cg=col([x.in_ch // x.groups for x in L]),
                   f=f, s=s, oy=oy, ox=ox, bits=bits,
                   in_rows=torch.minimum(col([x.in_h for x in L]), _span(oy, s, f)),
                   in_cols=torch.minimum(col([x.in_w for x in L]), _span(ox, s, f)),
                   macs=col([x.macs for x in L]), macs_per_pe=per_pe)

    @property
    def sr(self) -> torch.Tensor:
        return self.oy * self.ox

    @property
    def taps(self) -> torch.Tensor:
        """The reduction length of one output (SCALE-Sim's T): input channels of a group x filter size."""
        return self.cg * self.f ** 2

    @property
    def tk_max(self) -> torch.Tensor:
        """Largest output-channel tile: all channels of a depthwise layer, one group's of the others."""
        return torch.where(self.dw, self.k, self.kg)

    @property
    def halo(self) -> torch.Tensor:
        return (self.f - self.s).clamp(min=0)

    def select(self, idx) -> LayerTensors:
        return LayerTensors(**{k: v[idx] for k, v in vars(self).items()})


def _span(out: torch.Tensor, s: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Input rows (or cols) that ``out`` output rows use: (out - 1) * S + F, or out * F when the stride
    skips rows (S > F: a 1x1 stride-2 layer reads every other row)."""
    return torch.where(s >= f, out * f, (out - 1) * s + f)


def _tile_sizes(n: int) -> list[int]:
    """Powers of two below n, then n: the tile sizes of a dimension of n."""
    out, v = [], 1
    while v < n:
        out.append(v)
        v *= 2
    return out + [n]


class AsicArray(HardwareTemplate):
    """The template bound to a workload and a technology (``platform`` of the accelerator config).
    Its designs are factor values ``(array (H,), mappings (L, M))``; its objective the option's."""

    name = "asic-array"
    Options = AsicOptions
    Result = AsicResult
    default_platform = "generic-45nm"
    metric_names = ("fps", "latency_ms", "energy_uj", "edp_uj_ms", "area_mm2")
    platform: Technology
    space: AsicSpace

    def __init__(self, workload: Workload, platform: Technology, **options):
        self.workload = workload
        self.tech = self.platform = platform
        self.options = o = AsicOptions(**options)
        self.lay = LayerTensors.of(workload, o.pe_bits)
        self.space = self._build_space()

    # ---- space --------------------------------------------------------------------------
    def _build_space(self) -> AsicSpace:
        o = self.options
        hw = {"rows": o.rows, "cols": o.cols, "rf_bytes": o.rf_bytes, "gb_kib": o.gb_kib,
              "gb_split": list(range(len(GB_SPLITS)))}
        if o.dataflow == "per-accelerator":
            hw["dataflow"] = list(range(len(DATAFLOWS)))
        layers = {}
        for layer in self.workload.layers:
            d = {"tk": _tile_sizes(layer.out_ch if layer.depthwise else layer.out_ch // layer.groups),
                 "tc": [1] if layer.depthwise else _tile_sizes(layer.in_ch // layer.groups),
                 "toy": _tile_sizes(layer.out_h),
                 "order": list(range(len(ORDERS)))}
            if o.dataflow == "per-layer":
                d["dataflow"] = list(range(len(DATAFLOWS)))
            layers[layer.name] = d
        if len(layers) != len(self.workload.layers):
            raise AutonbaError("asic-array: layer names of the workload must be unique")
        return AsicSpace(hw, layers)

    # ---- the hardware-template interface ----------------------------------------------
    @classmethod
    def engines(cls):
        from autonba.hw.asic.engines import ASIC_ENGINES
        return ASIC_ENGINES

    def front_model(self, space: Any = None):
        from autonba.hw.asic.pareto import AsicFronts
        return AsicFronts(self, space)

    @classmethod
    def load_platform(cls, name_or_path: str) -> Technology:
        return load_technology(name_or_path)

    @classmethod
    def shipped_platforms(cls) -> list[str]:
        return shipped_technologies()

    @property
    def clock_hz(self) -> float:
        return self.tech.clock_hz

    def cost(self, vals: Design) -> Costs:
        ev = self.evaluate(*vals)
        cap = self.options.area_mm2
        over = torch.zeros_like(ev.area) if cap is None else (ev.area / cap - 1).clamp(min=0)
        return Costs(ev.objective, ev.feasible, over)

    def figures(self, design: Design) -> Figures:
        ev = self.evaluate(design[0].unsqueeze(0), design[1].unsqueeze(0))
        m = self.metrics(ev.latency, ev.energy, ev.area)
        return Figures(ev.layer_latency[0], float(ev.latency[0]), ev.layer_energy[0], float(ev.energy[0]),
                       bool(ev.feasible[0]), {k: float(v[0]) for k, v in m.items()})

    def metrics(self, cycles: torch.Tensor, energy: torch.Tensor, area: torch.Tensor) -> dict[str, torch.Tensor]:
        """The family's metrics (``metric_names``) of B designs from their latency (cycles), energy (pJ)
        and area (mm^2), (B,) each."""
        ms, uj = cycles / self.clock_hz * 1e3, energy * 1e-6
        return {"fps": self.clock_hz / cycles, "latency_ms": ms, "energy_uj": uj, "edp_uj_ms": uj * ms,
                "area_mm2": area}

    def result(self, design: Design, **search: Any) -> AsicResult:
        return AsicResult.from_design(self, design, **search)

    def budget_text(self) -> str:
        area = self.options.area_mm2
        return "the area budget of " + (f"{area:g} mm2" if area is not None else
                                        "(none) with every layer's tiles in its buffers")

    def parse(self, designs: list[Any]) -> list[Design]:
        return list(zip(*self.space.parse(designs)))

    def to_json(self, design: Design) -> dict[str, Any]:
        return self.space.to_dicts(design[0].unsqueeze(0), design[1].unsqueeze(0))[0]

    def adapt(self, design: dict[str, Any]) -> Design:
        """The array factors stay; a layer keeps its mapping where the design has a layer of that name,
        and otherwise starts from whole-layer tiles (halved by the cost model until they fit)."""
        sp = self.space
        hw = torch.tensor([_code(f, design["array"][f]) for f in sp.hw_factors], dtype=torch.float64)
        rows = []
        for i, name in enumerate(sp.layer_names):
            d = design["layers"].get(name)
            if d is None:  # whole-layer tiles, the first loop order
                rows.append(torch.stack([sp.map_table[i, m][sp.map_valid[i, m]].max() if f in ("tk", "tc", "toy")
                                         else sp.map_table[i, m, 0] for m, f in enumerate(sp.map_factors)]))
            else:
                rows.append(torch.tensor([_code(f, d[f]) for f in sp.map_factors], dtype=torch.float64))
        hi, mi = sp.encode((hw, torch.stack(rows)))
        hv, mv = sp.values(hi.unsqueeze(0), mi.unsqueeze(0))
        return hv[0], mv[0]

    # ---- cost model ---------------------------------------------------------------------
    def evaluate(self, hw: torch.Tensor, maps: torch.Tensor) -> AsicEval:
        """Costs of B designs given as factor values: array (B, H) and per-layer mappings (B, L, M)."""
        sp, o = self.space, self.options
        col = lambda f: hw[:, sp.hw_index(f)].unsqueeze(1)  # noqa: E731  (B, 1)
        df = col("dataflow") if "dataflow" in sp.hw_factors else maps[..., sp.map_index("dataflow")]
        compute, util, fixed = self.array_costs(col("rows"), col("cols"), col("rf_bytes"), df,
                                                col("gb_kib"), col("gb_split"))
        tk, tc, toy, order = (maps[..., sp.map_index(f)] for f in ("tk", "tc", "toy", "order"))
        tk, tc, toy, fits = self.legalise(tk, tc, toy, col("gb_kib"), col("gb_split"))
        traffic = self.traffic(tk, tc, toy, order)                                  # (B, L, 3)
        e_traffic = (traffic * self.traffic_pj_per_bit(col("gb_kib"), col("gb_split"))).sum(-1)
        dram_bits = traffic.sum(-1)
        latency = torch.maximum(compute, self.dram_cycles(dram_bits))
        area = self.area(hw)
        e_leak = latency * self.leak_pj_per_cycle(area).unsqueeze(1)
        e_dram = dram_bits * self.tech.energy.dram_pj_per_bit
        parts = torch.cat([fixed[..., :3], (fixed[..., 3] + e_traffic - e_dram).unsqueeze(-1),
                           e_dram.unsqueeze(-1), e_leak.unsqueeze(-1)], -1)        # (B, L, levels)
        layer_energy = parts.sum(-1)
        total_lat, total_e = latency.sum(-1), layer_energy.sum(-1)
        ok_area = torch.ones_like(area, dtype=torch.bool) if o.area_mm2 is None else area <= o.area_mm2 + 1e-12
        all_fit = fits.all(-1)
        objective = torch.where(all_fit, self.objective(total_e, total_lat), torch.full_like(total_e, float("inf")))
        return AsicEval(total_lat, total_e, area, objective, ok_area & all_fit, all_fit, fits, parts.sum(1), latency,
                        layer_energy, compute.expand_as(latency), dram_bits, util.expand_as(latency),
                        torch.stack([tk, tc, toy], -1))

    def objective(self, energy: torch.Tensor, latency: torch.Tensor) -> torch.Tensor:
        return {"latency": latency, "energy": energy, "edp": energy * latency}[self.options.objective]

    def array_costs(self, R, C, rf, df, gb, split, lay=None):
        """What the array factors alone decide, per layer: compute cycles, utilisation and the energy
        (pJ) of MACs, register files, array hops and the array's global-buffer accesses (..., L, 4).
        Folds and streams are per group (T, K of one group), counts summed over the groups."""
        lay = lay or self.lay
        tech, b, acc = self.tech, lay.bits, float(self.options.acc_bits)
        folds, per = fold_counts(df, R, C, lay.sr, lay.taps, lay.kg, lay.macs_per_pe)
        compute = lay.groups * (folds * per - 1)
        util = lay.macs / (R * C * lay.macs_per_pe * compute)
        # global-buffer accesses by the array (elements) and register-file reuse of the streamed operand
        n_t = torch.ceil(torch.ceil(lay.taps / lay.macs_per_pe) / R)
        os_, ws_ = df == 0, df == 1
        refolds = torch.where(df == 2, torch.ceil(lay.sr / C), torch.ceil(lay.kg / C))
        stream_len = torch.where(os_, lay.taps, torch.where(ws_, lay.sr, lay.kg))      # words per row per fold
        e_gb_bit = self.gb_pj_per_bit(gb, split)                                   # (..., 1, 3) W, I, O
        e_rf_bit = tech.rf_pj_per_bit(rf)
        # the register file keeps the stream where that is cheaper than reading the buffer again
        e_stream = torch.where(df == 2, e_gb_bit[..., 0], e_gb_bit[..., 1])
        reuse = (rf * 8 / (stream_len * b)).clamp(max=1.0) * (2 * e_rf_bit < e_stream)
        stream_total = torch.where(df == 2, lay.kg * lay.taps, lay.sr * lay.taps)         # the streamed operand, once
        streamed = stream_total * (1 + (refolds - 1) * (1 - reuse)) * lay.groups
        rf_reads = stream_total * (refolds - 1) * reuse * lay.groups
        stationary = torch.where(os_, torch.ceil(lay.sr / R) * lay.kg * lay.taps,     # os: weights per row fold
                                 torch.where(ws_, lay.kg * lay.taps, lay.taps * lay.sr)) * lay.groups
        in_reads = torch.where(df == 2, stationary, streamed)
        w_reads = torch.where(df == 2, streamed, stationary)
        out_elems = lay.sr * lay.k
        psum_folds = torch.where(os_, torch.ones_like(n_t), n_t)
        out_bits = out_elems * ((psum_folds - 1) * 2 * acc + b)                     # partial sums written, read
        e_mac = lay.macs * tech.mac_pj(b, b)
        e_rf = (lay.macs * (2 * b + 2 * acc) + 2 * rf_reads * b) * e_rf_bit
        moving = torch.where(os_, 2 * b, b + acc)                                   # two operands move per MAC
        loads = torch.where(os_, out_elems, torch.where(ws_, lay.kg * lay.taps, lay.taps * lay.sr) * lay.groups)
        e_hop = (lay.macs * moving + loads * b * R) * tech.energy.hop_pj_per_bit    # + stationary loads / drain
        e_gb = w_reads * b * e_gb_bit[..., 0] + in_reads * b * e_gb_bit[..., 1] + out_bits * e_gb_bit[..., 2]
        shape = torch.broadcast_shapes(compute.shape, e_rf.shape, e_gb.shape)
        fixed = torch.stack([x.expand(shape) for x in (e_mac, e_rf, e_hop, e_gb)], -1)
        return compute, util, fixed

    def gb_pj_per_bit(self, gb: torch.Tensor, split: torch.Tensor) -> torch.Tensor:
        """Access energy per bit of the buffer holding weights, inputs, outputs: (..., 1, 3)."""
        return self.tech.gb_pj_per_bit(self.buffer_kib(gb, split))

    def buffer_kib(self, gb: torch.Tensor, split: torch.Tensor) -> torch.Tensor:
        """KiB of the buffer each operand lives in (the whole buffer when shared): (..., 1, 3)."""
        frac = torch.tensor(SPLIT_FRACTIONS, dtype=torch.float64)[split.long()]     # (..., 1, 3)
        return gb.unsqueeze(-1) * frac

    def traffic_pj_per_bit(self, gb: torch.Tensor, split: torch.Tensor) -> torch.Tensor:
        """Energy of one bit moved between DRAM and its buffer, per operand: (..., 1, 3)."""
        return self.gb_pj_per_bit(gb, split) + self.tech.energy.dram_pj_per_bit

    def dram_cycles(self, bits: torch.Tensor) -> torch.Tensor:
        return torch.ceil(bits / (8 * self.tech.dram_bytes_per_cycle))

    def leak_pj_per_cycle(self, area: torch.Tensor) -> torch.Tensor:
        return self.tech.energy.leakage_mw_per_mm2 * area * 1e-3 / self.tech.clock_hz * 1e12

    def area(self, hw: torch.Tensor) -> torch.Tensor:
        """Area (mm^2) of array designs (B, H): PEs with their register files, and the global buffer."""
        sp, o = self.space, self.options
        col = lambda f: hw[:, sp.hw_index(f)]  # noqa: E731
        banks = torch.where(col("gb_split") == 0, 1.0, 3.0)
        return (col("rows") * col("cols") * self.tech.pe_mm2(o.pe_bits, o.acc_bits, col("rf_bytes"))
                + self.tech.sram_mm2(col("gb_kib"), banks))

    def footprint(self, tk, tc, toy, lay=None) -> torch.Tensor:
        """Bits of one (weights, inputs, outputs) tile, double-buffered: (..., 3). A depthwise tile holds tk
        channels; any other holds tk x tc channels of one group."""
        lay = lay or self.lay
        b, acc = lay.bits, float(self.options.acc_bits)
        ch_in = torch.where(lay.dw, tk, tc)
        w = tk * torch.where(lay.dw, torch.ones_like(tc), tc) * lay.f ** 2 * b
        i = ch_in * lay.in_cols * torch.minimum(_span(toy, lay.s, lay.f), lay.in_rows) * b
        out = tk * toy * lay.ox * acc
        return 2 * torch.stack([w, i, out], -1)

    def clip(self, tk, tc, toy, lay=None):
        """Tiles clipped to the layer (a grouped layer's to one group)."""
        lay = lay or self.lay
        return torch.minimum(tk, lay.tk_max), torch.minimum(tc, lay.cg), torch.minimum(toy, lay.oy)

    def legalise(self, tk, tc, toy, gb, split, lay=None):
        """Halve the largest tile dimension that matters to an overflowing buffer until every tile fits;
        the tiles (clipped to the layer) and whether they fit."""
        lay = lay or self.lay
        tk, tc, toy = self.clip(tk, tc, toy, lay)
        cap = self.buffer_kib(gb, split) * 8192                                     # (..., 1, 3) bits
        shared, total = split == 0, gb * 8192
        relevant = torch.tensor([[1, 1, 0], [0, 1, 1], [1, 0, 1]], dtype=torch.float64)  # (operand, dim k/c/y)
        for _ in range(64):
            fp = self.footprint(tk, tc, toy, lay)                                          # (B, L, 3)
            over_split = fp > cap
            over_shared = (fp.sum(-1, keepdim=True) > total.unsqueeze(-1)).expand_as(fp)
            over = torch.where(shared.unsqueeze(-1), over_shared, over_split)          # (B, L, 3)
            if not bool(over.any()):
                break
            dims = torch.stack([tk, tc, toy], -1)
            score = (over.to(torch.float64) @ relevant > 0) * dims * (dims > 1)       # (B, L, 3)
            pick = score.argmax(-1, keepdim=True)
            can = score.gather(-1, pick) > 0
            halved = torch.ceil(dims.gather(-1, pick) / 2)
            dims = dims.scatter(-1, pick, torch.where(can, halved, dims.gather(-1, pick)))
            if not bool(can.any()):
                break
            tk, tc, toy = dims.unbind(-1)
        fp = self.footprint(tk, tc, toy, lay)
        fits = torch.where(shared, fp.sum(-1) <= total, (fp <= cap).all(-1))
        return tk, tc, toy, fits

    def traffic(self, tk, tc, toy, order, lay=None):
        """DRAM traffic (bits) of weights, inputs and outputs under a tiling and loop order: (..., 3).
        A grouped layer runs the tile loops once per group (its tiles within the group): g times one
        group's traffic, which the formulas give with per-group trip counts and all-group sizes."""
        lay = lay or self.lay
        b, acc = lay.bits, float(self.options.acc_bits)
        n = {"k": torch.ceil(lay.tk_max / tk), "c": torch.where(lay.dw, torch.ones_like(tc), torch.ceil(lay.cg / tc)),
             "y": torch.ceil(lay.oy / toy)}
        one = torch.ones_like(tk)
        rel = {"w": ("k", "c"), "i": ("c", "y"), "o": ("k", "y")}
        dw_rel = {"w": ("k",), "i": ("k", "y"), "o": ("k", "y")}
        reload = {}
        for op in ("w", "i", "o"):
            per_order = []
            for od in ORDERS:
                std, dwr = (self._reload(od, rel[op], n, one), self._reload(od, dw_rel[op], n, one))
                per_order.append(torch.where(lay.dw, dwr, std))
            stacked = torch.stack(per_order, -1)
            reload[op] = stacked.gather(-1, order.long().unsqueeze(-1)).squeeze(-1)
        w_bits = lay.k * lay.cg * lay.f ** 2 * b
        i_pass = lay.cin * lay.in_cols * (lay.in_rows + (n["y"] - 1) * lay.halo) * b
        out = lay.sr * lay.k
        # partial sums spill when the reduction loop (c) is outside the outputs' innermost loop
        spills = torch.where(lay.dw, one, reload["o"])
        return torch.stack([w_bits * reload["w"], i_pass * reload["i"], out * b + out * (spills - 1) * 2 * acc], -1)

    @staticmethod
    def _reload(order: str, relevant: tuple[str, ...], n: dict, one: torch.Tensor) -> torch.Tensor:
        """Product of the trip counts of loops an operand does not depend on (for outputs: the reduction
        loop c, for outputs counted as spills) that sit outside its innermost relevant loop."""
        inner = max(order.index(d) for d in relevant)
        out = one
        for d in order[:inner]:
            if d not in relevant:
                out = out * n[d]
        return out

    def compulsory_bits(self) -> torch.Tensor:
        """Every weight, every input element used and every output once, at their bitwidths (L,)."""
        lay = self.lay
        return (lay.k * lay.cg * lay.f ** 2 + lay.cin * lay.in_cols * lay.in_rows + lay.sr * lay.k) * lay.bits
