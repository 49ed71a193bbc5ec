"""``evolution``: a vectorised genetic algorithm over whole designs, shared by every template family.

Tournament selection on a penalised fitness (objective x (1 + penalty x budget overflow), so
infeasible designs still rank), the space's uniform crossover (at the granularity its costs
separate: whole chunk designs, whole layer mappings), per-factor mutation that resamples a value
and repairs the space's constraints, and elitism."""
from __future__ import annotations

import torch
from pydantic import Field

from autonba.hw.engines.base import Engine, EngineOptions, Incumbent, Outcome, batch_map, join, penalised, take


class EvolutionOptions(EngineOptions):
    population: int = Field(256, ge=4)
    tournament: int = Field(3, ge=2)
    elite: int = Field(8, ge=0)
    mutation: float = Field(0.05, gt=0, le=1, description="probability that a factor of a child is resampled")
    penalty: float = Field(10.0, ge=0, description="fitness multiplier per unit of relative budget overflow")


class Evolution(Engine):
    options: EvolutionOptions
    name = "evolution"
    Options = EvolutionOptions

    def _run(self) -> Outcome:
        o, sp, t, g = self.options, self.space, self.template, self.generator
        P = min(o.population, self.budget)
        pop = sp.draw(P, g)
        if self.warm_start is not None:  # the warm start takes the place of the first design drawn
            first = batch_map(lambda w: w.unsqueeze(0), sp.encode(self.warm_start))
            pop = join(first, take(pop, slice(1, None)))
        inc = Incumbent(t.trace_figure)
        vals = sp.decode(pop)
        c = t.cost(vals)
        inc.offer(vals, c.objective, c.feasible, P)
        fit = penalised(c.objective, c.overflow, o.penalty)
        for n, done in self.batches(P, "evolution", start=P):
            parents = tournament(fit, n, o.tournament, g)
            child = sp.mutate(sp.cross(take(pop, parents[0]), take(pop, parents[1]), g), o.mutation, g)
            cvals = sp.decode(child)
            cc = t.cost(cvals)
            inc.offer(cvals, cc.objective, cc.feasible, done)
            # survivors: elites of the parents, then the best of parents and children
            all_fit = torch.cat([fit, penalised(cc.objective, cc.overflow, o.penalty)])
            keep = survivors(fit, all_fit, o.elite)
            pop, fit = take(join(pop, child), keep), all_fit[keep]
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
