"""The interface of accelerator search engines and what they return."""
from __future__ import annotations

import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, ValidationError

from autonba.config import format_validation_error
from autonba.errors import AutonbaError
from autonba.hw.template import HardwareTemplate


class EngineOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass
class Outcome:
    """What an engine found: the best feasible design (factor values) and its objective ``score``,
    or None and infinity."""

    best: Any
    score: float
    evaluations: int
    seconds: float
    trace: list[tuple[int, float]] = field(default_factory=list)  # (evaluations, template.trace_figure(best))
    info: dict[str, Any] = field(default_factory=dict)


class Engine(ABC):
    """Searches ``space`` (the template's own, or a copy with pinned factors) for the design of
    ``template`` with the smallest objective among those that fit its budgets.

    ``budget`` is a number of design evaluations (None: the engine's default). ``warm_start`` is a
    design (factor values) to start from, where the engine can use one."""

    name: ClassVar[str] = ""
    Options: ClassVar[type[EngineOptions]] = EngineOptions
    default_budget: ClassVar[int] = 20_000

    def __init__(self, template: HardwareTemplate, space: Any = None, seed: int = 0,
                 budget: int | None = None, warm_start: Any = None,
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
    """The best feasible design seen so far (factor values) and the trace of improvements; changed
    only by :meth:`offer` and :meth:`propose`. ``figure`` turns an objective into what the trace records."""

    def __init__(self, figure: Callable[[float], float] = float):
        self.figure = figure
        self.best: Any = None
        self.score = float("inf")
        self.trace: list[tuple[int, float]] = []

    @classmethod
    def at(cls, score: float, design: Any, figure: Callable[[float], float] = float) -> Incumbent:
        """An incumbent that starts from a design with a known objective, without a trace entry."""
        inc = cls(figure)
        inc.best, inc.score = design, score
        return inc

    def offer(self, vals: Any, objective: torch.Tensor, feasible: torch.Tensor, evaluations: int) -> bool:
        """Consider a batch of evaluated designs (values, objective and feasibility (B,)); True if the
        incumbent improved."""
        score = torch.where(feasible, objective, torch.full_like(objective, float("inf")))
        i = int(torch.argmin(score))
        return self.propose(float(score[i]), take(vals, i), evaluations)

    def propose(self, score: float, design: Any, evaluations: int) -> bool:
        """Consider one design (values) with its objective; True if the incumbent improved."""
        if score < self.score:
            self.score = score
            self.best = batch_map(torch.clone, design)
            self.trace.append((evaluations, self.figure(score)))
            return True
        return False

    def outcome(self, evaluations: int, **info: Any) -> Outcome:
        return Outcome(self.best, self.score, evaluations, 0.0, self.trace, info)


def batch_map(f: Callable[..., torch.Tensor], *batches: Any) -> Any:
    """``f`` applied to a batch of designs (a tensor, or a tuple of tensors part by part)."""
    if isinstance(batches[0], tuple):
        return tuple(f(*parts) for parts in zip(*batches))
    return f(*batches)


def take(batch: Any, rows: int | slice | torch.Tensor) -> Any:
    """Rows of a batch of designs."""
    return batch_map(lambda x: x[rows], batch)


def join(a: Any, b: Any) -> Any:
    """Two batches of designs, one after the other."""
    return batch_map(lambda x, y: torch.cat([x, y]), a, b)


def penalised(objective: torch.Tensor, overflow: torch.Tensor, penalty: float) -> torch.Tensor:
    """Objective x (1 + penalty x relative budget overflow), so that designs over budget still rank;
    a non-finite objective (a design that cannot run at all) ranks below every finite one."""
    finite = torch.isfinite(objective)
    worst = objective[finite].max() * 10 if bool(finite.any()) else torch.tensor(1.0, dtype=torch.float64)
    return torch.where(finite, objective, worst) * (1 + penalty * overflow)


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
