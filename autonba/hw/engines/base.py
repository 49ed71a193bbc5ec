"""The interface of accelerator search engines and what they return."""
from __future__ import annotations

import sys
import time
from abc import ABC, abstractmethod
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
