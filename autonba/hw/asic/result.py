"""Results of the asic-array template: the JSON users read, a short table, and the report's plots."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from autonba.hw.asic.space import DATAFLOWS
from autonba.hw.asic.tech import LEVELS
from autonba.io import finite_or_null

if TYPE_CHECKING:
    from autonba.hw.asic.array import AsicArray


@dataclass
class AsicResult:
    template: str
    technology: dict[str, Any]
    workload: str
    objective: str
    feasible: bool
    latency_cycles: float
    latency_ms: float
    fps: float
    energy_uj: float
    edp_uj_ms: float                 # energy (uJ) x latency (ms) = 1e-9 J*s
    area_mm2: float
    area_budget_mm2: float | None
    utilisation: float               # MACs / (PE MAC slots x compute cycles), whole network
    energy_breakdown_uj: dict[str, float]
    design: dict[str, Any]
    layers: list[dict[str, Any]]
    engine: str | None = None
    evaluations: int | None = None
    seconds: float | None = None
    trace: list[tuple[int, float]] = field(default_factory=list)  # (evaluations, best objective)
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON data: a figure that overflows is null."""
        return finite_or_null(asdict(self))

    def metrics(self) -> dict[str, float]:
        return {"fps": self.fps, "latency_ms": self.latency_ms, "energy_uj": self.energy_uj,
                "edp_uj_ms": self.edp_uj_ms, "area_mm2": self.area_mm2}

    @staticmethod
    def describe(summary: dict[str, Any]) -> str:
        """The hardware of a run's result.json summary, in a few words."""
        return f"{summary['area_mm2']:.3g} mm2, {summary['energy_uj']:.3g} uJ, EDP {summary['edp_uj_ms']:.4g} uJ*ms"

    @staticmethod
    def plot_layers(doc: dict[str, Any], plt) -> Any:
        """Per-layer compute and DRAM-stall cycles of a result (its JSON), with each layer's dataflow."""
        layers = doc["layers"]
        x = range(len(layers))
        fig, ax = plt.subplots(figsize=(max(6, 0.3 * len(layers)), 4))
        ax.bar(x, [lay["compute_cycles"] for lay in layers], label="compute (SCALE-Sim count)")
        ax.bar(x, [lay["stall_cycles"] for lay in layers], bottom=[lay["compute_cycles"] for lay in layers],
               label="DRAM stall")
        ax.set_xticks(list(x), [f"{lay['name']} ({lay['dataflow']})" for lay in layers], rotation=90, fontsize=7)
        ax.set(ylabel="cycles", title=f"per-layer latency on the final ASIC ({doc['latency_ms']:.3g} ms, "
                                      f"EDP {doc['edp_uj_ms']:.4g} uJ*ms)")
        ax.legend(fontsize=7)
        return fig

    @staticmethod
    def plot_resources(doc: dict[str, Any], plt) -> Any:
        """Area against the budget and energy per level of a result (its JSON)."""
        fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
        budget = doc["area_budget_mm2"]
        ax[0].barh(0, doc["area_mm2"], color="tab:blue")
        if budget:
            ax[0].axvline(budget, c="r", lw=1.5, label="budget")
            ax[0].legend(fontsize=7)
        arr = doc["design"]["array"]
        ax[0].set(yticks=[], xlabel="mm2", title=f"area: {arr['rows']}x{arr['cols']} PEs, {arr['gb_kib']} KiB buffer")
        parts = {k: v for k, v in doc["energy_breakdown_uj"].items() if v > 0}
        ax[1].bar(list(parts), list(parts.values()))
        ax[1].set(ylabel="uJ per frame", title=f"energy by level ({doc['energy_uj']:.3g} uJ)")
        return fig

    @classmethod
    def from_design(cls, template: AsicArray, design: tuple[torch.Tensor, torch.Tensor], **search: Any) -> AsicResult:
        hv, mv = (x.unsqueeze(0) for x in design)
        ev = template.evaluate(hv, mv)
        sp, lay, tech = template.space, template.lay, template.tech
        d = sp.to_dicts(hv, mv)[0]
        df = (hv[0, sp.hw_index("dataflow")].expand(sp.num_layers) if "dataflow" in sp.hw_factors
              else mv[0, :, sp.map_index("dataflow")])
        R, C = float(hv[0, sp.hw_index("rows")]), float(hv[0, sp.hw_index("cols")])
        slots = (R * C * lay.macs_per_pe * ev.layer_compute[0]).sum()
        layers = []
        for i, layer in enumerate(template.workload.layers):
            tk, tc, toy = ev.tiles[0, i].tolist()
            layers.append({
                "name": layer.name, "groups": layer.groups, "depthwise": layer.depthwise, "bits": layer.bits,
                "macs": layer.macs,
                "dataflow": DATAFLOWS[int(df[i])], "compute_cycles": float(ev.layer_compute[0, i]),
                "latency_cycles": float(ev.layer_latency[0, i]),
                "stall_cycles": float(ev.layer_latency[0, i] - ev.layer_compute[0, i]),
                "utilisation": float(ev.layer_utilisation[0, i]), "dram_bits": float(ev.layer_dram_bits[0, i]),
                "energy_uj": float(ev.layer_energy[0, i]) * 1e-6, "fits": bool(ev.layer_fits[0, i]),
                "tiles": {"tk": int(tk), "tc": int(tc), "toy": int(toy)}})
        m = {k: float(v[0]) for k, v in template.metrics(ev.latency, ev.energy, ev.area).items()}
        return cls(template=template.name,
                   technology={"name": tech.name, "clock_mhz": tech.clock_mhz,
                               "dram_bytes_per_cycle": tech.dram_bytes_per_cycle},
                   workload=template.workload.name, objective=template.options.objective,
                   feasible=bool(ev.feasible[0]), latency_cycles=float(ev.latency[0]), latency_ms=m["latency_ms"],
                   fps=m["fps"], energy_uj=m["energy_uj"], edp_uj_ms=m["edp_uj_ms"], area_mm2=m["area_mm2"],
                   area_budget_mm2=template.options.area_mm2, utilisation=float(lay.macs.sum() / slots),
                   energy_breakdown_uj={k: float(v) * 1e-6 for k, v in zip(LEVELS, ev.energy_levels[0])},
                   design=d, layers=layers, **search)

    def summary(self) -> dict[str, Any]:
        """The few figures a run's result.json keeps of its accelerator."""
        return finite_or_null({"template": self.template, "platform": self.technology["name"], "engine": self.engine,
                "feasible": self.feasible, "objective": self.objective, "area_mm2": self.area_mm2,
                "area_budget_mm2": self.area_budget_mm2, "energy_uj": self.energy_uj, "latency_ms": self.latency_ms,
                "edp_uj_ms": self.edp_uj_ms, "utilisation": self.utilisation, "array": self.design["array"]})

    def table(self) -> str:
        """A short human-readable summary (for stderr)."""
        a = self.design["array"]
        budget = "" if self.area_budget_mm2 is None else f" of {self.area_budget_mm2:g}"
        lines = [f"{self.template} on {self.technology['name']} | {self.workload} | "
                 f"{'feasible' if self.feasible else 'INFEASIBLE'} | objective {self.objective}",
                 f"array {a['rows']}x{a['cols']}"
                 + (f" {a['dataflow']}" if "dataflow" in a else " (dataflow per layer)")
                 + f", RF {a['rf_bytes']} B/PE, buffer {a['gb_kib']} KiB ({a['gb_split']}) | area {self.area_mm2:.3f}"
                 f"{budget} mm2",
                 f"latency {self.latency_cycles:,.0f} cycles ({self.latency_ms:.4g} ms, {self.fps:,.1f} FPS) | "
                 f"energy {self.energy_uj:,.2f} uJ | EDP {self.edp_uj_ms:.4g} uJ*ms | utilisation "
                 f"{100 * self.utilisation:.1f}%",
                 "energy: " + ", ".join(f"{k} {v:,.2f}" for k, v in self.energy_breakdown_uj.items()) + " uJ"]
        dw = [x for x in self.layers if x["depthwise"]]
        grouped = [x for x in self.layers if x["groups"] > 1 and not x["depthwise"]]
        for kind, sel, how in (("depthwise", dw, "one channel"), ("grouped", grouped, "one group")):
            if sel:
                u = sum(x["macs"] for x in sel) / sum(x["macs"] / max(x["utilisation"], 1e-12) for x in sel)
                lines.append(f"{kind} layers: {len(sel)}, utilisation {100 * u:.1f}% ({how} at a time)")
        if self.engine:
            lines.append(f"engine {self.engine}: {self.evaluations:,} evaluations in {self.seconds:.2f} s")
        return "\n".join(lines)
