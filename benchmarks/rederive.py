"""Apply another ``search.derive`` rule to finished searches without searching again.

The derivation runs only after the last search epoch, so a finished run's final checkpoint holds
everything it needs: this copies each run's checkpoint, search log, config and wall times into a
new folder, sets ``search.derive`` there, and lets ``autonba search --resume`` finish the run
(derivation, final accelerator search, result.json). Retraining is left to the benchmark, e.g.

    python benchmarks/rederive.py --src runs/bench2/runs --dst runs/bench5/runs --derive rescore
    python benchmarks/joint_vs_baselines.py baselines --seeds 0 1 2 --root runs/bench5

The copied ``bench.json`` keeps the original search wall time and drops the retraining one.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from autonba.io import load_checkpoint, save_checkpoint


def rederive(src: Path, dst: Path, derive: str) -> None:
    if (dst / "result.json").exists():
        return
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("checkpoint.pt", "search_log.jsonl"):
        shutil.copy2(src / name, dst / name)
    cfg = yaml.safe_load((src / "config.yaml").read_text())
    cfg["search"]["derive"] = derive
    (dst / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    state = load_checkpoint(dst / "checkpoint.pt")
    if state["epoch"] != cfg["search"]["epochs"]:
        raise SystemExit(f"{src}: the search did not finish (epoch {state['epoch']} of {cfg['search']['epochs']})")
    state["config"]["search"]["derive"] = derive
    save_checkpoint(dst / "checkpoint.pt", state)
    meta = json.loads((src / "bench.json").read_text()) if (src / "bench.json").exists() else {}
    meta.pop("train_wall_s", None)
    (dst / "bench.json").write_text(json.dumps(meta))
    subprocess.run([sys.executable, "-m", "autonba.cli", "search", "--out", str(dst), "--resume", "--no-progress"],
                   check=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", type=Path, required=True, help="folder of finished run directories")
    ap.add_argument("--dst", type=Path, required=True)
    ap.add_argument("--derive", required=True, choices=["rescore", "best", "last"])
    ap.add_argument("--runs", nargs="*", help="run names (default: every run in --src)")
    a = ap.parse_args()
    for run in sorted(a.src.iterdir()) if not a.runs else [a.src / r for r in a.runs]:
        if (run / "checkpoint.pt").exists():
            rederive(run, a.dst / run.name, a.derive)
            r = json.loads((a.dst / run.name / "result.json").read_text())
            print(f"{run.name}: epoch {r['derived_after_epoch']}, {r['fps']:,.0f} FPS, "
                  f"acc {100 * r['supernet_acc']:.1f}%, {' '.join(f'{o}@{b}' for o, b in zip(r['ops'], r['bits']))}")


if __name__ == "__main__":
    main()
