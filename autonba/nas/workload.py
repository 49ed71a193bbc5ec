"""The workload of a network of a search space: the one place where blocks become hardware layers."""
from __future__ import annotations

from autonba.hw.network import LayerBuilder
from autonba.hw.workload import Workload
from autonba.nas.layout import Layout
from autonba.nas.ops import OPS


def add_block(b: LayerBuilder, name: str, op: str, out_ch: int, stride: int, bits: int) -> None:
    """Append the convs of one searchable block (an identity skip adds none)."""
    spec = OPS.get(op)
    if spec.skip:
        if b.c != out_ch or stride != 1:
            b.conv(f"{name}.skip", out_ch, 1, stride, bits=bits, padding=0)
        return
    hidden = b.c * spec.expansion
    b.conv(f"{name}.expand", hidden, 1, 1, groups=spec.groups, bits=bits)
    b.conv(f"{name}.dw", hidden, spec.kernel, stride, groups=hidden, bits=bits)
    b.conv(f"{name}.project", out_ch, 1, 1, groups=spec.groups, bits=bits)


def layers_from_arch(layout: Layout, ops: list[str], bits: list[int], name: str = "arch") -> Workload:
    """The exact workload of a derived network: stem, every block's convs, head and classifier."""
    b = LayerBuilder(layout.input_channels, layout.input_size)
    fb = layout.fixed_bits
    b.conv("stem", layout.stem.channels, layout.stem.kernel, layout.stem.stride, bits=fb)
    for i, ((_, cout, stride), op, q) in enumerate(zip(layout.block_plan(), ops, bits, strict=True)):
        add_block(b, f"block{i}", op, cout, stride, q)
    b.conv("head", layout.head_channels, 1, 1, bits=fb)
    b.global_pool()
    b.linear("classifier", layout.num_classes, fb)
    return Workload(name=name, layers=b.layers)
