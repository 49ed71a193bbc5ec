"""Accelerator Pareto fronts: our searched front and Optuna's NSGA-II at the same number of design
evaluations, against the exact front.

    python benchmarks/accel_pareto.py --seeds 0 1 2 --threads 1

Cases: MobileNetV2-CIFAR (zoo ``mobilenetv2-cifar``, 8 bits) on ``fpga-chunk`` / zc706 in
(fps, dsp, bram), and ResNet-18 (zoo ``resnet18``, ImageNet shapes, 8 bits) on ``asic-array`` /
generic-45nm in (latency_ms, energy_uj, area_mm2). Per case: the exact front (``engine=exact``), then
per seed our front (``engine=das``, the default budget) and NSGA-II (``optuna.samplers.NSGAIISampler``,
populations 50 (Optuna's default) and 100, seeded; the budgets as constraints, the design space's
constraints by repair) given exactly as many design evaluations as our front used (one trial = one
full design: one categorical parameter per design factor, per chunk on FPGA, per array factor and per
layer-mapping factor on asic-array; a generation asked at a time and evaluated in one batch).

Hypervolume: every objective in minimisation form, normalised to [0, 1] between the exact front's
ideal point (0) and its nadir point (1); reference point 1.1 in every objective (the nadir plus 10% of
each range); each front's hypervolume as a fraction of the exact front's. Every evaluated feasible
design of NSGA-II counts (its non-dominated ones). Wall times on this machine (torch threads as set by
--threads). Needs optuna (``pip install optuna``); writes ``runs/bench/accel_pareto/rows.json`` and
prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from autonba.hw.hardware import load_hardware
from autonba.hw.pareto import DIRECTIONS, REFERENCE, hypervolume, minimised, nondominated, normalise, pareto_front
from autonba.hw.template import HardwareTemplate
from autonba.hw.zoo import WORKLOADS

CASES = [("mobilenetv2-cifar", "fpga-chunk", "zc706", ("fps", "dsp", "bram")),
         ("resnet18", "asic-array", "generic-45nm", ("latency_ms", "energy_uj", "area_mm2"))]


def nsga2(t: HardwareTemplate, objectives: tuple[str, ...], evaluations: int, seed: int,
          population: int) -> torch.Tensor:
    """NSGA-II over the template's design space (one categorical parameter per factor with a choice, per
    chunk on FPGA, per array factor and per layer mapping factor on asic-array), asked a generation at a
    time and evaluated in one batch. Returns the objective values (n, K) of the feasible designs."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names, counts = parameters(t)
    sampler = optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    study = optuna.create_study(directions=[DIRECTIONS[o] + "imize" for o in objectives],
                                sampler=sampler)
    found = []
    done = 0
    while done < evaluations:
        trials = [study.ask() for _ in range(min(population, evaluations - done))]
        idx = torch.tensor([[tr.suggest_categorical(n, list(range(c))) for n, c in zip(names, counts)]
                            for tr in trials])
        values, overflow = evaluate(t, idx, objectives)
        for tr, v, o in zip(trials, values.tolist(), overflow.tolist()):
            for k, x in enumerate(o):
                tr.set_constraint(f"overflow{k}", x)
            study.tell(tr, v)
        found.append(values[(overflow <= 0).all(1)])
        done += len(trials)
    return torch.cat(found)


def parameters(t: HardwareTemplate) -> tuple[list[str], list[int]]:
    """Names and value counts of the factors with a choice, in the order ``evaluate`` reads them."""
    sp = t.space
    if hasattr(sp, "chunk_names"):
        return ([f"{c}.{f}" for c in sp.chunk_names for f in sp.factors],
                sp.num_values.flatten().tolist())
    hw = [f"array.{f}" for f in sp.hw_factors]
    maps = [f"{n}.{f}" for n in sp.layer_names for f in sp.map_factors]
    return hw + maps, sp.hw_valid.sum(-1).tolist() + sp.map_valid.sum(-1).flatten().tolist()


