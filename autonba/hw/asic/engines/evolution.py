"""``evolution``: a genetic algorithm over array factors and whole layer mappings."""
from __future__ import annotations

import torch

from autonba.hw.asic.engines.base import AsicEngine, AsicIncumbent
from autonba.hw.engines.base import Outcome
from autonba.hw.engines.evolution import EvolutionOptions, survivors, tournament  # penalty: area overflow here


class AsicEvolution(AsicEngine):
    """A genetic algorithm: tournament selection, uniform crossover of array factors and of whole
    layer mappings, per-factor mutation, elitism."""

    name = "evolution"
    Options = EvolutionOptions

    def _run(self) -> Outcome:
        o, sp, g = self.options, self.space, self.generator
        P = min(o.population, self.budget)
        hw, maps, _, _ = sp.sample(P, generator=g)
        warm = self.warm_indices()
        if warm is not None:
            hw[0], maps[0] = warm
        inc = AsicIncumbent()
        hv, mv, ev = self.evaluate(hw, maps)
        inc.offer(hv, mv, ev, P)
        fit = self.penalised(ev, o.penalty)
        L = sp.num_layers
        for n, done in self.batches(P, "evolution", start=P):
            win = tournament(fit, n, o.tournament, g)
            take_h = torch.rand(hw[win[0]].shape, generator=g) < 0.5
            take_m = torch.rand((n, L, 1), generator=g) < 0.5
            c_hw = torch.where(take_h, hw[win[0]], hw[win[1]])
            c_maps = torch.where(take_m, maps[win[0]], maps[win[1]])
            f_hw, f_maps, _, _ = sp.sample(n, generator=g)
            c_hw = torch.where(torch.rand(c_hw.shape, generator=g) < o.mutation, f_hw, c_hw)
            c_maps = torch.where(torch.rand(c_maps.shape, generator=g) < o.mutation, f_maps, c_maps)
            chv, cmv, cev = self.evaluate(c_hw, c_maps)
            inc.offer(chv, cmv, cev, done)
            all_fit = torch.cat([fit, self.penalised(cev, o.penalty)])
            keep = survivors(fit, all_fit, o.elite)
            hw, maps, fit = torch.cat([hw, c_hw])[keep], torch.cat([maps, c_maps])[keep], all_fit[keep]
        return inc.outcome(self.budget)
