"""EDP found by the asic-array engines (das, random, evolution at equal evaluation budgets, and exact)
for zoo networks at 8 bits under several area budgets, over seeds, with wall times.

    python benchmarks/asic_engines.py --networks mobilenetv2-cifar resnet18 --areas 1.5 4 \\
        --seeds 0 1 2 3 4 --budget 16384

Writes ``runs/bench/asic_engines/rows.json`` and ``table.md``: per (network, area budget, engine) the
median / worst EDP over seeds relative to the best known (exact's optimum), and the median wall time.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from autonba.hw.asic.array import AsicArray
from autonba.hw.asic.engines import ASIC_ENGINES
from autonba.hw.asic.tech import load_technology
from autonba.hw.zoo import WORKLOADS


def edp_uj_ms(t: AsicArray, best) -> float:
    ev = t.evaluate(best[0].unsqueeze(0), best[1].unsqueeze(0))
    return float(ev.energy[0]) * 1e-6 * float(ev.latency[0]) / t.tech.clock_hz * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--networks", nargs="+", default=["mobilenetv2-cifar", "resnet18"])
    ap.add_argument("--areas", type=float, nargs="+", default=[1.5, 4.0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--budget", type=int, default=16384)
    ap.add_argument("--engines", nargs="+", default=["das", "random", "evolution"])
    ap.add_argument("--out", default="runs/bench/asic_engines")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    rows = []
    for net in a.networks:
        for area in a.areas:
            t = AsicArray(WORKLOADS.get(net)(8), load_technology("generic-45nm"), objective="edp", area_mm2=area)
            t0 = time.perf_counter()
            ex = ASIC_ENGINES.get("exact")(t, progress=False).run()
            rows.append({"network": net, "area_mm2": area, "engine": "exact", "seed": None,
                         "edp_uj_ms": edp_uj_ms(t, ex.best), "evaluations": ex.evaluations,
                         "seconds": time.perf_counter() - t0,
                         "array": t.space.to_dicts(ex.best[0][None], ex.best[1][None])[0]["array"]})
            print(json.dumps(rows[-1]), flush=True)
            for engine in a.engines:
                for seed in a.seeds:
                    t0 = time.perf_counter()
                    o = ASIC_ENGINES.get(engine)(t, seed=seed, budget=a.budget, progress=False).run()
                    rows.append({"network": net, "area_mm2": area, "engine": engine, "seed": seed,
                                 "edp_uj_ms": edp_uj_ms(t, o.best) if o.best else float("inf"),
                                 "evaluations": o.evaluations, "seconds": time.perf_counter() - t0,
                                 "buffers_solved": o.info.get("buffers_solved"),
                                 "array": (t.space.to_dicts(o.best[0][None], o.best[1][None])[0]["array"]
                                           if o.best else None)})
                    print(json.dumps(rows[-1]), flush=True)
            (out / "rows.json").write_text(json.dumps(rows, indent=1))
    lines = ["| network | area budget mm2 | engine | best EDP uJ*ms | median / worst of best known | median s | "
             "evaluations | buffer configurations solved (das, median) |", "|---|---|---|---|---|---|---|---|"]
    for net in a.networks:
        for area in a.areas:
            sel = [r for r in rows if r["network"] == net and r["area_mm2"] == area]
            best = min(r["edp_uj_ms"] for r in sel)
            for engine in ["exact", *a.engines]:
                rs = [r for r in sel if r["engine"] == engine]
                q = [best / r["edp_uj_ms"] for r in rs]
                lines.append(f"| {net} | {area:g} | {engine} | {min(r['edp_uj_ms'] for r in rs):.4g} | "
                             f"{100 * statistics.median(q):.1f}% / {100 * min(q):.1f}% | "
                             f"{statistics.median(r['seconds'] for r in rs):.1f} | {rs[0]['evaluations']:,} | "
                             f"{_median_solved(rs)} |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _median_solved(rs: list[dict]) -> str:
    solved = [r.get("buffers_solved") for r in rs if r.get("buffers_solved") is not None]
    return f"{statistics.median(solved):g}" if solved else ""


if __name__ == "__main__":
    main()
