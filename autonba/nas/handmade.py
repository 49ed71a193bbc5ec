"""Hand-designed networks, the baselines of a co-search study (``mode: fixed-arch``, ``arch: NAME``).

Each is a uniform pattern (one operation and one bitwidth in every searchable block), so it fits
every layout: the stem, head and stage shapes are the layout's. Users add their own with
``HAND_DESIGNED.register("name", HandDesigned(...))``, or give an ``arch.json`` path instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autonba.errors import AutonbaError
from autonba.nas.arch import Arch, BlockChoice
from autonba.nas.layout import Layout
from autonba.registry import Registry


@dataclass(frozen=True)
class HandDesigned:
    op: str
    bits: int
    description: str

    def arch(self, layout: Layout) -> Arch:
        return Arch(layout=layout, blocks=[BlockChoice(op=self.op, bits=self.bits)] * layout.num_blocks)


HAND_DESIGNED: Registry[HandDesigned] = Registry("hand-designed network")
HAND_DESIGNED.register("mbv2-8bit", HandDesigned("k3_e6", 8, "MobileNetV2's pattern: every block an inverted "
                                                            "residual of kernel 3, expansion 6; 8 bits"))
HAND_DESIGNED.register("mbv2-4bit", HandDesigned("k3_e6", 4, "MobileNetV2's pattern at 4 bits"))
HAND_DESIGNED.register("mbv2-e3-8bit", HandDesigned("k3_e3", 8, "a lighter uniform network: kernel 3, "
                                                               "expansion 3; 8 bits"))


def check_arch_ref(ref: str) -> None:
    """An error unless ``ref`` names a hand-designed network or an existing file."""
    if ref not in HAND_DESIGNED and not Path(ref).is_file():
        raise AutonbaError(f"arch: '{ref}' is neither a hand-designed network ({', '.join(HAND_DESIGNED.names())}) "
                           "nor an arch.json file")


def resolve_arch(ref: str, layout: Layout) -> Arch:
    """The network ``ref`` names on ``layout`` (the search space's, fitted to the data): a hand-designed
    network by name, or an ``arch.json`` path whose input and classes must match the layout's."""
    if ref in HAND_DESIGNED:
        return HAND_DESIGNED.get(ref).arch(layout)
    check_arch_ref(ref)
    arch = Arch.load(ref)
    got, want = arch.layout, layout
    for field in ("input_size", "input_channels", "num_classes"):
        if getattr(got, field) != getattr(want, field):
            raise AutonbaError(f"arch {ref}: its layout's {field} is {getattr(got, field)} but the data has "
                               f"{getattr(want, field)}; give a network built for this data set")
    return arch
