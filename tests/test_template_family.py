"""A third template family, defined here and nowhere else: a roofline-only "ideal accelerator" with two
design factors (MACs per cycle, DRAM bytes per cycle) under an area budget. Registering it is all it
takes for ``accel search``/``eval``, the shared and flat engines, the joint search and the report."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pytest
import torch
from pydantic import BaseModel, ConfigDict, Field
from test_joint import searched, tiny_config

from autonba.cli import main
from autonba.hw.engines.flat import FLAT_ENGINES
from autonba.hw.factor_space import FactorSpace
from autonba.hw.template import Costs, Figures, HardwareTemplate
from autonba.hw.templates import TEMPLATES
from autonba.hw.workload import Workload
from autonba.io import finite_or_null


class IdealPlatform(BaseModel):
    name: str = "ideal"
    clock_mhz: float = 1000.0
    pj_per_mac: float = 0.5
    pj_per_byte: float = 20.0

    @property
    def clock_hz(self) -> float:
        return self.clock_mhz * 1e6


class IdealOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    area_mm2: float = Field(2.0, gt=0)


@dataclass
class IdealResult:
    template: str
    workload: str
    feasible: bool
    fps: float
    latency_ms: float
    energy_uj: float
    area_mm2: float
    design: dict[str, Any]
    layers: list[dict[str, Any]]
    engine: str | None = None
    evaluations: int | None = None
    seconds: float | None = None
    trace: list[tuple[int, float]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return finite_or_null(asdict(self))

    def summary(self) -> dict[str, Any]:
        return {"template": self.template, "platform": "ideal", "engine": self.engine, "feasible": self.feasible,
                "area_mm2": self.area_mm2}

    def table(self) -> str:
        return f"ideal | {self.fps:,.0f} FPS | {self.area_mm2:.2f} mm2 | {self.design['factors']}"

    def metrics(self) -> dict[str, float]:
        return {"fps": self.fps, "latency_ms": self.latency_ms, "energy_uj": self.energy_uj,
                "edp_uj_ms": self.energy_uj * self.latency_ms, "area_mm2": self.area_mm2}

    @staticmethod
    def describe(summary: dict[str, Any]) -> str:
        return f"{summary['area_mm2']:.2f} mm2"

    @staticmethod
    def plot_layers(doc: dict[str, Any], plt) -> Any:
        fig, ax = plt.subplots()
        ax.bar(range(len(doc["layers"])), [x["cycles"] for x in doc["layers"]])
        return fig

    @staticmethod
    def plot_resources(doc: dict[str, Any], plt) -> Any:
        fig, ax = plt.subplots()
        ax.barh(0, doc["area_mm2"])
        return fig


class Ideal(HardwareTemplate):
    """Per layer max(MACs / macs_per_cycle, DRAM bytes / bytes_per_cycle) cycles; area linear in both."""

    name = "ideal"
    Options = IdealOptions
    Result = IdealResult
    default_platform = "ideal"
    metric_names = ("fps", "latency_ms", "energy_uj", "edp_uj_ms", "area_mm2")

    def __init__(self, workload: Workload, platform: IdealPlatform, **options: Any):
        self.workload, self.platform, self.options = workload, platform, IdealOptions(**options)
        self.space = FactorSpace({"macs_per_cycle": [2 ** i for i in range(4, 12)],
                                  "bytes_per_cycle": [2 ** i for i in range(0, 7)]})
        L = workload.layers
        self.macs = torch.tensor([x.macs for x in L], dtype=torch.float64)
        self.bytes = torch.tensor([(x.weights + x.in_ch * x.in_h * x.in_w + x.out_ch * x.out_h * x.out_w) * x.bits / 8
                                   for x in L], dtype=torch.float64)

    @classmethod
    def engines(cls):
        return FLAT_ENGINES

    @classmethod
    def load_platform(cls, name_or_path: str) -> IdealPlatform:
        return IdealPlatform()

    @classmethod
    def shipped_platforms(cls) -> list[str]:
        return ["ideal"]

    @property
    def clock_hz(self) -> float:
        return self.platform.clock_hz

    def _layers(self, vals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cycles (B, L), energy pJ (B, L) and area (B,) of designs (B, 2)."""
        cycles = torch.maximum(self.macs / vals[:, :1], self.bytes / vals[:, 1:])
        energy = (self.macs * self.platform.pj_per_mac + self.bytes * self.platform.pj_per_byte).expand_as(cycles)
        return cycles, energy, 0.002 * vals[:, 0] + 0.05 * vals[:, 1]

    def cost(self, vals: torch.Tensor) -> Costs:
        cycles, _, area = self._layers(vals)
        return Costs(cycles.sum(-1), area <= self.options.area_mm2, (area / self.options.area_mm2 - 1).clamp(min=0))

    def trace_figure(self, objective: float) -> float:
        return self.clock_hz / objective

    def figures(self, design: torch.Tensor) -> Figures:
        cycles, energy, area = self._layers(design.unsqueeze(0))
        c, e = float(cycles.sum()), float(energy.sum())
        lat_ms = c / self.clock_hz * 1e3
        return Figures(cycles[0], c, energy[0], e, bool(area[0] <= self.options.area_mm2),
                       {"fps": self.clock_hz / c, "latency_ms": lat_ms, "energy_uj": e * 1e-6,
                        "edp_uj_ms": e * 1e-6 * lat_ms, "area_mm2": float(area[0])})

    def result(self, design: torch.Tensor, **search: Any) -> IdealResult:
        f = self.figures(design)
        layers = [{"name": x.name, "macs": x.macs, "cycles": float(c), "compute_cycles": float(c)}
                  for x, c in zip(self.workload.layers, f.layer_cycles)]
        return IdealResult(self.name, self.workload.name, f.feasible, f.fps, f.metrics["latency_ms"],
                           f.metrics["energy_uj"], f.metrics["area_mm2"], self.to_json(design), layers, **search)

    def budget_text(self) -> str:
        return f"the area budget of {self.options.area_mm2:g} mm2"

    def parse(self, designs: list[Any]) -> list[torch.Tensor]:
        return self.space.parse(designs)

    def to_json(self, design: torch.Tensor) -> dict[str, Any]:
        return self.space.to_json(design)

    def adapt(self, design: dict[str, Any]) -> torch.Tensor:
        return self.space.parse([design])[0]


