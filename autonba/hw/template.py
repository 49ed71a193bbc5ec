"""The interface every hardware template family implements, and what the rest of autonba sees of one.

A family (the FPGA chunk pipelines, the ASIC array, one a user registers) is a class bound to a
workload and a platform. The accelerator API, the joint search, the report and the CLI talk only
to this interface: none of them asks which family it has.

Designs come in three forms, each the family's own: indices into its design space (what engines
sample and mutate), factor values (what its cost model reads) and JSON (what users read and
write). A batch of indices or values is a tensor or a tuple of tensors, batch first.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import torch
from pydantic import BaseModel

from autonba.hw.workload import Workload

if TYPE_CHECKING:
    from autonba.hw.pareto import FrontModel
    from autonba.registry import Registry

# the figures a family may report, and which way is better; a spec bounds one of them
METRICS: dict[str, Literal["max", "min"]] = {"fps": "max", "latency_ms": "min", "energy_uj": "min",
                                             "edp_uj_ms": "min", "area_mm2": "min"}


@dataclass
class Costs:
    """What engines read of B evaluated designs: the objective they minimise (B,), whether each design
    fits the platform's budgets (B,), and by how much it overflows them (B,), relative, >= 0."""

    objective: torch.Tensor
    feasible: torch.Tensor
    overflow: torch.Tensor


@dataclass
class Figures:
    """One design on one workload, as the joint search reads it: cycles and energy (pJ) per layer (L,)
    and in total (energy None where the family has no energy model), feasibility and the family's
    metrics (``metric_names``)."""

    layer_cycles: torch.Tensor
    cycles: float
    layer_energy: torch.Tensor | None
    energy: float | None
    feasible: bool
    metrics: dict[str, float]

    @property
    def fps(self) -> float:
        return self.metrics["fps"]


class DesignSpace(Protocol):
    """What the shared engines (random, evolution, and the flat das and exact) need of a design space."""

    def draw(self, n: int, generator: torch.Generator) -> Any:
        """n designs drawn uniformly among the allowed ones (indices)."""

    def decode(self, idx: Any) -> Any:
        """Indices -> factor values."""

    def encode(self, vals: Any) -> Any:
        """One design's factor values -> the indices of the nearest allowed design."""

    def cross(self, a: Any, b: Any, generator: torch.Generator) -> Any:
        """Uniform crossover of two batches of parents, at the granularity the costs separate."""

    def mutate(self, child: Any, rate: float, generator: torch.Generator) -> Any:
        """Resample each factor with probability ``rate``; the result honours the space's constraints."""

    def fix(self, pins: dict[str, Any]) -> DesignSpace:
        """A copy in which each pinned factor takes one value."""


class HardwareResult(Protocol):
    """The full report of one design (``template.result``): what users read."""

    template: str
    feasible: bool
    fps: float
    design: dict[str, Any]
    layers: list[dict[str, Any]]  # per workload layer: at least name, macs, compute_cycles (no memory stall)

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON data (a non-finite figure is null)."""

    def summary(self) -> dict[str, Any]:
        """The few figures a run's result.json keeps of its accelerator."""

    def table(self) -> str:
        """A short human-readable summary."""

    def metrics(self) -> dict[str, float]:
        """The family's metrics (names from ``METRICS``)."""

    @staticmethod
    def describe(summary: dict[str, Any]) -> str:
        """The hardware of a run's ``summary()`` (read back from result.json), in a few words."""

    @staticmethod
    def plot_layers(doc: dict[str, Any], plt: Any) -> Any:
        """A matplotlib figure of the per-layer costs of a result read back from its JSON."""

    @staticmethod
    def plot_resources(doc: dict[str, Any], plt: Any) -> Any:
        """A matplotlib figure of what a result (its JSON) spends of the platform's budgets."""


class HardwareTemplate(ABC):
    """A template family bound to a workload and a platform (its ``Options`` as keyword arguments).

    Class attributes name the family's pieces; instance methods cost and convert its designs."""

    name: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]]
    Result: ClassVar[type[HardwareResult]]
    default_platform: ClassVar[str]
    metric_names: ClassVar[tuple[str, ...]]  # the figures it reports, names from METRICS, "fps" first

    workload: Workload
    platform: Any
    space: Any

    @abstractmethod
    def __init__(self, workload: Workload, platform: Any, **options: Any) -> None:
        """Bind the template to a workload and a loaded platform, with its ``Options`` as keywords."""

    @classmethod
    @abstractmethod
    def engines(cls) -> Registry:
        """The family's search engines by name (``--engine das`` is the family's das)."""

    def front_model(self, space: Any = None) -> FrontModel:
        """The family's Pareto fronts over ``space`` (default: its own), for ``accel pareto``; a family
        without one says so."""
        from autonba.errors import AutonbaError
        raise AutonbaError(f"template '{self.name}' has no Pareto-front model; fronts are available for the chunk "
                           "templates (fpga-chunk, fpga-legacy) and asic-array")

    # ---- platforms ----------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def load_platform(cls, name_or_path: str) -> Any:
        """A shipped platform by name, or one from a YAML file."""

    @classmethod
    @abstractmethod
    def shipped_platforms(cls) -> list[str]:
        """The names ``load_platform`` knows."""

    @property
    @abstractmethod
    def clock_hz(self) -> float:
        ...

    # ---- costing --------------------------------------------------------------------------------
    @abstractmethod
    def cost(self, vals: Any) -> Costs:
        """Objective, feasibility and overflow of a batch of designs (factor values)."""

    def trace_figure(self, objective: float) -> float:
        """The figure an engine's trace records for an objective (the objective itself unless a family
        reports something users read more easily)."""
        return objective

    @abstractmethod
    def figures(self, design: Any) -> Figures:
        """Per-layer cycles and energy and the metrics of one design (factor values)."""

    @abstractmethod
    def result(self, design: Any, **search: Any) -> HardwareResult:
        """The full report of one design (factor values); ``search`` adds engine, evaluations, ..."""

    @abstractmethod
    def budget_text(self) -> str:
        """What a design must fit, for messages: 'the budgets of zc706 (900 DSP, 1090 BRAM18K)'."""

    # ---- design files ---------------------------------------------------------------------------
    @abstractmethod
    def parse(self, designs: list[Any]) -> list[Any]:
        """Designs in their JSON form -> factor values, one per design; an error names what is wrong."""

    @abstractmethod
    def to_json(self, design: Any) -> dict[str, Any]:
        """One design (factor values) in its JSON form."""

    @abstractmethod
    def adapt(self, design: dict[str, Any]) -> Any:
        """A design in JSON form found for another workload (another single path of the supernet),
        carried over to this one and snapped to this space: factor values."""


def worst(metric: str) -> float:
    """The value of a metric that meets no spec (no design found)."""
    return 0.0 if METRICS[metric] == "max" else math.inf
