"""A flat design space: one value per design factor, each from its own list. The space of a template
family whose design is a handful of global factors (no per-chunk or per-layer parts); the shared
engines and the flat ``das`` and ``exact`` (:mod:`autonba.hw.engines.flat`) search it.

Designs travel as index tensors (B, F) into the per-factor value table (F, V); ``values`` turns them
into the factor values (B, F) a cost model reads; the JSON form is ``{"factors": {name: value}}``.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch

from autonba.errors import AutonbaError
from autonba.hw.space import gumbel_max, nearest


class FactorSpace:
    def __init__(self, factors: dict[str, list[float]]):
        if not factors or any(not vals for vals in factors.values()):
            raise AutonbaError("a design space needs at least one factor, each with at least one value")
        self.factors = tuple(factors)
        self.choices = {f: [float(v) for v in vals] for f, vals in factors.items()}
        V = max(len(v) for v in self.choices.values())
        self.table = torch.full((len(factors), V), float("nan"), dtype=torch.float64)
        self.valid = torch.zeros((len(factors), V), dtype=torch.bool)
        for i, vals in enumerate(self.choices.values()):
            self.table[i, :len(vals)] = torch.tensor(vals, dtype=torch.float64)
            self.valid[i, :len(vals)] = True

    def values(self, idx: torch.Tensor) -> torch.Tensor:
        """Indices (B, F) -> factor values (B, F), float64."""
        return self.table.expand(idx.shape[0], -1, -1).gather(-1, idx.unsqueeze(-1)).squeeze(-1)

    def size(self) -> int:
        return math.prod(len(v) for v in self.choices.values())

    # ---- sampling and the shared engines' operators ------------------------------------
    def sample(self, n: int, logits: torch.Tensor | None = None, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Gumbel-max samples (n, F) and, with ``logits`` (F, V), their log-probabilities (n,)."""
        return gumbel_max(n, self.valid, logits, generator, temperature)

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.sample(n, generator=generator)[0]

    def decode(self, idx: torch.Tensor) -> torch.Tensor:
        return self.values(idx)

    def encode(self, vals: torch.Tensor) -> torch.Tensor:
        """Indices (F,) of the allowed values nearest (in log scale) to one design's values (F,)."""
        return nearest(self.table, self.valid, vals)

    def cross(self, a: torch.Tensor, b: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return torch.where(torch.rand(a.shape, generator=generator) < 0.5, a, b)

    def mutate(self, child: torch.Tensor, rate: float, generator: torch.Generator) -> torch.Tensor:
        fresh = self.draw(child.shape[0], generator)
        return torch.where(torch.rand(child.shape, generator=generator) < rate, fresh, child)

    def enumerate(self, block: int = 1 << 16) -> Iterator[torch.Tensor]:
        """Every design, as index blocks (n, F)."""
        counts = [len(v) for v in self.choices.values()]
        for start in range(0, self.size(), block):
            lin = torch.arange(start, min(start + block, self.size()))
            out = torch.zeros((len(lin), len(counts)), dtype=torch.long)
            for f in reversed(range(len(counts))):
                out[:, f] = lin % counts[f]
                lin = lin // counts[f]
            yield out

    # ---- pins, files ------------------------------------------------------------------
    def fix(self, pins: dict[str, Any]) -> FactorSpace:
        """A copy in which each pinned factor takes one value."""
        choices = dict(self.choices)
        for f, v in pins.items():
            if f not in choices:
                raise AutonbaError(f"--fix: unknown design factor '{f}'; allowed: {', '.join(self.factors)}")
            if v not in choices[f]:
                raise AutonbaError(f"--fix {f}={v}: not allowed; allowed: {_fmt(choices[f])}")
            choices[f] = [float(v)]
        return FactorSpace(choices)

    def parse(self, designs: list[Any]) -> list[torch.Tensor]:
        """Designs ``{"factors": {name: value}}`` -> factor values (F,) each, every value from its list."""
        out = []
        for b, d in enumerate(designs):
            where = f"design {b}" if len(designs) > 1 else "design"
            given = d.get("factors") if isinstance(d, dict) else None
            if not isinstance(given, dict) or set(given) != set(self.factors):
                raise AutonbaError(f"{where}: expected {{\"factors\": {{...}}}} with exactly the factors "
                                   f"{', '.join(self.factors)}")
            for f in self.factors:
                v = given[f]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or v not in self.choices[f]:
                    raise AutonbaError(f"{where}: {f}={v!r} is not allowed; allowed: {_fmt(self.choices[f])}")
            out.append(torch.tensor([float(given[f]) for f in self.factors], dtype=torch.float64))
        return out

    def to_json(self, vals: torch.Tensor) -> dict[str, Any]:
        return {"factors": {f: _num(v) for f, v in zip(self.factors, vals.tolist())}}


def _num(v: float) -> int | float:
    return int(v) if float(v).is_integer() else v


def _fmt(vals: list[float]) -> str:
    return ", ".join(str(_num(v)) for v in vals)
