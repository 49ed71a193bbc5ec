"""Engines of flat design spaces (:class:`~autonba.hw.factor_space.FactorSpace`), for template
families whose design is a few global factors: ``das`` (a score-function search over per-factor
logits), ``exact`` (every design), and the shared ``random`` and ``evolution``. ``FLAT_ENGINES`` is
what such a family returns from ``engines()``."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from pydantic import Field

from autonba.errors import Intractable
from autonba.hw.engines.base import Adam, Engine, EngineOptions, Incumbent, Outcome, penalised
from autonba.hw.engines.evolution import Evolution
from autonba.hw.engines.random_search import RandomSearch
from autonba.registry import Registry

if TYPE_CHECKING:
    from autonba.hw.factor_space import FactorSpace


class FlatDasOptions(EngineOptions):
    batch: int = Field(128, gt=1, description="designs sampled per step")
    lr: float = Field(0.05, gt=0, description="Adam learning rate of the design logits")
    temperature: float = Field(1.0, gt=0, description="Gumbel temperature at the start")
    final_temperature: float = Field(0.5, gt=0, description="temperature at the end (linear decay)")
    penalty: float = Field(10.0, ge=0, description="cost multiplier per unit of relative budget overflow")
    warm_strength: float = Field(3.0, ge=0, description="initial logit bonus of the warm-start design")


class FlatDas(Engine):
    """Hard Gumbel-max samples of whole designs; the score-function gradient of the expected log of the
    penalised objective (over-budget designs still give a signal), baseline-subtracted and normalised."""
    options: FlatDasOptions
    space: FactorSpace


    name = "das"
    Options = FlatDasOptions
    default_budget = 4096

    def _run(self) -> Outcome:
        o, sp, t = self.options, self.space, self.template
        logits = torch.zeros(sp.table.shape, dtype=torch.float64)
        inc, done = Incumbent(t.trace_figure), 0
        if self.warm_start is not None:  # the warm start itself is a candidate: never end worse than it
            warm = sp.encode(self.warm_start)
            logits += o.warm_strength * torch.nn.functional.one_hot(warm, sp.table.shape[1])
            vals = sp.values(warm.unsqueeze(0))
            c = t.cost(vals)
            done += 1
            inc.offer(vals, c.objective, c.feasible, done)
        logits.requires_grad_(True)
        adam = Adam(logits, o.lr)
        steps = max(1, math.ceil((self.budget - done) / o.batch))
        for step, (n, done) in enumerate(self.batches(o.batch, "das", start=done)):  # noqa: B020
            temp = o.temperature + (o.final_temperature - o.temperature) * step / max(1, steps - 1)
            idx, logp = sp.sample(n, logits, self.generator, temp)
            assert logp is not None  # given logits, sample returns log-probabilities
            vals = sp.values(idx)
            c = t.cost(vals)
            inc.offer(vals, c.objective, c.feasible, done)
            cost = torch.log(penalised(c.objective, c.overflow, o.penalty).clamp(min=1e-300))
            if n > 1:
                adv = (cost - cost.mean()) / (cost.std() + 1e-9)
                grad, = torch.autograd.grad((adv.detach() * logp).mean(), logits)
                adam.step(grad)
        return inc.outcome(done)


class FlatExactOptions(EngineOptions):
    max_designs: int = Field(10_000_000, gt=0, description="refuse spaces with more designs than this")
    block: int = Field(1 << 15, gt=0, description="designs evaluated per vectorised call")


class FlatExact(Engine):
    """Provably optimal: every design of the space (``budget`` does not apply)."""
    options: FlatExactOptions
    space: FactorSpace


    name = "exact"
    Options = FlatExactOptions

    def _run(self) -> Outcome:
        sp, t = self.space, self.template
        if sp.size() > self.options.max_designs:
            raise Intractable(f"exact: the space has {sp.size():,} designs (> max_designs="
                              f"{self.options.max_designs:,}); pin factors with --fix, or use das / evolution")
        inc, done = Incumbent(t.trace_figure), 0
        for idx in sp.enumerate(self.options.block):
            vals = sp.values(idx)
            c = t.cost(vals)
            done += len(idx)
            inc.offer(vals, c.objective, c.feasible, done)
        return inc.outcome(done)


FLAT_ENGINES: Registry[type[Engine]] = Registry("engine")
for _e in (FlatDas, RandomSearch, Evolution, FlatExact):
    FLAT_ENGINES.register(_e.name, _e)
