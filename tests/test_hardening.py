"""Nothing lost, no traceback, no silent wrong answer: run directories owned by one process, results and
inputs never overwritten unasked, output locations checked before the work, write errors, non-finite
numbers, late config mistakes, runs that stop before their first checkpoint, re-costed hardware figures
in retraining, and file modes."""
import errno
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from test_joint import write_config

from autonba.cli import main
from autonba.io import LOCK, RunLock, load_checkpoint, save_checkpoint

QUICK = {"search": {"epochs": 2, "warmup_epochs": 1, "batch_size": 16, "arch_lr": 0.05}}


def strict_json(text: str):
    def refuse(token):
        raise ValueError(f"non-finite token {token}")
    return json.loads(text, parse_constant=refuse)


def one_error_line(err: str, *fragments: str) -> None:
    lines = [x for x in err.splitlines() if x.startswith("autonba: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished tiny search, retrained once; tests work on copies."""
    tmp = tmp_path_factory.mktemp("hard")
    out = tmp / "run"
    assert main(["search", "-c", str(write_config(tmp, **QUICK)), "--out", str(out), "--no-progress"]) == 0
    assert main(["train", str(out), "--no-progress"]) == 0
    return out


def copy_run(run, tmp_path, name="copy"):
    dst = tmp_path / name
    shutil.copytree(run, dst)
    return dst


# ---- one process per run directory --------------------------------------------------------------------
def _cli(*args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "autonba.cli", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc, timeout=120.0):
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout
        time.sleep(0.05)


def test_two_searches_on_one_directory_exactly_one_runs(tmp_path):
    cfg = write_config(tmp_path, **QUICK)
    out = tmp_path / "shared"
    first = _cli("search", "-c", str(cfg), "--out", str(out), "--no-progress", cwd=tmp_path)
    _wait_for(out / LOCK, first)
    t0 = time.time()  # the holder's name is written once the lock is taken
    while f"pid {first.pid}" not in (out / LOCK).read_text():
        assert first.poll() is None and time.time() - t0 < 60
        time.sleep(0.05)
    first.send_signal(signal.SIGSTOP)  # the first holds the lock while the second starts, however fast it is
    try:
        second = _cli("search", "-c", str(cfg), "--out", str(out), "--no-progress", cwd=tmp_path)
        _, err2 = second.communicate(timeout=300)
    finally:
        first.send_signal(signal.SIGCONT)
    _, err1 = first.communicate(timeout=300)
    assert first.returncode == 0, err1
    assert second.returncode == 2
    one_error_line(err2, "in use by another process", f"pid {first.pid}")
    lines = (out / "search_log.jsonl").read_text().splitlines()
    assert [strict_json(x)["epoch"] for x in lines] == [1, 2]
    assert strict_json((out / "result.json").read_text())["epochs"] == 2
    assert not (out / LOCK).exists()  # released on exit


def test_train_twice_on_one_run(run, tmp_path, capsys):
    r = copy_run(run, tmp_path)
    before = (r / "final.json").read_bytes()
    assert main(["train", str(r), "--epochs", "1", "--no-progress"]) == 2  # a finished retraining: refused
    one_error_line(capsys.readouterr().err, "already holds a retraining", "--resume", "--force")
    assert (r / "final.json").read_bytes() == before
    with RunLock(r, "train"):  # another process retraining there
        assert main(["train", str(r), "--force", "--no-progress"]) == 2
        one_error_line(capsys.readouterr().err, "in use by another process")
    assert (r / "final.json").read_bytes() == before
    assert main(["train", str(r), "--epochs", "1", "--force", "--no-progress"]) == 0
    assert strict_json((r / "final.json").read_text())["epochs"] == 1
    assert main(["train", str(r), "--resume", "--force"]) == 2
    assert "give one of them" in capsys.readouterr().err


def test_lock_is_taken_over_after_a_killed_holder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from autonba.io import RunLock\n"
                               f"with RunLock({str(tmp_path)!r}, 'search'):\n    print('held', flush=True); "
                               "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(Exception, match="in use by another process"):
        RunLock(tmp_path, "train").__enter__()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with RunLock(tmp_path, "train"):  # the kernel released the dead holder's lock
        assert "autonba train" in (tmp_path / LOCK).read_text()


# ---- outputs checked before the work; inputs never written over ---------------------------------------
NET = ["--network", "resnet18-cifar", "--engine", "random", "--budget", "64"]


def test_accel_out_never_overwrites_an_input_or_a_result(tmp_path, capsys):
    cfg = tmp_path / "x.config.yaml"
    cfg.write_text(yaml.safe_dump({"engine": "random", "budget": 64}))
    before = cfg.read_text()
    assert main(["accel", "search", "--network", "resnet18-cifar", "-c", str(cfg), "--out", str(tmp_path / "x.json"),
                 "--force"]) == 2
    one_error_line(capsys.readouterr().err, "one of this command's inputs")
    assert cfg.read_text() == before and not (tmp_path / "x.json").exists()

    out = tmp_path / "r.json"
    assert main(["accel", "search", *NET, "--out", str(out)]) == 0
    first = out.read_text()
    assert main(["accel", "search", *NET, "--seed", "1", "--out", str(out)]) == 2
    one_error_line(capsys.readouterr().err, "already exists", "--force")
    assert out.read_text() == first
    assert main(["accel", "search", *NET, "--seed", "1", "--out", str(out), "--force"]) == 0
    assert strict_json(out.read_text())["config"]["seed"] == 1
    wl = tmp_path / "w.json"
    wl.write_text(json.dumps({"layers": [{"in_ch": 8, "out_ch": 8, "in_h": 8, "in_w": 8, "out_h": 8, "out_w": 8,
                                          "kernel": 3}]}))
    assert main(["accel", "search", "--workload", str(wl), "--out", str(wl), "--force"]) == 2
    assert "inputs" in capsys.readouterr().err and "layers" in wl.read_text()


@pytest.mark.parametrize("where, message", [
    ("a_dir", "is a directory"),
    ("a_file/r.json", "not a directory"),
    ("/proc/autonba-nowhere/r.json", "cannot write"),
    ("x" * 300 + ".json", "too long"),
])
def test_accel_out_location_checked_before_the_search(tmp_path, capsys, monkeypatch, where, message):
    (tmp_path / "a_dir").mkdir()
    (tmp_path / "a_file").write_text("")
    monkeypatch.chdir(tmp_path)
    ran = []
    monkeypatch.setattr("autonba.accel.search_template", lambda *a, **k: ran.append(1))
    assert main(["accel", "search", *NET, "--out", where]) == 2
    one_error_line(capsys.readouterr().err, message)
    assert not ran


@pytest.mark.parametrize("where, message", [("a_file", "is a file"), ("x" * 300, "too long"),
                                            ("/proc/autonba-nowhere", "cannot write")])
def test_search_out_location_checked_before_the_search(tmp_path, capsys, monkeypatch, where, message):
    (tmp_path / "a_file").write_text("")
    monkeypatch.chdir(tmp_path)
    assert main(["search", "-c", str(write_config(tmp_path)), "--out", where]) == 2
    one_error_line(capsys.readouterr().err, message)


# ---- write errors -------------------------------------------------------------------------------------
def test_a_failed_checkpoint_write_keeps_the_previous_one(tmp_path, capsys, monkeypatch):
    import autonba.io as aio
    out = tmp_path / "run"
    real = aio._write_via_temp
    checkpoints = []

    def full_disk(path, mode, write, what):
        if what == "checkpoint":
            checkpoints.append(path)
            if len(checkpoints) == 2:  # the checkpoint after epoch 2: half written, then the disk is full
                def write(f):
                    f.write(b"x" * 1000)
                    raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, mode, write, what)

    monkeypatch.setattr(aio, "_write_via_temp", full_disk)
    cfg = write_config(tmp_path, search={"epochs": 3, "warmup_epochs": 1, "batch_size": 16})
    assert main(["search", "-c", str(cfg), "--out", str(out), "--no-progress"]) == 2
    one_error_line(capsys.readouterr().err, "No space left on device", "checkpoint.pt")
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.yaml", "search_log.jsonl"]
    monkeypatch.setattr(aio, "_write_via_temp", real)
    assert main(["search", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert strict_json((out / "result.json").read_text())["epochs"] == 3


def test_checkpoint_on_a_really_full_file_system(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        small = {"w": torch.arange(8000, dtype=torch.float64)}  # ~64 KB: one fits, two do not
        save_checkpoint(mnt / "c.pt", small)
        with pytest.raises(Exception, match="No space left"):
            save_checkpoint(mnt / "c.pt", {"w": small["w"] + 1})
        assert torch.equal(load_checkpoint(mnt / "c.pt")["w"], small["w"])
        assert [p.name for p in mnt.iterdir()] == ["c.pt"]  # no temp file left
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


# ---- non-finite numbers --------------------------------------------------------------------------------
@pytest.mark.parametrize("setting, field", [
    ("search.lr=.inf", "search.lr"), ("target.fps=.nan", "target.fps"), ("search.lr=inf", "search.lr"),
    ("hardware.template_options.row_split=.inf", "row_split"),
])
def test_non_finite_config_values_are_rejected(tmp_path, capsys, setting, field):
    out = tmp_path / "never"
    assert main(["search", "-c", str(write_config(tmp_path)), "--set", setting, "--out", str(out)]) == 2
    one_error_line(capsys.readouterr().err, field, "finite")
    assert not out.exists()


def test_non_finite_platform_and_engine_options_are_rejected(tmp_path, capsys):
    plat = tmp_path / "p.yaml"
    plat.write_text(yaml.safe_dump({"name": "b", "dsp": 900, "bram18k": 1090, "clock_mhz": float("inf")}))
    assert main(["accel", "search", *NET, "--platform", str(plat)]) == 2
    one_error_line(capsys.readouterr().err, "clock_mhz", "finite")
    assert main(["accel", "search", *NET[:2], "--set", "engine_options.temperature=.inf"]) == 2
    one_error_line(capsys.readouterr().err, "engine_options.temperature", "finite")


def test_a_diverging_search_stops_before_deriving_anything(tmp_path, capsys):
    out = tmp_path / "nan"
    cfg = write_config(tmp_path, search={"epochs": 2, "warmup_epochs": 1, "batch_size": 16, "lr": 1e30})
    assert main(["search", "-c", str(cfg), "--out", str(out), "--no-progress"]) == 2
    one_error_line(capsys.readouterr().err, "diverged", "search.lr")
    assert not (out / "result.json").exists() and not (out / "arch.json").exists()


def test_every_json_written_is_strict(run):
    for f in ("result.json", "accelerator.json", "final.json", "arch.json"):
        strict_json((run / f).read_text())
    for line in (run / "search_log.jsonl").read_text().splitlines():
        strict_json(line)


# ---- no dead ends ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("setting, message", [
    ("hardware.final_engine=exactt", "hardware.final_engine: unknown engine 'exactt'"),
    ("hardware.engine=bogus", "allowed: das, evolution, exact, random"),
    ("hardware.template_options.bogus=1", "allowed: row_split"),
    ("space=nope", "unknown search space 'nope'"),
    ("bits=[1,4]", "bits"),
    ("data.name=mnist", "unknown dataset"),
    ("search.arch_betas=[2,3]", "betas"),
    ("search.amp=fp16", "field 'search.amp': Input should be 'off' or 'bf16'"),
    ("data.train_subset=3", "fewer than one batch"),
])
def test_config_mistakes_found_before_any_work(tmp_path, capsys, setting, message):
    out = tmp_path / "never"
    t0 = time.perf_counter()
    assert main(["search", "-c", str(write_config(tmp_path)), "--set", setting, "--out", str(out)]) == 2
    one_error_line(capsys.readouterr().err, message)
    assert not out.exists()  # nothing left behind: the same command can simply be rerun
    assert time.perf_counter() - t0 < 30


@pytest.mark.parametrize("setting, message", [
    ("hardware.template_options.bogus=1", "allowed: objective, area_mm2"),
    ("hardware.template_options.area_mm2=-1", "area_mm2"),
    ("hardware.final_engine=exactt", "allowed: das, evolution, exact, random"),
])
def test_asic_config_mistakes_are_one_line(tmp_path, capsys, setting, message):
    cfg = write_config(tmp_path, hardware={"template": "asic-array"})
    assert main(["search", "-c", str(cfg), "--set", setting, "--out", str(tmp_path / "never")]) == 2
    one_error_line(capsys.readouterr().err, message)


def test_huge_seed_and_bad_yaml_are_one_line(tmp_path, capsys):
    assert main(["search", "--seed", "100000000000000000000000", "--out", str(tmp_path / "n")]) == 2
    one_error_line(capsys.readouterr().err, "seed")
    assert main(["accel", "search", *NET, "--seed", "-1"]) == 2
    one_error_line(capsys.readouterr().err, "seed")
    bad = tmp_path / "bad.yaml"
    bad.write_text("search:\n  lr: 0.1\n   epochs: [3\n")
    assert main(["search", "-c", str(bad)]) == 2
    err = capsys.readouterr().err
    one_error_line(err, str(bad), "line 3")
    assert len(err.strip().splitlines()) <= 2


def test_interrupted_before_the_first_checkpoint_resumes(tmp_path, capsys, monkeypatch):
    from autonba.search.joint import JointSearch
    out = tmp_path / "int"
    cfg = write_config(tmp_path, **QUICK)
    real = JointSearch.weight_step

    def interrupted(self, *a):
        raise KeyboardInterrupt

    monkeypatch.setattr(JointSearch, "weight_step", interrupted)
    assert main(["search", "-c", str(cfg), "--out", str(out), "--no-progress"]) == 130
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "search_log.jsonl"]
    monkeypatch.setattr(JointSearch, "weight_step", real)
    assert main(["search", "-c", str(cfg), "--out", str(out)]) == 2
    one_error_line(capsys.readouterr().err, "already holds files", "--resume")
    assert main(["search", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert "before its first checkpoint" in capsys.readouterr().err
    assert len((out / "search_log.jsonl").read_text().splitlines()) == 2


def test_resume_names_the_fields_that_differ(run, tmp_path, capsys):
    r = copy_run(run, tmp_path)
    cfg = yaml.safe_load((r / "config.yaml").read_text())
    cfg["search"]["lr"] = 0.2
    (r / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["search", "--out", str(r), "--resume"]) == 2
    err = capsys.readouterr().err
    one_error_line(err, "search.lr (0.1 in the checkpoint, 0.2 now)")
    assert "drop -c" not in err


def test_report_on_a_damaged_result_is_one_line(run, tmp_path, capsys):
    r = copy_run(run, tmp_path)
    (r / "result.json").write_text("{}")
    assert main(["report", str(r)]) == 2
    one_error_line(capsys.readouterr().err, "result.json", "lacks")


# ---- retraining reports the network it trains ----------------------------------------------------------
def test_train_recosts_an_edited_arch(run, tmp_path, capsys):
    r = copy_run(run, tmp_path)
    arch = json.loads((r / "arch.json").read_text())
    for b in arch["blocks"]:
        b["op"], b["bits"] = "k3_e1", 4
    (r / "arch.json").write_text(json.dumps(arch))
    assert main(["train", str(r), "--epochs", "1", "--force", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "warning: arch.json is not the network the search derived" in err
    final = strict_json((r / "final.json").read_text())
    from autonba import accel
    design = r / "d.json"
    design.write_text(json.dumps(strict_json((r / "accelerator.json").read_text())["design"]))
    again = accel.evaluate([json.loads(design.read_text())], arch=str(r / "arch.json"))[0]
    result = strict_json((r / "result.json").read_text())
    assert final["fps"] == pytest.approx(again.fps, rel=1e-12) and final["fps"] != pytest.approx(result["fps"])
    assert final["hardware_notes"] and final["meets_target"] == (again.feasible and again.fps >= 30000)


def test_train_refuses_a_garbage_accelerator(run, tmp_path, capsys):
    r = copy_run(run, tmp_path)
    (r / "accelerator.json").write_text(json.dumps({"fps": "fast"}))
    assert main(["train", str(r), "--force", "--no-progress"]) == 2
    one_error_line(capsys.readouterr().err, "accelerator.json", "design")
    assert (r / "final.json").exists()  # nothing replaced: the error came before any work


# ---- file modes ----------------------------------------------------------------------------------------
def test_files_follow_the_umask(run):
    mask = os.umask(0o022)
    os.umask(mask)
    for f in ("result.json", "accelerator.json", "final.json", "checkpoint.pt", "config.yaml", "model.pt"):
        assert (run / f).stat().st_mode & 0o777 == 0o666 & ~mask, f
    assert math.isfinite(strict_json((run / "final.json").read_text())["fps"])
