"""The joint search end to end on a tiny space and synthetic data: run directory, modes, resume after
SIGKILL, bad input, retraining with ONNX export, reports, and two DDP processes under torchrun."""
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from autonba.cli import main
from autonba.io import load_checkpoint
from autonba.nas.quant import cpp_compiler
from autonba.search.config import SearchConfig
from autonba.search.joint import search

TINY_SPACE = {
    "layout": {"stem": {"channels": 8}, "head_channels": 32,
               "stages": [{"blocks": 1, "channels": 8, "stride": 1}, {"blocks": 1, "channels": 16, "stride": 2}]},
    "ops": ["k3_e1", "k3_e3", "skip"],
    "bits": [4, 8],
}


def tiny_config(tmp_path, **over) -> dict:
    space = tmp_path / "tiny_space.yaml"
    space.write_text(yaml.safe_dump(TINY_SPACE))
    cfg = {
        "seed": 3, "space": str(space), "device": "cpu",
        "data": {"name": "synthetic", "input_size": 8, "channels": 1, "samples": 320},
        "hardware": {"engine_budget": 256, "final_budget": 512, "research_every": 2},
        "target": {"fps": 30000.0},
        "search": {"epochs": 3, "warmup_epochs": 1, "batch_size": 16, "arch_lr": 0.05},
        "retrain": {"epochs": 2, "batch_size": 16},
    }
    for k, v in over.items():
        cfg[k] = {**cfg[k], **v} if isinstance(v, dict) else v
    return cfg


def write_config(tmp_path, **over):
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml.safe_dump(tiny_config(tmp_path, **over)))
    return p


def searched(tmp_path, cfg: dict):
    """Run ``autonba search`` on a config dict; the run directory, its result.json and accelerator.json."""
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    assert main(["search", "-c", str(p), "--out", str(run), "--no-progress"]) == 0
    return run, json.loads((run / "result.json").read_text()), json.loads((run / "accelerator.json").read_text())


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("joint")
    run = tmp / "run"
    assert main(["search", "-c", str(write_config(tmp)), "--out", str(run), "--no-progress"]) == 0
    return run


