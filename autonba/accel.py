"""Python API of the accelerator half (the CLI's ``autonba accel`` is a thin layer over it).

>>> from autonba import accel
>>> r = accel.search(network="mobilenetv2-cifar", bits=8, platform="zc706", engine="das", seed=0)
>>> r.fps, r.total_dsp
>>> a = accel.search(network="resnet18-cifar", template="asic-array", engine="das",
...                  template_options={"objective": "edp", "area_mm2": 4.0})
>>> a.edp_uj_ms, a.area_mm2
>>> m = accel.search(onnx="model.onnx")                  # or workload=onnx.load(...), or a Workload
>>> f = accel.pareto(network="resnet18", template="asic-array", objectives=["latency_ms", "energy_uj", "area_mm2"])
>>> f.values, f.designs, f.hypervolume()                 # the non-dominated designs (engine="exact": the exact front)
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, model_validator

from autonba.config import validate
from autonba.errors import AutonbaError
from autonba.hw.hardware import load_hardware, resolved_platform, search_template
from autonba.hw.onnx_import import import_onnx
from autonba.hw.pareto import ParetoFront, pareto_front
from autonba.hw.template import HardwareResult, HardwareTemplate
from autonba.hw.workload import Workload
from autonba.hw.zoo import WORKLOADS

SOURCES = ("file", "network", "arch", "onnx", "memory")


class WorkloadSource(BaseModel):
    """Exactly one of: a workload JSON ``file``, a zoo ``network`` (at ``bits``), an ``arch`` JSON, an
    ``onnx`` (or QONNX) model, or (``memory``) the name of a workload given to the Python API."""

    model_config = ConfigDict(extra="forbid")
    file: str | None = None
    network: str | None = None
    arch: str | None = None
    onnx: str | None = Field(None, description="an ONNX or QONNX model (its convolutions and linear layers)")
    memory: str | None = Field(None, description="the name of a Workload or onnx.ModelProto given to the Python API")
    bits: int = Field(8, ge=1, le=32, description="uniform bitwidth of a zoo network; an ONNX model's where it "
                                                  "states none")

    @model_validator(mode="after")
    def _one(self) -> WorkloadSource:
        given = [k for k in SOURCES if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of workload.file, workload.network, workload.arch, workload.onnx "
                             f"(got {', '.join(given) or 'none'})")
        return self

    def resolve(self) -> tuple[Workload, dict[str, Any] | None]:
        """The workload, and for an ONNX model what was imported (layers, operators not costed, bits)."""
        if self.file:
            return Workload.from_json(self.file), None
        if self.network:
            return WORKLOADS.get(self.network)(self.bits), None
        if self.onnx:
            imported = import_onnx(self.onnx, self.bits)
            return imported.workload, imported.summary()
        if self.memory:
            raise AutonbaError(f"workload '{self.memory}' was given to the Python API in memory; a config cannot "
                               "load it again (save it as a workload JSON or an ONNX file)")
        from autonba.nas.arch import Arch
        assert self.arch is not None  # exactly one source is given (validated)
        return Arch.load(self.arch).workload(), None

    def load(self) -> Workload:
        return self.resolve()[0]


class AccelConfig(BaseModel):
    """Everything an accelerator search or evaluation needs; saved next to every result."""

    model_config = ConfigDict(extra="forbid")
    workload: WorkloadSource
    template: str = "fpga-chunk"
    platform: str | None = Field(None, description="shipped name or YAML path (default: zc706, zc706-legacy "
                                                   "for fpga-legacy, the technology generic-45nm for asic-array)")
    template_options: dict[str, Any] = {}
    engine: str = "das"
    budget: int | None = Field(None, gt=0, description="design evaluations (default: the engine's)")
    engine_options: dict[str, Any] = {}
    fix: dict[str, StrictInt | StrictFloat] = {}
    seed: int = Field(0, ge=0, le=2 ** 32 - 1)

    def resolved_platform(self) -> str:
        return resolved_platform(self.template, self.platform)


def build_template(cfg: AccelConfig, workload: Workload | None = None) -> HardwareTemplate:
    cls, platform, options = load_hardware(cfg.template, cfg.platform, cfg.template_options)
    return cls(workload or cfg.workload.load(), platform, **options)


def _config(workload: Any = None, **kw: Any) -> tuple[AccelConfig, Workload | None]:
    """The config of an API call, and the workload given in memory (a ``Workload``, or an
    ``onnx.ModelProto`` imported here), if any."""
    wl: Workload | None = None
    if workload is not None:
        wl = workload if isinstance(workload, Workload) else import_onnx(workload, kw.get("bits") or 8).workload
        kw["memory"] = wl.name
    src = {k: kw.pop(k) for k in (*SOURCES, "bits") if kw.get(k) is not None}
    kw = {k: v for k, v in kw.items() if v is not None}
    return validate(AccelConfig, {"workload": src, **kw}), wl


def run_search(cfg: AccelConfig, workload: Workload | None = None, warm_start: Any = None,
               progress: bool | None = None) -> HardwareResult:
    return search_template(build_template(cfg, workload), cfg.engine, seed=cfg.seed, budget=cfg.budget,
                           fix=cfg.fix, warm_start=warm_start, progress=progress, **cfg.engine_options)


def search(*, file: str | None = None, network: str | None = None, arch: str | None = None, onnx: str | None = None,
           workload: Any = None, bits: int | None = None, template: str | None = None, platform: str | None = None,
           engine: str | None = None, budget: int | None = None, fix: dict[str, float] | None = None,
           seed: int | None = None, engine_options: dict[str, Any] | None = None,
           template_options: dict[str, Any] | None = None, warm_start: Any = None,
           progress: bool | None = False) -> HardwareResult:
    """Search the best accelerator design for a workload: one of ``file``, ``network``, ``arch``, ``onnx``
    (paths or names), or ``workload`` (a ``Workload`` or an ``onnx.ModelProto``); see ``AccelConfig``."""
    cfg, wl = _config(workload, file=file, network=network, arch=arch, onnx=onnx, bits=bits, template=template,
                      platform=platform, engine=engine, budget=budget, fix=fix, seed=seed,
                      engine_options=engine_options, template_options=template_options)
    return run_search(cfg, wl, warm_start=warm_start, progress=progress)


def run_evaluate(cfg: AccelConfig, designs: list[dict[str, Any]],
                 workload: Workload | None = None) -> list[HardwareResult]:
    template = build_template(cfg, workload)
    return [template.result(d) for d in template.parse(designs)]


def evaluate(designs: list[dict[str, Any]], workload: Any = None, **kw: Any) -> list[HardwareResult]:
    """Evaluate designs (each in the template's design-file format, e.g. ``{"chunks": {...}}`` on FPGA,
    ``{"array": {...}, "layers": {...}}`` on asic-array) on a workload given as in :func:`search`."""
    cfg, wl = _config(workload, **kw)
    return run_evaluate(cfg, designs, wl)


def run_pareto(cfg: AccelConfig, objectives: Sequence[str] | None = None, workload: Workload | None = None,
               progress: bool | None = None) -> ParetoFront:
    """The Pareto front of the config's workload: exact with ``engine: exact``, else searched with the
    engine (``budget``: design evaluations of the whole front search)."""
    template = build_template(cfg, workload)
    return pareto_front(template, objectives, engine=cfg.engine, budget=cfg.budget, seed=cfg.seed,
                        space=template.space.fix(cfg.fix), progress=progress, **cfg.engine_options)


def pareto(*, objectives: Sequence[str] | None = None, file: str | None = None, network: str | None = None,
           arch: str | None = None, onnx: str | None = None, workload: Any = None, bits: int | None = None,
           template: str | None = None, platform: str | None = None, engine: str | None = None,
           budget: int | None = None, fix: dict[str, float] | None = None, seed: int | None = None,
           engine_options: dict[str, Any] | None = None, template_options: dict[str, Any] | None = None,
           progress: bool | None = False) -> ParetoFront:
    """The non-dominated designs of a workload (given as in :func:`search`) in 2 or 3 ``objectives``
    (default: fps, dsp, bram on the FPGA templates; latency_ms, energy_uj, area_mm2 on asic-array)."""
    cfg, wl = _config(workload, file=file, network=network, arch=arch, onnx=onnx, bits=bits, template=template,
                      platform=platform, engine=engine, budget=budget, fix=fix, seed=seed,
                      engine_options=engine_options, template_options=template_options)
    return run_pareto(cfg, objectives, wl, progress=progress)
