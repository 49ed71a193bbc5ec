"""Build exact layer lists of networks: the one place where blocks become hardware layers."""
from __future__ import annotations

from autonba.hw.workload import Layer, Workload
from autonba.nas.layout import Layout
from autonba.nas.ops import OPS


class LayerBuilder:
    """Tracks the running feature-map shape and appends convs with PyTorch's output sizes."""

    def __init__(self, channels: int, size: int):
        self.c, self.h, self.w = channels, size, size
        self.layers: list[Layer] = []

    def conv(self, name: str, out_ch: int, kernel: int, stride: int = 1, groups: int = 1,
             bits: int = 8, padding: int | None = None, update: bool = True) -> Layer:
        pad = kernel // 2 if padding is None else padding
        oh = (self.h + 2 * pad - kernel) // stride + 1
        ow = (self.w + 2 * pad - kernel) // stride + 1
        layer = Layer(name=name, in_ch=self.c, out_ch=out_ch, in_h=self.h, in_w=self.w, out_h=oh, out_w=ow,
                      kernel=kernel, stride=stride, groups=groups, bits=bits)
        self.layers.append(layer)
        if update:
            self.c, self.h, self.w = out_ch, oh, ow
        return layer

    def pool(self, kernel: int, stride: int, padding: int = 0) -> None:
        self.h = (self.h + 2 * padding - kernel) // stride + 1
        self.w = (self.w + 2 * padding - kernel) // stride + 1

    def global_pool(self) -> None:
        self.h = self.w = 1

    def linear(self, name: str, out_features: int, bits: int) -> Layer:
        """A fully connected layer on the flattened map, as a conv covering the whole map."""
        layer = Layer(name=name, in_ch=self.c * self.h * self.w, out_ch=out_features, in_h=1, in_w=1,
                      out_h=1, out_w=1, kernel=1, bits=bits)
        self.layers.append(layer)
        self.c, self.h, self.w = out_features, 1, 1
        return layer


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
