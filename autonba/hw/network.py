"""Build exact layer lists of networks layer by layer, with PyTorch's output sizes (the zoo, and the
networks of the search spaces in ``autonba.nas.workload``)."""
from __future__ import annotations

from autonba.hw.workload import Layer


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
