"""``autonba sweep``: expansion of a sweep file into points, the local executor end to end (skip what is
done, record failures, exit non-zero), status, SIGKILL of the sweep and its points then a rerun that
ends identical to an uninterrupted sweep, and the hand-designed baselines (mode fixed-arch)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from autonba.cli import main
from autonba.sweep.plan import expand, load_sweep, point_name
from tests.test_joint import tiny_config


def sweep_file(tmp_path: Path, **sweep) -> Path:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(tiny_config(tmp_path)))
    p = tmp_path / "sweep.yaml"
    p.write_text(yaml.safe_dump({"base": "base.yaml", **sweep}, sort_keys=False))
    return p


def comparable(run: Path) -> dict:
    """What a point's run produced, without wall times."""
    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if not k.endswith("seconds")}
        return [strip(v) for v in x] if isinstance(x, list) else x
    out = {f: json.loads((run / f).read_text()) for f in ("result.json", "final.json", "arch.json",
                                                          "accelerator.json")}
    out["log"] = [json.loads(line) for line in (run / "search_log.jsonl").read_text().splitlines()]
    return strip(out)


def test_set_on_the_command_line_joins_the_sweep_and_is_saved(tmp_path, capsys):
    root = tmp_path / "root"
    assert main(["sweep", str(sweep_file(tmp_path)), "--root", str(root), "--set", "data.name=nope"]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err
    assert main(["sweep", str(sweep_file(tmp_path)), "--root", str(root), "--set", "seed", "--dry-run"]) == 2
    assert "--set expects KEY=VALUE" in capsys.readouterr().err


def test_points_are_named_by_their_values_and_checked(tmp_path):
    s = load_sweep(sweep_file(tmp_path, set={"search.epochs": 2},
                              axes={"target.fps": [20000.0, 30000], "mode": ["joint", "sequential"]},
                              include=[{"mode": "fixed-arch", "arch": "mbv2-8bit", "name": "mbv2"}]))
    points = expand(s)
    assert [p.name for p in points] == ["fps-20000_mode-joint", "fps-20000_mode-sequential",
                                        "fps-30000_mode-joint", "fps-30000_mode-sequential", "mbv2"]
    assert all(p.config.search.epochs == 2 for p in points)
    assert points[3].config.target.fps == 30000 and points[3].config.mode == "sequential"
    assert points[4].config.arch == "mbv2-8bit"
    assert point_name({"a.seed": 1, "b.seed": 2, "x": "p/q r"}) == "a.seed-1_b.seed-2_x-p-q-r"
    only = expand(load_sweep(sweep_file(tmp_path, include=[{"seed": 1}, {"seed": 2}])))
    assert [p.name for p in only] == ["seed-1", "seed-2"]  # no axes: the include entries only
    assert [p.name for p in expand(load_sweep(sweep_file(tmp_path)))] == ["base"]


@pytest.mark.parametrize("sweep, words", [
    ({"axes": {"mode": ["joint", "nope"]}}, ["sweep point mode-nope", "mode"]),
    ({"axes": {"seed": []}}, ["axis 'seed' has no values"]),
    ({"axes": {"seed": [1, 1.0]}}, ["same config"]),
    ({"axess": {}}, ["axess", "allowed"]),
    ({"include": [{"mode": "fixed-arch", "arch": "no-such-net"}]}, ["neither a hand-designed network", "mbv2-8bit"]),
    ({"axes": {"hardware.engine": ["das", "warp"]}}, ["hardware.engine", "warp", "allowed"]),
    ({"set": {"data.name": "nope"}}, ["dataset", "nope", "allowed"]),
])
def test_a_bad_sweep_is_one_error_line_before_any_work(tmp_path, capsys, sweep, words):
    root = tmp_path / "root"
    assert main(["sweep", str(sweep_file(tmp_path, **sweep)), "--root", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("autonba: error:") and len(err.splitlines()) == 1
    assert all(w in err for w in words), err
    assert not root.exists()


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """Two points run uninterrupted, two at a time."""
    tmp = tmp_path_factory.mktemp("sweep")
    f = sweep_file(tmp, axes={"mode": ["joint", "sequential"]})
    assert main(["sweep", str(f), "--root", str(tmp / "root"), "--jobs", "2", "--no-progress"]) == 0
    return f, tmp / "root"


def test_local_sweep_runs_every_point_then_skips_them(swept, capsys):
    f, root = swept
    for name in ("mode-joint", "mode-sequential"):
        assert (root / name / "final.json").is_file()
        assert json.loads((root / name / "result.json").read_text())["mode"] == name[5:]
    assert (root / "sweep.yaml").is_file() and (root / ".sweep" / "logs" / "mode-joint.log").is_file()
    capsys.readouterr()
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.json")}
    assert main(["sweep", str(f), "--root", str(root), "--no-progress"]) == 0
    assert "2 done, 0 to run" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.json")} == before  # nothing rewritten
    assert main(["sweep", "status", str(root)]) == 0
    out = capsys.readouterr()
    assert out.out.count("done") == 2 and "test acc" in out.out and "2 done" in out.err


def test_another_sweep_in_the_same_root_is_refused(swept, tmp_path, capsys):
    _, root = swept
    other = sweep_file(tmp_path, axes={"seed": [0, 1]})
    assert main(["sweep", str(other), "--root", str(root)]) == 2
    assert "holds another sweep" in capsys.readouterr().err


def test_a_failing_point_does_not_stop_the_others(tmp_path, capsys):
    """An unreachable target fails its point at run time; the other point ends done, the sweep exits 2
    naming the failure, status says failed, and a rerun tries only the failed point again."""
    f = sweep_file(tmp_path, axes={"target.fps": [30000, 1e12]}, train=False)
    root = tmp_path / "root"
    assert main(["sweep", str(f), "--root", str(root), "--jobs", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "1 point(s) failed (fps-1000000000000)" in err and "out of reach" in err
    assert (root / "fps-30000" / "result.json").is_file()
    assert main(["sweep", "status", str(root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("done") and out[1].startswith("failed") and "out of reach" in out[1]
    assert main(["sweep", str(f), "--root", str(root), "--no-progress"]) == 2
    assert "1 done, 1 to run" in capsys.readouterr().err


def test_sigkill_of_the_sweep_and_its_points_then_rerun_ends_identical(swept, tmp_path):
    f, reference = swept
    root = tmp_path / "root"
    cmd = [sys.executable, "-m", "autonba.cli", "sweep", str(f), "--root", str(root), "--jobs", "2", "--no-progress"]
    sweep = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not any(root.glob("*/checkpoint.pt")) and time.time() < deadline:
        time.sleep(0.2)
    assert any(root.glob("*/checkpoint.pt")), "no point reached its first checkpoint"
    os.killpg(sweep.pid, signal.SIGKILL)  # the sweep and every point it started: one process group
    sweep.wait()
    assert not all((root / n / "final.json").is_file() for n in ("mode-joint", "mode-sequential"))
    assert subprocess.run(cmd).returncode == 0
    for name in ("mode-joint", "mode-sequential"):
        assert comparable(root / name) == comparable(reference / name), name


def test_hand_designed_point_is_a_run_like_any_other(tmp_path, capsys):
    f = sweep_file(tmp_path, include=[{"name": "mbv2", "mode": "fixed-arch", "arch": "mbv2-4bit"}])
    root = tmp_path / "root"
    assert main(["sweep", str(f), "--root", str(root), "--no-progress"]) == 0
    r = json.loads((root / "mbv2" / "result.json").read_text())
    assert r["mode"] == "fixed-arch" and r["ops"] == ["k3_e6"] * 2 and r["bits"] == [4, 4]
    assert r["supernet_acc"] is None and r["fps"] > 0
    acc = json.loads((root / "mbv2" / "accelerator.json").read_text())
    assert acc["engine"] == "exact" and acc["fps"] == r["fps"]
    assert json.loads((root / "mbv2" / "final.json").read_text())["fps"] == r["fps"]
    assert main(["accel", "list"]) == 0
    assert "mbv2-4bit" in capsys.readouterr().out


def test_report_of_a_sweep_draws_each_modes_front(swept, tmp_path):
    _, root = swept
    out = tmp_path / "report"
    assert main(["report", str(root), "--out", str(out)]) == 0
    assert (out / "fronts.png").stat().st_size > 10_000
    rows = (out / "points.csv").read_text().splitlines()
    assert rows[0].startswith("point,state,mode") and len(rows) == 3
    assert all(",done," in r for r in rows[1:])
    text = (out / "summary.md").read_text()
    hv = [line for line in text.splitlines() if line.startswith("| joint |") or line.startswith("| sequential |")]
    assert len(hv) == 2 and all(0 <= float(line.split("|")[4]) <= 1.21 for line in hv)
    assert "2 of 2 points finished" in text


def test_mode_fronts_and_hypervolumes_on_a_common_plane():
    import torch

    from autonba.report.fronts import mode_fronts
    # (accuracy, FPS): joint (0.9, 100) and (0.8, 300); sequential (0.85, 100) and (0.7, 200), the latter
    # dominated by joint's but not by its own mode's points; a group without figures is left out
    means = torch.tensor([[0.9, 100.0], [0.8, 300.0], [0.85, 100.0], [0.7, 200.0], [float("nan"), 50.0]])
    fronts, hv = mode_fronts(means, ["joint", "joint", "sequential", "sequential", "joint"], "fps")
    assert fronts == {"joint": [0, 1], "sequential": [2, 3]}
    # normalised: accuracy 0.9 -> 0, 0.7 -> 1; FPS 300 -> 0, 100 -> 1; reference (1.1, 1.1); joint: (0, 1), (0.5, 0)
    assert hv["joint"] == pytest.approx(1.1 * 0.1 + 0.6 * 1.0)
    assert hv["sequential"] == pytest.approx(0.85 * 0.1 + 0.1 * 0.5)  # (0.25, 1) and (1, 0.5)
    # a metric to minimise (EDP): the lower value is the better one
    fronts, _ = mode_fronts(torch.tensor([[0.9, 2.0], [0.9, 1.0]]), ["joint", "joint"], "edp_uj_ms")
    assert fronts == {"joint": [1]}


@pytest.mark.slow
def test_a_point_with_several_processes_searches_under_torchrun(tmp_path):
    """What a SLURM job asking for several GPUs runs (here on the CPU, gloo): the search under torchrun."""
    from autonba.sweep.plan import save_plan
    from autonba.sweep.point import main as point_main

    f = sweep_file(tmp_path, axes={"seed": [0]}, train=False)
    s = load_sweep(f)
    save_plan(tmp_path / "root", s, expand(s))
    assert point_main([str(tmp_path / "root"), "seed-0", "--procs", "2", "--threads", "1"]) == 0
    r = json.loads((tmp_path / "root" / "seed-0" / "result.json").read_text())
    assert r["distributed"] == {"world_size": 2, "ranks_agree": True}
