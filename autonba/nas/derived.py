"""The derived network as a standalone quantised PyTorch model, and a MAC count by forward hooks."""
from __future__ import annotations

import torch
from torch import nn

from autonba.nas.arch import Arch
from autonba.nas.modules import LayerPath, QConv2d, QLinear, QNetwork, QuantSpec


class DerivedNet(nn.Module):
    """Exactly the operations and bitwidths of an ``Arch`` (stem, head, classifier at fixed bits)."""

    def __init__(self, arch: Arch):
        super().__init__()
        self.arch = arch
        self.net = QNetwork(arch.layout, [[b.op] for b in arch.blocks])
        self.paths = [LayerPath([0], None, [QuantSpec.fixed(b.bits)]) for b in arch.blocks]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, self.paths)


def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one forward of a single input, counted on every quantised conv/linear."""
    total = 0

    def conv_hook(m: QConv2d, inp, out):
        nonlocal total
        total += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear_hook(m: QLinear, inp, out):
        nonlocal total
        total += out[0].numel() * m.in_features

    hooks = [m.register_forward_hook(conv_hook if isinstance(m, QConv2d) else linear_hook)
             for m in model.modules() if isinstance(m, (QConv2d, QLinear))]
    try:
        was = model.training
        model.eval()
        with torch.no_grad():
            model(x[:1])
        model.train(was)
    finally:
        for h in hooks:
            h.remove()
    return total
