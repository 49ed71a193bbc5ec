"""``evolution``: a vectorised genetic algorithm over whole designs.

Tournament selection on a penalised fitness (bottleneck x (1 + penalty x budget overflow), so
infeasible designs still rank), uniform crossover at chunk granularity (chunk costs are
separable, so whole chunk designs are the natural building blocks), per-factor mutation that
resamples a value and repairs tile <= buffer, and elitism."""
from __future__ import annotations

import torch
from pydantic import Field

from autonba.hw.engines.base import Engine, EngineOptions, Incumbent, Outcome
from autonba.hw.engines.das import nearest_indices


class EvolutionOptions(EngineOptions):
    population: int = Field(256, ge=4)
    tournament: int = Field(3, ge=2)
    elite: int = Field(8, ge=0)
    mutation: float = Field(0.05, gt=0, le=1, description="probability that a factor of a child is resampled")
    penalty: float = Field(10.0, ge=0, description="fitness multiplier per unit of relative budget overflow")


class Evolution(Engine):
    name = "evolution"
    Options = EvolutionOptions

    def _fitness(self, ev) -> torch.Tensor:
        dsp_cap, bram_cap = self.template.budgets
        over = (ev.total_dsp / dsp_cap - 1).clamp(min=0) + (ev.total_bram / bram_cap - 1).clamp(min=0)
        return ev.bottleneck * (1 + self.options.penalty * over)

    def _run(self) -> Outcome:
        o, sp, t, g = self.options, self.space, self.template, self.generator
        P = min(o.population, self.budget)
        pop, _ = sp.sample(P, generator=g)
        if self.warm_start is not None:
            pop[0] = nearest_indices(sp, self.warm_start)
        inc = Incumbent(t.clock_hz)
        vals = sp.values(pop)
        ev = t.evaluate(vals)
        inc.offer(vals, ev.bottleneck, ev.feasible, P)
        fit = self._fitness(ev)
        C, F, V = sp.table.shape
        for n, done in self.batches(P, "evolution", start=P):
            # tournament selection of two parents per child
            winners = tournament(fit, n, o.tournament, g)
            take_a = torch.rand((n, C, 1), generator=g) < 0.5
            child = torch.where(take_a, pop[winners[0]], pop[winners[1]])
            # mutation: resample some factors uniformly among allowed values
            fresh, _ = sp.sample(n, generator=g)
            mutate = torch.rand((n, C, F), generator=g) < o.mutation
            child = sp.repair(torch.where(mutate, fresh, child))
            cvals = sp.values(child)
            cev = t.evaluate(cvals)
            inc.offer(cvals, cev.bottleneck, cev.feasible, done)
            # survivors: elites of the parents, then the best of parents and children
            allpop = torch.cat([pop, child])
            allfit = torch.cat([fit, self._fitness(cev)])
            keep = survivors(fit, allfit, o.elite)
            pop, fit = allpop[keep], allfit[keep]
        return inc.outcome(self.budget)


def tournament(fit: torch.Tensor, n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Two parents (indices (2, n)) per child, each the fittest (least ``fit``) of ``size`` drawn at random."""
    cand = torch.randint(0, len(fit), (2, n, size), generator=generator)
    return torch.gather(cand, 2, fit[cand].argmin(-1, keepdim=True)).squeeze(-1)


def survivors(fit: torch.Tensor, all_fit: torch.Tensor, elite: int) -> torch.Tensor:
    """Indices into parents + children (``all_fit``, parents first) of the next population (as many as
    the parents ``fit``): the ``elite`` fittest parents, then the fittest of the rest."""
    keep = torch.argsort(fit)[:elite]
    rest = torch.argsort(all_fit)
    return torch.cat([keep, rest[~torch.isin(rest, keep)][:len(fit) - len(keep)]])
