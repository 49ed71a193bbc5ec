"""The FPGA family: chunk-pipeline templates, and what they share (the chunk aggregation, the
hardware-template interface, design carry-over between workloads).

A template costs the chunks of a workload for a whole batch of designs at once, on torch
tensors. Its engines (:mod:`autonba.hw.engines`) see ``space``, ``evaluate``, ``evaluate_chunk``,
``budgets`` and ``clock_hz``, so each of them works on every chunk template.
"""
from __future__ import annotations

import re
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

import torch

from autonba.hw.platform import Platform, load_platform, shipped_platforms
from autonba.hw.space import DesignSpace
from autonba.hw.template import Costs, Figures, HardwareTemplate
from autonba.hw.templates.result import FpgaResult
from autonba.hw.workload import Workload


@dataclass
class ChunkCosts:
    """Costs of B designs on a subset of C' chunks: (B, C') each; per layer (B, L') on request."""

    cycles: torch.Tensor
    dsp: torch.Tensor
    bram: torch.Tensor
    layer_cycles: torch.Tensor | None = None


@dataclass
class Evaluation:
    """Costs of B full designs. Shapes: (B, L) per layer (when asked for), (B, C) per chunk, (B,) totals."""

    chunk_cycles: torch.Tensor
    chunk_dsp: torch.Tensor
    chunk_bram: torch.Tensor
    total_dsp: torch.Tensor
    total_bram: torch.Tensor
    bottleneck: torch.Tensor
    fps: torch.Tensor
    feasible: torch.Tensor
    layer_cycles: torch.Tensor | None = None