def evaluate(t: HardwareTemplate, idx: torch.Tensor, objectives: tuple[str, ...]
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Objective values (B, K) and budget overflows (B, m; <= 0 feasible) of designs given as the flat
    parameter indices of ``parameters``."""
    sp = t.space
    if hasattr(sp, "chunk_names"):
        vals = sp.values(sp.repair(idx.view(len(idx), sp.num_chunks, len(sp.factors))))
        ev = t.evaluate(vals)
        fig = {"fps": ev.fps, "dsp": ev.total_dsp, "bram": ev.total_bram}
        dsp, bram = t.budgets
        over = torch.stack([ev.total_dsp / dsp - 1, ev.total_bram / bram - 1], 1)
    else:
        H = len(sp.hw_factors)
        hv, mv = sp.values(idx[:, :H], idx[:, H:].view(len(idx), sp.num_layers, len(sp.map_factors)))
        ev = t.evaluate(hv, mv)
        fig = t.metrics(ev.latency, ev.energy, ev.area)
        over = (~ev.feasible).to(torch.float64).unsqueeze(1)   # tiles that do not fit, or over the area budget
    return torch.stack([fig[o] for o in objectives], 1), over


def fraction(values: torch.Tensor, objectives: tuple[str, ...], ideal: torch.Tensor, nadir: torch.Tensor,
             exact_hv: float) -> float:
    m = minimised(values, objectives)
    m = m[nondominated(m)] if len(m) else m
    return hypervolume(normalise(m, ideal, nadir), [REFERENCE] * len(objectives)) / exact_hv


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--budget", type=int, help="design evaluations of our front (default: the family's)")
    ap.add_argument("--populations", type=int, nargs="+", default=[50, 100], help="NSGA-II population sizes")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: stable wall times on a shared machine)")
    ap.add_argument("--out", default="runs/bench/accel_pareto")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows: list[dict[str, Any]] = []
    for net, template, plat, objectives in CASES:
        cls, loaded, opts = load_hardware(template, plat, {})
        t = cls(WORKLOADS.get(net)(8), loaded, **opts)
        ex = pareto_front(t, objectives, engine="exact")
        ideal, nadir = ex.bounds()
        exact_hv = ex.hypervolume()
        case = {"network": net, "template": template, "platform": plat, "objectives": list(objectives)}
        rows.append({**case, "method": "exact", "seed": None, "points": len(ex.designs), "hv_fraction": 1.0,
                     "evaluations": ex.evaluations, "seconds": ex.seconds})
        print(json.dumps(rows[-1]), flush=True)
        for seed in a.seeds:
            ours = pareto_front(t, objectives, engine="das", budget=a.budget, seed=seed)
            rows.append({**case, "method": "ours (das)", "seed": seed, "points": len(ours.designs),
                         "hv_fraction": ours.hypervolume(ideal, nadir) / exact_hv,
                         "evaluations": ours.evaluations, "seconds": ours.seconds})
            print(json.dumps(rows[-1]), flush=True)
            for population in a.populations:
                t0 = time.perf_counter()
                found = nsga2(t, objectives, ours.evaluations, seed, population)
                seconds = time.perf_counter() - t0
                rows.append({**case, "method": f"NSGA-II (optuna, population {population})", "seed": seed,
                             "points": len(nondominated(minimised(found, objectives))) if len(found) else 0,
                             "hv_fraction": fraction(found, objectives, ideal, nadir, exact_hv),
                             "evaluations": ours.evaluations, "seconds": seconds})
                print(json.dumps(rows[-1]), flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "rows.json").write_text(json.dumps(rows, indent=1))
    print(f"\nmachine: {platform.processor() or platform.machine()}, torch threads {a.threads}, "
          f"seeds {a.seeds}\n")
    print("| workload | template / platform | objectives | method | HV / exact (median, worst) | evaluations "
          "(median) | front points (median) | wall time s (median, worst) |")
    print("|---|---|---|---|---|---|---|---|")
    for (net, template, plat, objectives) in CASES:
        for method in dict.fromkeys(r["method"] for r in rows if r["network"] == net):
            rs = [r for r in rows if r["network"] == net and r["method"] == method]
            hv = [r["hv_fraction"] for r in rs]
            sec = [r["seconds"] for r in rs]
            print(f"| {net} | {template} / {plat} | {', '.join(objectives)} | {method} | "
                  f"{statistics.median(hv):.4f}, {min(hv):.4f} | {statistics.median(r['evaluations'] for r in rs):,.0f}"
                  f" | {statistics.median(r['points'] for r in rs):.0f} | {statistics.median(sec):.2f}, "
                  f"{max(sec):.2f} |")


if __name__ == "__main__":
    main()
