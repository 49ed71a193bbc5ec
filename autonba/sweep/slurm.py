"""``--executor slurm``: each point a task of a SLURM job array, submitted through submitit, running the
same ``run_point`` as a local point. A job that reaches its time limit (or is preempted) is requeued by
submitit and resumes the point from its checkpoint. The sweep follows its jobs with ``squeue`` and
reads each point's outcome from its run directory, so it needs no accounting database (``sacct``).
Job ids are kept in ``ROOT/.sweep/slurm/jobs.json``: a rerun never submits a point whose job is still
queued or running.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from autonba.errors import AutonbaError
from autonba.io import read_json, write_json
from autonba.sweep.plan import STATE, SlurmSpec, load_plan, saved_sweep
from autonba.sweep.point import point_status, run_point

SLURM = "slurm"
JOBS = "jobs.json"
POLL_S = 2.0


def _submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise AutonbaError("--executor slurm needs submitit: pip install 'autonba[slurm]'") from None
    if shutil.which("sbatch") is None or shutil.which("squeue") is None:
        raise AutonbaError("--executor slurm needs SLURM's sbatch and squeue on PATH (run it on the cluster's "
                           "login node)")
    return submitit


def _point_job(submitit: Any) -> Any:
    """submitit's checkpointable callable: requeued on timeout or preemption, it simply runs the point
    again, which resumes from the run's own checkpoint. submitit ignores SIGTERM (a time limit reaches it
    as SIGUSR2 first); the point restores SIGTERM's default so that ``scancel``, ``scontrol requeue`` and
    preemption end it at once rather than after KillWait: its last epoch checkpoint is all it keeps anyway."""
    class PointJob(submitit.helpers.Checkpointable):
        def __call__(self, root: str, name: str, threads: int, procs: int) -> dict[str, Any]:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            return run_point(root, name, threads, procs)
    return PointJob()


@contextlib.contextmanager
def _stderr_to(file: IO[str]) -> Iterator[None]:
    """File descriptor 2 (what child processes such as sbatch write to) redirected to ``file``."""
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(file.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def queued() -> dict[str, str]:
    """Job id -> state of every job SLURM still lists (array tasks one per line)."""
    out = subprocess.run(["squeue", "--array", "--noheader", "--format=%i %T"], capture_output=True, text=True)
    if out.returncode != 0:
        raise AutonbaError(f"squeue failed: {out.stderr.strip() or out.returncode}")
    return dict(line.split(maxsplit=1) for line in out.stdout.splitlines() if line.strip())


class SlurmExecutor:
    def __init__(self, root: Path, spec: SlurmSpec):
        self.root, self.spec = root, spec
        self.folder = root / STATE / SLURM
        self.submitit = _submitit()
        self.points, self.train = {p.name: p for p in load_plan(root)}, saved_sweep(root).train

    def _jobs(self) -> dict[str, str]:
        path = self.folder / JOBS
        return read_json(path, "sweep jobs") if path.is_file() else {}

    def submit(self, names: list[str]) -> dict[str, str]:
        """Submit the points that have no live job; every point's job id."""
        jobs, live = self._jobs(), queued()
        new = [n for n in names if jobs.get(n) not in live]
        if new:
            s = self.spec
            ex = self.submitit.AutoExecutor(folder=self.folder / "%j", cluster="slurm",
                                            slurm_max_num_timeout=s.max_requeues)
            ex.update_parameters(
                name=f"autonba-{self.root.name}", timeout_min=s.time_min, cpus_per_task=s.cpus_per_task,
                gpus_per_node=s.gpus_per_node, tasks_per_node=1, nodes=1, slurm_array_parallelism=s.array_parallelism,
                slurm_setup=s.setup, slurm_additional_parameters=s.additional,
                **({"slurm_partition": s.partition} if s.partition else {}),
                **({"mem_gb": s.mem_gb} if s.mem_gb else {}))
            procs = max(1, s.gpus_per_node)
            with tempfile.TemporaryFile("w+") as said, _stderr_to(said):  # sbatch's complaints go in our error
                try:
                    submitted = ex.map_array(_point_job(self.submitit), [str(self.root)] * len(new), new,
                                             [s.cpus_per_task // procs or 1] * len(new), [procs] * len(new))
                except Exception as e:  # sbatch refused (partition, limits, ...): submitit raises several kinds
                    said.seek(0)
                    lines = [x.strip() for x in said.read().splitlines() + str(e).splitlines() if x.strip()]
                    raise AutonbaError(f"SLURM refused the jobs: {lines[0] if lines else type(e).__name__} (the sweep "
                                       "file's slurm section: partition, time_min, cpus_per_task, gpus_per_node, "
                                       "mem_gb, additional)") from None
            jobs.update({n: str(j.job_id) for n, j in zip(new, submitted)})
            self.folder.mkdir(parents=True, exist_ok=True)
            write_json(self.folder / JOBS, jobs)
        for n in new:
            print(f"submitted {n}: SLURM job {jobs[n]}", flush=True)
        return {n: jobs[n] for n in names}

    def outcome(self, name: str, job: str) -> str | None:
        """None if the point is done, else why not (its recorded failure, or how its job ended)."""
        status = point_status(self.root, self.points[name], self.train)
        if status.state in ("done", "failed"):
            return None if status.state == "done" else status.detail
        return (f"SLURM job {job} ended without finishing the point (cancelled, killed, or out of time after "
                f"{self.spec.max_requeues} requeues); see {self.folder / job.split('_')[0]}; it resumes from its "
                "checkpoint when the sweep runs again")

    def run(self, names: list[str], on_done: Callable[[str, str | None], None]) -> dict[str, str | None]:
        """Submit, then follow the jobs until every one has left the queue."""
        jobs = self.submit(names)
        out: dict[str, str | None] = {}
        while len(out) < len(names):
            time.sleep(POLL_S)
            live = queued()
            for n in names:
                if n not in out and jobs[n] not in live:
                    out[n] = self.outcome(n, jobs[n])
                    on_done(n, out[n])
        return out


def describe_jobs(root: Path) -> dict[str, str]:
    """Point -> 'SLURM job ID STATE' for the points whose job SLURM still lists."""
    path = root / STATE / SLURM / JOBS
    if not path.is_file() or shutil.which("squeue") is None:
        return {}
    try:
        live = queued()
    except AutonbaError:  # no controller answers here (e.g. the root copied off the cluster): files only
        return {}
    return {n: f"SLURM job {j} {live[j].lower()}" for n, j in json.loads(path.read_text()).items() if j in live}
