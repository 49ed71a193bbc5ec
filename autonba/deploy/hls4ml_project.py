"""``autonba export RUN --format hls4ml``: the retrained network of a run as an hls4ml project whose
emulation is checked against the fixed-point reference, and ``deploy.json``, which says per layer
what was written (types, reuse factor) and how far the check went."""
from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autonba.deploy.fixed import Add, Conv, FixedNet, Pool, fold
from autonba.deploy.hls4ml_export import LayerPlan, convert, plan_layers, predict, probe_inputs
from autonba.deploy.qonnx_export import load_trained
from autonba.errors import AutonbaError
from autonba.io import RunLock, check_output_dir, write_json
from autonba.nas.derived import DerivedNet

MARKER = "deploy.json"


def _deps() -> str:
    try:
        import hls4ml
        import qonnx  # noqa: F401
    except ImportError as e:
        raise AutonbaError(f"the hls4ml export needs {e.name}: pip install 'autonba[deploy]'") from None
    return str(hls4ml.__version__)


def _prepare(out: Path, force: bool) -> None:
    """``out`` is new, empty, or (with ``force``) a project this command wrote, which is removed."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not force:
            raise AutonbaError(f"--out: {out} already exists; choose another folder or pass --force to replace it")
        if not (out / MARKER).is_file():
            raise AutonbaError(f"--out: {out} is not a project 'autonba export' wrote (no {MARKER}); "
                               "it is never replaced, choose another folder")
        shutil.rmtree(out)
    check_output_dir(out, "--out")


def layer_table(net: FixedNet, plans: list[LayerPlan]) -> list[dict[str, Any]]:
    """Per conv, dense and pooling layer: its types and how its reuse factor was chosen."""
    types = net.types()
    plan = {p.name: p for p in plans}
    rows = []
    for op in net.ops:
        if isinstance(op, Conv):
            p = plan[op.name]
            rows.append({"name": op.name, "workload_layer": op.layer, "bits": op.bits,
                         "input": str(types[op.src]), "weight": op.weight_type.ap(),
                         "weight_exponent_spread": int(op.wfrac.max() - op.wfrac.min()),
                         "bias": op.bias_type.ap(), "accum": types[f"{op.name}/accum"].ap(),
                         "result": types[op.name].ap(), "relu": op.relu,
                         "searched_cycles_per_pixel": p.cycles_per_pixel, "mult_size": [p.n_in, p.n_out],
                         "reuse_factor": p.reuse_factor,
                         "multipliers": p.multipliers})
        elif isinstance(op, Pool):
            rows.append({"name": op.name, "pool": f"{op.size}x{op.size} mean", "result": types[op.name].ap(),
                         "reuse_factor": plan[op.name].reuse_factor})
        elif isinstance(op, Add):
            rows.append({"name": op.name, "add": [op.a, op.b], "result": types[op.name].ap()})
    return rows


@dataclass
class Plan:
    """What a run's export is made of: the trained and the fixed-point network, every layer's reuse
    factor, and the target (part, clock) from the run's platform."""

    model: DerivedNet
    net: FixedNet
    layers: list[LayerPlan]
    template: str
    platform: str
    part: str | None
    clock_ns: float | None


def plan_run(run_dir: Path, approximate: bool) -> Plan:
    """Fold a run's retrained network and derive its reuse factors from the run's accelerator."""
    from autonba.hw.hardware import TEMPLATES
    from autonba.search.runs import load_run_config
    from autonba.train.retrain import recost

    model = load_trained(run_dir)
    net = fold(model, approximate)
    cfg = load_run_config(run_dir)
    accel, _ = recost(run_dir, cfg, model.arch)
    h = cfg.hardware
    platform = TEMPLATES.get(h.template).load_platform(h.resolved_platform)
    mhz = getattr(platform, "clock_mhz", None)
    return Plan(model, net, plan_layers(net, model.arch.workload(), accel.layers), h.template,
                h.resolved_platform, getattr(platform, "part", None), 1e3 / mhz if mhz else None)


def export_run(run_dir: str | Path, out: str | Path | None = None, force: bool = False,
               approximate: bool = False, verify: int = 64) -> dict[str, Any]:
    """Write the hls4ml project of a run's retrained network; with ``verify`` > 0, compile its
    emulation and compare it with the fixed-point reference on that many probe images."""
    version = _deps()
    run_dir = Path(run_dir)
    out_dir = Path(out) if out else run_dir / "hls4ml"
    with RunLock(run_dir, "export"):
        _prepare(out_dir, force)
        plan = plan_run(run_dir, approximate)
        net = plan.net
        hm = convert(net, out_dir, plan.layers, plan.part, plan.clock_ns)
        hm.write()
        doc: dict[str, Any] = {
            "format": "hls4ml", "hls4ml": version, "backend": "Vitis", "io_type": "io_stream", "strategy": "Latency",
            "part": plan.part or "hls4ml's default", "clock_period_ns": plan.clock_ns, "template": plan.template,
            "platform": plan.platform, "exact": not net.approximate, "notes": net.notes,
            "layers": layer_table(net, plan.layers)}
        if verify > 0:
            doc["verify"] = check(hm, net, verify)
            if doc["exact"] and doc["verify"]["equal"] != doc["verify"]["inputs"]:
                write_json(out_dir / MARKER, doc)
                raise AutonbaError(f"the emulation differs from the fixed-point network on "
                                   f"{doc['verify']['inputs'] - doc['verify']['equal']} of {verify} inputs "
                                   f"(see {out_dir / MARKER}); please report it")
        write_json(out_dir / MARKER, doc)
    return doc


def check(hm: Any, net: FixedNet, count: int, seed: int = 0) -> dict[str, Any]:
    """Compile the emulation and compare its logits with ``net``'s on ``count`` probe images."""
    t0 = time.perf_counter()
    with _quiet():
        hm.compile()
    seconds = time.perf_counter() - t0
    x = probe_inputs(net, count, seed)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    y = predict(hm, x)
    return {"inputs": count, "equal": int((y == ref).all(1).sum()), "max_abs_diff": float(np.abs(y - ref).max()),
            "compile_seconds": round(seconds, 1), "seed": seed}


class _quiet:
    """Silence the compiler's output (warnings of the vendor headers) at the file descriptor level."""

    def __enter__(self) -> None:
        import os
        sys.stdout.flush()
        sys.stderr.flush()
        self._saved = (os.dup(1), os.dup(2))
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        os.close(null)

    def __exit__(self, *exc: object) -> None:
        import os
        for fd, saved in zip((1, 2), self._saved):
            os.dup2(saved, fd)
            os.close(saved)
