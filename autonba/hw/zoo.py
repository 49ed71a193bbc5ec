"""Built-in networks, each at a uniform bitwidth: ``WORKLOADS.get(name)(bits)``."""
from __future__ import annotations

from collections.abc import Callable

from autonba.hw.network import LayerBuilder
from autonba.hw.workload import Workload
from autonba.registry import Registry

WORKLOADS: Registry[Callable[[int], Workload]] = Registry("network")

# MobileNetV2 inverted residual settings: (expansion, channels, blocks, first stride)
_MBV2 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def mobilenetv2(bits: int, size: int, classes: int, cifar: bool) -> LayerBuilder:
    b = LayerBuilder(3, size)
    b.conv("stem", 32, 3, 1 if cifar else 2, bits=bits)
    for si, (e, c, n, s) in enumerate(_MBV2):
        if cifar and si == 1:
            s = 1  # the CIFAR variant keeps 32x32 through the second stage
        for i in range(n):
            name, hidden = f"s{si}b{i}", b.c * e
            if e != 1:
                b.conv(f"{name}.expand", hidden, 1, bits=bits)
            b.conv(f"{name}.dw", hidden, 3, s if i == 0 else 1, groups=hidden, bits=bits)
            b.conv(f"{name}.project", c, 1, bits=bits)
    b.conv("head", 1280, 1, bits=bits)
    b.global_pool()
    b.linear("classifier", classes, bits)
    return b


def resnet18(bits: int, size: int, classes: int, cifar: bool) -> LayerBuilder:
    b = LayerBuilder(3, size)
    if cifar:
        b.conv("stem", 64, 3, 1, bits=bits)
    else:
        b.conv("stem", 64, 7, 2, bits=bits)
        b.pool(3, 2, padding=1)
    for si, c in enumerate((64, 128, 256, 512)):
        for i in range(2):
            s = 2 if (si > 0 and i == 0) else 1
            if s != 1 or b.c != c:  # projection shortcut, from the block input
                b.conv(f"s{si}b{i}.downsample", c, 1, s, bits=bits, update=False)
            b.conv(f"s{si}b{i}.conv1", c, 3, s, bits=bits)
            b.conv(f"s{si}b{i}.conv2", c, 3, 1, bits=bits)
    b.global_pool()
    b.linear("fc", classes, bits)
    return b


def vgg16(bits: int, size: int, classes: int, cifar: bool) -> LayerBuilder:
    b = LayerBuilder(3, size)
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    n = 0
    for v in cfg:
        if v == "M":
            b.pool(2, 2)
        else:
            b.conv(f"conv{n}", int(str(v)), 3, 1, bits=bits)
            n += 1
    if cifar:
        b.linear("fc", classes, bits)
    else:
        b.linear("fc0", 4096, bits)
        b.linear("fc1", 4096, bits)
        b.linear("fc2", classes, bits)
    return b


def _register(name: str, build: Callable[..., LayerBuilder], size: int, classes: int, cifar: bool) -> None:
    WORKLOADS.register(name, lambda bits: Workload(name=f"{name}@{bits}b",
                                                   layers=build(bits, size, classes, cifar).layers))


_register("mobilenetv2-cifar", mobilenetv2, 32, 10, True)
_register("mobilenetv2-imagenet", mobilenetv2, 224, 1000, False)
_register("resnet18", resnet18, 224, 1000, False)
_register("resnet18-cifar", resnet18, 32, 10, True)
_register("vgg16", vgg16, 224, 1000, False)
_register("vgg16-cifar", vgg16, 32, 10, True)
