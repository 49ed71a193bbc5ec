"""A sweep file and the points it expands to.

A sweep file names a base search config and axes over its fields; each combination of axis values
(plus each ``include`` entry) is a point, an ordinary run directory ``ROOT/<name>`` whose name is
made of its values (``fps-20000_mode-joint_seed-0``). The resolved sweep (base config inlined) and
its points are saved in the root, so a rerun, ``status``, a SLURM job and ``report`` all read the
same plan.
"""
from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from autonba.config import load_yaml, set_dotted, validate
from autonba.errors import AutonbaError
from autonba.io import dumps, read_json, write_atomic
from autonba.search.config import SearchConfig, search_config

SWEEP_FILE = "sweep.yaml"       # the resolved sweep, in the root
STATE = ".sweep"                # the sweep's bookkeeping: plan, logs, failures, SLURM files
PLAN = "points.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SlurmSpec(_Strict):
    """What each point's SLURM job asks for (``--executor slurm``)."""
    partition: str | None = Field(None, description="partition (default: the cluster's default)")
    time_min: int = Field(60, gt=0, description="time limit of one job; a point that needs longer is requeued "
                                                "and resumes from its checkpoint")
    cpus_per_task: int = Field(1, gt=0, description="CPU cores per point (its PyTorch threads)")
    gpus_per_node: int = Field(0, ge=0, description="GPUs per point; more than one runs the search under torchrun "
                                                    "(DDP, one process per GPU)")
    mem_gb: float | None = Field(None, gt=0, description="memory per point")
    array_parallelism: int = Field(64, gt=0, description="points running at once")
    max_requeues: int = Field(3, ge=0, description="requeues after a timeout or preemption")
    setup: list[str] = Field([], description="shell lines run before each job (e.g. 'module load cuda', "
                                             "'source venv/bin/activate')")
    additional: dict[str, Any] = Field({}, description="further sbatch options, e.g. {account: abc, qos: high}")


