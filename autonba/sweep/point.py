"""One sweep point, run the same way on this machine and in a SLURM job: search (or resume the search
from its checkpoint), then retrain (or resume the retraining); a point already done is left alone.

    python -m autonba.sweep.point ROOT NAME [--threads N] [--procs N]

is what the local executor starts per point. A failure is recorded in ``ROOT/.sweep/failed/NAME.json``
(cleared when the point runs again); an interrupted point leaves only its checkpoints, and resumes.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autonba.errors import AutonbaError, exit_code, one_line
from autonba.io import LOCK, read_json, write_json
from autonba.sweep.plan import STATE, Point, load_plan, saved_sweep

FAILED = "failed"


def _failure_file(root: Path, name: str) -> Path:
    return root / STATE / FAILED / f"{name}.json"


def _check_same_config(run: Path, point: Point) -> None:
    """A point's directory may only hold a run of the point's own config."""
    from autonba.search.joint import config_differences
    from autonba.search.runs import load_run_config

    diff = config_differences(load_run_config(run).model_dump(mode="json"), point.config.model_dump(mode="json"))
    if diff:
        raise AutonbaError(f"{run} holds a run of another config ({'; '.join(diff[:3])}); nothing was overwritten: "
                           "move it away or use another --root")


def _search(run: Path, point: Point, procs: int) -> None:
    from autonba.search.joint import search

    resume = (run / "config.yaml").is_file()
    if resume:
        _check_same_config(run, point)
    if procs <= 1:
        search(point.config, run, resume=resume, progress=False)
        return
    # DDP: one process per GPU under torchrun, each running this module's search phase
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
           "-m", "autonba.sweep.point", str(run.parent), point.name, "--search-only"]
    if subprocess.run(cmd).returncode != 0:
        raise AutonbaError(f"the distributed search of {point.name} (torchrun, {procs} processes) failed; its log "
                           "says why")


def _train(run: Path) -> None:
    from autonba.train.retrain import CHECKPOINT, OUTPUTS, retrain

    resume = (run / CHECKPOINT).is_file()
    partial = any((run / f).exists() for f in OUTPUTS)  # a retraining killed while writing its outputs
    retrain(run, resume=resume, force=partial and not resume, progress=False)


def run_point(root: str | Path, name: str, threads: int | None = None, procs: int = 1) -> dict[str, Any]:
    """Bring one point to done; its result (result.json, with final.json's test accuracy if retrained)."""
    root = Path(root)
    points = {p.name: p for p in load_plan(root)}
    if name not in points:
        raise AutonbaError(f"sweep {root} has no point '{name}'; its points: {', '.join(points)}")
    point, train = points[name], saved_sweep(root).train
    if threads:
        import torch
        torch.set_num_threads(threads)
    run, failure = root / name, _failure_file(root, name)
    failure.unlink(missing_ok=True)
    try:
        if (run / "result.json").is_file():
            _check_same_config(run, point)
        else:
            _search(run, point, procs)
        if train and not (run / "final.json").is_file():
            _train(run)
    except (AutonbaError, OSError) as e:
        failure.parent.mkdir(parents=True, exist_ok=True)
        write_json(failure, {"point": name, "error": one_line(e), "host": socket.gethostname(),
                             "time": time.strftime("%Y-%m-%d %H:%M:%S")})
        raise
    return read_json(run / "result.json", "result")


# ---- status ---------------------------------------------------------------------------------------------
@dataclass
class PointStatus:
    name: str
    state: str       # done | running | failed | pending
    detail: str


def _held(lock: Path) -> str | None:
    """The holder of a run directory's lock if a live process holds it: read off /proc/locks, without
    touching the lock (a probe lock could make a point starting at that moment fail)."""
    try:
        st = os.stat(lock)
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    held = any(f[1] == "FLOCK" and f[5] == dev for f in (line.split() for line in table.splitlines())
               if len(f) > 5 and f[1] != "->")
    return (lock.read_text().strip() or "holder unknown") if held else None


def point_status(root: Path, point: Point, train: bool) -> PointStatus:
    run = root / point.name
    done = (run / "result.json").is_file() and (not train or (run / "final.json").is_file())
    holder = _held(run / LOCK)
    failure = _failure_file(root, point.name)
    if done:
        r = read_json(run / "result.json", "result")
        acc = read_json(run / "final.json", "final")["test_acc"] if train else r.get("supernet_acc")
        what = "test" if train else "supernet"
        return PointStatus(point.name, "done", f"FPS {r['fps']:,.0f}" + (f", {what} acc {100 * acc:.2f}%"
                                                                          if acc is not None else ""))
    if holder:
        return PointStatus(point.name, "running", holder)
    if failure.is_file():
        return PointStatus(point.name, "failed", read_json(failure, "failure")["error"])
    log = run / "search_log.jsonl"
    if (run / "result.json").is_file():
        return PointStatus(point.name, "pending", "searched; retraining to do")
    if log.is_file() and log.stat().st_size:
        n = len(log.read_text().splitlines())
        return PointStatus(point.name, "pending", f"resumes after epoch {n}/{point.config.search.epochs}")
    return PointStatus(point.name, "pending", "")


def sweep_status(root: str | Path) -> list[PointStatus]:
    root = Path(root)
    train = saved_sweep(root).train
    return [point_status(root, p, train) for p in load_plan(root)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m autonba.sweep.point", description="run one sweep point")
    ap.add_argument("root")
    ap.add_argument("name")
    ap.add_argument("--threads", type=int, help="PyTorch threads")
    ap.add_argument("--procs", type=int, default=1, help="search processes (torchrun DDP) per point")
    ap.add_argument("--search-only", action="store_true", help=argparse.SUPPRESS)  # a torchrun rank
    args = ap.parse_args(argv)
    if args.search_only:
        def rank() -> None:
            from autonba.search.joint import search
            point = {p.name: p for p in load_plan(args.root)}[args.name]
            run = Path(args.root) / args.name
            search(point.config, run, resume=(run / "config.yaml").is_file(), progress=False)
        return exit_code(rank)
    return exit_code(lambda: run_point(args.root, args.name, args.threads, args.procs))


if __name__ == "__main__":
    sys.exit(main())
