"""Workloads: the layers a hardware template costs.

A :class:`Layer` is a convolution in the general form (groups cover standard, grouped
and depthwise convs; a linear layer is a 1x1 conv on a 1x1 map). A :class:`Workload`
is an ordered list of layers, read from JSON, built from an architecture or from the zoo.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from autonba.errors import AutonbaError


@dataclass(frozen=True)
class Layer:
    """One convolution. Sizes are exact (padding and stride applied)."""

    name: str
    in_ch: int
    out_ch: int
    in_h: int
    in_w: int
    out_h: int
    out_w: int
    kernel: int
    stride: int = 1
    groups: int = 1
    bits: int = 8
    chunk: str | None = None  # explicit chunk allocation (golden format); None = template's rule

    def __post_init__(self) -> None:
        for f in ("in_ch", "out_ch", "in_h", "in_w", "out_h", "out_w", "kernel", "stride", "groups"):
            v = getattr(self, f)
            if not isinstance(v, int) or v <= 0:
                raise AutonbaError(f"layer '{self.name}': {f} must be a positive integer, got {v!r}")
        if not isinstance(self.bits, int) or not 1 <= self.bits <= 32:
            raise AutonbaError(f"layer '{self.name}': bits must be an integer in 1..32, got {self.bits!r}")
        if self.in_ch % self.groups or self.out_ch % self.groups:
            raise AutonbaError(
                f"layer '{self.name}': groups={self.groups} must divide in_ch={self.in_ch} and out_ch={self.out_ch}")

    @property
    def depthwise(self) -> bool:
        return self.groups > 1 and self.groups == self.in_ch == self.out_ch

    @property
    def weights(self) -> int:
        return self.out_ch * (self.in_ch // self.groups) * self.kernel ** 2

    @property
    def macs(self) -> int:
        return self.out_h * self.out_w * self.weights

    @property
    def bitops(self) -> int:
        """Bit-operations: MACs x weight bits x activation bits (one bitwidth for both)."""
        return self.macs * self.bits ** 2

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["chunk"] is None:
            del d["chunk"]
        return d


@dataclass
class Workload:
    name: str
    layers: list[Layer]

    def __post_init__(self) -> None:
        if not self.layers:
            raise AutonbaError(f"workload '{self.name}' has no layers")

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "layers": [layer.to_dict() for layer in self.layers]}

    @classmethod
    def from_dict(cls, data: Any, name: str = "workload") -> "Workload":
        """Native layers (``in_ch``, ``out_ch``, ...) or golden-format layers (``N``, ``M``, ``R``, ...),
        in a top-level ``layers`` list or under ``network``."""
        if isinstance(data, dict) and "layers" not in data and isinstance(data.get("network"), dict):
            data = data["network"]
        if not isinstance(data, dict) or not isinstance(data.get("layers"), list):
            raise AutonbaError(f"workload '{name}': expected a JSON object with a 'layers' list "
                               "(at the top level or under 'network')")
        layers = [_layer_from_dict(d, i) for i, d in enumerate(data["layers"])]
        return cls(name=str(data.get("name", name)), layers=layers)

    @classmethod
    def from_json(cls, path: str | Path) -> "Workload":
        return cls.from_dict(read_json(path, "workload"), name=Path(path).stem)


def read_json(path: str | Path, what: str) -> Any:
    """Read a JSON file, turning a missing file or bad JSON into one clear error."""
    p = Path(path)
    if not p.is_file():
        raise AutonbaError(f"{what} file not found: {p}")
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AutonbaError(f"{what} file {p} is not valid JSON: {e}") from None


_NATIVE = {f.name for f in fields(Layer)}
_GOLDEN = {"N", "M", "R", "K", "S", "depthwise", "bits", "chunk"}


def _as_int(value: Any, key: str, index: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise AutonbaError(f"layers[{index}].{key} must be an integer, got {value!r}")
    return int(value)


def _layer_from_dict(d: Any, i: int) -> Layer:
    if not isinstance(d, dict):
        raise AutonbaError(f"layers[{i}] must be an object, got {type(d).__name__}")
    if "N" in d:  # golden format: N=1 for depthwise, R = output rows = output cols
        unknown = set(d) - _GOLDEN
        missing = {"N", "M", "R", "K"} - set(d)
        if unknown or missing:
            raise AutonbaError(f"layers[{i}]: golden-format layer needs N, M, R, K (optional S, depthwise, "
                               f"bits, chunk); missing {sorted(missing)}, unknown {sorted(unknown)}")
        n, m, r, k = (_as_int(d[key], key, i) for key in "NMRK")
        s = _as_int(d.get("S", 1), "S", i)
        dw = bool(d.get("depthwise", False))
        cin, groups = (m, m) if dw else (n, 1)
        return Layer(name=f"L{i}", in_ch=cin, out_ch=m, in_h=r * s, in_w=r * s, out_h=r, out_w=r,
                     kernel=k, stride=s, groups=groups, bits=_as_int(d.get("bits", 8), "bits", i),
                     chunk=d.get("chunk"))
    unknown = set(d) - _NATIVE
    required = {"in_ch", "out_ch", "in_h", "in_w", "out_h", "out_w", "kernel"}
    missing = required - set(d)
    if unknown or missing:
        raise AutonbaError(f"layers[{i}]: missing {sorted(missing)}, unknown {sorted(unknown)}; "
                           f"allowed fields: {', '.join(sorted(_NATIVE))}")
    kw = {k: (v if k in ("name", "chunk") else _as_int(v, k, i)) for k, v in d.items()}
    kw.setdefault("name", f"L{i}")
    return Layer(**kw)