@pytest.fixture
def ideal():
    TEMPLATES.register("ideal", Ideal)
    yield Ideal
    TEMPLATES.unregister("ideal")


def test_accel_search_and_eval_with_every_engine(ideal, tmp_path, capsys):
    found = {}
    for engine in ("exact", "das", "random", "evolution"):
        out = tmp_path / f"{engine}.json"
        assert main(["accel", "search", "--network", "mobilenetv2-cifar", "--template", "ideal", "--engine", engine,
                     "--budget", "512", "--out", str(out)]) == 0
        found[engine] = json.loads(out.read_text())
        assert found[engine]["feasible"] and found[engine]["area_mm2"] <= 2.0
    best = found["exact"]["fps"]
    assert all(r["fps"] <= best * (1 + 1e-12) for r in found.values())
    assert found["das"]["fps"] == pytest.approx(best)            # 56 designs: the searches find the optimum
    assert main(["accel", "eval", "--network", "mobilenetv2-cifar", "--template", "ideal",
                 "--design", str(tmp_path / "das.json"), "--out", str(tmp_path / "eval.json")]) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["fps"] == found["das"]["fps"]
    capsys.readouterr()
    assert main(["accel", "search", "--network", "mobilenetv2-cifar", "--template", "ideal", "--fix",
                 "macs_per_cycle=3"]) == 2
    assert "--fix macs_per_cycle=3: not allowed; allowed: 16, 32" in capsys.readouterr().err
    assert main(["accel", "list"]) == 0
    assert "template ideal: platforms ideal (default ideal); engines das, evolution, exact, random" in \
        capsys.readouterr().out


def test_joint_search_and_report(ideal, tmp_path):
    """A joint search with an energy spec (the family has an energy model), then the report."""
    cfg = tiny_config(tmp_path, hardware={"template": "ideal", "engine_budget": 128, "final_budget": 256},
                      target={"energy_uj": 50.0}, search={"epochs": 2, "warmup_epochs": 1})
    run, r, acc = searched(tmp_path, cfg)
    assert acc["template"] == "ideal" and r["target_energy_uj"] == 50.0
    assert r["meets_target"] == (acc["feasible"] and acc["energy_uj"] <= 50.0)
    log = [json.loads(line) for line in (run / "search_log.jsonl").read_text().splitlines()]
    assert all("energy_uj" in x and x["fps"] > 0 for x in log)
    assert main(["report", str(run)]) == 0
    assert "mm2" in (run / "report" / "summary.md").read_text()
