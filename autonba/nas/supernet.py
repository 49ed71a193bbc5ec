"""The supernet: every candidate operation of every searchable layer, architecture logits alpha
(layer x op) and beta (layer x op x bitwidth), and the sampling modes of the joint search.

Sampling (``sample(step)``), with Gumbel-perturbed rankings of the logits:

=============  ===============================  =========================================
mode           weight step                      architecture step
=============  ===============================  =========================================
``hetero``     ops hard (top-1), bits soft      ops and bits hard: top-K executed, weighted by
               (sum_j p_j Q_j in one conv)      straight-through coefficients (see below)
``soft``       ops and bits soft (all paths)    ops and bits soft, gradients to all logits
``hard``       ops and bits hard (top-1)        as hetero
``multipath``  ops hard, bits soft with one     ops hard (top-K STE), bits soft, one conv per
               conv per bitwidth, summed        bitwidth
=============  ===============================  =========================================

Straight-through coefficients over the K active choices: value 1 for the chosen one, 0 for the
others, gradient of the softmax over their raw logits, so only the K active logits move. After an
architecture step, ``offset_`` shifts the active logits so their total probability mass is the
same as before the step. In the weight step no gradient reaches alpha or beta.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from autonba.nas.arch import Arch, BlockChoice
from autonba.nas.modules import LayerPath, QNetwork, QuantSpec
from autonba.nas.space import SearchSpace

MODES = ("hetero", "soft", "hard", "multipath")


@dataclass
class Sample:
    """One sampled forward: the per-layer paths, the single path (op and bitwidth index per layer)
    for the hardware model, and the active sets that ``offset_`` re-normalises."""

    paths: list[LayerPath]
    op: list[int]
    bits: list[int]
    active_ops: list[list[int]]
    active_bits: list[list[int]]


def ste_coef(logits: torch.Tensor) -> torch.Tensor:
    """Straight-through coefficients for active choices whose first entry is the chosen one."""
    sm = torch.softmax(logits, -1)
    hard = torch.zeros_like(sm)
    hard[0] = 1.0
    return hard - sm.detach() + sm


class Supernet(nn.Module):
    def __init__(self, space: SearchSpace, mode: str = "hetero", top_k: int = 2):
        super().__init__()
        if mode not in MODES:
            from autonba.errors import AutonbaError
            raise AutonbaError(f"unknown sampling mode '{mode}'; allowed: {', '.join(MODES)}")
        self.space, self.mode = space, mode
        L, O, J = space.layout.num_blocks, len(space.ops), len(space.bits)
        self.top_k = top_k
        self.net = QNetwork(space.layout, [list(space.ops)] * L)
        self.alpha = nn.Parameter(torch.zeros(L, O))
        self.beta = nn.Parameter(torch.zeros(L, O, J))

    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.net.parameters())

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha, self.beta]

    def forward(self, x: torch.Tensor, sample: Sample) -> torch.Tensor:
        return self.net(x, sample.paths)

    # ---- sampling ------------------------------------------------------------------------------
    def sample(self, step: str, temperature: float = 1.0, generator: torch.Generator | None = None) -> Sample:
        """A path for a ``"weight"`` or ``"arch"`` step under this supernet's mode."""
        if step not in ("weight", "arch"):
            raise ValueError(f"step must be 'weight' or 'arch', got {step!r}")
        arch = step == "arch"
        bits = tuple(self.space.bits)
        ga = _gumbel(self.alpha.shape, generator).to(self.alpha.device)
        gb = _gumbel(self.beta.shape, generator).to(self.beta.device)
        paths: list[LayerPath] = []
        ops_out: list[int] = []
        bits_out: list[int] = []
        act_ops: list[list[int]] = []
        act_bits: list[list[int]] = []
        for l in range(self.alpha.shape[0]):
            alpha = self.alpha[l] if arch else self.alpha[l].detach()
            beta = self.beta[l] if arch else self.beta[l].detach()
            rank = torch.argsort(alpha.detach() + ga[l], descending=True).tolist()
            if self.mode == "soft":
                p = torch.softmax((alpha + ga[l]) / temperature, -1)
                quant = [self._soft_bits(beta[o], gb[l, o], temperature, bits, False) for o in range(len(p))]
                paths.append(LayerPath(list(range(len(p))), p, quant))
                ops_out.append(rank[0])
                bits_out.append(int(torch.argmax(beta[rank[0]].detach() + gb[l, rank[0]])))
                act_ops.append([])
                act_bits.append([])
                continue
            active = rank[:self.top_k] if arch else rank[:1]
            coef = ste_coef(alpha[active]) if arch else None
            chosen = [self._bits(beta[o], gb[l, o], temperature, arch) for o in active]
            paths.append(LayerPath(active, coef, [q for q, _, _ in chosen]))
            ops_out.append(active[0])
            bits_out.append(chosen[0][1])
            act_ops.append(active if arch else [])
            act_bits.append(chosen[0][2] if arch else [])
        return Sample(paths, ops_out, bits_out, act_ops, act_bits)

    def _bits(self, beta: torch.Tensor, g: torch.Tensor, temperature: float,
              arch: bool) -> tuple[QuantSpec, int, list[int]]:
        """Bitwidths of one executed operation: its QuantSpec, the chosen index and the hard active set."""
        bits = tuple(self.space.bits)
        if self.mode == "multipath" or (self.mode == "hetero" and not arch):
            q = self._soft_bits(beta, g, temperature, bits, self.mode == "multipath")
            return q, int(torch.argmax(q.coef.detach())), []
        rank = torch.argsort(beta.detach() + g, descending=True).tolist()
        active = rank[:self.top_k] if arch else rank[:1]
        coef = ste_coef(beta[active]) if arch else torch.ones(1)
        return QuantSpec(tuple(bits[j] for j in active), coef), active[0], active

    @staticmethod
    def _soft_bits(beta: torch.Tensor, g: torch.Tensor, temperature: float, bits: tuple[int, ...],
                   multipath: bool) -> QuantSpec:
        return QuantSpec(bits, torch.softmax((beta + g) / temperature, -1), multipath)

    @torch.no_grad()
    def offset_(self, sample: Sample, alpha_before: torch.Tensor, beta_before: torch.Tensor) -> None:
        """Shift the logits of each active set so its probability mass equals the mass before the step."""
        for l, (ops, bts) in enumerate(zip(sample.active_ops, sample.active_bits)):
            if ops:
                _keep_mass(self.alpha[l], alpha_before[l], ops)
            if bts:
                o = sample.op[l]
                _keep_mass(self.beta[l, o], beta_before[l, o], bts)

    # ---- single path and derivation ---------------------------------------------------------------
    def path_weights(self, sample: Sample) -> torch.Tensor:
        """Per layer, the differentiable weight of its single-path choice: the operation's coefficient
        times the coefficient of its bitwidth (value 1 with straight-through gradients in the hard
        modes, the probabilities in the soft ones); the hardware cost of layer l is scaled by it."""
        out = []
        for lp, o, b in zip(sample.paths, sample.op, sample.bits):
            i = lp.ops.index(o)
            w = lp.op_coef[i] if lp.op_coef is not None else self.alpha.new_ones(())
            q = lp.quant[i]
            j = q.bits.index(self.space.bits[b])
            out.append(w * q.coef[j].to(w.device))
        return torch.stack(out)

    def single_path(self, sample: Sample) -> list[tuple[str, int]]:
        """(operation, bitwidth) per layer of this forward: the proxy network for the hardware model."""
        return [(self.space.ops[o], self.space.bits[b]) for o, b in zip(sample.op, sample.bits)]

    def derive(self) -> Arch:
        """The argmax network: per layer argmax alpha, then argmax beta of that operation."""
        ops = self.alpha.detach().argmax(-1).tolist()
        blocks = [BlockChoice(op=self.space.ops[o], bits=self.space.bits[int(self.beta[l, o].detach().argmax())])
                  for l, o in enumerate(ops)]
        return Arch(layout=self.space.layout, blocks=blocks)


def _gumbel(shape, generator) -> torch.Tensor:
    u = torch.rand(shape, generator=generator).clamp_(1e-9, 1 - 1e-9)
    return -torch.log(-torch.log(u))


def _keep_mass(logits: torch.Tensor, before: torch.Tensor, active: list[int]) -> None:
    """In place: shift logits[active] by one constant so that their softmax mass equals that of
    ``before`` (logits of the other entries are unchanged by the step)."""
    n = logits.numel()
    if len(active) >= n:
        return
    mask = torch.zeros(n, dtype=torch.bool)
    mask[active] = True
    mass = torch.softmax(before, -1)[mask].sum().clamp(1e-12, 1 - 1e-12)
    s_act = torch.logsumexp(logits[mask], 0)
    s_rest = torch.logsumexp(logits[~mask], 0)
    delta = torch.log(mass) + s_rest - torch.log1p(-mass) - s_act
    logits[mask] += delta
