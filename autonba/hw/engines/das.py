"""``das``: differentiable accelerator search with per-chunk credit assignment.

Every design factor of every chunk has logits over its allowed values. Each step samples a
batch of full designs by hard Gumbel-max (constraints such as tile <= buffer are masks, never
rejections), evaluates them in one vectorised call, and descends a score-function estimate of
the expected cost: the gradient of cost x prod_m STE(p_m) in its log form,
``sum_c A_c * log p(design of chunk c)``, with a baseline-subtracted, normalised advantage A_c.

Credit is per chunk. The bottleneck is a max, so one global reward tells the chunks that are
not the bottleneck almost nothing. Instead chunk c pays
``max(cycles_c / tau, 1) + mu_dsp * dsp_c / DSP + mu_bram * bram_c / BRAM``:
a chunk slower than the target tau is pushed to speed up, a faster one to give back resources.
tau tracks the batch's median bottleneck (a little below it); mu are Lagrange multipliers of the
shared budgets, raised while the batch overspends and lowered while it underspends, so
over-budget designs give a learning signal instead of being skipped.

Chunk costs are separable, so every evaluated chunk design is also kept in a per-chunk Pareto
archive, and the best feasible combination of archived designs is found exactly
(``combine``) every few steps: the incumbent is the best design assembled from what the search
has evaluated. The final design is re-evaluated as a whole.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from pydantic import Field

from autonba.hw.engines.base import Adam, Engine, EngineOptions, Incumbent, Outcome
from autonba.hw.engines.combine import Front, combine

if TYPE_CHECKING:
    from autonba.hw.space import DesignSpace
    from autonba.hw.templates.base import ChunkTemplate


class DasOptions(EngineOptions):
    batch: int = Field(256, gt=0, description="designs sampled per step")
    lr: float = Field(0.01, gt=0, description="Adam learning rate of the design logits")
    temperature: float = Field(1.0, gt=0, description="Gumbel temperature at the start")
    final_temperature: float = Field(0.5, gt=0, description="temperature at the end (linear decay)")
    target_margin: float = Field(0.03, ge=0, lt=1, description="tau = (1 - margin) x median bottleneck")
    dual_lr: float = Field(0.5, gt=0, description="step of the multiplicative budget-multiplier update")
    recombine: bool = Field(True, description="assemble the incumbent from per-chunk archives (exact combination)")
    recombine_every: int = Field(10, gt=0, description="steps between recombinations of the archives")
    warm_strength: float = Field(3.0, ge=0, description="initial logit bonus of the warm-start design")
    polish_rounds: int = Field(4, ge=0, description="final rounds of single-factor moves around the incumbent")


class Das(Engine):
    options: DasOptions
    template: ChunkTemplate
    space: DesignSpace
    name = "das"
    Options = DasOptions
    default_budget = 20_480

    def _run(self) -> Outcome:
        o, t, sp = self.options, self.template, self.space
        dsp_cap, bram_cap = t.budgets
        C, F, V = sp.table.shape
        logits = torch.zeros((C, F, V), dtype=torch.float64)
        if self.warm_start is not None:
            logits = logits + o.warm_strength * torch.nn.functional.one_hot(
                sp.encode(self.warm_start), V).to(torch.float64)
        logits.requires_grad_(True)
        adam = Adam(logits, o.lr)
        mu = torch.ones(2, dtype=torch.float64)
        caps = torch.tensor([dsp_cap, bram_cap], dtype=torch.float64)
        # the polish rounds' evaluations come out of the same budget
        per_round = F * V
        reserve = min(o.polish_rounds * per_round, self.budget // 4) if o.recombine else 0
        sample_budget = self.budget - reserve - (self.warm_start is not None)
        steps = max(1, math.ceil(sample_budget / o.batch))
        inc = Incumbent(t.trace_figure)
        archives = [Front.empty(F) for _ in range(C)]
        pending: list[tuple[torch.Tensor, ...]] = []
        evaluations = 0
        if self.warm_start is not None:  # the warm start itself is a candidate: never end worse than it
            vals = sp.values(sp.encode(self.warm_start).unsqueeze(0))
            ev = t.evaluate(vals)
            evaluations += 1
            inc.offer(vals, ev.bottleneck, ev.feasible, evaluations)
            if o.recombine:
                pending.append((vals, ev.chunk_cycles, ev.chunk_dsp, ev.chunk_bram))
        with self.progress_bar(self.budget, "das") as bar:
            for step in range(steps):
                temp = o.temperature + (o.final_temperature - o.temperature) * step / max(1, steps - 1)
                n = min(o.batch, sample_budget - evaluations)
                if n <= 0:
                    break
                idx, logp = sp.sample(n, logits, self.generator, temp)
                assert logp is not None  # given logits, sample returns log-probabilities
                vals = sp.values(idx)
                ev = t.evaluate(vals)
                evaluations += n
                bar.update(n)
                inc.offer(vals, ev.bottleneck, ev.feasible, evaluations)
                if o.recombine:
                    pending.append((vals, ev.chunk_cycles, ev.chunk_dsp, ev.chunk_bram))

                # per-chunk cost, advantage and the score-function step
                tau = (1 - o.target_margin) * float(ev.bottleneck.median())
                cost = ((ev.chunk_cycles / tau).clamp(min=1.0)
                        + mu[0] * ev.chunk_dsp / dsp_cap + mu[1] * ev.chunk_bram / bram_cap)
                if n > 1:  # a baseline needs two samples
                    adv = (cost - cost.mean(0)) / (cost.std(0) + 1e-9)
                    loss = (adv.detach() * logp).mean(0).sum()
                    grad, = torch.autograd.grad(loss, logits)
                    adam.step(grad)
                with torch.no_grad():
                    spend = torch.stack([ev.total_dsp.mean(), ev.total_bram.mean()]) / caps
                    mu = (mu * torch.exp(o.dual_lr * (spend - 1))).clamp(1e-3, 1e3)

                if pending and ((step + 1) % o.recombine_every == 0 or step == steps - 1):
                    archives = self._recombine(archives, pending, inc, evaluations)
                    pending = []
            for _ in range(o.polish_rounds if o.recombine else 0):
                before = inc.score
                if inc.best is None or evaluations + per_round > self.budget:
                    break
                pending = [self._neighbours(inc.best)]
                evaluations += len(pending[0][0])
                bar.update(len(pending[0][0]))
                archives = self._recombine(archives, pending, inc, evaluations)
                if inc.score >= before:
                    break
        return inc.outcome(evaluations, multipliers=mu.tolist())

    def _neighbours(self, design: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Every design one factor value away from ``design`` (C, F), per chunk (children repaired to
        fit their parents), evaluated chunk by chunk: (values, cycles, dsp, bram), each (n, C, ...)."""
        sp, t = self.space, self.template
        base = sp.encode(design)                                   # (C, F)
        C, F, V = sp.table.shape
        moves = base.expand(F * V, C, F).clone()
        for f in range(F):
            moves[f * V:(f + 1) * V, :, f] = torch.arange(V).unsqueeze(1)
        ok = sp.valid.permute(1, 2, 0).reshape(F * V, C)                    # move (f, v) allowed in chunk c
        moves = sp.repair(torch.where(ok.unsqueeze(-1), moves, base))
        vals = sp.values(moves)                                              # (n, C, F)
        per_chunk = [t.evaluate_chunk(c, vals[:, c]) for c in range(C)]
        return (vals,) + tuple(torch.stack([pc[i] for pc in per_chunk], 1) for i in range(3))

    def _recombine(self, archives, pending, inc: Incumbent, evaluations: int) -> list[Front]:
        t = self.template
        dsp_cap, bram_cap = t.budgets
        vals = torch.cat([p[0] for p in pending])
        cyc, dsp, bram = (torch.cat([p[i] for p in pending]) for i in (1, 2, 3))
        archives = [a.merge(cyc[:, c], dsp[:, c], bram[:, c], vals[:, c], dsp_cap, bram_cap)
                    for c, a in enumerate(archives)]
        picks = combine(archives, dsp_cap, bram_cap)
        if picks is not None:
            best = torch.stack([a.designs[p] for a, p in zip(archives, picks)]).unsqueeze(0)
            ev = t.evaluate(best)
            inc.offer(best, ev.bottleneck, ev.feasible, evaluations)
        return archives

