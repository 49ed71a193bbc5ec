"""``autonba report ROOT`` on a sweep: the accuracy-vs-efficiency fronts of a co-search study.

Points that differ only in their seed form a group (one mode at one spec, or one hand-designed
network); a group's figure is the mean over its seeds and retrainings, its spread their standard
deviation. Each mode's front is the set of its non-dominated groups (test accuracy up, FPS up, or the
spec metric down: EDP, latency, energy). Hypervolumes are computed on the normalised plane: every
objective mapped onto [0, 1] between the best and the worst group of the whole sweep, and the common
reference point at 1.1 (the worst plus 10% of the range), so every mode is measured on the same plane.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from autonba.hw.pareto import DIRECTIONS, REFERENCE, UNITS, hypervolume, nondominated, normalise
from autonba.io import check_output_dir, write_atomic
from autonba.report.report import Run, load_run, result_class
from autonba.sweep.plan import STATE, Point, load_plan, saved_sweep
from autonba.sweep.point import sweep_status

HAND = "fixed-arch"
NAMES = {"fps": "FPS", "edp_uj_ms": "EDP", "latency_ms": "latency", "energy_uj": "energy"}


def is_sweep(path: str | Path) -> bool:
    return (Path(path) / STATE / "points.json").is_file()


@dataclass
class Group:
    """Points that differ only in their seed."""
    key: str
    mode: str
    label: str
    runs: list[tuple[Point, Run]] = field(default_factory=list)

    def xs(self, metric: str) -> list[float]:
        return [_metric(r, metric) for _, r in self.runs]

    def accs(self) -> list[float]:
        """Every retraining's test accuracy (or each run's supernet accuracy where not retrained)."""
        out: list[float] = []
        for _, r in self.runs:
            if r.final:
                out += [s["test_acc"] for s in r.final.get("per_seed") or [{"test_acc": r.final["test_acc"]}]]
            elif r.result["supernet_acc"] is not None:
                out.append(r.result["supernet_acc"])
        return out


def _metric(run: Run, metric: str) -> float:
    return float(run.result[metric])


def _mean_std(xs: list[float]) -> tuple[float, float]:
    if not xs:
        return math.nan, math.nan
    t = torch.tensor(xs, dtype=torch.float64)
    return float(t.mean()), float(t.std()) if len(xs) > 1 else 0.0


def _groups(points: list[Point], runs: dict[str, Run], metric: str) -> list[Group]:
    groups: dict[str, Group] = {}
    for p in points:
        if p.name not in runs:
            continue
        rest = {k: v for k, v in p.values.items() if k not in ("seed", "data.seed")}
        key = ", ".join(f"{k}={v}" for k, v in rest.items()) or "base"
        bound = p.config.target.bound
        label = (p.config.arch or p.name) if p.config.mode == HAND else \
            f"{p.config.mode} @ {bound:,.6g} {NAMES[metric]}"
        groups.setdefault(key, Group(key, p.config.mode, label)).runs.append((p, runs[p.name]))
    return list(groups.values())


def mode_fronts(means: torch.Tensor, modes: list[str], metric: str) -> tuple[dict[str, list[int]], dict[str, float]]:
    """Per mode, the indices of its non-dominated groups and its hypervolume, from every group's mean
    (accuracy, metric) ``means`` (n, 2); groups without a figure (NaN) are left out."""
    ok = torch.isfinite(means).all(1)
    sign = torch.tensor([-1.0, -1.0 if DIRECTIONS[metric] == "max" else 1.0], dtype=torch.float64)
    pts = means.to(torch.float64) * sign
    if not ok.any():
        return {}, {}
    norm = normalise(pts, pts[ok].min(0).values, pts[ok].max(0).values)
    fronts, hv = {}, {}
    for mode in sorted(set(modes)):
        idx = torch.tensor([i for i, m in enumerate(modes) if m == mode and ok[i]], dtype=torch.long)
        if len(idx):
            fronts[mode] = [int(idx[j]) for j in nondominated(norm[idx])]
            hv[mode] = hypervolume(norm[idx], [REFERENCE, REFERENCE])
    return fronts, hv


def _plot(groups: list[Group], fronts: dict[str, list[int]], metric: str, targets: list[float], title: str,
          accuracy: str, out: Path) -> None:
    from autonba.report.report import _plt, _save

    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    modes = sorted({g.mode for g in groups})
    colour = {m: f"C{i}" for i, m in enumerate(modes)}
    labelled: set[str] = set()
    hand = 0
    for g in groups:
        c = colour[g.mode]
        accs = [100 * a for a in g.accs()]
        (mx, sx), (ma, sa) = _mean_std(g.xs(metric)), _mean_std(accs)
        if not math.isfinite(ma):
            continue
        per_run = [(x, 100 * a) for (_, r), x in zip(g.runs, g.xs(metric))
                   for a in ([r.final["test_acc"]] if r.final else [r.result["supernet_acc"] or math.nan])]
        ax.scatter([x for x, _ in per_run], [a for _, a in per_run], s=12, color=c, alpha=0.35, lw=0)
        name = "hand-designed" if g.mode == HAND else g.mode
        ax.errorbar(mx, ma, xerr=sx, yerr=sa, fmt="*" if g.mode == HAND else "o", color=c, ms=9 if g.mode == HAND
                    else 6, capsize=3, lw=1,
                    label=None if name in labelled else f"{name}: mean ± std; dashed, ringed: its front")
        labelled.add(name)
        if g.mode == HAND:  # labels staggered, so that networks of close FPS stay readable
            hand += 1
            ax.annotate(g.label, (mx, ma), textcoords="offset points", xytext=(6, 6 - 12 * (hand % 3)), fontsize=8,
                        color=c)
    for mode, idx in fronts.items():
        pts = sorted((_mean_std(groups[i].xs(metric))[0], 100 * _mean_std(groups[i].accs())[0]) for i in idx)
        ax.plot([x for x, _ in pts], [a for _, a in pts], "--" if mode != HAND else ":", color=colour[mode], lw=2.5,
                alpha=0.8, zorder=3, drawstyle="steps-post" if DIRECTIONS[metric] == "min" else "steps-pre")
        ax.scatter([x for x, _ in pts], [a for _, a in pts], s=160, facecolors="none", edgecolors=colour[mode],
                   lw=1.5, zorder=3)
    for t in targets:
        ax.axvline(t, ls="--", color="grey", lw=1)
        ax.annotate(f"target {t:,.6g}", (t, 0.02), xycoords=("data", "axes fraction"), rotation=90, fontsize=7,
                    color="grey", xytext=(3, 0), textcoords="offset points")
    better = "higher" if DIRECTIONS[metric] == "max" else "lower"
    ax.set(xlabel=f"{NAMES[metric]} ({UNITS[metric]}) on the searched accelerator, {better} is better",
           ylabel=f"{accuracy} (%)", title=title)
    if metric != "fps":
        ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    _save(fig, out)


def _csv(points: list[Point], runs: dict[str, Run], states: dict[str, str], metric: str) -> str:
    cols = ["point", "state", "mode", "arch", "seed", "target", metric, "met", "test_acc", "test_acc_std",
            "retrainings", "supernet_acc", "macs", "bitops", "blocks", "accelerator", "search_seconds",
            "train_seconds"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for p in points:
        r = runs.get(p.name)
        res, fin = (r.result, r.final or {}) if r else ({}, {})
        acc = "" if r is None else result_class(r).describe(res["accelerator"])
        w.writerow([p.name, states[p.name], p.config.mode, p.config.arch or "", p.config.seed,
                    p.config.target.bound, res.get(metric, ""), res.get("meets_target", ""), fin.get("test_acc", ""),
                    fin.get("test_acc_std", ""), len(fin.get("seeds", [])) if fin else "",
                    "" if res.get("supernet_acc") is None else res["supernet_acc"], res.get("macs", ""),
                    res.get("bitops", ""), " ".join(f"{o}@{b}" for o, b in zip(res.get("ops", []),
                                                                               res.get("bits", []))),
                    acc, res.get("search_seconds", ""), fin.get("train_seconds", "")])
    return buf.getvalue()


def _fmt(mean: float, std: float, scale: float = 1.0, spec: str = ".2f") -> str:
    if not math.isfinite(mean):
        return "-"
    return f"{format(scale * mean, spec)} ± {format(scale * std, spec)}"


def write_sweep_report(root: str | Path, out: str | Path | None = None) -> Path:
    """The fronts plot, ``points.csv`` and ``summary.md`` of a sweep (its finished points)."""
    root = Path(root)
    out = Path(out) if out else root / "report"
    check_output_dir(out, "report --out")
    points, train = load_plan(root), saved_sweep(root).train
    states = {s.name: s.state for s in sweep_status(root)}
    runs = {p.name: load_run(root / p.name) for p in points if (root / p.name / "result.json").is_file()
            and (not train or (root / p.name / "final.json").is_file())}
    metric = points[0].config.target.metric
    groups = _groups(points, runs, metric)
    means = torch.tensor([[_mean_std(g.accs())[0], _mean_std(g.xs(metric))[0]] for g in groups],
                         dtype=torch.float64).reshape(-1, 2)
    fronts, hv = mode_fronts(means, [g.mode for g in groups], metric)
    targets = sorted({p.config.target.bound for p in points if p.config.mode != HAND})
    seeds = max((len(g.runs) for g in groups), default=0)
    accuracy = "test accuracy" if train else "supernet accuracy (architecture split, not retrained)"
    title = f"{accuracy.split(' (')[0]} vs {NAMES[metric]}: sweep {root.name} (mean ± std over up to {seeds} seed(s))"
    if groups:
        _plot(groups, fronts, metric, targets, title, accuracy, out / "fronts.png")
    write_atomic(out / "points.csv", _csv(points, runs, states, metric))
    lines = [f"# sweep {root.name}", "", f"{len(runs)} of {len(points)} points finished"
             + ("" if len(runs) == len(points) else " (the rest: " + ", ".join(
                 f"{n} {s}" for n, s in states.items() if n not in runs) + ")") + ".", ""]
    if groups:
        lines += ["![fronts](fronts.png)", ""]
    lines += ["## Hypervolume per mode", "",
              f"{accuracy.capitalize()} and {NAMES[metric]} of each group (mean over seeds), both normalised to "
              f"[0, 1] between the best and the worst group of the sweep; reference point {REFERENCE} in each "
              "(the worst plus 10% of the range). Higher is better; the box holds at most "
              f"{REFERENCE ** 2:.2f}.", "", "| mode | groups | on the front | hypervolume |", "|---|---|---|---|"]
    for mode, v in sorted(hv.items(), key=lambda kv: -kv[1]):
        n = sum(g.mode == mode for g in groups)
        lines.append(f"| {'hand-designed (fixed-arch)' if mode == HAND else mode} | {n} | {len(fronts[mode])} | "
                     f"{v:.4f} |")
    on_front = {i for idx in fronts.values() for i in idx}
    lines += ["", "## Groups (points that differ only in their seed)", "",
              f"| group | mode | seeds | {'retrainings' if train else 'runs'} | {NAMES[metric]} ({UNITS[metric]}) | "
              f"{'test' if train else 'supernet'} acc % | met | front |",
              "|---|---|---|---|---|---|---|---|"]
    for i, g in enumerate(groups):
        met = sum(bool(r.result["meets_target"]) for _, r in g.runs)
        x = _mean_std(g.xs(metric))
        lines.append(f"| {g.label} | {g.mode} | {len(g.runs)} | {len(g.accs())} | "
                     f"{_fmt(*x, spec=',.1f' if metric == 'fps' else '.4g')} | {_fmt(*_mean_std(g.accs()), 100)} | "
                     f"{met}/{len(g.runs)} | {'yes' if i in on_front else ''} |")
    lines += ["", "Every point: [points.csv](points.csv).", ""]
    write_atomic(out / "summary.md", "\n".join(lines))
    return out / "summary.md"