class SweepConfig(_Strict):
    base: str | dict[str, Any] = Field({}, description="the search config every point starts from: a YAML path "
                                                       "(relative to the sweep file) or a mapping")
    set: dict[str, Any] = Field({}, description="overrides of every point, by dotted field name")
    axes: dict[str, list[Any]] = Field({}, description="dotted field name -> values; the points are the product")
    include: list[dict[str, Any]] = Field([], description="further points, each a mapping of dotted field names to "
                                                          "values (and an optional 'name'), e.g. a hand-designed "
                                                          "network: {mode: fixed-arch, arch: mbv2-8bit}")
    train: bool = Field(True, description="retrain every point's network ('autonba train'; its schedule: the "
                                          "retrain.* fields, e.g. set: {retrain.seeds: 3})")
    slurm: SlurmSpec = SlurmSpec()

    @field_validator("axes")
    @classmethod
    def _non_empty(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in v.items():
            if not values:
                raise ValueError(f"axis '{key}' has no values")
        return v


@dataclass(frozen=True)
class Point:
    name: str
    values: dict[str, Any]   # its axis values / include entry, by dotted field name
    config: SearchConfig


def load_sweep(path: str | Path) -> SweepConfig:
    """A sweep file with its base config read in (so the saved sweep holds everything)."""
    path = Path(path)
    sweep = validate(SweepConfig, load_yaml(path, "sweep"), f"sweep file {path}")
    if isinstance(sweep.base, str):
        base = Path(sweep.base)
        base = base if base.is_absolute() else path.parent / base
        sweep = sweep.model_copy(update={"base": load_yaml(base, "sweep base config")})
    return sweep


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return "+".join(_text(v) for v in value)
    if isinstance(value, dict):
        return "+".join(f"{k}-{_text(v)}" for k, v in value.items())
    return re.sub(r"[^A-Za-z0-9.+=-]+", "-", str(value)).strip("-.") or "x"


def point_name(values: dict[str, Any]) -> str:
    """``fps-20000_mode-joint``: each field by the last part of its dotted name (the whole name where two
    fields share it), then its value."""
    if not values:
        return "base"
    lasts = [k.split(".")[-1] for k in values]
    keys = [last if lasts.count(last) == 1 else k for k, last in zip(values, lasts)]
    return "_".join(f"{k}-{_text(v)}" for k, v in zip(keys, values.values()))


def expand(sweep: SweepConfig) -> list[Point]:
    """Every point of a sweep with its validated search config; an error on a bad field, a duplicate
    name or two points of the same config."""
    assert isinstance(sweep.base, dict)  # load_sweep reads a base path in
    base = copy.deepcopy(sweep.base)
    for key, value in sweep.set.items():
        set_dotted(base, key, value, "sweep set:")
    entries = [dict(zip(sweep.axes, combo)) for combo in itertools.product(*sweep.axes.values())]
    if not sweep.axes and sweep.include:  # the points are the include entries only
        entries = []
    named = [(point_name(e), e) for e in entries]
    for inc in sweep.include:
        values = {k: v for k, v in inc.items() if k != "name"}
        named.append((str(inc["name"]) if "name" in inc else point_name(values), values))
    points: list[Point] = []
    seen: dict[str, str] = {}
    for name, values in named:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+=-]{0,199}", name):
            raise AutonbaError(f"sweep point name '{name}' must be 1-200 letters, digits or ._+=- (first a letter "
                               "or digit)")
        data = copy.deepcopy(base)
        for key, value in values.items():
            set_dotted(data, key, value, f"sweep point {name}:")
        cfg = search_config(data, f"sweep point {name}")
        key = dumps(cfg.model_dump(mode="json"))
        if key in seen:
            raise AutonbaError(f"sweep points '{seen[key]}' and '{name}' have the same config")
        if name in {p.name for p in points}:
            raise AutonbaError(f"two sweep points are named '{name}'; give include entries a 'name'")
        seen[key] = name
        points.append(Point(name, values, cfg))
    return points


def save_plan(root: Path, sweep: SweepConfig, points: list[Point]) -> None:
    """Record the sweep in ``root``; an error if the root holds another sweep (nothing overwritten)."""
    import yaml

    text = yaml.safe_dump(sweep.model_dump(mode="json"), sort_keys=False)
    saved = root / SWEEP_FILE
    if saved.is_file() and saved.read_text() != text:
        old = load_yaml(saved, "saved sweep")
        new = sweep.model_dump(mode="json")
        diff = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        raise AutonbaError(f"{root} holds another sweep (its {SWEEP_FILE} differs in {', '.join(diff)}); choose "
                           "another --root, or rerun the sweep it holds")
    (root / STATE).mkdir(parents=True, exist_ok=True)
    plan = dumps([{"name": p.name, "values": p.values, "config": p.config.model_dump(mode="json")}
                  for p in points]) + "\n"
    if not (root / STATE / PLAN).is_file() or (root / STATE / PLAN).read_text() != plan:
        write_atomic(root / STATE / PLAN, plan, "sweep plan")
    if not saved.is_file():
        write_atomic(saved, text, "sweep")


def load_plan(root: str | Path) -> list[Point]:
    """The points a sweep recorded in ``root``."""
    path = Path(root) / STATE / PLAN
    if not path.is_file():
        raise AutonbaError(f"{root} is not a sweep root (no {STATE}/{PLAN}); run 'autonba sweep SWEEP.yaml --root "
                           f"{root}' first")
    return [Point(p["name"], p["values"], validate(SearchConfig, p["config"], f"{path} point {p['name']}"))
            for p in read_json(path, "sweep plan")]


def saved_sweep(root: str | Path) -> SweepConfig:
    return validate(SweepConfig, load_yaml(Path(root) / SWEEP_FILE, "saved sweep"), f"{root}/{SWEEP_FILE}")
