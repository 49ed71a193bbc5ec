"""``autonba sweep``: a grid of searches over specs, modes and seeds (and hand-designed baselines), run
on this machine or as SLURM jobs, each point an ordinary run directory under one root."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from autonba.errors import AutonbaError
from autonba.io import RunLock
from autonba.sweep.plan import Point, expand, load_sweep, save_plan

if TYPE_CHECKING:
    from autonba.sweep.point import PointStatus

EXECUTORS = ("local", "slurm")


def default_root(sweep_file: str | Path) -> Path:
    return Path("runs") / f"sweep-{Path(sweep_file).stem}"


def run_sweep(sweep_file: str | Path, root: str | Path | None = None, executor: str = "local", jobs: int = 1,
              dry_run: bool = False, wait: bool = True, progress: bool | None = None,
              overrides: list[str] | None = None) -> dict[str, str | None]:
    """Bring every point of the sweep to done: finished ones skipped, interrupted ones resumed, failed
    ones tried again. ``overrides`` (``KEY=VALUE``) join the sweep's ``set`` (and are saved with it).
    Returns, per point run now, None or why it failed."""
    from autonba.search.joint import check_config
    from autonba.sweep.point import point_status  # here: the package is imported before `-m ...point` runs

    if executor not in EXECUTORS:
        raise AutonbaError(f"--executor must be one of {', '.join(EXECUTORS)}, got '{executor}'")
    if jobs < 1:
        raise AutonbaError(f"--jobs must be at least 1, got {jobs}")
    sweep = load_sweep(sweep_file)
    if overrides:
        sweep = sweep.model_copy(update={"set": {**sweep.set, **dict(_override(o) for o in overrides)}})
    points = expand(sweep)
    for p in points:  # every name resolved (dataset, engines, hand-designed network, ...) before any work
        try:
            check_config(p.config)
        except AutonbaError as e:
            raise AutonbaError(f"sweep point {p.name}: {e}") from None
    root = Path(root) if root else default_root(sweep_file)
    if dry_run:
        _print_plan(root, points, sweep.train)
        return {}
    with RunLock(root, "sweep"):
        save_plan(root, sweep, points)
        todo = [p.name for p in points if point_status(root, p, sweep.train).state != "done"]
        print(f"sweep {root}: {len(points)} points, {len(points) - len(todo)} done, {len(todo)} to run "
              f"({executor}{f', {jobs} at a time' if executor == 'local' else ''})", file=sys.stderr)
        if not todo:
            return {}
        if executor == "local":
            from autonba.sweep.local import LocalExecutor
            return _drive(LocalExecutor(root, jobs).run, todo, progress)
        from autonba.sweep.slurm import SlurmExecutor
        slurm = SlurmExecutor(root, sweep.slurm)
        if not wait:
            slurm.submit(todo)
            return {}
        return _drive(slurm.run, todo, progress)


def status(root: str | Path) -> list[PointStatus]:
    """Each point's state from its files, with the SLURM job still queued for it (if any) named."""
    from autonba.sweep.point import sweep_status
    from autonba.sweep.slurm import describe_jobs

    states, jobs = sweep_status(root), describe_jobs(Path(root))
    for s in states:
        if s.state in ("pending", "failed") and s.name in jobs:  # its SLURM job is queued or starting again
            s.state, s.detail = "pending", "; ".join(x for x in (jobs[s.name], s.detail) if x)
    return states


def _override(item: str) -> tuple[str, object]:
    from autonba.config import parse_value

    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise AutonbaError(f"--set expects KEY=VALUE with a dotted key (e.g. data.path=/data/c10.zip), got '{item}'")
    return key.strip(), parse_value(raw)


def _drive(run, todo: list[str], progress: bool | None) -> dict[str, str | None]:
    """Run the points with one progress bar over them and a line per point as it ends."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=len(todo), desc="points", disable=not show, dynamic_ncols=True, file=sys.stderr)

    def done(name: str, error: str | None) -> None:
        bar.write(f"{'FAILED' if error else 'done  '} {name}" + (f": {error}" if error else "")
                  + f" ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        bar.update(1)

    out = run(todo, done)
    bar.close()
    return out


def _print_plan(root: Path, points: list[Point], train: bool) -> None:
    from autonba.sweep.point import point_status

    for p in points:
        s = point_status(root, p, train)
        values = ", ".join(f"{k}={v}" for k, v in p.values.items()) or "(the base config)"
        print(f"{s.state:<8} {root / p.name}  {values}")
    print(f"{len(points)} points{'' if train else ' (not retrained)'}; nothing run (--dry-run)", file=sys.stderr)
