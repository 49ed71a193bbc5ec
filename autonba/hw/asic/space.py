"""The design space of the asic-array template: array factors shared by the whole accelerator and
mapping factors per layer, as index tensors the engines share.

A batch of designs is a pair ``(hw, maps)`` of index tensors, ``hw`` (B, H) into the per-factor
value lists of the array and ``maps`` (B, L, M) into each layer's own lists (a layer's tile sizes
go up to its own dimensions). ``values`` turns indices into the factor values the cost model
reads. Categorical factors travel as codes and appear in design files by name.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch

from autonba.errors import AutonbaError
from autonba.hw.asic.cycles import DATAFLOWS
from autonba.hw.space import gumbel_max, nearest
from autonba.hw.workload import integral

GB_SPLITS = ("shared", "equal", "w-heavy", "i-heavy", "o-heavy")
# (weights, inputs, outputs) fractions of the global buffer per split; shared: one buffer for all
SPLIT_FRACTIONS = ((1.0, 1.0, 1.0), (1 / 3, 1 / 3, 1 / 3), (0.5, 0.25, 0.25), (0.25, 0.5, 0.25), (0.25, 0.25, 0.5))
ORDERS = ("kcy", "kyc", "cky", "cyk", "ykc", "yck")  # buffer-level tile loops, outermost first
NAMES = {"dataflow": DATAFLOWS, "gb_split": GB_SPLITS, "order": ORDERS}


def _table(lists: list[list[float]]) -> tuple[torch.Tensor, torch.Tensor]:
    V = max(len(v) for v in lists)
    tab = torch.full((len(lists), V), float("nan"), dtype=torch.float64)
    valid = torch.zeros((len(lists), V), dtype=torch.bool)
    for i, vals in enumerate(lists):
        if not vals:
            raise AutonbaError("every design factor needs at least one value")
        tab[i, :len(vals)] = torch.tensor(vals, dtype=torch.float64)
        valid[i, :len(vals)] = True
    return tab, valid


class AsicSpace:
    def __init__(self, hw: Mapping[str, Sequence[float]], layers: Mapping[str, Mapping[str, Sequence[float]]]):
        self.hw_factors = tuple(hw)
        self.layer_names = list(layers)
        self.map_factors = tuple(next(iter(layers.values())))
        self.hw_choices = {f: [float(v) for v in vals] for f, vals in hw.items()}
        self.map_choices = {n: {f: [float(v) for v in d[f]] for f in self.map_factors} for n, d in layers.items()}
        self.hw_table, self.hw_valid = _table(list(self.hw_choices.values()))                 # (H, Vh)
        rows = [_table([d[f] for f in self.map_factors]) for d in self.map_choices.values()]
        Vm = max(t.shape[1] for t, _ in rows)
        self.map_table = torch.full((len(rows), len(self.map_factors), Vm), float("nan"), dtype=torch.float64)
        self.map_valid = torch.zeros(self.map_table.shape, dtype=torch.bool)
        for i, (t, v) in enumerate(rows):
            self.map_table[i, :, :t.shape[1]] = t
            self.map_valid[i, :, :t.shape[1]] = v

    @property
    def num_layers(self) -> int:
        return len(self.layer_names)

    def hw_index(self, factor: str) -> int:
        return self.hw_factors.index(factor)

    def map_index(self, factor: str) -> int:
        return self.map_factors.index(factor)

    def values(self, hw: torch.Tensor, maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices (B, H), (B, L, M) -> factor values, float64, same shapes."""
        hv = torch.gather(self.hw_table.expand(hw.shape[0], -1, -1), -1, hw.unsqueeze(-1)).squeeze(-1)
        mt = self.map_table.expand(maps.shape[0], -1, -1, -1)
        mv = torch.gather(mt, -1, maps.unsqueeze(-1)).squeeze(-1)
        return hv, mv

    def size(self) -> tuple[int, int]:
        """(number of array designs, number of mapping combinations summed over layers)."""
        return (math.prod(int(n) for n in self.hw_valid.sum(-1)),
                sum(math.prod(int(n) for n in row) for row in self.map_valid.sum(-1)))

    # ---- sampling ---------------------------------------------------------------------
    def sample(self, n: int, hw_logits: torch.Tensor | None = None, map_logits: torch.Tensor | None = None,
               generator: torch.Generator | None = None, temperature: float = 1.0
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Gumbel-max samples ``(hw (n, H), maps (n, L, M))`` and, with logits, the log-probabilities of
        each sample's array factors (n,) and of each layer's mapping (n, L)."""
        hw, lp_hw = gumbel_max(n, self.hw_valid, hw_logits, generator, temperature)
        maps, lp_map = gumbel_max(n, self.map_valid, map_logits, generator, temperature)
        return hw, maps, lp_hw, lp_map

    # ---- what the shared engines need (random, evolution) -----------------------------
    def draw(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        hw, maps, _, _ = self.sample(n, generator=generator)
        return hw, maps

    def decode(self, idx: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.values(*idx)

    def encode(self, vals: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices of the allowed values nearest (in log scale) to one design's values (H,), (L, M)."""
        return nearest(self.hw_table, self.hw_valid, vals[0]), nearest(self.map_table, self.map_valid, vals[1])

    def cross(self, a, b, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Array factors one by one, layer mappings whole, from either parent."""
        take_h = torch.rand(a[0].shape, generator=generator) < 0.5
        take_m = torch.rand((a[1].shape[0], self.num_layers, 1), generator=generator) < 0.5
        return torch.where(take_h, a[0], b[0]), torch.where(take_m, a[1], b[1])

    def mutate(self, child, rate: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        fresh = self.draw(child[0].shape[0], generator)
        return tuple(torch.where(torch.rand(c.shape, generator=generator) < rate, f, c)  # type: ignore[return-value]
                     for c, f in zip(child, fresh))

    def enumerate_hw(self, block: int = 1 << 14) -> Iterator[torch.Tensor]:
        """Every array design, as index blocks (n, H)."""
        counts = [int(n) for n in self.hw_valid.sum(-1)]
        total = math.prod(counts)
        for start in range(0, total, block):
            lin = torch.arange(start, min(start + block, total))
            out = torch.zeros((len(lin), len(counts)), dtype=torch.long)
            for f in reversed(range(len(counts))):
                out[:, f] = lin % counts[f]
                lin = lin // counts[f]
            yield out

    def enumerate_maps(self, layer: int) -> torch.Tensor:
        """Every mapping of one layer, as indices (n, M)."""
        ranges = [torch.arange(int(n)) for n in self.map_valid[layer].sum(-1)]
        return torch.cartesian_prod(*ranges).reshape(-1, len(ranges))

    # ---- pins, files ------------------------------------------------------------------
    def fix(self, pins: dict[str, Any]) -> AsicSpace:
        """A copy in which each pinned factor takes one value (array factors, or ``order`` /
        ``dataflow`` of every layer)."""
        hw = {f: list(v) for f, v in self.hw_choices.items()}
        layers = {n: {f: list(v) for f, v in d.items()} for n, d in self.map_choices.items()}
        for f, raw in pins.items():
            val = _code(f, raw)
            if f in hw:
                if val not in hw[f]:
                    raise AutonbaError(f"--fix {f}={raw}: not allowed; allowed: {_fmt(f, hw[f])}")
                hw[f] = [val]
            elif f in ("order", "dataflow") and f in self.map_factors:
                if val not in next(iter(self.map_choices.values()))[f]:
                    raise AutonbaError(f"--fix {f}={raw}: not allowed; allowed: {', '.join(NAMES[f])}")
                for d in layers.values():
                    d[f] = [val]
            else:
                pinnable = self.hw_factors + tuple(x for x in ("order", "dataflow") if x in self.map_factors)
                raise AutonbaError(f"--fix: unknown or per-layer design factor '{f}'; allowed: {', '.join(pinnable)}"
                                   " (give per-layer tiles in a design file)")
        return AsicSpace(hw, layers)

    def to_dicts(self, hw: torch.Tensor, maps: torch.Tensor) -> list[dict[str, Any]]:
        """Factor values (B, H), (B, L, M) -> ``{"array": {...}, "layers": {name: {...}}}`` per design."""
        out = []
        for h, m in zip(hw.tolist(), maps.tolist()):
            out.append({"array": {f: _name(f, v) for f, v in zip(self.hw_factors, h)},
                        "layers": {n: {f: _name(f, v) for f, v in zip(self.map_factors, row)}
                                   for n, row in zip(self.layer_names, m)}})
        return out

    def parse(self, designs: list[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Design files -> factor values (B, H), (B, L, M), with clear errors. Array factors and
        categorical factors must take listed values; tiles any integer from 1 to the layer's dimension."""
        B = len(designs)
        hv = torch.zeros((B, len(self.hw_factors)), dtype=torch.float64)
        mv = torch.zeros((B, self.num_layers, len(self.map_factors)), dtype=torch.float64)
        for b, d in enumerate(designs):
            where = f"design {b}" if B > 1 else "design"
            if not isinstance(d, dict) or not isinstance(d.get("array"), dict) or not isinstance(d.get("layers"), dict):
                raise AutonbaError(f"{where}: expected an object with 'array' (factor -> value) and 'layers' "
                                   "(layer name -> mapping factors)")
            hv[b] = torch.tensor(_parse_factors(f"{where}: array", d["array"], self.hw_factors,
                                                lambda f: self.hw_choices[f], closed_all=True))
            missing = [n for n in self.layer_names if n not in d["layers"]]
            unknown = [n for n in d["layers"] if n not in self.map_choices]
            if missing or unknown:
                more = " ..." if self.num_layers > 8 else ""
                raise AutonbaError(f"{where}: layers missing {missing[:5]}, unknown {unknown[:5]}; the workload's "
                                   f"layers are {', '.join(self.layer_names[:8])}{more}")
            for i, n in enumerate(self.layer_names):
                mv[b, i] = torch.tensor(_parse_factors(f"{where}: layer '{n}'", d["layers"][n], self.map_factors,
                                                       lambda f, n=n: self.map_choices[n][f], closed_all=False))
        return hv, mv


_BIG = 2 ** 53


def _code(factor: str, raw: Any) -> float:
    names = NAMES.get(factor)
    if names and isinstance(raw, str):
        if raw not in names:
            raise AutonbaError(f"{factor}={raw!r} is not allowed; allowed: {', '.join(names)}")
        return float(names.index(raw))
    if not integral(raw):
        raise AutonbaError(f"{factor}={raw!r} must be an integer" + (f" or one of {', '.join(names)}" if names else ""))
    return float(max(-_BIG, min(raw, _BIG)))  # an int beyond float range stays outside every allowed range


def _name(factor: str, v: float) -> int | float | str:
    names = NAMES.get(factor)
    if names:
        return names[int(v)]
    return int(v) if float(v).is_integer() else v


def _fmt(factor: str, vals: list[float]) -> str:
    return ", ".join(str(_name(factor, v)) for v in vals)


def _parse_factors(where: str, d: Any, factors: tuple[str, ...], choices, closed_all: bool) -> list[float]:
    if not isinstance(d, dict):
        raise AutonbaError(f"{where}: must map factor names to values")
    unknown = set(d) - set(factors)
    if unknown:
        raise AutonbaError(f"{where}: unknown factors {sorted(unknown)}; allowed: {', '.join(factors)}")
    out = []
    for f in factors:
        if f not in d:
            raise AutonbaError(f"{where}: lacks factor '{f}'")
        vals = choices(f)
        try:
            v = _code(f, d[f])
        except AutonbaError as e:
            raise AutonbaError(f"{where}: {e}") from None
        if closed_all or f in NAMES:
            ok, allowed = v in vals, _fmt(f, vals)
        else:
            ok, allowed = 1 <= v <= max(vals), f"an integer from 1 to {_name(f, max(vals))}"
        if not ok:
            raise AutonbaError(f"{where}: {f}={d[f]!r} is not allowed; allowed: {allowed}")
        out.append(v)
    return out
