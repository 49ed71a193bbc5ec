"""A sweep killed mid-way (SIGKILL of the sweep and of its running points) and run again ends with the
same results as an uninterrupted one: two digits points (joint and sequential, the embedded default
otherwise), each searched and retrained.

    python benchmarks/sweep_resume.py --root runs/bench/sweep-resume --kill-after 240

Runs the sweep uninterrupted into ROOT/whole, then into ROOT/killed: SIGKILL of its process group after
``--kill-after`` seconds, then the same command again until it ends. Compares every point's result.json,
final.json, arch.json, accelerator.json and search log (wall times left out) and prints what differs.
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

SWEEP = """base: {}
axes:
  mode: [joint, sequential]
train: true
"""


def strip(x):
    if isinstance(x, dict):
        return {k: strip(v) for k, v in x.items() if not k.endswith("seconds")}
    return [strip(v) for v in x] if isinstance(x, list) else x


def outcome(run: Path) -> dict:
    out = {f: json.loads((run / f).read_text()) for f in ("result.json", "final.json", "arch.json",
                                                          "accelerator.json")}
    out["log"] = [json.loads(line) for line in (run / "search_log.jsonl").read_text().splitlines()]
    return strip(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default="runs/bench/sweep-resume")
    ap.add_argument("--kill-after", type=float, default=240.0)
    args = ap.parse_args()
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    f = root / "sweep.yaml"
    f.write_text(SWEEP)

    def sweep(dest: str) -> list[str]:
        return [sys.executable, "-m", "autonba.cli", "sweep", str(f), "--root", str(root / dest), "--jobs", "2",
                "--no-progress"]

    t0 = time.perf_counter()
    subprocess.run(sweep("whole"), check=True)
    whole_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    p = subprocess.Popen(sweep("killed"), start_new_session=True)
    try:
        p.wait(timeout=args.kill_after)
        raise SystemExit("the sweep ended before the kill: lower --kill-after")
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    logs = {n: len((root / "killed" / n / "search_log.jsonl").read_text().splitlines())
            if (root / "killed" / n / "search_log.jsonl").exists() else 0 for n in ("mode-joint", "mode-sequential")}
    subprocess.run(sweep("killed"), check=True)
    killed_s = time.perf_counter() - t0

    same = {n: outcome(root / "whole" / n) == outcome(root / "killed" / n) for n in ("mode-joint", "mode-sequential")}
    print(f"uninterrupted: {whole_s:.0f} s; killed after {args.kill_after:.0f} s (epochs logged then: {logs}) "
          f"and run again: {killed_s:.0f} s in all")
    for n, ok in same.items():
        r = outcome(root / "killed" / n)
        print(f"{n}: {'identical' if ok else 'DIFFERENT'} (FPS {r['result.json']['fps']:,.1f}, test accuracy "
              f"{100 * r['final.json']['test_acc']:.2f}%)")
    if not all(same.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
