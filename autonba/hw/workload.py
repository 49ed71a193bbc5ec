"""Workloads: the layers a hardware template costs.

A :class:`Layer` is a convolution in the general form (groups cover standard, grouped
and depthwise convs; a linear layer is a 1x1 conv on a 1x1 map). A :class:`Workload`
is an ordered list of layers, read from JSON, built from an architecture or from the zoo.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from autonba.errors import AutonbaError
from autonba.io import read_json

MAX_SIZE = 1 << 24  # largest channel count, feature-map size, kernel or stride (keeps every cost finite)
_SIZES = ("in_ch", "out_ch", "in_h", "in_w", "out_h", "out_w", "kernel", "stride", "groups")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def integral(v: Any) -> bool:
    """An int or an integer-valued float (3.0): not a boolean, NaN, Infinity or 1.5."""
    return _is_int(v) or isinstance(v, float) and v.is_integer()


def _is_label(v: Any) -> bool:
    """A name fit for messages, tables and design files: a non-empty string of printable characters."""
    return isinstance(v, str) and v != "" and v.isprintable()


def output_range(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """The smallest and largest output size a convolution produces from ``size`` with a total padding P
    from 0 to 'same' (2 * (kernel // 2), split symmetrically or not): ``(size + P - kernel) // stride + 1``.
    P is at least ``kernel - size`` (the padded input holds the kernel), always possible for sizes >= 1."""
    lo, hi = max(0, kernel - size), 2 * (kernel // 2)
    return (size + lo - kernel) // stride + 1, (size + hi - kernel) // stride + 1


@dataclass(frozen=True)
class Layer:
    """One convolution. Sizes are exact (padding and stride applied): each output size is what the
    convolution produces with a padding from none to 'same' (``output_range``)."""

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
        if not _is_label(self.name):
            raise AutonbaError(f"layer name must be a non-empty string of printable characters, got {self.name!r}")
        if self.chunk is not None and not _is_label(self.chunk):
            raise AutonbaError(f"layer '{self.name}': chunk must be a non-empty string of printable characters "
                               f"or null, got {self.chunk!r}")
        for f in _SIZES:
            v = getattr(self, f)
            if not _is_int(v) or not 1 <= v <= MAX_SIZE:
                raise AutonbaError(f"layer '{self.name}': {f} must be an integer in 1..{MAX_SIZE}, got {v!r}")
        if not _is_int(self.bits) or not 1 <= self.bits <= 32:
            raise AutonbaError(f"layer '{self.name}': bits must be an integer in 1..32, got {self.bits!r}")
        if self.in_ch % self.groups or self.out_ch % self.groups:
            raise AutonbaError(
                f"layer '{self.name}': groups={self.groups} must divide in_ch={self.in_ch} and out_ch={self.out_ch}")
        for axis in "hw":
            size, out = getattr(self, f"in_{axis}"), getattr(self, f"out_{axis}")
            lo, hi = output_range(size, self.kernel, self.stride)
            if not lo <= out <= hi:
                raise AutonbaError(f"layer '{self.name}': out_{axis}={out} is not what a {self.kernel}x{self.kernel} "
                                   f"convolution at stride {self.stride} produces from in_{axis}={size}; allowed: "
                                   f"out_{axis} from {lo} to {hi} (padding from none to 'same')")

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
        if not _is_label(self.name):
            raise AutonbaError(f"workload name must be a non-empty string of printable characters, got {self.name!r}")
        if not self.layers:
            raise AutonbaError(f"workload '{self.name}' has no layers")

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "layers": [layer.to_dict() for layer in self.layers]}

    @classmethod
    def from_dict(cls, data: Any, name: str = "workload") -> Workload:
        """Native layers (``in_ch``, ``out_ch``, ...) or golden-format layers (``N``, ``M``, ``R``, ...),
        in a top-level ``layers`` list or under ``network``."""
        if isinstance(data, dict) and "layers" not in data and isinstance(data.get("network"), dict):
            data = data["network"]
        if not isinstance(data, dict) or not isinstance(data.get("layers"), list):
            raise AutonbaError(f"workload {name!r}: expected a JSON object with a 'layers' list "
                               "(at the top level or under 'network')")
        wname = data.get("name", name)
        if not _is_label(wname):
            raise AutonbaError(f"workload {name!r}: name must be a non-empty string of printable characters, "
                               f"got {wname!r}")
        return cls(name=wname, layers=[_layer_from_dict(d, i) for i, d in enumerate(data["layers"])])

    @classmethod
    def from_json(cls, path: str | Path) -> Workload:
        return cls.from_dict(read_json(path, "workload"), name=Path(path).stem)


_NATIVE = {f.name for f in fields(Layer)}
_GOLDEN = {"N", "M", "R", "K", "S", "depthwise", "bits", "chunk"}


def _as_int(value: Any, key: str, index: int, top: int = MAX_SIZE) -> int:
    """An integer-valued number in 1..top (3.0 counts; booleans, NaN, Infinity and 1.5 do not)."""
    ok = integral(value) and 1 <= value <= top
    if not ok:
        raise AutonbaError(f"layers[{index}].{key} must be an integer in 1..{top}, got {value!r}")
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
        dw = d.get("depthwise", False)
        if not isinstance(dw, bool):
            raise AutonbaError(f"layers[{i}].depthwise must be true or false, got {dw!r}")
        if dw and n not in (1, m):
            raise AutonbaError(f"layers[{i}]: a depthwise layer has N=1 (or N=M={m}), got N={n}")
        if r * s > MAX_SIZE:
            raise AutonbaError(f"layers[{i}]: the input size R*S={r * s} exceeds {MAX_SIZE}")
        cin, groups = (m, m) if dw else (n, 1)
        kw: dict[str, Any] = {"name": f"L{i}", "in_ch": cin, "out_ch": m, "in_h": r * s, "in_w": r * s,
                              "out_h": r, "out_w": r, "kernel": k, "stride": s, "groups": groups,
                              "bits": _as_int(d.get("bits", 8), "bits", i, 32), "chunk": d.get("chunk")}
    else:
        unknown = set(d) - _NATIVE
        required = {"in_ch", "out_ch", "in_h", "in_w", "out_h", "out_w", "kernel"}
        missing = required - set(d)
        if unknown or missing:
            raise AutonbaError(f"layers[{i}]: missing {sorted(missing)}, unknown {sorted(unknown)}; "
                               f"allowed fields: {', '.join(sorted(_NATIVE))}")
        kw = {k: (v if k in ("name", "chunk") else _as_int(v, k, i, 32 if k == "bits" else MAX_SIZE))
              for k, v in d.items()}
        kw.setdefault("name", f"L{i}")
    for key, null_ok in (("name", False), ("chunk", True)):
        v = kw.get(key)
        if not _is_label(v) and not (null_ok and v is None):
            raise AutonbaError(f"layers[{i}].{key} must be a non-empty string of printable characters"
                               f"{' or null' if null_ok else ''}, got {v!r}")
    try:
        return Layer(**kw)
    except AutonbaError as e:
        raise AutonbaError(f"layers[{i}]: {e}") from None
