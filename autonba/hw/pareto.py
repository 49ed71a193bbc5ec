"""Pareto fronts of accelerator designs: which designs are non-dominated in several objectives, and how
much of the objective space a front covers (its hypervolume).

Objectives are the metrics a template family reports (``METRICS``) and, on the FPGA templates, the
resources (``dsp``: DSP slices, ``bram``: BRAM18K banks); each is maximised or minimised
(``DIRECTIONS``). The machinery below works on points in minimisation form (a maximised objective
negated): ``nondominated`` filters them, ``normalise`` maps them onto [0, 1] per objective between an
ideal and a nadir point, and ``hypervolume`` measures, exactly in one to three dimensions, the volume
they dominate up to a reference point.

A family provides a :class:`FrontModel` (its objectives, an exact front where its space can be
enumerated, and a front searched with its engines); :func:`pareto_front` turns what a model returns
into a :class:`ParetoFront`: the non-dominated designs in the chosen objectives, each with its design
in the template's JSON form and its figures.
"""
from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import torch

from autonba.errors import AutonbaError
from autonba.hw.engines.base import take
from autonba.hw.template import METRICS, HardwareTemplate
from autonba.io import finite_or_null

if TYPE_CHECKING:
    from pathlib import Path

DIRECTIONS: dict[str, Literal["max", "min"]] = {**METRICS, "dsp": "min", "bram": "min"}
UNITS = {"fps": "frames/s", "latency_ms": "ms", "energy_uj": "uJ", "edp_uj_ms": "uJ x ms", "area_mm2": "mm2",
         "dsp": "DSP slices", "bram": "BRAM18K banks"}
REFERENCE = 1.1  # the hypervolume's reference point, per normalised objective: the nadir plus 10% of the range


# ---- points in minimisation form ------------------------------------------------------------------------
def minimised(values: torch.Tensor, objectives: Sequence[str]) -> torch.Tensor:
    """Objective values (n, K) in their own units -> minimisation form (maximised columns negated)."""
    sign = torch.tensor([-1.0 if DIRECTIONS[o] == "max" else 1.0 for o in objectives], dtype=torch.float64)
    return values.to(torch.float64) * sign


def _lexsort(points: torch.Tensor) -> torch.Tensor:
    """Row order of ``points`` (n, K) sorted by the first column, ties by the next, and so on."""
    order = torch.arange(len(points))
    for k in reversed(range(points.shape[1])):
        order = order[torch.argsort(points[order, k], stable=True)]
    return order


def dominated_by(points: torch.Tensor, others: torch.Tensor, block: int = 1024) -> torch.Tensor:
    """Which of ``points`` (n, K) some row of ``others`` (m, K) weakly dominates (<= in every objective)."""
    out = torch.zeros(len(points), dtype=torch.bool)
    if len(others) == 0:
        return out
    for s in range(0, len(points), block):
        out[s:s + block] = (others.unsqueeze(0) <= points[s:s + block].unsqueeze(1)).all(-1).any(-1)
    return out


def nondominated(points: torch.Tensor, block: int = 1024) -> torch.Tensor:
    """Indices of the non-dominated rows of ``points`` (n, K) (minimised), one per distinct point, in
    lexicographic order of the points.

    In lexicographic order a point can only be weakly dominated by an earlier one (a duplicate by its
    first copy), and dominance is transitive, so each block of points is checked against the front
    kept so far and against the earlier points of its own block."""
    n, K = points.shape
    order = _lexsort(points)
    p = points[order]
    if n == 0 or K == 1:
        return order[:1]
    if K == 2:  # a point is kept when it beats every earlier point's second objective
        earlier = torch.cat([torch.tensor([math.inf], dtype=p.dtype), p[:-1, 1].cummin(0).values])
        return order[p[:, 1] < earlier]
    kept: list[torch.Tensor] = []
    front = p[:0]
    for s in range(0, n, block):
        b = p[s:s + block]
        inside = (b.unsqueeze(0) <= b.unsqueeze(1)).all(-1).tril(-1).any(-1)   # [i, j]: j < i dominates i
        keep = ~(inside | dominated_by(b, front))
        kept.append(torch.arange(s, s + len(b))[keep])
        front = torch.cat([front, b[keep]])
    return order[torch.cat(kept)]


