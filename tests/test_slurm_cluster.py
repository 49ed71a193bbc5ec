"""Smoke test of the real single-node SLURM of tests/slurm_cluster.py: one submitit job through it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.slurm_cluster import ensure_installed, running_slurmctld, single_node_slurm

pytestmark = [pytest.mark.slow, pytest.mark.slurm]


def test_submitit_job_runs_on_single_node_slurm(tmp_path: Path) -> None:
    submitit = pytest.importorskip("submitit")
    if reason := ensure_installed():
        pytest.skip(reason)

    def greet(name: str) -> str:  # nested: pickled by value (the job cannot import this test module)
        print(f"hello {name}")
        return name.upper()

    with single_node_slurm(tmp_path / "slurm") as cluster:
        assert cluster.run("sinfo", "-h", "-N", "-o", "%N %T").split() == [cluster.node, "idle"]
        executor = submitit.AutoExecutor(folder=tmp_path / "jobs", cluster="slurm")
        executor.update_parameters(slurm_partition=cluster.partition, cpus_per_task=1, timeout_min=2, mem_gb=0.5)
        job = executor.submit(greet, "slurm")
        assert job.result() == "SLURM"
        assert "hello slurm" in (job.stdout() or "")
        deadline = time.monotonic() + 20  # slurmctld reports to slurmdbd asynchronously: sacct lags a little
        while (state := cluster.run("sacct", "-n", "-X", "-o", "State", "-j", job.job_id).split()) != ["COMPLETED"]:
            assert time.monotonic() < deadline, f"sacct still says {state}"
            time.sleep(0.5)
    assert not running_slurmctld()
