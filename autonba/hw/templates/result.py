"""Results of the FPGA chunk templates: the JSON users read, a short table, and the report's plots."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from autonba.io import finite_or_null

if TYPE_CHECKING:
    from autonba.hw.templates.base import ChunkTemplate


@dataclass
class FpgaResult:
    template: str
    platform: dict[str, Any]
    workload: str
    feasible: bool
    fps: float
    bottleneck_cycles: float
    total_dsp: float
    total_bram: float
    dsp_utilisation: float
    bram_utilisation: float
    design: dict[str, Any]
    chunks: dict[str, Any]
    layers: list[dict[str, Any]]
    engine: str | None = None
    evaluations: int | None = None
    seconds: float | None = None
    trace: list[tuple[int, float]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON data: a figure that overflows (a platform's extreme clock or bandwidth) is null."""
        return finite_or_null(asdict(self))

    @classmethod
    def from_design(cls, template: ChunkTemplate, vals: torch.Tensor, **search: Any) -> FpgaResult:
        """The full report of one design (factor values (C, F)) on a template."""
        ev = template.evaluate(vals.unsqueeze(0))
        p = template.platform
        design = template.space.to_dicts(vals.unsqueeze(0))[0]
        counts = torch.bincount(template.layer_chunk, minlength=len(template.chunk_names)).tolist()
        chunks = {c: {"design": design[c], "layers": counts[i], "cycles": _num(ev.chunk_cycles[0, i]),
                      "dsp": _num(ev.chunk_dsp[0, i]), "bram": _num(ev.chunk_bram[0, i])}
                  for i, c in enumerate(template.chunk_names)}
        layers = template.layer_report(vals)
        return cls(template=template.name,
                   platform={"name": p.name, "dsp": p.dsp, "bram18k": p.bram18k, "clock_mhz": p.clock_mhz},
                   workload=template.workload.name, feasible=bool(ev.feasible[0]), fps=float(ev.fps[0]),
                   bottleneck_cycles=_num(ev.bottleneck[0]), total_dsp=_num(ev.total_dsp[0]),
                   total_bram=_num(ev.total_bram[0]), dsp_utilisation=float(ev.total_dsp[0]) / p.dsp,
                   bram_utilisation=float(ev.total_bram[0]) / p.bram18k, design={"chunks": design},
                   chunks=chunks, layers=layers, **search)

    def summary(self) -> dict[str, Any]:
        """The few figures a run's result.json keeps of its accelerator."""
        return finite_or_null({"template": self.template, "platform": self.platform["name"], "engine": self.engine,
                        "feasible": self.feasible, "dsp": self.total_dsp, "bram18k": self.total_bram,
                        "dsp_utilisation": self.dsp_utilisation, "bram_utilisation": self.bram_utilisation})

    def metrics(self) -> dict[str, float]:
        return {"fps": self.fps}

    @staticmethod
    def describe(summary: dict[str, Any]) -> str:
        """The hardware of a run's result.json summary, in a few words."""
        return f"DSP {summary['dsp']:g}, BRAM18K {summary['bram18k']:g}"

    @staticmethod
    def plot_layers(doc: dict[str, Any], plt) -> Any:
        """Per-layer cycles of a result (its JSON), coloured by chunk, with the bottleneck."""
        layers, chunks = doc["layers"], list(doc["chunks"])
        cmap = plt.get_cmap("tab20")
        fig, ax = plt.subplots(figsize=(max(6, 0.3 * len(layers)), 4))
        ax.bar(range(len(layers)), [lay["cycles"] for lay in layers],
               color=[cmap(chunks.index(lay["chunk"]) % 20) for lay in layers])
        ax.axhline(doc["bottleneck_cycles"], ls="--", c="k", lw=1, label="bottleneck chunk (cycles per frame)")
        ax.set_xticks(range(len(layers)), [lay["name"] for lay in layers], rotation=90, fontsize=7)
        ax.set(ylabel="cycles", title=f"per-layer cycles on the final accelerator ({doc['fps']:,.0f} FPS)")
        handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(i % 20)) for i in range(len(chunks))]
        ax.legend(handles + ax.get_legend_handles_labels()[0], chunks + ["bottleneck"], fontsize=7,
                  loc="upper left", bbox_to_anchor=(1.01, 1.0))
        return fig

    @staticmethod
    def plot_resources(doc: dict[str, Any], plt) -> Any:
        """DSP and BRAM per chunk of a result (its JSON) against the platform's budgets."""
        budgets = {"DSP": doc["platform"]["dsp"], "BRAM18K": doc["platform"]["bram18k"]}
        cmap = plt.get_cmap("tab20")
        fig, ax = plt.subplots(figsize=(8, 3.6))
        for row, (res, key) in enumerate((("DSP", "dsp"), ("BRAM18K", "bram"))):
            left = 0.0
            for i, (name, c) in enumerate(doc["chunks"].items()):
                share = 100 * c[key] / budgets[res]
                ax.barh(row, share, left=left, color=cmap(i % 20), label=name if row == 0 else None)
                left += share
        ax.axvline(100, c="r", lw=1.5, label="budget")
        ax.set_yticks([0, 1], [f"DSP ({doc['total_dsp']:g}/{budgets['DSP']})",
                               f"BRAM18K ({doc['total_bram']:g}/{budgets['BRAM18K']})"])
        ax.set(xlabel="% of the platform's budget", title=f"resources per chunk on {doc['platform']['name']}")
        ax.legend(fontsize=7, ncol=6, loc="upper center", bbox_to_anchor=(0.5, -0.3))
        return fig

    def table(self) -> str:
        """A short human-readable summary (for stderr)."""
        p = self.platform
        lines = [f"{self.template} on {p['name']} | {self.workload} | "
                 f"{'feasible' if self.feasible else 'INFEASIBLE'} | {_fmt(self.fps, '.2f')} FPS "
                 f"(bottleneck {_fmt(self.bottleneck_cycles, ',.0f')} cycles)",
                 f"{'chunk':<10}{'layers':>7}{'cycles':>14}{'DSP':>10}{'BRAM18K':>10}  design"]
        for name, c in self.chunks.items():
            d = " ".join(f"{k}={v}" for k, v in c["design"].items())
            lines.append(f"{name:<10}{c['layers']:>7}{_fmt(c['cycles'], ',.0f', 14)}{c['dsp']:>10g}"
                         f"{c['bram']:>10g}  {d}")
        lines.append(f"{'total':<10}{'':>7}{'':>14}{self.total_dsp:>10g}{self.total_bram:>10g}  "
                     f"DSP {100 * self.dsp_utilisation:.1f}% of {p['dsp']}, "
                     f"BRAM {100 * self.bram_utilisation:.1f}% of {p['bram18k']}")
        if self.engine:
            lines.append(f"engine {self.engine}: {self.evaluations:,} evaluations in {self.seconds:.2f} s")
        return "\n".join(lines)


def _num(x: torch.Tensor | float) -> int | float:
    v = float(x)
    return int(v) if v.is_integer() else v


def _fmt(x: float, spec: str, width: int = 0) -> str:
    """A figure for the table, right-aligned in ``width``; 'n/a' where it is undefined (non-finite)."""
    return f"{format(x, spec) if math.isfinite(x) else 'n/a':>{width}}"
