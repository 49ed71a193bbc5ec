"""``autonba sweep --executor slurm`` against a real single-node SLURM (Debian's packages, started by the
test as root; skipped where that cannot run): two points as a job array, one cancelled mid-way with
``scancel`` and the other requeued (as on preemption), the sweep run again, and both points identical to
the same sweep run locally. The cluster
runs without accounting (no ``sacct``): the executor follows its jobs with ``squeue`` only."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from autonba.cli import main
from tests.slurm_cluster import ensure_installed, single_node_slurm
from tests.test_sweep import comparable, sweep_file

pytestmark = [pytest.mark.slow, pytest.mark.slurm]


def test_slurm_sweep_survives_scancel_and_ends_identical_to_local(tmp_path, capsys):
    pytest.importorskip("submitit")
    if reason := ensure_installed(accounting=False):
        pytest.skip(reason)
    # 12 epochs: the cancelled point is still running when scancel's SIGTERM reaches it (which ends it at once)
    f = sweep_file(tmp_path, set={"search.epochs": 12}, axes={"mode": ["joint", "sequential"]},
                   slurm={"partition": "debug", "cpus_per_task": 1, "time_min": 15})
    local, root = tmp_path / "local", tmp_path / "slurm-root"
    assert main(["sweep", str(f), "--root", str(local), "--jobs", "2", "--no-progress"]) == 0  # 1 thread a point

    cmd = [sys.executable, "-m", "autonba.cli", "sweep", str(f), "--root", str(root), "--executor", "slurm",
           "--no-progress"]
    bad = tmp_path / "bad"
    bad.mkdir()
    bad_file = sweep_file(bad, slurm={"partition": "no-such-partition"})
    with single_node_slurm(tmp_path / "cluster", accounting=False) as cluster:
        assert cluster.partition == yaml.safe_load(f.read_text())["slurm"]["partition"]
        refused = subprocess.run([*cmd[:4], str(bad_file), "--root", str(bad / "root"), "--executor", "slurm"],
                                 env=cluster.env, capture_output=True, text=True, timeout=60)
        assert refused.returncode == 2 and refused.stderr.count("\n") == 2, refused.stderr  # the plan line + error
        assert "autonba: error: SLURM refused the jobs" in refused.stderr and "partition" in refused.stderr
        sweep = subprocess.Popen(cmd, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        jobs_file, victim, requeued = root / ".sweep" / "slurm" / "jobs.json", root / "mode-joint", \
            root / "mode-sequential"
        todo = {victim: "scancel", requeued: "requeue"}  # each as soon as its point has a checkpoint
        jobs: dict[Path, str] = {}
        deadline = time.time() + 120
        while todo and time.time() < deadline:
            for run, action in list(todo.items()):
                if (run / "checkpoint.pt").is_file() and jobs_file.is_file():
                    jobs[run] = json.loads(jobs_file.read_text())[run.name]
                    cluster.run(*(["scancel"] if action == "scancel" else ["scontrol", "requeue"]), jobs[run])
                    del todo[run]
            time.sleep(0.05)
        assert not todo, cluster.logs_tail()
        job, other = jobs[victim], jobs[requeued]
        assert "_" in job  # a task of one job array
        out, err = sweep.communicate(timeout=240)
        assert sweep.returncode == 2, err
        assert "1 point(s) failed (mode-joint)" in err and f"SLURM job {job} ended without finishing" in err
        assert "submitted mode-joint" in out and "submitted mode-sequential" in out
        assert not (victim / "final.json").is_file()
        assert (root / "mode-sequential" / "final.json").is_file()
        starts = (root / ".sweep" / "slurm" / other / f"{other}_0_log.out").read_text().count("Starting with")
        assert starts == 2  # the requeued job started twice (its log appended), the point resumed

        capsys.readouterr()
        assert main(["sweep", "status", str(root)]) == 0
        status = capsys.readouterr().out
        assert "pending  mode-joint" in status and "resumes after epoch" in status, status

        again = subprocess.run(cmd, env=cluster.env, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr
        assert "1 done, 1 to run (slurm)" in again.stderr
        assert json.loads(jobs_file.read_text())["mode-joint"] != job  # resubmitted
        assert "mode-sequential" in json.loads(jobs_file.read_text())  # kept, not resubmitted
    for name in ("mode-joint", "mode-sequential"):
        assert comparable(root / name) == comparable(local / name), name


def test_slurm_sweep_without_waiting_never_submits_a_point_twice(tmp_path, capsys):
    """--no-wait submits and returns; status shows the queued job; a rerun leaves a live job alone."""
    pytest.importorskip("submitit")
    if reason := ensure_installed(accounting=False):
        pytest.skip(reason)
    f = sweep_file(tmp_path, slurm={"partition": "debug", "additional": {"begin": "now+1hour"}})  # stays queued
    root = tmp_path / "root"
    cmd = [sys.executable, "-m", "autonba.cli", "sweep", str(f), "--root", str(root), "--executor", "slurm",
           "--no-wait"]
    with single_node_slurm(tmp_path / "cluster", accounting=False) as cluster:
        first = subprocess.run(cmd, env=cluster.env, capture_output=True, text=True, timeout=60)
        assert first.returncode == 0, first.stderr
        job = json.loads((root / ".sweep" / "slurm" / "jobs.json").read_text())["base"]
        assert f"submitted base: SLURM job {job}" in first.stdout
        assert main(["sweep", "status", str(root)]) == 0
        assert f"pending  base  SLURM job {job} pending" in capsys.readouterr().out
        again = subprocess.run(cmd, env=cluster.env, capture_output=True, text=True, timeout=60)
        assert again.returncode == 0 and "submitted" not in again.stdout, again.stdout
        assert json.loads((root / ".sweep" / "slurm" / "jobs.json").read_text()) == {"base": job}
