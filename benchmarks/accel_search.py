"""Accelerator search benchmark (issue: cost models and search engines).

Measures, on this machine:
  1. fpga-legacy golden network: exact optimum (comp_mode fixed to 1 and free) and das over 5 seeds
     (FPS and the search time the engine reports);
  2. batched evaluation throughput (full designs per second) on the 70-layer golden network;
  3. fpga-chunk MobileNetV2-CIFAR at 8 bits on zc706 and ultra96: the exact optimum and
     das / random / evolution at equal evaluation budgets, median over 5 seeds, with wall times,
     and the DSP/BRAM use of the optimum.

Usage: python benchmarks/accel_search.py [--seeds 5] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from autonba.hw.engines import ENGINES
from autonba.hw.platform import load_platform
from autonba.hw.templates import TEMPLATES
from autonba.hw.workload import Workload
from autonba.hw.zoo import WORKLOADS

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "data" / "fpga_legacy_cases.json"


def golden_section(seeds: int) -> dict:
    t = TEMPLATES.get("fpga-legacy")(Workload.from_json(GOLDEN), load_platform("zc706-legacy"))
    out = {}
    for label, pins in (("comp_mode=1", {"comp_mode": 1}), ("comp_mode free", {})):
        sp = t.space.fix(pins)
        ex = ENGINES.get("exact")(t, sp).run()
        runs = [ENGINES.get("das")(t, sp, seed=s).run() for s in range(seeds)]
        out[label] = {
            "exact_fps": t.clock_hz / ex.score, "exact_seconds": ex.seconds,
            "das_fps": [t.clock_hz / r.score for r in runs], "das_seconds": [r.seconds for r in runs],
            "das_evaluations": [r.evaluations for r in runs],
        }
    return out


def throughput_section(seconds: float = 3.0) -> dict:
    out = {}
    for name in ("fpga-legacy", "fpga-chunk"):
        plat = "zc706-legacy" if name == "fpga-legacy" else "zc706"
        t = TEMPLATES.get(name)(Workload.from_json(GOLDEN), load_platform(plat))
        idx, _ = t.space.sample(4096, generator=torch.Generator().manual_seed(0))
        vals = t.space.values(idx)
        t.evaluate(vals)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            t.evaluate(vals)
            n += len(vals)
        out[name] = n / (time.perf_counter() - t0)
    return out


def engines_section(seeds: int) -> dict:
    out = {}
    for plat in ("zc706", "ultra96"):
        t = TEMPLATES.get("fpga-chunk")(WORKLOADS.get("mobilenetv2-cifar")(8), load_platform(plat))
        ex = ENGINES.get("exact")(t).run()
        ev = t.evaluate(ex.best.unsqueeze(0))
        row = {"exact_fps": t.clock_hz / ex.score, "exact_seconds": ex.seconds,
               "exact_evaluations": ex.evaluations,
               "optimum_dsp_util": float(ev.total_dsp[0]) / t.platform.dsp,
               "optimum_bram_util": float(ev.total_bram[0]) / t.platform.bram18k, "engines": {}}
        for budget in (2000, 20000):
            for eng in ("das", "random", "evolution"):
                runs = [ENGINES.get(eng)(t, seed=s, budget=budget).run() for s in range(seeds)]
                fps = [t.clock_hz / r.score if r.best is not None else 0.0 for r in runs]
                row["engines"][f"{eng}@{budget}"] = {
                    "median_fps": statistics.median(fps), "fps": fps,
                    "median_seconds": statistics.median(r.seconds for r in runs),
                    "median_evaluations": statistics.median(r.evaluations for r in runs)}
        out[plat] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--json", help="also write the raw figures here")
    a = ap.parse_args()
    res = {"machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
                      f"torch {torch.__version__}",
           "golden": golden_section(a.seeds), "throughput": throughput_section(), "mbv2": engines_section(a.seeds)}
    print(f"machine: {res['machine']}\n")
    print("## Golden legacy network (fpga-legacy, zc706-legacy)\n")
    print("| setting | exact FPS | das FPS per seed | das / exact (min) | das seconds (max) |")
    print("|---|---|---|---|---|")
    for k, v in res["golden"].items():
        print(f"| {k} | {v['exact_fps']:.2f} | {', '.join(f'{f:.2f}' for f in v['das_fps'])} | "
              f"{min(v['das_fps']) / v['exact_fps']:.4f} | {max(v['das_seconds']):.2f} |")
    print("\n## Batched evaluation, 70-layer golden network, batch 4096\n")
    for k, v in res["throughput"].items():
        print(f"- {k}: {v:,.0f} full designs/s")
    print("\n## fpga-chunk, MobileNetV2-CIFAR, 8 bits (median over seeds)\n")
    print("| platform | engine@budget | median FPS | / exact | median seconds | median evaluations |")
    print("|---|---|---|---|---|---|")
    for plat, row in res["mbv2"].items():
        print(f"| {plat} | exact | {row['exact_fps']:.2f} | 1.0000 | {row['exact_seconds']:.2f} | "
              f"{row['exact_evaluations']:,} |")
        for k, v in row["engines"].items():
            print(f"| {plat} | {k} | {v['median_fps']:.2f} | {v['median_fps'] / row['exact_fps']:.4f} | "
                  f"{v['median_seconds']:.2f} | {v['median_evaluations']:,.0f} |")
        print(f"| {plat} | optimum uses | DSP {100 * row['optimum_dsp_util']:.1f}% | "
              f"BRAM {100 * row['optimum_bram_util']:.1f}% | | |")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
