"""Evidence for the joint search: each experiment runs ``autonba search`` then ``autonba train`` per
configuration (as subprocesses, one after another) and writes a table and ``autonba report`` plots.

    python benchmarks/joint_vs_baselines.py default                       # the embedded default
    python benchmarks/joint_vs_baselines.py targets --fps 20000 40000 60000
    python benchmarks/joint_vs_baselines.py baselines --seeds 0 1 2
    python benchmarks/joint_vs_baselines.py cifar --data-path ../shared/data/cifar10-jpeg.zip
    python benchmarks/joint_vs_baselines.py resume --kill-after 150

Runs live in ``runs/bench/runs/<mode>-s<seed>-fps<target>`` and are shared between experiments (the
default run is also the seed-0 joint run of ``baselines``); finished
ones are reused, so experiments can be continued across sessions or split over processes (e.g.
``baselines --seeds 1 2`` in a second shell). Tables and reports go to ``runs/bench/<experiment>``.
``--set KEY=VALUE`` is passed to every search (it is not part of the run's name: use it with a fresh
``--root``), ``--train-set KEY=VALUE`` to every retraining (e.g. ``seeds=3``: mean test accuracy over
three retrainings).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path("runs/bench")
DEFAULT_FPS = 40000.0
CIFAR = ["data.name=imagefolder", "data.input_size=32", "data.train_subset=10000", "data.test_subset=10000",
         "search.epochs=5", "search.warmup_epochs=3", "search.arch_lr=0.03", "search.batch_size=64",
         "search.workers=1", "retrain.epochs=15", "retrain.batch_size=64", "retrain.workers=1"]


def cli(*args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "autonba.cli", *args], check=True)
    return time.perf_counter() - t0


def run_one(run: Path, sets: list[str], train: bool = True, train_sets: list[str] = ()) -> dict:
    """Search (and retrain) into ``run`` unless already done; the wall times are kept in bench.json."""
    meta_path = run / "bench.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if not (run / "result.json").exists():
        if (run / "config.yaml").exists():  # interrupted: continue (or restart) it with its own config
            meta["search_wall_s"] = cli("search", "--out", str(run), "--resume", "--no-progress")
        else:
            meta["search_wall_s"] = cli("search", "--out", str(run), "--no-progress",
                                        *[a for s in sets for a in ("--set", s)])
        meta_path.write_text(json.dumps(meta))
    if train and not (run / "final.json").exists():
        again = ["--resume"] if (run / "retrain_checkpoint.pt").exists() else []
        meta["train_wall_s"] = cli("train", str(run), "--no-progress", *again,
                                   *[a for s in train_sets for a in ("--set", s)])
        meta_path.write_text(json.dumps(meta))
    r = json.loads((run / "result.json").read_text())
    f = json.loads((run / "final.json").read_text()) if (run / "final.json").exists() else {}
    return {"run": run.name, "mode": r["mode"], "seed": r["seed"], "target": r["target_fps"], "fps": r["fps"],
            "met": r["meets_target"], "supernet_acc": r["supernet_acc"], "test_acc": f.get("test_acc"),
            "dsp": r["accelerator"]["dsp"], "bram": r["accelerator"]["bram18k"],
            "test_acc_std": f.get("test_acc_std"), "train_seeds": len(f.get("seeds", [0])) if f else None,
            "blocks": " ".join(f"{o}@{b}" for o, b in zip(r["ops"], r["bits"])),
            "search_s": meta.get("search_wall_s"), "train_s": meta.get("train_wall_s")}


def table(rows: list[dict]) -> str:
    head = "| run | mode | seed | target FPS | FPS | met | test acc % | supernet acc % | DSP | BRAM | " \
           "search wall s | train wall s | blocks |"
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        ta = "-" if r["test_acc"] is None else f"{100 * r['test_acc']:.2f}"
        if (r.get("train_seeds") or 1) > 1:
            ta += f" ± {100 * r['test_acc_std']:.2f} (n={r['train_seeds']})"
        lines.append(f"| {r['run']} | {r['mode']} | {r['seed']} | {r['target']:,.0f} | {r['fps']:,.0f} | "
                     f"{'yes' if r['met'] else 'no'} | {ta} | {100 * r['supernet_acc']:.1f} | {r['dsp']:g} | "
                     f"{r['bram']:g} | {r['search_s'] or 0:.0f} | {r['train_s'] or 0:.0f} | {r['blocks']} |")
    return "\n".join(lines)


def finish(out: Path, rows: list[dict], runs: list[Path]) -> None:
    (out / "table.md").write_text(table(rows) + "\n")
    (out / "rows.json").write_text(json.dumps(rows, indent=2))
    cli("report", *map(str, runs), "--out", str(out / "report"))
    print(table(rows))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("experiment", choices=["default", "targets", "baselines", "cifar", "resume"])
    ap.add_argument("--fps", type=float, nargs="+", default=[20000, 40000, 60000])
    ap.add_argument("--target", type=float, default=DEFAULT_FPS, help="FPS target of default / baselines / resume")
    ap.add_argument("--root", default=str(ROOT))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--modes", nargs="+", default=["joint", "fixed-accel", "sequential"])
    ap.add_argument("--data-path", default="../shared/data/cifar10-jpeg.zip")
    ap.add_argument("--cifar-fps", type=float, default=8000)
    ap.add_argument("--kill-after", type=float, default=150, help="seconds before the SIGKILL (resume)")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--train-set", action="append", default=[],
                    help="passed to every 'autonba train' as --set, e.g. seeds=3 (a run already trained is reused)")
    a = ap.parse_args()
    root = Path(a.root)
    exp = root / a.experiment
    exp.mkdir(parents=True, exist_ok=True)
    rows, runs = [], []

    def named(mode: str, seed: int, fps: float, extra: list[str] = (), prefix: str = "") -> None:
        runs.append(root / "runs" / f"{prefix}{mode}-s{seed}-fps{fps:g}")
        rows.append(run_one(runs[-1], [f"mode={mode}", f"seed={seed}", f"target.fps={fps}", *extra, *a.set],
                            train_sets=a.train_set))

    if a.experiment == "default":
        named("joint", 0, a.target)
    elif a.experiment == "targets":
        for fps in a.fps:
            named("joint", 0, fps)
    elif a.experiment == "baselines":
        for seed in a.seeds:
            for mode in a.modes:
                named(mode, seed, a.target)
    elif a.experiment == "cifar":
        for mode in a.modes:
            named(mode, 0, a.cifar_fps, [f"data.path={a.data_path}", *CIFAR], prefix="cifar-")
    else:  # resume: SIGKILL a default search mid-way, resume it, compare with an uninterrupted run
        # the reference runs in this process's environment too: results are reproducible for the same
        # seed *and* the same number of threads (float reductions in the convolutions depend on it)
        ref, killed = exp / "uninterrupted", exp / "killed"
        sets = ["mode=joint", "seed=0", f"target.fps={a.target}", *a.set]
        run_one(ref, sets, train=False)
        if not (killed / "result.json").exists():
            proc = subprocess.Popen([sys.executable, "-m", "autonba.cli", "search", "--out", str(killed),
                                     "--no-progress", *[x for s in sets for x in ("--set", s)]])
            time.sleep(a.kill_after)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            epochs = len((killed / "search_log.jsonl").read_text().splitlines())
            print(f"killed after {a.kill_after:.0f} s with {epochs} epochs logged")
            cli("search", "--out", str(killed), "--resume", "--no-progress")
        ra, rb = (json.loads((d / "result.json").read_text()) for d in (ref, killed))
        same = ra["arch"] == rb["arch"]
        print(f"derived architecture identical: {same}; FPS {ra['fps']:.1f} vs {rb['fps']:.1f}")
        (exp / "resume.json").write_text(json.dumps({"identical_arch": same, "fps": [ra["fps"], rb["fps"]],
                                                     "blocks": [ra["ops"], rb["ops"], ra["bits"], rb["bits"]]}))
        return
    finish(exp, rows, runs)


if __name__ == "__main__":
    main()
