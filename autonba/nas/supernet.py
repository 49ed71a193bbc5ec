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
    """Straight-through coefficients over the last dimension, whose first entry is the chosen one."""
    sm = torch.softmax(logits, -1)
    hard = torch.zeros_like(sm)
    hard[..., 0] = 1.0
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
        self._host: tuple[tuple[int, int, int], torch.Tensor, torch.Tensor] | None = None

    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.net.parameters())

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha, self.beta]

    def forward(self, x: torch.Tensor, sample: Sample) -> torch.Tensor:
        return self.net(x, sample.paths)

    # ---- sampling ------------------------------------------------------------------------------
    def sample(self, step: str, temperature: float = 1.0, generator: torch.Generator | None = None) -> Sample:
        """A path for a ``"weight"`` or ``"arch"`` step under this supernet's mode. All layers are sampled
        together: the rankings on a host copy of the logits (read once after they change: the host must
        know which modules to run), the coefficients in a few batched operations on the logits' device."""
        if step not in ("weight", "arch"):
            raise ValueError(f"step must be 'weight' or 'arch', got {step!r}")
        arch = step == "arch"
        L = self.alpha.shape[0]
        ga, gb = _gumbel(self.alpha.shape, generator), _gumbel(self.beta.shape, generator)
        alpha_h, beta_h = self._host_logits()
        rank = torch.argsort(alpha_h + ga, dim=-1, descending=True)
        alpha = self.alpha if arch else self.alpha.detach()
        beta = self.beta if arch else self.beta.detach()
        dev = self.alpha.device

        def to_dev(t: torch.Tensor) -> torch.Tensor:  # a host tensor, copied without waiting on the device
            return t.to(dev, non_blocking=True)

        if self.mode == "soft":
            p = torch.softmax((alpha + to_dev(ga)) / temperature, -1).unbind(0)
            q = torch.softmax((beta + to_dev(gb)) / temperature, -1)
            first = rank[:, 0].tolist()
            chosen_bits = torch.argmax(beta_h + gb, -1)[torch.arange(L), rank[:, 0]].tolist()
            paths = [LayerPath(list(range(self.alpha.shape[1])), p[l], [QuantSpec(self.bits, c) for c in q_l.unbind(0)])
                     for l, q_l in enumerate(q.unbind(0))]
            return Sample(paths, first, chosen_bits, [[] for _ in range(L)], [[] for _ in range(L)])
        k = self.top_k if arch else 1
        ops = rank[:, :k]                                                     # (L, K) executed operations
        op_coef = ste_coef(alpha.gather(1, to_dev(ops))).unbind(0) if arch else [None] * L
        rows = torch.arange(L).unsqueeze(1)
        b_logits = beta_h[rows, ops] + gb[rows, ops]                          # (L, K, J) on the host
        soft_bits = self.mode == "multipath" or (self.mode == "hetero" and not arch)
        if soft_bits:
            q = torch.softmax((beta[to_dev(rows), to_dev(ops)] + to_dev(gb[rows, ops])) / temperature, -1)
            chosen = torch.argmax(torch.softmax(b_logits / temperature, -1), -1)  # (L, K)
            specs = [[QuantSpec(self.bits, c, self.mode == "multipath") for c in q_l.unbind(0)] for q_l in q]
            active_bits: list[list[int]] = [[] for _ in range(L)]
        else:
            kb = self.top_k if arch else 1
            brank = torch.argsort(b_logits, dim=-1, descending=True)[..., :kb]   # (L, K, Kb)
            chosen = brank[..., 0]
            bit_coef = ste_coef(beta[to_dev(rows), to_dev(ops)].gather(2, to_dev(brank))) if arch else None
            br = brank.tolist()
            coefs = [r.unbind(0) for r in bit_coef.unbind(0)] if bit_coef is not None else [[None] * k] * L
            specs = [[QuantSpec(tuple(self.bits[j] for j in br[l][i]), coefs[l][i]) for i in range(k)]
                     for l in range(L)]
            active_bits = [br[l][0] if arch else [] for l in range(L)]
        ops_l, chosen_l = ops.tolist(), chosen.tolist()
        paths = [LayerPath(ops_l[l], op_coef[l], specs[l]) for l in range(L)]
        return Sample(paths, [o[0] for o in ops_l], [c[0] for c in chosen_l],
                      [o if arch else [] for o in ops_l], active_bits)

    @property
    def bits(self) -> tuple[int, ...]:
        return tuple(self.space.bits)

    def _host_logits(self) -> tuple[torch.Tensor, torch.Tensor]:
        """alpha and beta on the host, copied (one wait on the device) only when they changed."""
        key = (self.alpha.data_ptr(), self.alpha._version, self.beta._version)
        if self._host is None or self._host[0] != key:
            self._host = (key, self.alpha.detach().cpu(), self.beta.detach().cpu())
        return self._host[1], self._host[2]

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
            out.append(w if q.coef is None else w * q.coef[j].to(w.device))
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
