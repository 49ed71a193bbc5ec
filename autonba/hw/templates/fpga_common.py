"""What both FPGA chunk templates share: design factors, the allocation rule, layer tensors."""
from __future__ import annotations

import torch

from autonba.errors import AutonbaError
from autonba.hw.workload import Workload

FACTORS = ("comp_mode", "Trb", "Tcb", "Tmb", "Tnb", "Tr", "Tc", "Tm", "Tn")
CONSTRAINTS = (("Tr", "Trb"), ("Tc", "Tcb"), ("Tm", "Tmb"), ("Tn", "Tnb"))


def allocate_by_rule(workload: Workload, row_split: int) -> list[str]:
    """Explicit ``chunk`` names where every layer has one; otherwise standard layers to ``a0`` when
    their output has >= row_split rows, else ``a1``; depthwise to ``dwa0``/``dwa1``; one chunk per
    bitwidth (``a0q6``). Chunks for some layers but not all: an error."""
    given = [layer.chunk for layer in workload.layers]
    if all(given):
        return [str(c) for c in given]
    if any(given):
        missing = [layer.name for layer in workload.layers if not layer.chunk]
        raise AutonbaError(f"workload '{workload.name}': layers {', '.join(missing[:5])}"
                           f"{' ...' if len(missing) > 5 else ''} have no chunk while others have one; "
                           "give every layer a chunk, or none (the template's rule allocates them)")
    return [f"{'dw' if l.depthwise else ''}a{0 if l.out_h >= row_split else 1}q{l.bits}" for l in workload.layers]


class LayerTable:
    """Layer shapes as float64 tensors (L,), indexed by the cost models."""

    def __init__(self, workload: Workload):
        ls = workload.layers

        def t(values):
            return torch.tensor(values, dtype=torch.float64)

        self.groups = t([1 if l.depthwise else l.groups for l in ls])
        self.dw = torch.tensor([l.depthwise for l in ls])
        # per group slice: a depthwise layer counts as its channels with N = 1
        self.N = t([1 if l.depthwise else l.in_ch // l.groups for l in ls])
        self.M = t([l.out_ch if l.depthwise else l.out_ch // l.groups for l in ls])
        self.OH = t([l.out_h for l in ls])
        self.OW = t([l.out_w for l in ls])
        self.IH = t([l.in_h for l in ls])
        self.IW = t([l.in_w for l in ls])
        self.K = t([l.kernel for l in ls])
        self.S = t([l.stride for l in ls])
        self.q = t([l.bits for l in ls])
        self.weights = t([l.weights for l in ls])