class ChunkTemplate(HardwareTemplate):
    """A chunk-based FPGA accelerator template bound to one workload and platform. Its designs are
    factor values (C, F) per chunk; its objective is the bottleneck chunk's cycles per frame."""

    Result = FpgaResult
    default_platform = "zc706"
    metric_names = ("fps",)
    platform: Platform
    space: DesignSpace

    def __init__(self, workload: Workload, platform: Platform):
        self.workload = workload
        self.platform = platform
        names = self.allocate(workload)
        self.chunk_names = sorted(set(names), key=_chunk_order)
        self.layer_chunk = torch.tensor([self.chunk_names.index(n) for n in names], dtype=torch.long)
        self.space = self.build_space()

    # ---- what a template defines ----------------------------------------------------------
    @abstractmethod
    def allocate(self, workload: Workload) -> list[str]:
        """Chunk name of every layer."""

    @abstractmethod
    def build_space(self) -> DesignSpace:
        """Per-chunk design space."""

    @abstractmethod
    def chunk_costs(self, vals: torch.Tensor, chunks: torch.Tensor, layers: bool = False) -> ChunkCosts:
        """Costs of the chunks ``chunks`` (C',) under designs given as factor values (B, C', F).
        With ``layers``, also the cycles of each layer of those chunks, in workload order."""

    # ---- the hardware-template interface --------------------------------------------------
    @classmethod
    def engines(cls):
        from autonba.hw.engines import ENGINES
        return ENGINES

    def front_model(self, space: Any = None):
        from autonba.hw.templates.pareto import ChunkFronts
        return ChunkFronts(self, space)

    @classmethod
    def load_platform(cls, name_or_path: str) -> Platform:
        return load_platform(name_or_path)

    @classmethod
    def shipped_platforms(cls) -> list[str]:
        return shipped_platforms()

    def cost(self, vals: torch.Tensor) -> Costs:
        ev = self.evaluate(vals)
        dsp_cap, bram_cap = self.budgets
        over = (ev.total_dsp / dsp_cap - 1).clamp(min=0) + (ev.total_bram / bram_cap - 1).clamp(min=0)
        return Costs(ev.bottleneck, ev.feasible, over)

    def trace_figure(self, objective: float) -> float:
        return self.clock_hz / objective  # engines' traces read in FPS

    def figures(self, design: torch.Tensor) -> Figures:
        ev = self.evaluate(design.unsqueeze(0), layers=True)
        assert ev.layer_cycles is not None
        return Figures(ev.layer_cycles[0], float(ev.layer_cycles[0].sum()), None, None, bool(ev.feasible[0]),
                       {"fps": float(ev.fps[0])})

    def result(self, design: torch.Tensor, **search: Any) -> FpgaResult:
        return FpgaResult.from_design(self, design, **search)

    def budget_text(self) -> str:
        dsp, bram = self.budgets
        return f"the budgets of {self.platform.name} ({dsp:g} DSP, {bram:g} BRAM18K)"

    def parse(self, designs: list[Any]) -> list[torch.Tensor]:
        return list(self.space.parse(designs))

    def to_json(self, design: torch.Tensor) -> dict[str, Any]:
        return {"chunks": self.space.to_dicts(design.unsqueeze(0))[0]}

    def adapt(self, design: dict[str, Any]) -> torch.Tensor:
        """A chunk the design lacks (a bitwidth that just appeared) takes the design of the chunk of the
        same kind with the nearest bitwidth, or the smallest design of the chunk if there is none."""
        sp = self.space
        chunks = design.get("chunks", design)  # checkpoints written before the interface hold the bare mapping
        rows = []
        for c in self.chunk_names:
            src = chunks.get(c) or _nearest_chunk(c, chunks)
            if src is None:
                rows.append(sp.values(sp.repair((sp.num_values - 1).unsqueeze(0)))[0, sp.chunk_names.index(c)])
            else:
                rows.append(torch.tensor([float(src[f]) for f in sp.factors], dtype=torch.float64))
        return sp.values(sp.encode(torch.stack(rows)).unsqueeze(0))[0]

    # ---- shared machinery -----------------------------------------------------------------
    @property
    def budgets(self) -> tuple[float, float]:
        return float(self.platform.dsp), float(self.platform.bram18k)

    @property
    def clock_hz(self) -> float:
        return self.platform.clock_hz

    def layers_of(self, chunk: int) -> torch.Tensor:
        return torch.nonzero(self.layer_chunk == chunk).flatten()

    block = 4096  # designs per vectorised call: larger batches are split (cache-friendly)

    def evaluate(self, vals: torch.Tensor, layers: bool = False) -> Evaluation:
        """Evaluate B full designs given as factor values (B, C, F) (``space.values(indices)``)."""
        chunks = torch.arange(self.space.num_chunks)
        parts = [self.chunk_costs(v, chunks, layers) for v in vals.split(self.block)]
        c = parts[0] if len(parts) == 1 else ChunkCosts(
            *(torch.cat([getattr(p, k) for p in parts]) for k in ("cycles", "dsp", "bram", "layer_cycles")
              if layers or k != "layer_cycles"))
        total_dsp, total_bram = c.dsp.sum(-1), c.bram.sum(-1)
        bottleneck = c.cycles.max(-1).values
        dsp_cap, bram_cap = self.budgets
        feasible = (total_dsp <= dsp_cap + 1e-9) & (total_bram <= bram_cap + 1e-9)
        return Evaluation(c.cycles, c.dsp, c.bram, total_dsp, total_bram, bottleneck,
                          self.clock_hz / bottleneck, feasible, c.layer_cycles)

    def layer_report(self, vals: torch.Tensor) -> list[dict]:
        """Per-layer figures of one design (values (C, F)): the cycles are compute cycles (this model
        has no memory term); templates add their own fields."""
        ev = self.evaluate(vals.unsqueeze(0), layers=True)
        assert ev.layer_cycles is not None
        return [{"name": l.name, "chunk": self.chunk_names[int(self.layer_chunk[i])],
                 "cycles": float(ev.layer_cycles[0, i]), "compute_cycles": float(ev.layer_cycles[0, i]),
                 "macs": l.macs}
                for i, l in enumerate(self.workload.layers)]

    def evaluate_chunk(self, chunk: int, vals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cycles, DSP and BRAM (N,) of one chunk under N designs given as factor values (N, F)."""
        c = self.chunk_costs(vals.unsqueeze(1), torch.tensor([chunk]))
        return c.cycles[:, 0], c.dsp[:, 0], c.bram[:, 0]


class LayerClasses:
    """Groups a chunk subset's layers into classes by a key, for cost models whose per-layer
    terms factor through the class. ``of_layer`` (L',) maps each selected layer to its class,
    ``chunk`` (U,) gives each class's position in the chunk subset, ``rep`` (U,) one layer per class."""

    def __init__(self, layer_chunk: torch.Tensor, chunks: torch.Tensor, key: list[tuple]):
        pos = {int(c): i for i, c in enumerate(chunks.tolist())}
        self.layers = torch.tensor([i for i, c in enumerate(layer_chunk.tolist()) if c in pos], dtype=torch.long)
        classes: dict[tuple, int] = {}
        of_layer: list[int] = []
        rep: list[int] = []
        chunk: list[int] = []
        for i in self.layers.tolist():
            k = (int(layer_chunk[i]),) + key[i]
            if k not in classes:
                classes[k] = len(rep)
                rep.append(i)
                chunk.append(pos[int(layer_chunk[i])])
            of_layer.append(classes[k])
        self.of_layer = torch.tensor(of_layer, dtype=torch.long)
        self.rep = torch.tensor(rep, dtype=torch.long)
        self.chunk = torch.tensor(chunk, dtype=torch.long)
        self.num_chunks = len(chunks)
        # (U, C') one-hot: sums over classes of a chunk become a matrix product
        self.onehot = torch.nn.functional.one_hot(self.chunk, self.num_chunks).to(torch.float64)

    def sum(self, x: torch.Tensor) -> torch.Tensor:
        """A per-layer quantity (L,) over the whole workload, summed per class (U,)."""
        return torch.zeros(len(self.rep), dtype=torch.float64).index_add_(0, self.of_layer, x[self.layers])

    def to_chunks_sum(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.onehot

    def to_chunks_max(self, x: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        return torch.zeros((B, self.num_chunks), dtype=x.dtype).scatter_reduce_(
            1, self.chunk.expand(B, -1), x, "amax", include_self=True)


def _nearest_chunk(name: str, chunks: dict[str, Any]) -> dict[str, float] | None:
    """The design of the chunk of the same kind (``a0``, ``dwa1``, ...) with the nearest bitwidth."""
    m = re.fullmatch(r"(.*)q(\d+)", name)
    if not m:
        return None
    kind, bits = m.group(1), int(m.group(2))
    same = [(abs(int(mm.group(2)) - bits), c) for c in chunks
            if (mm := re.fullmatch(r"(.*)q(\d+)", c)) and mm.group(1) == kind]
    return chunks[min(same)[1]] if same else None


def _chunk_order(name: str) -> tuple:
    """Order chunk names by bitwidth, then kind (standard before depthwise), then row group."""
    m = re.fullmatch(r"(dw)?a(\d+)q(\d+)", name)
    return (0, int(m.group(3)), bool(m.group(1)), int(m.group(2)), "") if m else (1, 0, False, 0, name)
