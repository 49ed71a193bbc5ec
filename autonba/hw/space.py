"""Discrete design spaces of chunk-based templates, as tensors the engines share.

A design assigns every chunk one value per design factor. Designs travel as index tensors
``(B, C, F)`` (batch, chunk, factor) into the per-chunk value tables; ``values()`` turns them
into the factor values the cost models read. Constraints ``child <= parent`` (a parallel tile
never exceeds its buffer tile) are honoured by masking while sampling, never by rejection.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch

from autonba.errors import AutonbaError
from autonba.hw.workload import MAX_SIZE, integral


class DesignSpace:
    def __init__(self, factors: tuple[str, ...], constraints: tuple[tuple[str, str], ...],
                 chunks: Mapping[str, Mapping[str, Sequence[float]]], closed: tuple[str, ...] = ()):
        self.factors = tuple(factors)
        self.closed = tuple(closed)  # factors whose values must come from the choice lists
        self.constraints = tuple(constraints)
        self.chunk_names = list(chunks)
        self.choices = {c: {f: [float(v) for v in chunks[c][f]] for f in factors} for c in chunks}
        fidx = {f: i for i, f in enumerate(factors)}
        self.parent = [-1] * len(factors)
        for child, par in constraints:
            if fidx[par] > fidx[child]:
                raise ValueError(f"factor '{par}' must come before '{child}'")
            self.parent[fidx[child]] = fidx[par]
        C, F = len(chunks), len(factors)
        V = max(len(vals) for c in chunks.values() for vals in c.values())
        self.table = torch.full((C, F, V), float("nan"), dtype=torch.float64)
        self.valid = torch.zeros((C, F, V), dtype=torch.bool)
        for ci, c in enumerate(self.chunk_names):
            for fi, f in enumerate(factors):
                vals = self.choices[c][f]
                if not vals:
                    raise ValueError(f"chunk {c}: factor {f} has no values")
                self.table[ci, fi, :len(vals)] = torch.tensor(vals, dtype=torch.float64)
                self.valid[ci, fi, :len(vals)] = True
        self.num_values = self.valid.sum(-1)  # (C, F)

    # ---- shapes and conversions -------------------------------------------------------
    @property
    def num_chunks(self) -> int:
        return len(self.chunk_names)

    def values(self, idx: torch.Tensor) -> torch.Tensor:
        """Index tensor (..., C, F) -> factor values (..., C, F), float64."""
        tab = self.table.expand(*idx.shape[:-2], *self.table.shape)
        return torch.gather(tab, -1, idx.unsqueeze(-1)).squeeze(-1)

    def chunk_values(self, chunk: int, idx: torch.Tensor) -> torch.Tensor:
        """Indices (n, F) of one chunk's designs -> factor values (n, F)."""
        return self.table[chunk].gather(1, idx.T).T

    def fix(self, pins: dict[str, float]) -> DesignSpace:
        """A copy in which each pinned factor takes one value in every chunk."""
        chunks = {c: dict(v) for c, v in self.choices.items()}
        for f, val in pins.items():
            if f not in self.factors:
                raise AutonbaError(f"--fix: unknown design factor '{f}'; allowed: {', '.join(self.factors)}")
            for c in chunks:
                if not integral(val) or val not in chunks[c][f]:
                    raise AutonbaError(f"--fix {f}={val}: not allowed in chunk {c}; allowed: "
                                       f"{_fmt(chunks[c][f])}")
                chunks[c][f] = [float(val)]
        return DesignSpace(self.factors, self.constraints, chunks, self.closed)

    def parse(self, designs: list[dict[str, Any]]) -> torch.Tensor:
        """Designs ``{"chunks": {name: {factor: value}}}`` -> factor values (B, C, F), with clear errors.

        A factor with several choices accepts any integer from 1 to ``MAX_SIZE`` (a user may evaluate
        tiles the search space does not list); a factor with a fixed structural choice (``comp_mode`` of
        a depthwise chunk, ``Tn = 1`` there) must take an allowed value. Constraints always hold."""
        out = torch.zeros((len(designs), self.num_chunks, len(self.factors)), dtype=torch.float64)
        for b, d in enumerate(designs):
            where = f"design {b}" if len(designs) > 1 else "design"
            chunks = d.get("chunks") if isinstance(d, dict) else None
            if not isinstance(chunks, dict):
                raise AutonbaError(f"{where}: expected an object with a 'chunks' mapping of chunk name -> factors")
            unknown = [c for c in chunks if c not in self.chunk_names]
            if unknown:
                raise AutonbaError(f"{where}: unknown chunks {unknown[:5]}; the workload's chunks are "
                                   f"{', '.join(self.chunk_names)}")
            for ci, c in enumerate(self.chunk_names):
                if c not in chunks:
                    raise AutonbaError(f"{where}: chunk '{c}' is missing; the workload needs chunks "
                                       f"{', '.join(self.chunk_names)}")
                cd = chunks[c]
                if not isinstance(cd, dict):
                    raise AutonbaError(f"{where}: chunk '{c}' must map factor names to values")
                bad = set(map(str, cd)) - set(self.factors)
                if bad:
                    raise AutonbaError(f"{where}: chunk '{c}': unknown factors {sorted(bad)}; "
                                       f"allowed: {', '.join(self.factors)}")
                for fi, f in enumerate(self.factors):
                    if f not in cd:
                        raise AutonbaError(f"{where}: chunk '{c}' lacks factor '{f}'")
                    v, vals = cd[f], self.choices[c][f]
                    if f in self.closed or len(vals) == 1:
                        ok, allowed = integral(v) and v in vals, _fmt(vals)
                    else:
                        ok, allowed = integral(v) and 1 <= v <= MAX_SIZE, f"an integer from 1 to {MAX_SIZE}"
                    if not ok:
                        raise AutonbaError(f"{where}: chunk '{c}': {f}={v!r} is not allowed; allowed: {allowed}")
                    out[b, ci, fi] = float(v)
                for child, par in self.constraints:
                    if cd[child] > cd[par]:
                        raise AutonbaError(f"{where}: chunk '{c}': {child}={cd[child]} exceeds {par}={cd[par]} "
                                           f"(a parallel tile must be <= its buffer tile)")
        return out

    def to_dicts(self, vals: torch.Tensor) -> list[dict[str, dict[str, int | float]]]:
        """Factor values (B, C, F) -> per design ``{chunk: {factor: value}}``."""
        return [{c: {f: _num(v) for f, v in zip(self.factors, row)} for c, row in zip(self.chunk_names, design)}
                for design in vals.tolist()]

    # ---- sampling -----------------------------------------------------------------------
    def sample(self, batch: int, logits: torch.Tensor | None = None, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Gumbel-max samples (B, C, F) honouring the constraints, and (when ``logits`` is given, shape
        (C, F, V)) the log-probability of each chunk's sample under the masked distribution, (B, C)."""
        C, F, V = self.table.shape
        base = torch.zeros((C, F, V), dtype=torch.float64) if logits is None else logits.detach() / temperature
        u = torch.rand((batch, C, F, V), generator=generator, dtype=torch.float64).clamp_(1e-12, 1 - 1e-12)
        noisy = base - torch.log(-torch.log(u))
        mask = self.valid.expand(batch, C, F, V).clone()
        idx = torch.zeros((batch, C, F), dtype=torch.long)
        chosen = torch.zeros((batch, C, F), dtype=torch.float64)
        for f in range(F):
            p = self.parent[f]
            if p >= 0:
                mask[:, :, f] &= self.table[:, f] <= chosen[:, :, p:p + 1]
            pick = noisy[:, :, f].masked_fill(~mask[:, :, f], float("-inf")).argmax(-1)
            idx[:, :, f] = pick
            chosen[:, :, f] = self.table[:, f].expand(batch, C, V).gather(-1, pick.unsqueeze(-1)).squeeze(-1)
        if logits is None:
            return idx, None
        lp = torch.log_softmax((logits / temperature).expand(batch, C, F, V).masked_fill(~mask, float("-inf")), -1)
        return idx, lp.gather(-1, idx.unsqueeze(-1)).squeeze(-1).sum(-1)

    # ---- what the shared engines need (random, evolution) -------------------------------
    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.sample(n, generator=generator)[0]

    def decode(self, idx: torch.Tensor) -> torch.Tensor:
        return self.values(idx)

    def encode(self, vals: torch.Tensor) -> torch.Tensor:
        """Indices (C, F) of the allowed values closest (in log scale) to a design's values, repaired."""
        return self.repair(nearest(self.table, self.valid, vals).unsqueeze(0))[0]

    def cross(self, a: torch.Tensor, b: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Whole chunk designs from either parent (chunk costs are separable)."""
        take_a = torch.rand((a.shape[0], self.num_chunks, 1), generator=generator) < 0.5
        return torch.where(take_a, a, b)

    def mutate(self, child: torch.Tensor, rate: float, generator: torch.Generator) -> torch.Tensor:
        fresh = self.draw(child.shape[0], generator)
        hit = torch.rand(child.shape, generator=generator) < rate
        return self.repair(torch.where(hit, fresh, child))

    def repair(self, idx: torch.Tensor) -> torch.Tensor:
        """Lower every child that exceeds its parent to the largest allowed value <= the parent."""
        vals = self.values(idx)
        idx = idx.clone()
        for child, par in enumerate(self.parent):
            if par < 0:
                continue
            limit = vals[..., par].unsqueeze(-1)                       # (..., C, 1)
            tab = self.table[:, child].expand(*idx.shape[:-1], -1)      # (..., C, V)
            ok = self.valid[:, child].expand_as(tab) & (tab <= limit)
            best = torch.where(ok, tab, torch.full_like(tab, -1.0)).argmax(-1)
            bad = vals[..., child] > vals[..., par]
            idx[..., child] = torch.where(bad, best, idx[..., child])
            vals = self.values(idx)
        return idx

    # ---- enumeration (exact engine) -----------------------------------------------------
    def _groups(self, chunk: int) -> list[tuple[list[int], torch.Tensor]]:
        """Factors joined by constraints, each with its valid index combinations."""
        F = len(self.factors)
        roots = list(range(F))
        for child, par in enumerate(self.parent):
            if par >= 0:
                roots[child] = roots[par]
        groups = []
        for r in sorted(set(roots)):
            members = [f for f in range(F) if roots[f] == r]
            ranges = [torch.arange(int(self.num_values[chunk, f])) for f in members]
            combos = torch.cartesian_prod(*ranges).reshape(-1, len(members))
            ok = torch.ones(len(combos), dtype=torch.bool)
            for j, f in enumerate(members):
                p = self.parent[f]
                if p >= 0:
                    pj = members.index(p)
                    ok &= self.table[chunk, f][combos[:, j]] <= self.table[chunk, p][combos[:, pj]]
            groups.append((members, combos[ok]))
        return groups

    def size(self, chunk: int) -> int:
        return math.prod(len(c) for _, c in self._groups(chunk))

    def enumerate(self, chunk: int, block: int = 1 << 16) -> Iterator[torch.Tensor]:
        """All valid designs of one chunk, as index blocks (n, F)."""
        groups = self._groups(chunk)
        sizes = [len(c) for _, c in groups]
        total = math.prod(sizes)
        for start in range(0, total, block):
            lin = torch.arange(start, min(start + block, total))
            out = torch.zeros((len(lin), len(self.factors)), dtype=torch.long)
            for (members, combos), n in zip(reversed(groups), reversed(sizes)):
                out[:, members] = combos[lin % n]
                lin = lin // n
            yield out


def gumbel_max(n: int, valid: torch.Tensor, logits: torch.Tensor | None, generator: torch.Generator | None,
               temperature: float) -> tuple[torch.Tensor, torch.Tensor | None]:
    """n hard Gumbel-max samples, indices (n, *valid.shape[:-1]), each factor choosing independently among
    its allowed values (``valid`` (..., F, V)); with ``logits`` (..., F, V), each sample's log-probability
    summed over the factors, (n, *valid.shape[:-2]). The samplers of the asic-array and flat spaces."""
    shape = (n, *valid.shape)
    base = torch.zeros(valid.shape, dtype=torch.float64) if logits is None else logits.detach() / temperature
    u = torch.rand(shape, generator=generator, dtype=torch.float64).clamp_(1e-12, 1 - 1e-12)
    idx = (base - torch.log(-torch.log(u))).masked_fill(~valid, float("-inf")).argmax(-1)
    if logits is None:
        return idx, None
    lp = torch.log_softmax((logits / temperature).masked_fill(~valid, float("-inf")), -1)
    lp = lp.expand(shape).gather(-1, idx.unsqueeze(-1)).squeeze(-1)
    return idx, lp.sum(-1)


def nearest(table: torch.Tensor, valid: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Indices of the allowed values (``valid``) of ``table`` (..., V) closest in log scale to given
    values (...); a value present in the table (such as 0, a code) is matched exactly."""
    dist = (torch.log(table.clamp(min=1e-9)) - torch.log(values.clamp(min=1e-9)).unsqueeze(-1)).abs()
    dist = torch.where(table == values.unsqueeze(-1), torch.full_like(dist, -1.0), dist)
    return torch.where(valid, dist, torch.full_like(dist, float("inf"))).argmin(-1)


def _num(v: float) -> int | float:
    return int(v) if float(v).is_integer() else v


def _fmt(vals: list[float]) -> str:
    return ", ".join(str(_num(v)) for v in vals)
