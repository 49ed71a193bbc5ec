"""The interface of accelerator search engines and what they return."""
from __future__ import annotations

import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, ValidationError

from autonba.config import format_validation_error
from autonba.errors import AutonbaError
from autonba.hw.space import DesignSpace
from autonba.hw.templates.base import Template


class EngineOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass
class Outcome:
    """What an engine found: the best feasible design (factor values (C, F)) or None."""

    best: torch.Tensor | None
    bottleneck: float
    evaluations: int
    seconds: float
    trace: list[tuple[int, float]] = field(default_factory=list)  # (evaluations, best fps so far)
    info: dict[str, Any] = field(default_factory=dict)


class Engine(ABC):
    """Searches ``space`` for the design of ``template`` with the smallest bottleneck under its budgets.

    ``budget`` is a number of design evaluations (None: the engine's default). ``warm_start`` is a
    design (values (C, F)) to start from, where the engine can use one."""

    name: ClassVar[str] = ""
    Options: ClassVar[type[EngineOptions]] = EngineOptions
    default_budget: ClassVar[int] = 20_000

    def __init__(self, template: Template, space: DesignSpace | None = None, seed: int = 0,
                 budget: int | None = None, warm_start: torch.Tensor | None = None,
                 progress: bool | None = None, **options: Any):
        self.template = template
        self.space = space or template.space
        self.seed = seed
        self.budget = int(budget) if budget is not None else self.default_budget
        if self.budget <= 0:
            raise AutonbaError(f"budget must be a positive number of evaluations, got {budget}")
        self.warm_start = warm_start
        self.progress = sys.stderr.isatty() if progress is None else progress
        try:
            self.options = self.Options(**options)
        except ValidationError as e:
            raise AutonbaError(f"engine '{self.name}' options: {format_validation_error(e)}; "
                               f"allowed options: {', '.join(self.Options.model_fields)}") from None
        self.generator = torch.Generator().manual_seed(seed)

    def run(self) -> Outcome:
        t0 = time.perf_counter()
        out = self._run()
        out.seconds = time.perf_counter() - t0
        return out

    @abstractmethod
    def _run(self) -> Outcome:
        ...

    def progress_bar(self, total: int, desc: str):
        from tqdm import tqdm
        return tqdm(total=total, desc=desc, unit="eval", disable=not self.progress, leave=False,
                    dynamic_ncols=True, file=sys.stderr)

    def batches(self, size: int, desc: str, start: int = 0) -> Iterator[tuple[int, int]]:
        """Batch sizes (at most ``size``) that take the evaluations from ``start`` to the budget, with a
        progress bar: yields (batch size, evaluations once the batch is done)."""
        done = start
        with self.progress_bar(self.budget, desc) as bar:
            bar.update(start)
            while done < self.budget:
                n = min(size, self.budget - done)
                done += n
                bar.update(n)
                yield n, done


class Incumbent:
    """The best feasible full design seen so far."""

    def __init__(self, clock_hz: float):
        self.clock_hz = clock_hz
        self.best: torch.Tensor | None = None
        self.bottleneck = float("inf")
        self.trace: list[tuple[int, float]] = []

    def offer(self, vals: torch.Tensor, bottleneck: torch.Tensor, feasible: torch.Tensor, evaluations: int) -> bool:
        """Consider a batch of evaluated designs (values (B, C, F)); True if the incumbent improved."""
        if not bool(feasible.any()):
            return False
        score = torch.where(feasible, bottleneck, torch.full_like(bottleneck, float("inf")))
        i = int(torch.argmin(score))
        if float(score[i]) < self.bottleneck:
            self.bottleneck = float(score[i])
            self.best = vals[i].clone()
            self.trace.append((evaluations, self.clock_hz / self.bottleneck))
            return True
        return False

    def outcome(self, evaluations: int, **info: Any) -> Outcome:
        return Outcome(self.best, self.bottleneck, evaluations, 0.0, self.trace, info)


class Adam:
    """Adam on one tensor (torch.optim's first step imports the compiler stack: seconds per process)."""

    def __init__(self, param: torch.Tensor, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.p, self.lr, self.b1, self.b2, self.eps = param, lr, betas[0], betas[1], eps
        self.m = torch.zeros_like(param)
        self.v = torch.zeros_like(param)
        self.t = 0

    @torch.no_grad()
    def step(self, grad: torch.Tensor) -> None:
        self.t += 1
        self.m.mul_(self.b1).add_(grad, alpha=1 - self.b1)
        self.v.mul_(self.b2).addcmul_(grad, grad, value=1 - self.b2)
        m_hat = self.m / (1 - self.b1 ** self.t)
        v_hat = self.v / (1 - self.b2 ** self.t)
        self.p.sub_(self.lr * m_hat / (v_hat.sqrt() + self.eps))


def nearest(table: torch.Tensor, valid: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Indices of the allowed values (``valid``) of ``table`` (..., V) closest in log scale to given
    values (...); a value present in the table (such as 0, a code) is matched exactly."""
    dist = (torch.log(table.clamp(min=1e-9)) - torch.log(values.clamp(min=1e-9)).unsqueeze(-1)).abs()
    dist = torch.where(table == values.unsqueeze(-1), torch.full_like(dist, -1.0), dist)
    return torch.where(valid, dist, torch.full_like(dist, float("inf"))).argmin(-1)
