"""Candidate operations of a searchable block, by name.

An operation's *structure* (kernel, expansion, groups) lives here, once; the hardware
workload (``autonba.hw.network``) and the PyTorch modules both read it.
Users add an operation with ``OPS.register("name", OpSpec(...))``.
"""
from __future__ import annotations

from dataclasses import dataclass

from autonba.registry import Registry


@dataclass(frozen=True)
class OpSpec:
    """Inverted-bottleneck block: 1x1 expand (x expansion) -> kxk depthwise -> 1x1 project.

    ``groups`` applies to both 1x1 convs (followed by a channel shuffle when > 1).
    ``skip`` is the identity (or a 1x1 conv when the block changes shape).
    """

    kernel: int = 3
    expansion: int = 1
    groups: int = 1
    skip: bool = False


OPS: Registry[OpSpec] = Registry("operation")

for _k in (3, 5):
    for _e in (1, 3, 6):
        OPS.register(f"k{_k}_e{_e}", OpSpec(kernel=_k, expansion=_e))
    OPS.register(f"k{_k}_e1_g2", OpSpec(kernel=_k, expansion=1, groups=2))
OPS.register("skip", OpSpec(skip=True))
