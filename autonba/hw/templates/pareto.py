"""Pareto fronts of the FPGA chunk templates in (FPS, DSP, BRAM18K).

Chunk costs are separable: a design's FPS is set by its slowest (bottleneck) chunk and its DSP and
BRAM are sums over chunks. So every design on the front combines, per chunk, a point of that chunk's
Pareto front in (cycles, DSP, BRAM), and the front of the combinations follows from the chunk fronts
exactly: for each candidate bottleneck tau (a chunk point's cycles, in increasing order) a dynamic
programme gives the Pareto set P(tau) of (DSP, BRAM) totals reachable with every chunk at <= tau cycles
within the platform's budgets (``combine.reachable``); the points of P(tau) that no point of the
previous P weakly dominates are exactly the front's points with bottleneck tau (the reachable sets
grow with tau).

The exact front combines the chunk fronts of the ``exact`` engine (every chunk design). The searched
front combines per-chunk archives of what the family's engine evaluated: runs of the engine under the
platform's budgets and under tighter ones (each run's budgets a point of the trade-off), then a Pareto
local search per chunk (every single-factor move, and every joint move of a tile and its buffer tile,
of each archived point not yet explored) while the evaluation budget lasts.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import torch

from autonba.hw.engines.combine import Front, reachable
from autonba.hw.engines.exact import Exact
from autonba.hw.pareto import Candidates, dominated_by, run_budget
from autonba.hw.space import DesignSpace, nearest
from autonba.hw.templates.base import ChunkTemplate

# budgets of the engine runs of a searched front, as fractions of the platform's (DSP, BRAM18K)
RUN_BUDGETS = ((1.0, 1.0), (0.5, 0.5), (0.25, 0.25), (1.0, 0.25), (0.25, 1.0))


class ChunkFronts:
    objectives: tuple[str, ...] = ("fps", "dsp", "bram")
    defaults: tuple[str, ...] = ("fps", "dsp", "bram")
    default_budget = 8192
    engine_share = 0.5  # of a searched front's budget, for the engine runs (the rest: the local search)

    def __init__(self, template: ChunkTemplate, space: DesignSpace | None = None):
        self.t = template
        self.space = space or template.space

    def exact(self, progress: bool | None, **options: Any) -> Candidates:
        fronts, evaluations = Exact(self.t, self.space, progress=progress, **options).fronts()
        return self._combine(fronts, math.ceil(evaluations / self.space.num_chunks),
                             {"chunk_evaluations": evaluations, "chunk_front_sizes": [len(f.cycles) for f in fronts]})

    def search(self, engine: str, budget: int | None, seed: int, progress: bool | None, **options: Any) -> Candidates:
        t, sp = self.t, self.space
        budget = budget or self.default_budget
        archive = _Archive(t, sp)
        per_run = run_budget(budget, self.engine_share, len(RUN_BUDGETS))
        used = 0
        for i, (fd, fb) in enumerate(RUN_BUDGETS):
            run = archive.observed(fd, fb)
            out = t.engines().get(engine)(run, sp, seed=seed + i, budget=per_run, progress=progress, **options).run()
            used += out.evaluations
            archive.flush()
        chunk_evals = archive.local_search((budget - used) * sp.num_chunks)
        used += math.ceil(chunk_evals / sp.num_chunks)
        return self._combine(archive.fronts, used, {"engine": engine, "runs": len(RUN_BUDGETS),
                                                   "local_search_chunk_evaluations": chunk_evals,
                                                   "chunk_front_sizes": [len(f.cycles) for f in archive.fronts]})

    def _combine(self, fronts: list[Front], evaluations: int, info: dict[str, Any]) -> Candidates:
        """The front of all combinations of the chunk fronts' points (see the module's docstring)."""
        t = self.t
        dsp_cap, bram_cap = t.budgets
        C, F = len(fronts), self.space.table.shape[1]
        designs = torch.zeros((0, C, F), dtype=torch.float64)
        if all(len(f.cycles) for f in fronts):
            taus = torch.unique(torch.cat([f.cycles for f in fronts]))
            taus = taus[taus >= max(float(f.cycles.min()) for f in fronts)]
            prev = torch.zeros((0, 2), dtype=torch.float64)
            found = []
            for tau in taus.tolist():
                r = reachable(fronts, tau, dsp_cap, bram_cap)
                if r is None:
                    continue
                pts = torch.stack(r[:2], 1)
                new = ~dominated_by(pts, prev)
                found.append(torch.stack([fronts[c].designs[r[2][new, c]] for c in range(C)], 1))
                prev = pts
            designs = torch.cat([designs, *found])
        ev = t.evaluate(designs)
        return Candidates(designs, {"fps": ev.fps, "dsp": ev.total_dsp, "bram": ev.total_bram}, evaluations, info)


class _Archive:
    """Per-chunk Pareto archives in (cycles, DSP, BRAM) of every chunk design evaluated, within the
    platform's budgets."""

    def __init__(self, template: ChunkTemplate, space: DesignSpace):
        self.t, self.sp = template, space
        self.fronts = [Front.empty(len(space.factors)) for _ in range(space.num_chunks)]
        self.explored = [torch.zeros((0, len(space.factors)), dtype=torch.float64) for _ in range(space.num_chunks)]
        # per chunk, what was evaluated since the last flush: (values (n, F), cycles, DSP, BRAM (n,))
        self.pending: list[list[tuple[torch.Tensor, ...]]] = [[] for _ in range(space.num_chunks)]

    def observed(self, dsp_share: float, bram_share: float) -> ChunkTemplate:
        """A copy of the template with its budgets scaled, whose evaluations all reach the archive."""
        t = self.t
        run = copy.copy(t)
        run.platform = t.platform.model_copy(update={"dsp": max(1, round(t.platform.dsp * dsp_share)),
                                                      "bram18k": max(1, round(t.platform.bram18k * bram_share))})

        def evaluate(vals: torch.Tensor, layers: bool = False):
            ev = type(t).evaluate(run, vals, layers)
            for c in range(self.sp.num_chunks):
                self.pending[c].append((vals[:, c], ev.chunk_cycles[:, c], ev.chunk_dsp[:, c], ev.chunk_bram[:, c]))
            return ev

        def evaluate_chunk(chunk: int, vals: torch.Tensor):
            out = type(t).evaluate_chunk(run, chunk, vals)
            self.pending[chunk].append((vals, *out))
            return out

        vars(run).update(evaluate=evaluate, evaluate_chunk=evaluate_chunk)
        return run

    def flush(self) -> None:
        """Merge what was observed since the last flush into the archives."""
        dsp_cap, bram_cap = self.t.budgets
        for c, parts in enumerate(self.pending):
            if parts:
                vals, cyc, dsp, bram = (torch.cat(x) for x in zip(*parts))
                self.fronts[c] = self.fronts[c].merge(cyc, dsp, bram, vals, dsp_cap, bram_cap)
                parts.clear()

    def local_search(self, chunk_budget: int) -> int:
        """Pareto local search in every chunk, round by round, while ``chunk_budget`` chunk evaluations last:
        the neighbours of each archived point not yet explored are evaluated and merged. Returns the chunk
        evaluations spent."""
        spent = 0
        while True:
            moves = [self._neighbours(c) for c in range(self.sp.num_chunks)]
            n = sum(len(m) for m in moves)
            if n == 0 or spent + n > chunk_budget:
                return spent
            for c, vals in enumerate(moves):
                if len(vals):
                    self.pending[c].append((vals, *self.t.evaluate_chunk(c, vals)))
            spent += n
            self.flush()

    def _neighbours(self, c: int) -> torch.Tensor:
        """Factor values (n, F) of the moves around chunk ``c``'s archived points not yet explored (marked
        explored now): each factor to each of its values, and each (tile, buffer tile) pair to each value of
        the buffer tile together, repaired to the space's constraints."""
        sp, front = self.sp, self.fronts[c]
        seen = (front.designs.unsqueeze(1) == self.explored[c].unsqueeze(0)).all(-1).any(-1)
        todo = front.designs[~seen]
        if len(todo) == 0:
            return todo
        self.explored[c] = torch.cat([self.explored[c], todo])
        table, valid = sp.table[c], sp.valid[c]                             # (F, V)
        F, V = table.shape
        base = nearest(table, valid, todo)                                  # (n, F)
        moves = []
        for f in range(F):
            for v in torch.nonzero(valid[f]).flatten().tolist():
                m = base.clone()
                m[:, f] = v
                child = [k for k, p in enumerate(sp.parent) if p == f]
                for k in child:  # the tile follows its buffer tile: the largest allowed value <= it
                    ok = valid[k] & (table[k] <= table[f, v])
                    m2 = m.clone()
                    m2[:, k] = int(torch.where(ok, table[k], torch.full_like(table[k], -1.0)).argmax())
                    moves.append(m2)
                moves.append(m)
        idx = torch.cat(moves)
        full = torch.zeros((len(idx), sp.num_chunks, F), dtype=torch.long)
        full[:, c] = idx
        idx = torch.unique(sp.repair(full)[:, c], dim=0)
        return table.gather(1, idx.T).T

