"""The configuration of ``autonba search`` / ``autonba train`` (saved resolved with every run)."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from autonba.config import validate
from autonba.data.datasets import DataConfig
from autonba.hw.hardware import resolved_platform
from autonba.hw.templates import TEMPLATES

MODES = ("joint", "fixed-accel", "sequential", "fixed-arch")
SEED_MAX = 2 ** 32 - 1
MAX_WORKERS = 256  # data-loader processes: more is a typo, not a machine


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HardwareSpec(_Strict):
    template: str = Field("fpga-chunk", description="a registered template: fpga-chunk, fpga-legacy, asic-array, ...")
    platform: str | None = Field(None, description="FPGA platform (default zc706) or, for asic-array, a "
                                                   "technology (default generic-45nm); a name or a YAML path")
    template_options: dict[str, Any] = Field({}, description="e.g. for asic-array {objective: edp, area_mm2: 2}")
    engine: str = Field("das", description="engine of the re-searches during the search")
    engine_budget: int = Field(4096, gt=0, description="design evaluations per re-search")
    final_engine: str = Field("exact", description="engine of the final accelerator (falls back to 'das' "
                                                   "with final_budget when exact is intractable)")
    final_budget: int = Field(20480, gt=0)
    research_every: int = Field(20, gt=0, description="re-search the accelerator every N architecture steps")

    @property
    def resolved_platform(self) -> str:
        return resolved_platform(self.template, self.platform)


# per spec metric other than fps: how many factors of bit-operations it grows with (energy and latency
# each roughly in proportion to them, their product in proportion to their square), and how a block's
# share of it splits between its share of the cycles and its share of the energy
SPEC_METRICS = {"latency_ms": (1, 1.0, 0.0), "energy_uj": (1, 0.0, 1.0), "edp_uj_ms": (2, 0.5, 0.5)}


class TargetSpec(_Strict):
    fps: float = Field(40000.0, gt=0, description="frames per second the derived network must reach")
    edp_uj_ms: float | None = Field(None, gt=0, description="the energy-delay product (uJ x ms) the derived network "
                                                            "must reach (a template with an energy model, e.g. "
                                                            "asic-array); replaces fps as the spec")
    latency_ms: float | None = Field(None, gt=0, description="the latency per frame the derived network must reach; "
                                                             "replaces fps as the spec")
    energy_uj: float | None = Field(None, gt=0, description="the energy per frame the derived network must reach "
                                                            "(a template with an energy model); replaces fps")
    band: float = Field(1.25, gt=1, description="lambda halves when FPS exceeds fps * band (EDP below edp / band)")
    lambda_init: float = Field(0.05, ge=0, description="weight of the hardware cost at the first search epoch")
    lambda_max: float = Field(100.0, gt=0)
    lambda_update: Literal["double", "proportional"] = Field(
        "double", description="after each search epoch: 'double' doubles lambda below the target and halves it above "
                              "the band (the paper); 'proportional' multiplies it by how far the derived network is "
                              "from the spec (target / FPS; EDP / target; bit-ops / budget), clipped to [1/2, 2]")


    @model_validator(mode="after")
    def _one_spec(self) -> TargetSpec:
        given = [k for k in SPEC_METRICS if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one of {', '.join('target.' + k for k in SPEC_METRICS)} "
                             f"(got {', '.join(given)})")
        return self

    @property
    def metric(self) -> str:
        """The metric the spec bounds: fps, or the one other metric given."""
        return next((k for k in SPEC_METRICS if getattr(self, k) is not None), "fps")

    @property
    def bound(self) -> float:
        return getattr(self, self.metric)

    def over(self, value: float) -> float:
        """How far a value is from the spec: > 1 misses it, < 1 is better than it."""
        if self.metric == "fps":
            return self.fps / max(value, 1e-9)
        return value / self.bound

    def fields(self, metrics: dict[str, float]) -> dict[str, float]:
        """What result files add to ``target_fps`` and ``fps`` for a spec on another metric: the target
        and the value (``target_edp_uj_ms``, ``edp_uj_ms``)."""
        m = self.metric
        return {} if m == "fps" else {f"target_{m}": self.bound, m: metrics[m]}

    def met(self, value: float, feasible: bool) -> bool:
        """Whether a design (its value of the metric, whether it fits its platform) meets the spec."""
        return bool(feasible and (value >= self.fps if self.metric == "fps" else value <= self.bound))


# YAML reads a bare on / off as a boolean
COMPILE = Annotated[Literal["auto", "on", "off"],
                    BeforeValidator(lambda v: ("on" if v else "off") if isinstance(v, bool) else v)]


AMP = Annotated[Literal["off", "bf16"], BeforeValidator(lambda v: "off" if v is False else v)]


class SearchSchedule(_Strict):
    epochs: int = Field(40, gt=0, description="total epochs, warm-up included")
    warmup_epochs: int = Field(18, ge=0)
    batch_size: int = Field(32, gt=0, description="per process")
    lr: float = Field(0.1, gt=0, description="SGD of the supernet weights (cosine over all epochs)")
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(4e-5, ge=0)
    arch_lr: float = Field(0.01, gt=0, description="Adam of alpha and beta")
    arch_betas: tuple[float, float] = Field((0.5, 0.999), description="Adam's betas, each in [0, 1)")
    arch_weight_decay: float = Field(0.0, ge=0)
    temperature: float = Field(5.0, gt=0)
    temperature_decay: float = Field(0.975, gt=0, le=1, description="T = temperature * decay ** epoch")
    top_k: int = Field(2, ge=1)
    cost_baseline: Literal["running-mean", "none"] = Field(
        "running-mean", description="architecture gradient of the hardware cost: 'running-mean' subtracts from "
                                    "each block's cost a running mean of that block's sampled costs (momentum "
                                    "0.9), so a cheaper-than-usual choice is pushed up and a dearer one down; "
                                    "'none' is the reference estimator, which pushes every sampled choice down "
                                    "in proportion to its cost")
    workers: int = Field(0, ge=0, le=MAX_WORKERS, description="data-loader worker processes")
    compile: COMPILE = Field(
        "auto", description="the quantisers' fused kernels compiled with torch.compile (C++ on CPU, Triton on "
                            "CUDA; the first steps compile, cached on disk): auto = on CUDA only")
    amp: AMP = Field(
        "off", description="bf16: train with the convolutions and linear layers under bfloat16 autocast (the "
                           "quantisers, batch-norm statistics, logits and every evaluation stay float32); off: "
                           "float32 throughout. Measured on CPU it is no faster (docs/benchmarks.md)")
    derive: Literal["rescore", "best", "last"] = Field(
        "rescore", description="final network: 'last' = the argmax network after the last epoch; of the networks "
                               "derived after each search epoch that met the target as measured then (the last if "
                               "none met it), 'best' = the one with the highest supernet accuracy on the "
                               "architecture split as logged then, 'rescore' = the one with the highest accuracy of "
                               "the final supernet weights on the architecture split (ties: the later epoch)")

    @field_validator("arch_betas")
    @classmethod
    def _betas(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in v):
            raise ValueError(f"each of Adam's betas must be in [0, 1), got {list(v)}")
        return v

    @model_validator(mode="after")
    def _warmup(self) -> SearchSchedule:
        if self.warmup_epochs >= self.epochs:
            raise ValueError(f"warmup_epochs ({self.warmup_epochs}) must be below epochs ({self.epochs}): "
                             "no epoch would search the architecture")
        return self


class RetrainSchedule(_Strict):
    epochs: int = Field(30, gt=0)
    batch_size: int = Field(64, gt=0)
    lr: float = Field(0.05, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(4e-5, ge=0)
    workers: int = Field(0, ge=0, le=MAX_WORKERS)
    compile: COMPILE = Field("auto", description="as search.compile (the results are the same either way)")
    amp: AMP = Field("off", description="as search.amp")
    seeds: int = Field(1, ge=1, description="train the derived network this many times from scratch (seeds: the "
                                            "run's seed, +1, ...) and report the mean test accuracy")
    quant_scales: Literal["float", "pow2"] | None = Field(
        None, description="retrain with other quantiser scales than the search's (arch.json's layout.scales), e.g. "
                          "--set quant_scales=pow2 to measure what fixed point costs; the hardware is the same")


class SearchConfig(_Strict):
    """Everything a joint search needs. ``mode``: ``joint`` (the method), ``fixed-accel`` (hardware-aware
    NAS on the accelerator of the initial network, never re-searched) or ``sequential`` (network and
    bitwidths under a bit-operation cost, then the accelerator for the result) or ``fixed-arch`` (no network
    search: the accelerator of a given network, ``arch``, e.g. a hand-designed baseline)."""

    seed: int = Field(0, ge=0, le=SEED_MAX)
    mode: Literal["joint", "fixed-accel", "sequential", "fixed-arch"] = "joint"
    arch: str | None = Field(None, description="mode fixed-arch: the network, a hand-designed one by name (see "
                                               "'autonba accel list') or an arch.json path")
    bits_sampling: Literal["hetero", "soft", "hard", "multipath"] = "hetero"
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$",
                        description="auto (cuda when available), cpu, cuda or cuda:N")
    space: str = Field("small", description="shipped search space (small, cifar, imagenet) or a YAML path; "
                                            "input size, channels and classes come from the data")
    bits: list[int] | None = Field(None, description="override the space's bitwidth choices")
    quant_scales: Literal["float", "pow2"] | None = Field(
        None, description="override the space's quantiser scales (layout.scales): float, or pow2 for fixed point "
                          "(what an hls4ml export emulates exactly); the derived arch.json keeps it for retraining")
    data: DataConfig = DataConfig()
    hardware: HardwareSpec = HardwareSpec()
    target: TargetSpec = TargetSpec()
    search: SearchSchedule = SearchSchedule()
    retrain: RetrainSchedule = RetrainSchedule()
    checkpoint_every: int = Field(1, gt=0, description="epochs between checkpoints")

    @model_validator(mode="after")
    def _arch_with_fixed_arch(self) -> SearchConfig:
        if self.mode == "fixed-arch" and self.arch is None:
            raise ValueError("mode fixed-arch needs arch: a hand-designed network's name (see 'autonba accel list') "
                             "or an arch.json path")
        if self.mode != "fixed-arch" and self.arch is not None:
            raise ValueError(f"arch applies to mode fixed-arch only (mode is {self.mode}); a searching mode derives "
                             "its own network")
        return self

    @model_validator(mode="after")
    def _spec_is_reported(self) -> SearchConfig:
        """The spec's metric must be one the template family reports (an FPGA template has no energy model)."""
        m, template = self.target.metric, self.hardware.template
        if template in TEMPLATES and m not in TEMPLATES.get(template).metric_names:
            allowed = ", ".join(n for n, t in TEMPLATES.items() if m in t.metric_names)
            raise ValueError(f"target.{m} needs a template that reports {m} ({allowed}); hardware.template "
                             f"'{template}' reports {', '.join(TEMPLATES.get(template).metric_names)}: give "
                             "target.fps instead")
        return self


def search_config(data: dict[str, Any], where: str = "config") -> SearchConfig:
    """A search config from its fields; the data split's seed follows ``seed`` unless given."""
    cfg = validate(SearchConfig, data, where)
    if cfg.data.seed != cfg.seed and "seed" not in (data.get("data") or {}):
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"seed": cfg.seed})})
    return cfg