def test_search_writes_the_run_directory(finished):
    for f in ("config.yaml", "arch.json", "accelerator.json", "search_log.jsonl", "checkpoint.pt", "result.json"):
        assert (finished / f).is_file(), f
    r = json.loads((finished / "result.json").read_text())
    for key in ("arch", "ops", "bits", "fps", "target_fps", "meets_target", "accelerator", "supernet_acc",
                "search_seconds", "macs", "bitops"):
        assert key in r
    assert len(r["ops"]) == 2 and set(r["bits"]) <= {4, 8}
    acc = json.loads((finished / "accelerator.json").read_text())
    assert acc["fps"] == r["fps"] and acc["feasible"] and acc["layers"] and acc["chunks"]
    assert acc["engine"] == "exact"
    log = [json.loads(line) for line in (finished / "search_log.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in log] == [1, 2, 3] and [x["phase"] for x in log] == ["warmup", "search", "search"]
    assert all(k in log[-1] for k in ("weight_loss", "supernet_acc", "fps", "lambda", "temperature"))
    assert log[-1]["arch_steps"] > 0 and 0 <= log[-1]["supernet_acc"] <= 1
    e = r["derived_after_epoch"]  # derive: rescore = of the networks that met the target, the best with the
    assert log[e - 1]["blocks"] == [[o, b] for o, b in zip(r["ops"], r["bits"])]  # final weights, else the last
    assert log[e - 1]["meets_spec"] or (e == 3 and not any(x["meets_spec"] for x in log[1:]))
    cands = r["derive_candidates"]
    assert len(cands) == len({str(x["blocks"]) for x in log if x["phase"] == "search" and x["meets_spec"]})
    if cands:
        best = max(cands, key=lambda c: (c["final_weights_acc"], c["epoch"]))
        assert best["epoch"] == e and r["supernet_acc"] == best["final_weights_acc"]
    saved = yaml.safe_load((finished / "config.yaml").read_text())
    assert saved["seed"] == 3 and saved["data"]["seed"] == 3  # one seed seeds the data split too


def test_lambda_follows_the_target(tmp_path):
    """An unreachable-by-the-supernet but reachable-by-the-space target doubles lambda every search epoch
    while the derived FPS stays below it."""
    cfg = SearchConfig.model_validate(tiny_config(tmp_path, target={"fps": 30000.0, "lambda_init": 0.01},
                                                  search={"epochs": 4, "warmup_epochs": 1}))
    r = search(cfg, tmp_path / "r", progress=False)
    log = [json.loads(x) for x in (tmp_path / "r" / "search_log.jsonl").read_text().splitlines()]
    for rec in log[1:]:
        if rec["fps"] < 30000:
            assert rec["next_lambda"] == pytest.approx(2 * rec["lambda"])
        elif rec["fps"] > 30000 * 1.25:
            assert rec["next_lambda"] == pytest.approx(rec["lambda"] / 2)
    assert r["final_lambda"] == log[-1]["next_lambda"]


@pytest.mark.parametrize("mode", ["fixed-accel", "sequential"])
def test_baseline_modes_run(tmp_path, mode):
    cfg = SearchConfig.model_validate(tiny_config(tmp_path, mode=mode, search={"epochs": 2}))
    r = search(cfg, tmp_path / mode, progress=False)
    assert r["mode"] == mode and r["fps"] > 0 and (tmp_path / mode / "arch.json").is_file()
    if mode == "sequential":
        assert r["initial"]["bitops_budget"] > 0


def test_soft_bits_sampling_runs(tmp_path):
    cfg = SearchConfig.model_validate(tiny_config(tmp_path, bits_sampling="soft", search={"epochs": 2}))
    assert search(cfg, tmp_path / "soft", progress=False)["bits_sampling"] == "soft"


@pytest.mark.slow
@pytest.mark.skipif(cpp_compiler() is None, reason="torch.compile on CPU needs a C++ compiler")
def test_compiled_quantisers_log_the_weight_steps_bit_identically(tmp_path):
    """search.compile on (torch.compile's C++ kernels on CPU): the warm-up epochs (weight steps: forward
    and input gradients only) log exactly what the eager kernels log; the search epoch after them (whose
    coefficient gradients are sums the compiler may reorder) runs to a derived network."""
    logs = []
    for setting in ("off", "on"):
        (tmp_path / setting).mkdir()
        cfg = tiny_config(tmp_path / setting, search={"epochs": 3, "warmup_epochs": 2, "compile": setting})
        run, res, _ = searched(tmp_path / setting, cfg)
        logs.append([json.loads(line) for line in (run / "search_log.jsonl").read_text().splitlines()])
        assert len(res["arch"]["blocks"]) == 2
    for off, on in zip(*logs):
        off.pop("seconds"), on.pop("seconds")
        assert off == on or off["phase"] == "search"
    assert [r["phase"] for r in logs[1]] == ["warmup", "warmup", "search"]
    # retraining (one bitwidth per layer: forward and input gradients only) is bit-identical compiled
    import shutil
    shutil.copytree(tmp_path / "off" / "run", tmp_path / "again")
    finals = []
    for run, setting in ((tmp_path / "off" / "run", "off"), (tmp_path / "again", "on")):
        assert main(["train", str(run), "--set", f"compile={setting}", "--no-progress"]) == 0
        finals.append((json.loads((run / "final.json").read_text()),
                       torch.load(run / "model.pt", weights_only=True)["state_dict"]))
    (f_off, w_off), (f_on, w_on) = finals
    assert f_off["test_acc"] == f_on["test_acc"] and f_off["log"][-1]["val_acc"] == f_on["log"][-1]["val_acc"]
    assert all(torch.equal(w_off[k], w_on[k]) for k in w_off)


def test_bf16_search_and_retraining_run_end_to_end(tmp_path):
    """search.amp / retrain.amp bf16: both train under bfloat16 autocast and end in a derived, retrained
    network with finite figures; the setting is saved with the run."""
    run, res, _ = searched(tmp_path, tiny_config(tmp_path, search={"epochs": 2, "amp": "bf16"}))
    assert len(res["arch"]["blocks"]) == 2 and math.isfinite(res["fps"])
    assert yaml.safe_load((run / "config.yaml").read_text())["search"]["amp"] == "bf16"
    assert main(["train", str(run), "--set", "amp=bf16", "--no-progress"]) == 0
    final = json.loads((run / "final.json").read_text())
    assert 0 <= final["test_acc"] <= 1 and all(math.isfinite(r["loss"]) for r in final["log"])


def test_resume_after_sigkill_matches_uninterrupted(tmp_path, finished):
    cfg = write_config(tmp_path)
    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "autonba.cli", "search", "-c", str(cfg), "--out", str(run), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # kill after the second checkpoint (the first search epoch: the cost baseline's running mean exists)
    ckpt, first, deadline = run / "checkpoint.pt", None, time.time() + 120
    while proc.poll() is None and time.time() < deadline:
        if ckpt.exists():
            ino = ckpt.stat().st_ino                    # each checkpoint is a new file renamed over the old
            if first is None:
                first = ino
            elif ino != first:
                break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if (run / "result.json").exists():
        pytest.skip("the run finished before it could be killed")
    assert load_checkpoint(ckpt)["cost_mean"] is not None
    assert main(["search", "--out", str(run), "--resume", "--no-progress"]) == 0
    a = json.loads((finished / "result.json").read_text())
    b = json.loads((run / "result.json").read_text())
    assert b["arch"] == a["arch"] and b["fps"] == a["fps"]
    log_a = (finished / "search_log.jsonl").read_text().splitlines()
    log_b = (run / "search_log.jsonl").read_text().splitlines()
    strip = lambda lines: [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in lines]  # noqa: E731
    assert strip(log_b) == strip(log_a)


def test_existing_run_dir_and_corrupt_checkpoint(tmp_path, finished, capsys):
    cfg = write_config(tmp_path)
    assert main(["search", "-c", str(cfg), "--out", str(finished)]) == 2
    assert "already holds files" in capsys.readouterr().err
    run = tmp_path / "corrupt"
    run.mkdir()
    for f in ("config.yaml",):
        (run / f).write_text((finished / f).read_text())
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint at all")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    assert main(["search", "--out", str(run), "--resume"]) == 2
    assert "corrupt" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # nothing written over


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    cfg = write_config(tmp_path)
    cases = [
        (["--set", "data.name=mnist"], "unknown dataset 'mnist'"),
        (["--set", "data.name=cifar10"], "needs data.path"),
        (["--set", "data.name=imagefolder", "--set", f"data.path={tmp_path / 'nope'}"], "does not exist"),
        (["--set", "target.fps=1e9"], "out of reach"),
        (["--set", "mode=joint-ish"], "mode"),
        (["--set", "search.warmup_epochs=5"], "warmup_epochs"),
        (["--set", "hardware.platform=zc999"], "zc999"),
    ]
    for extra, msg in cases:
        out = tmp_path / "never"
        assert main(["search", "-c", str(cfg), "--out", str(out), *extra]) == 2, extra
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err, (extra, err)
        assert not out.exists(), extra


def test_train_and_report_refuse_a_directory_that_is_not_a_run(tmp_path, capsys):
    assert main(["train", str(tmp_path)]) == 2
    assert "lacks config.yaml" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "not a finished search run" in capsys.readouterr().err
    assert main(["search", "--resume"]) == 2
    assert "--resume needs --out" in capsys.readouterr().err


def test_train_writes_final_and_onnx_with_bits(tmp_path, finished):
    import onnx
    from onnx.reference import ReferenceEvaluator

    from autonba.nas.arch import Arch
    from autonba.nas.derived import DerivedNet

    assert main(["train", str(finished), "--no-progress"]) == 0
    f = json.loads((finished / "final.json").read_text())
    for key in ("test_acc", "val_acc", "fps", "dsp", "bram18k", "params", "macs", "bitops", "layer_bits",
                "train_seconds"):
        assert key in f
    assert 0 <= f["test_acc"] <= 1 and f["epochs"] == 2 and len(f["log"]) == 2
    arch = Arch.load(finished / "arch.json")
    assert f["macs"] == arch.workload().macs
    m = onnx.load(str(finished / "model.onnx"))
    meta = {p.key: p.value for p in m.metadata_props}
    bits = json.loads(meta["autonba.layer_bits"])
    assert bits["stem"] == 8 and bits == f["layer_bits"]
    # the exported graph computes what the quantised PyTorch model computes
    net = DerivedNet(arch)
    net.load_state_dict(torch.load(finished / "model.pt", weights_only=True)["state_dict"])
    net.eval()
    x = torch.randn(3, 1, 8, 8)
    ref = ReferenceEvaluator(m).run(None, {"image": x.numpy()})[0]
    with torch.no_grad():
        y = net(x).numpy()
    assert ref.shape == y.shape and abs(ref - y).max() < 1e-3 * max(1.0, abs(y).max())


def test_a_diverging_retraining_stops_with_one_error_line(tmp_path, finished, capsys):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    capsys.readouterr()
    assert main(["train", str(run), "--set", "lr=1e30", "--force", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "autonba: error: the retraining diverged" in err and "lr" in err, err


def test_train_several_seeds_and_resume_after_a_kill(tmp_path, finished, monkeypatch):
    """seeds=2 trains twice (seeds 3 and 4) and reports the mean; a retraining killed after the first
    seed and one epoch of the second resumes to the same figures."""
    import shutil

    from autonba.train import retrain as rt
    runs = []
    for name in ("full", "killed"):
        runs.append(tmp_path / name)
        shutil.copytree(finished, runs[-1],
                        ignore=shutil.ignore_patterns("final.json", "model.*", "model_*", "retrain_*"))
    full = rt.retrain(runs[0], epochs=2, overrides=["seeds=2"], progress=False)
    assert full["seeds"] == [3, 4] and len(full["per_seed"]) == 2
    assert full["test_acc"] == pytest.approx(sum(p["test_acc"] for p in full["per_seed"]) / 2)
    real, calls = rt.save_checkpoint, []

    def dies_after_the_fourth(path, state):
        real(path, state)
        calls.append(path)
        if len(calls) == 4:  # seed 3: two epochs and its result; seed 4: one epoch
            raise KeyboardInterrupt

    monkeypatch.setattr(rt, "save_checkpoint", dies_after_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        rt.retrain(runs[1], epochs=2, overrides=["seeds=2"], progress=False)
    monkeypatch.undo()
    assert not (runs[1] / "final.json").exists()
    resumed = rt.retrain(runs[1], epochs=2, overrides=["seeds=2"], resume=True, progress=False)
    figures = lambda f: [{k: v for k, v in p.items() if k != "seconds"} for p in f["per_seed"]]  # noqa: E731
    assert figures(resumed) == figures(full)


def test_report_for_one_and_several_runs(tmp_path, finished):
    assert main(["report", str(finished), "--out", str(tmp_path / "one")]) == 0
    for f in ("summary.md", "search_curves.png", "layer_cycles.png", "resources.png", "blocks.png"):
        assert (tmp_path / "one" / f).stat().st_size > 0
    assert main(["report", str(finished), str(finished), "--out", str(tmp_path / "two")]) == 0
    text = (tmp_path / "two" / "summary.md").read_text()
    assert (tmp_path / "two" / "pareto.png").stat().st_size > 0 and text.count("| joint |") == 2


def test_pareto_front():
    from autonba.report.report import pareto
    assert pareto([(1, 5), (2, 4), (2, 3), (3, 1), (0, 5)]) == [0, 1, 3]


def test_two_ddp_processes_agree(tmp_path):
    cfg = write_config(tmp_path, search={"epochs": 2, "batch_size": 8})
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "autonba.cli", "search", "-c", str(cfg), "--out", str(run), "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, "\n".join(x for x in proc.stderr.splitlines() if not x.startswith("epoch"))[-3000:]
    r = json.loads((run / "result.json").read_text())
    assert r["distributed"] == {"world_size": 2, "ranks_agree": True}


@pytest.mark.parametrize("mode", ["joint", "sequential"])
def test_asic_edp_search_train_report(tmp_path, mode):
    """The joint search on the asic-array template with an EDP spec, then retraining and a report."""
    hw = {"template": "asic-array", "engine_budget": 256, "final_engine": "das", "final_budget": 1024,
          "template_options": {"objective": "edp", "area_mm2": 1.0}}
    cfg = tiny_config(tmp_path, hardware=hw, target={"edp_uj_ms": 1.0}, mode=mode)
    cfg["hardware"] = hw
    run, r, acc = searched(tmp_path, cfg)
    assert r["accelerator"]["template"] == "asic-array" and r["accelerator"]["area_mm2"] <= 1.0
    assert r["edp_uj_ms"] == pytest.approx(acc["edp_uj_ms"]) and r["target_edp_uj_ms"] == 1.0
    assert r["meets_target"] == (acc["edp_uj_ms"] <= 1.0)
    log = [json.loads(x) for x in (run / "search_log.jsonl").read_text().splitlines()]
    assert all("edp_uj_ms" in x and "area_mm2" in x for x in log)
    assert main(["train", str(run), "--no-progress"]) == 0
    final = json.loads((run / "final.json").read_text())
    assert final["edp_uj_ms"] == r["edp_uj_ms"] and final["area_mm2"] == r["accelerator"]["area_mm2"]
    assert main(["report", str(run)]) == 0
    assert "EDP" in (run / "report" / "summary.md").read_text()


def test_edp_target_needs_the_asic_template(tmp_path, capsys):
    p = write_config(tmp_path, target={"edp_uj_ms": 1.0})
    assert main(["search", "-c", str(p), "--out", str(tmp_path / "r")]) != 0
    assert "target.edp_uj_ms needs a template that reports edp_uj_ms (asic-array)" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_one_spec_metric_at_a_time(tmp_path, capsys):
    p = write_config(tmp_path, hardware={"template": "asic-array"}, target={"edp_uj_ms": 1.0, "latency_ms": 2.0})
    assert main(["search", "-c", str(p), "--out", str(tmp_path / "r")]) == 2
    assert "give at most one of target.latency_ms, target.energy_uj, target.edp_uj_ms" in capsys.readouterr().err


def test_spec_metric_direction():
    """fps is met from above, the other metrics from below; a design that does not fit meets nothing."""
    fps = SearchConfig(target={"fps": 100.0}).target
    lat = SearchConfig(hardware={"template": "asic-array"}, target={"latency_ms": 2.0}).target
    assert fps.metric == "fps" and fps.met(100.0, True) and not fps.met(99.0, True) and not fps.met(1e9, False)
    assert lat.metric == "latency_ms" and lat.met(2.0, True) and not lat.met(2.1, True)
    assert fps.over(50.0) == 2.0 and lat.over(1.0) == 0.5
    assert lat.fields({"latency_ms": 1.5, "fps": 3.0}) == {"target_latency_ms": 2.0, "latency_ms": 1.5}


@pytest.mark.parametrize("baseline, sign", [("running-mean", -1.0), ("none", 1.0)])
def test_cost_gradient_baseline_pushes_the_cheap_likely_choice_up(baseline, sign):
    """Block 0 picks between a likely cheap operation (p = 0.8, cost 1) and an unlikely dear one
    (p = 0.2, cost 3). The expected cost falls by raising the cheap one's logit, which the running-mean
    form does (negative mean gradient); the reference form pushes the likely choice down instead."""
    import types

    from autonba.nas.space import load_space
    from autonba.nas.supernet import Supernet
    from autonba.search.joint import JointSearch

    space = load_space("small")
    sn = Supernet(space, "hetero", top_k=2)
    cheap, dear = space.ops.index("k3_e1"), space.ops.index("k5_e6")
    with torch.no_grad():
        sn.alpha.fill_(-30.0)
        sn.alpha[:, cheap], sn.alpha[:, dear] = math.log(0.8), math.log(0.2)
    cost = torch.full((len(space.ops),), 2.0)
    cost[cheap], cost[dear] = 1.0, 3.0
    state = types.SimpleNamespace(cfg=types.SimpleNamespace(search=types.SimpleNamespace(cost_baseline=baseline)),
                                  cost_mean=None)
    g, total = torch.Generator().manual_seed(0), torch.zeros(())
    for _ in range(600):
        sample = sn.sample("arch", 1.0, g)
        c = cost[torch.tensor(sample.op)]
        adv = JointSearch._cost_advantage(state, c)
        total += torch.autograd.grad((sn.path_weights(sample) * adv).sum(), sn.alpha)[0][0, cheap]
    assert sign * float(total) > 0, float(total)


def test_lambda_updates():
    from autonba.nas.space import load_space
    from autonba.search.costing import Costing

    def adapt(update, fps, lam=1.0):
        cfg = SearchConfig.model_validate({"target": {"fps": 40000, "band": 1.25, "lambda_update": update}})
        return Costing(cfg, load_space("small")).adapt(lam, {"fps": fps, "accel_feasible": True})

    assert adapt("double", 30000) == 2.0 and adapt("double", 60000) == 0.5 and adapt("double", 45000) == 1.0
    assert adapt("proportional", 32000) == pytest.approx(1.25)              # 40,000 / 32,000
    assert adapt("proportional", 10000) == 2.0                              # clipped
    assert adapt("proportional", 45000) == 1.0                              # inside the band
    assert adapt("proportional", 62500) == pytest.approx(0.8)               # 40,000 / 62,500 x 1.25
    assert adapt("proportional", 400000) == 0.5                             # clipped
    assert adapt("proportional", 10000, lam=80.0) == 100.0                  # lambda_max
    # a design that does not fit its platform meets no spec, however fast (fixed-accel carries one over)
    cfg = SearchConfig.model_validate({"target": {"fps": 40000}})
    costing = Costing(cfg, load_space("small"))
    assert costing.meets({"fps": 90000, "accel_feasible": True})
    assert not costing.meets({"fps": 90000, "accel_feasible": False})
    assert costing.adapt(1.0, {"fps": 90000, "accel_feasible": False}) == 2.0


def test_pow2_scales_through_search_and_retraining(tmp_path):
    """quant_scales: pow2 reaches the supernet, the derived arch.json and the retrained network."""
    cfg = tiny_config(tmp_path, quant_scales="pow2", search={"epochs": 2, "warmup_epochs": 1})
    run, r, _ = searched(tmp_path, cfg)
    assert json.loads((run / "arch.json").read_text())["layout"]["scales"] == "pow2"
    assert r["arch"]["layout"]["scales"] == "pow2"
    assert main(["train", str(run), "--epochs", "1", "--no-progress"]) == 0
    model = torch.load(run / "model.pt", weights_only=False)
    assert model["arch"]["layout"]["scales"] == "pow2"