def normalise(points: torch.Tensor, ideal: torch.Tensor, nadir: torch.Tensor) -> torch.Tensor:
    """Minimised points (n, K) -> (points - ideal) / (nadir - ideal): 0 at the ideal and 1 at the nadir
    in every objective (an objective with no range is shifted only)."""
    span = nadir - ideal
    return (points - ideal) / torch.where(span > 0, span, torch.ones_like(span))


# ---- hypervolume ----------------------------------------------------------------------------------------
def hypervolume(points: torch.Tensor, ref: torch.Tensor | Sequence[float], block: int = 1 << 22) -> float:
    """The volume that minimised points (n, K), K <= 3, dominate up to the reference point ``ref`` (K,);
    exact. Points not strictly better than ``ref`` in every objective add nothing.

    In three dimensions: the points sorted by the third objective cut the volume into slices; slice k
    (between the k-th and the next point's third objective) has the 2-D area dominated by the first k
    points. All slices' areas come from one staircase per slice over the points sorted by the first
    objective: height ref - (running minimum of the second objective over the slice's points)."""
    ref_t = torch.as_tensor(ref, dtype=torch.float64)
    p = points.to(torch.float64)
    p = p[(p < ref_t).all(-1)]
    if len(p) == 0:
        return 0.0
    p = p[nondominated(p)]
    K = p.shape[1]
    if K == 1:
        return float(ref_t[0] - p[:, 0].min())
    if K > 3:
        raise AutonbaError(f"hypervolume: at most 3 objectives, got {K}")
    p = p[torch.argsort(p[:, 0], stable=True)]
    dx = torch.diff(torch.cat([p[:, 0], ref_t[:1]]))                               # (n,) widths
    if K == 2:
        return float((dx * (ref_t[1] - p[:, 1].cummin(0).values)).sum())
    z_order = torch.argsort(p[:, 2], stable=True)
    z = p[z_order, 2]
    dz = torch.diff(torch.cat([z, ref_t[2:]]))                                     # (n,) slice thickness
    rank = torch.empty(len(p), dtype=torch.long)
    rank[z_order] = torch.arange(len(p))                                           # slice in which a point enters
    rows = max(1, block // len(p))
    total = 0.0
    for s in range(0, len(p), rows):
        k = torch.arange(s, min(s + rows, len(p))).unsqueeze(1)                   # slices (r, 1)
        y = torch.where(rank.unsqueeze(0) <= k, p[:, 1].unsqueeze(0), ref_t[1])   # (r, n)
        area = (dx * (ref_t[1] - y.cummin(1).values)).sum(1)
        total += float((area * dz[s:s + len(k)]).sum())
    return total


# ---- what a family provides -----------------------------------------------------------------------------
@dataclass
class Candidates:
    """Designs (a batch of factor values) with the values of every objective of their family (name -> (B,)),
    the full-design evaluations it took to find them, and what the method reports of itself."""

    designs: Any
    values: dict[str, torch.Tensor]
    evaluations: int
    info: dict[str, Any] = field(default_factory=dict)


class FrontModel(Protocol):
    """A family's fronts, bound to a template and a design space (its own, or one with pinned factors)."""

    objectives: tuple[str, ...]    # what a front of this family may trade off (names from DIRECTIONS)
    defaults: tuple[str, ...]      # the objectives of ``accel pareto`` without --objectives

    def exact(self, progress: bool | None, **options: Any) -> Candidates:
        """A superset of the exact front (every other feasible design weakly dominated by one of them in
        all of ``objectives``); ``options`` of the family's exact engine; raises ``Intractable`` where
        the space is too large."""

    def search(self, engine: str, budget: int | None, seed: int, progress: bool | None, **options: Any) -> Candidates:
        """Feasible designs found with the family's engine ``engine`` (with ``options``) in at most
        ``budget`` full-design evaluations (None: the model's default)."""


def run_budget(budget: int, share: float, runs: int) -> int:
    """The evaluations of each of ``runs`` engine runs that together take ``share`` of a searched front's
    ``budget``; an error where that is not one each."""
    per_run = int(budget * share) // runs
    if per_run < 1:
        raise AutonbaError(f"budget: a searched front needs at least {math.ceil(runs / share)} design evaluations, "
                           f"got {budget}")
    return per_run


def check_objectives(model: FrontModel, objectives: Sequence[str] | None, template: str) -> tuple[str, ...]:
    """The objectives of a front (the model's defaults when none are given), checked."""
    names = tuple(objectives) if objectives else model.defaults
    allowed = ", ".join(model.objectives)
    bad = [o for o in names if o not in model.objectives]
    if bad:
        raise AutonbaError(f"objectives: unknown objective '{bad[0]}' for template '{template}'; allowed: {allowed}")
    if len(set(names)) != len(names) or not 2 <= len(names) <= 3:
        raise AutonbaError(f"objectives: give 2 or 3 distinct objectives (got {', '.join(names) or 'none'}); "
                           f"allowed: {allowed}")
    return names


# ---- the front ------------------------------------------------------------------------------------------
@dataclass
class ParetoFront:
    """The non-dominated designs of one workload in 2 or 3 objectives: their objective values (n, K) in
    each objective's own units, sorted by the first objective, their designs (JSON form) and figures."""

    template: str
    platform: str
    workload: str
    objectives: tuple[str, ...]
    values: torch.Tensor
    designs: list[dict[str, Any]]
    metrics: list[dict[str, float]]
    method: str
    evaluations: int
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)

    def minimised(self) -> torch.Tensor:
        return minimised(self.values, self.objectives)

    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Ideal and nadir point of the front, minimised (K,) each."""
        m = self.minimised()
        return m.min(0).values, m.max(0).values

    def hypervolume(self, ideal: torch.Tensor | None = None, nadir: torch.Tensor | None = None) -> float:
        """Hypervolume of the front normalised between ``ideal`` and ``nadir`` (minimised; default: the
        front's own), up to the reference point ``REFERENCE`` in every objective."""
        own = self.bounds()
        lo, hi = own[0] if ideal is None else ideal, own[1] if nadir is None else nadir
        return hypervolume(normalise(self.minimised(), lo, hi), [REFERENCE] * len(self.objectives))

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON data (a non-finite figure is null)."""
        ideal, nadir = self.bounds()
        sign = [-1.0 if DIRECTIONS[o] == "max" else 1.0 for o in self.objectives]
        return finite_or_null({
            "template": self.template, "platform": self.platform, "workload": self.workload,
            "objectives": [{"name": o, "direction": DIRECTIONS[o], "unit": UNITS[o]} for o in self.objectives],
            "method": self.method, "evaluations": self.evaluations, "seconds": self.seconds,
            "hypervolume": {"value": self.hypervolume(), "reference": REFERENCE,
                            "ideal": {o: s * float(v) for o, s, v in zip(self.objectives, sign, ideal)},
                            "nadir": {o: s * float(v) for o, s, v in zip(self.objectives, sign, nadir)},
                            "note": "each objective normalised to [0, 1] between this front's ideal and nadir "
                                    "(0 best); reference point at REFERENCE in every objective"},
            "info": self.info,
            "points": [{"objectives": dict(zip(self.objectives, row)), "design": d, "metrics": m}
                       for row, d, m in zip(self.values.tolist(), self.designs, self.metrics)]})

    def table(self) -> str:
        """A short human-readable summary (for stderr)."""
        lines = [f"Pareto front of {self.workload} on {self.template} ({self.platform}): {len(self.designs)} designs "
                 f"in {', '.join(self.objectives)} | {self.method}: {self.evaluations:,} evaluations in "
                 f"{self.seconds:.2f} s"]
        for o, col in zip(self.objectives, self.values.T):
            lines.append(f"  {o}: {float(col.min()):.4g} .. {float(col.max()):.4g} {UNITS[o]} "
                         f"({'max' if DIRECTIONS[o] == 'max' else 'min'}imised)")
        return "\n".join(lines)

    def plot(self, plt: Any) -> Any:
        """A matplotlib figure: the front projected on every pair of objectives (with three, the third as
        the colour)."""
        K = len(self.objectives)
        pairs = list(itertools.combinations(range(K), 2))
        fig, axes = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs), 4.4), squeeze=False)
        v = self.values.numpy()
        for ax, (i, j) in zip(axes[0], pairs):
            rest = [k for k in range(K) if k not in (i, j)]
            if rest:
                k = rest[0]
                norm = "log" if _wide(v[:, k]) else "linear"
                sc = ax.scatter(v[:, i], v[:, j], s=12, c=v[:, k], cmap="viridis", norm=norm)
                fig.colorbar(sc, ax=ax, label=_label(self.objectives[k]))
            else:
                ax.plot(v[:, i], v[:, j], "o-", ms=4, lw=0.8)
            ax.set(xlabel=_label(self.objectives[i]), ylabel=_label(self.objectives[j]),
                   xscale="log" if _wide(v[:, i]) else "linear", yscale="log" if _wide(v[:, j]) else "linear")
            ax.grid(alpha=0.3)
        fig.suptitle(f"Pareto front: {self.workload} on {self.template} / {self.platform} "
                     f"({len(self.designs)} designs, {self.method})")
        fig.tight_layout()
        return fig

    def save_plot(self, path: str | Path) -> None:
        """The plot as a PNG file (matplotlib's Agg backend; written atomically)."""
        import io

        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from autonba.io import write_atomic_bytes
        fig = self.plot(plt)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=120)
        plt.close(fig)
        write_atomic_bytes(path, buf.getvalue(), "plot")


def _wide(values: Any) -> bool:
    """Whether positive figures span more than two decades (plotted on a log scale)."""
    return bool(values.min() > 0 and values.max() > 100 * values.min())


def _label(objective: str) -> str:
    return f"{objective} ({UNITS[objective]}, {'higher' if DIRECTIONS[objective] == 'max' else 'lower'} is better)"


def pareto_front(template: HardwareTemplate, objectives: Sequence[str] | None = None, engine: str = "das",
                 budget: int | None = None, seed: int = 0, space: Any = None, progress: bool | None = False,
                 **engine_options: Any) -> ParetoFront:
    """The Pareto front of a template bound to its workload, in its design space or ``space`` (one with
    pinned factors): exact with ``engine='exact'`` (where the family's space can be enumerated), else
    searched with the family's engine ``engine`` in at most ``budget`` design evaluations."""
    model = template.front_model(space)
    names = check_objectives(model, objectives, template.name)
    template.engines().get(engine)  # a known engine, before any work
    t0 = time.perf_counter()
    cand = (model.exact(progress, **engine_options) if engine == "exact"
            else model.search(engine, budget, seed, progress, **engine_options))
    seconds = time.perf_counter() - t0
    n = len(next(iter(cand.values.values())))
    if n == 0:
        raise AutonbaError(f"no design found by '{engine}' fits {template.budget_text()} for workload "
                           f"'{template.workload.name}'")
    values = torch.stack([cand.values[o] for o in names], 1)
    keep = nondominated(minimised(values, names))
    keep = keep[torch.argsort(minimised(values[keep], names)[:, 0], stable=True)]
    return ParetoFront(
        template=template.name, platform=str(getattr(template.platform, "name", "")), workload=template.workload.name,
        objectives=names, values=values[keep],
        designs=[template.to_json(take(cand.designs, int(i))) for i in keep],
        metrics=[{o: float(v[i]) for o, v in cand.values.items()} for i in keep.tolist()],
        method=engine, evaluations=cand.evaluations, seconds=seconds, info=cand.info)
