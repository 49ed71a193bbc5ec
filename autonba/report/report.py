"""``autonba report RUN_DIR [RUN_DIR ...]``: PNG plots and a Markdown summary of search runs.

Per run: search curves (supernet accuracy, FPS against the target, lambda per epoch), per-layer
cycles of the final accelerator coloured by chunk, DSP / BRAM per chunk against the platform's
budget, and the chosen operation and bitwidth per block. For several runs: accuracy against FPS
with the Pareto front (test accuracy from ``final.json`` where the run was retrained, else the
supernet's accuracy on the architecture split, marked as such).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autonba.errors import AutonbaError
from autonba.hw.templates import TEMPLATES
from autonba.io import check_output_dir, read_json, write_atomic


@dataclass
class Run:
    path: Path
    result: dict[str, Any]
    log: list[dict[str, Any]]
    accel: dict[str, Any]
    final: dict[str, Any] | None

    @property
    def label(self) -> str:
        r = self.result
        return f"{self.path.name} ({r['mode']}, seed {r['seed']}, target {r['target_fps']:,.0f})"

    @property
    def accuracy(self) -> tuple[float, str]:
        if self.final:
            return self.final["test_acc"], "test"
        return self.result["supernet_acc"], "supernet (arch split)"


def load_run(path: str | Path) -> Run:
    p = Path(path)
    if not (p / "result.json").is_file():
        raise AutonbaError(f"{p} is not a finished search run (no result.json)")
    log = []
    for i, line in enumerate((p / "search_log.jsonl").read_text().splitlines() if (p / "search_log.jsonl").exists()
                             else []):
        try:
            log.append(json.loads(line))
        except json.JSONDecodeError:
            raise AutonbaError(f"{p / 'search_log.jsonl'} line {i + 1} is not JSON") from None
    final = read_json(p / "final.json", "final") if (p / "final.json").is_file() else None
    result = _need(read_json(p / "result.json", "result"), RESULT_KEYS, p / "result.json")
    accel = _need(read_json(p / "accelerator.json", "accelerator"), ("template", "layers"), p / "accelerator.json")
    if final is not None:
        _need(final, ("test_acc", "train_seconds"), p / "final.json")
    return Run(p, result, log, accel, final)


RESULT_KEYS = ("mode", "seed", "target_fps", "fps", "meets_target", "ops", "bits", "supernet_acc",
               "search_seconds", "accelerator")


def _need(doc: Any, keys: tuple[str, ...], path: Path) -> dict[str, Any]:
    """A document of a run with the fields the report reads; one clear error otherwise."""
    missing = [k for k in keys if k not in doc] if isinstance(doc, dict) else list(keys)
    if missing:
        raise AutonbaError(f"{path} is not what 'autonba search' writes: it lacks {', '.join(missing)}")
    return doc


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points not dominated in (maximise x, maximise y), sorted by x."""
    import torch

    from autonba.hw.pareto import nondominated
    keep = nondominated(-torch.tensor(points, dtype=torch.float64).reshape(-1, 2)).tolist()
    return sorted(keep, key=lambda i: points[i][0])


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_curves(runs: list[Run], out: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    for r in runs:
        ep = [x["epoch"] for x in r.log]
        ax[0].plot(ep, [100 * x["supernet_acc"] for x in r.log], label=r.path.name)
        ax[1].plot(ep, [x["fps"] for x in r.log], label=r.path.name)
        ax[2].plot(ep, [x["lambda"] for x in r.log], label=r.path.name)
    for r in {r.result["target_fps"]: r for r in runs}.values():
        ax[1].axhline(r.result["target_fps"], ls="--", c="grey", lw=1)
    ax[0].set(title="supernet accuracy (derived path, arch split)", xlabel="epoch", ylabel="%")
    ax[1].set(title="FPS of the derived network (dashed: target)", xlabel="epoch", ylabel="FPS")
    ax[2].set(title="lambda", xlabel="epoch", yscale="log")
    ax[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def result_class(run: Run):
    """The result class of the template family that wrote a run's accelerator.json."""
    return TEMPLATES.get(run.accel["template"]).Result


def plot_layers(run: Run, out: Path) -> None:
    _save(result_class(run).plot_layers(run.accel, _plt()), out)


def plot_resources(run: Run, out: Path) -> None:
    _save(result_class(run).plot_resources(run.accel, _plt()), out)


def _save(fig, out: Path) -> None:
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    _plt().close(fig)


def plot_blocks(run: Run, out: Path) -> None:
    plt = _plt()
    ops, bits = run.result["ops"], run.result["bits"]
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(ops)), 3.2))
    ax.bar(range(len(ops)), bits, color=["#bbb" if o == "skip" else "#4c72b0" for o in ops])
    for i, o in enumerate(ops):
        ax.text(i, bits[i] + 0.2, o, ha="center", va="bottom", rotation=90, fontsize=8)
    ax.set(xlabel="block", ylabel="bits", ylim=(0, max(bits) + 5), title="derived operation and bitwidth per block")
    ax.set_xticks(range(len(ops)))
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_pareto(runs: list[Run], out: Path) -> None:
    plt = _plt()
    pts = [(r.result["fps"], 100 * r.accuracy[0]) for r in runs]
    front = pareto(pts)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    modes = sorted({r.result["mode"] for r in runs})
    for i, mode in enumerate(modes):
        mine = [p for r, p in zip(runs, pts) if r.result["mode"] == mode]
        ax.scatter([x for x, _ in mine], [y for _, y in mine], marker="osD^v"[i % 5], color=f"C{i}", s=40, label=mode)
    ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "k--", lw=1, marker="o", ms=12,
            mfc="none", label="Pareto front")
    kind = {r.accuracy[1] for r in runs}
    ax.set(xlabel="FPS (final accelerator)", ylabel=f"accuracy, % ({' / '.join(sorted(kind))})",
           title="accuracy vs FPS")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def summary(runs: list[Run], images: dict[str, list[str]]) -> str:
    lines = ["# autonba report", "",
             "| run | mode | seed | target | FPS | met | supernet acc % | test acc % | accelerator | "
             "search s | train s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        res, fin = r.result, r.final or {}
        hw = result_class(r).describe(res["accelerator"])
        other = [k for k in res if k.startswith("target_") and k != "target_fps" and res[k] is not None]
        target = f"{other[0][7:]} <= {res[other[0]]:g}" if other else f"{res['target_fps']:,.0f} FPS"
        train_s = f"{fin['train_seconds']:.0f}" if fin else "-"
        lines.append(f"| {r.path.name} | {res['mode']} | {res['seed']} | {target} | {res['fps']:,.1f} | "
                     f"{'yes' if res['meets_target'] else 'no'} | {_pct(res['supernet_acc'])} | "
                     f"{_pct(fin.get('test_acc'))} | {hw} | {res['search_seconds']:.0f} | {train_s} |")
    for r in runs:
        lines += ["", f"## {r.label}", "",
                  "blocks: " + ", ".join(f"{o}@{b}" for o, b in zip(r.result["ops"], r.result["bits"])), ""]
        lines += [f"![{name}]({name})" for name in images.get(str(r.path), [])]
    if "pareto" in images:
        lines += ["", "## accuracy vs FPS", "", "![pareto](pareto.png)"]
    return "\n".join(lines) + "\n"


def write_report(run_dirs: list[str], out: str | Path | None = None) -> Path:
    """A report of runs, or of a sweep (its root given alone): the fronts of its modes."""
    from autonba.report.fronts import is_sweep, write_sweep_report

    if len(run_dirs) == 1 and is_sweep(run_dirs[0]):
        return write_sweep_report(run_dirs[0], out)
    runs = [load_run(p) for p in run_dirs]
    out = Path(out) if out else (runs[0].path / "report" if len(runs) == 1 else Path("runs/report"))
    check_output_dir(out, "report --out")
    images: dict[str, list[str]] = {}
    try:
        plot_curves(runs, out / "search_curves.png")
        for i, r in enumerate(runs):
            tag = "" if len(runs) == 1 else f"_{i}_{r.path.name}"
            names = [f"layer_cycles{tag}.png", f"resources{tag}.png", f"blocks{tag}.png"]
            plot_layers(r, out / names[0])
            plot_resources(r, out / names[1])
            plot_blocks(r, out / names[2])
            images[str(r.path)] = names
        if len(runs) > 1:
            plot_pareto(runs, out / "pareto.png")
            images["pareto"] = ["pareto.png"]
        text = summary(runs, images)
    except (KeyError, TypeError, ValueError, IndexError) as e:  # a run's files edited or damaged by hand
        raise AutonbaError(f"report: the files of {', '.join(run_dirs)} are not what autonba writes "
                           f"({type(e).__name__}: {e}); report runs as 'autonba search' and 'train' left "
                           "them") from None
    text = text.replace("# autonba report\n", "# autonba report\n\n![search curves](search_curves.png)\n", 1)
    write_atomic(out / "summary.md", text)
    return out / "summary.md"
