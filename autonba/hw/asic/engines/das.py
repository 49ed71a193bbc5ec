"""``das``: differentiable search with per-layer credit assignment, then the buffer stage and a
local polish (see :class:`AsicDas`)."""
from __future__ import annotations

import math

import torch
from pydantic import Field

from autonba.hw.asic.engines.base import (
    AsicEngine,
    Incumbent,
    array_factors,
    buffer_configs,
    buffer_designs,
    offer_buffer,
)
from autonba.hw.asic.fronts import MappingTable
from autonba.hw.asic.space import AsicSpace
from autonba.hw.engines.base import Adam, EngineOptions, Outcome


class DasOptions(EngineOptions):
    batch: int = Field(64, gt=0, description="designs sampled per step")
    lr: float = Field(0.1, gt=0, description="Adam learning rate of the design logits")
    temperature: float = Field(1.0, gt=0)
    final_temperature: float = Field(0.3, gt=0)
    dual_lr: float = Field(0.5, gt=0, description="step of the multiplicative area-multiplier update")
    warm_strength: float = Field(3.0, ge=0)
    polish_rounds: int = Field(8, ge=0, description="most rounds of local moves per polish start")
    polish_share: float = Field(0.5, ge=0, le=1, description="largest share of the budget kept for the buffer "
                                                             "stage and the polish")
    polish_starts: int = Field(3, ge=1, description="starts of the polish: the best designs of distinct array "
                                                            "shapes, polished a round each in turn")
    buffer_stage: bool = Field(True, description="after sampling, cost the buffer configurations the sampling "
                               "ranks best exactly (every array design, best mappings per layer) while the "
                               "budget lasts; the local polish gets what is left")
    screen_arrays: int = Field(8, ge=1, description="best sampled arrays that screen every buffer configuration "
                                                    "to order the buffer stage")
    polish_candidates: int = Field(2, ge=1, description="array designs per round whose mappings are re-optimised "
                                                                  "(the best moves of distinct array shapes)")


class AsicDas(AsicEngine):
    """Differentiable search with per-layer credit assignment.

    Array factors and every layer's mapping factors have logits; each step samples a batch by
    hard Gumbel-max and descends a score-function estimate. The array factors' cost is
    log(objective) + mu x area / budget (mu a Lagrange multiplier raised while the batch
    overspends the area). A layer's mapping only changes that layer's DRAM traffic, so it is
    credited with log(traffic / compulsory traffic) of its own layer, not with the whole
    objective: a per-layer signal with no noise from the other layers.

    Then, where the budget allows, the buffer stage: every layer mapping is costed once (in
    full-design equivalents), every buffer configuration is screened with the best arrays the
    sampling saw, and configurations are solved exactly in the screen's order (every array
    design within the area budget, each with its best mapping per layer) until the budget ends.
    What is left goes to a local polish: single array-factor and array-shape moves, then
    single mapping-factor moves in every layer at once (layers are independent given the array),
    each layer keeping its best move. With a budget too small for the buffer stage, the polish
    starts from the best designs of distinct array shapes the sampling saw."""
    options: DasOptions


    name = "das"
    Options = DasOptions
    default_budget = 16384

    def _run(self) -> Outcome:
        o = self.options
        per_round = self._round_cost()
        polish_cost = o.polish_rounds * per_round
        sample_budget = max(1, self.budget - min(polish_cost, int(self.budget * o.polish_share)))
        inc = Incumbent()
        self._buffer_maps: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = {}
        with self.progress_bar(self.budget, "das") as bar:
            done, mu, starts, ranks = self._sample(inc, sample_budget, bar)
            solved = 0                                          # buffer configurations solved exactly
            if o.buffer_stage:
                used, solved = self._buffer_stage(inc, ranks, done, bar)
                done += used
                if used and inc.best is not None:                               # polish what the stage found
                    starts = _Starts.single(inc.score, *self.space.encode(inc.best))
            done = self._polish_starts(inc, starts, done, per_round, bar)
        return inc.outcome(done, area_multiplier=mu, buffers_solved=solved)

    def _sample(self, inc: Incumbent, sample_budget: int, bar) -> tuple[int, float, _Starts, _Ranks]:
        """The sampling phase, from the warm start if any: ``sample_budget`` evaluations in batches drawn
        from the logits, each followed by a score-function step. Returns the evaluations used, the final
        area multiplier, the best designs per array shape (polish starts) and the ranks of buffers and arrays."""
        o, sp, t = self.options, self.space, self.template
        H, Vh = sp.hw_table.shape
        L, M, Vm = sp.map_table.shape
        hl = torch.zeros((H, Vh), dtype=torch.float64)
        ml = torch.zeros((L, M, Vm), dtype=torch.float64)
        warm = self.warm_indices()
        if warm is not None:
            hl += o.warm_strength * torch.nn.functional.one_hot(warm[0], Vh)
            ml += o.warm_strength * torch.nn.functional.one_hot(warm[1], Vm)
        hl.requires_grad_(True)
        ml.requires_grad_(True)
        adam_h, adam_m = Adam(hl, o.lr), Adam(ml, o.lr)
        mu = 1.0
        cap = t.options.area_mm2
        compulsory = t.compulsory_bits()
        steps = max(1, math.ceil(sample_budget / o.batch))
        done = 0
        starts = _Starts(o.polish_starts, self._joint_factors())
        ranks = _Ranks(sp)
        if warm is not None:
            hv, mv, ev = self.evaluate(warm[0].unsqueeze(0), warm[1].unsqueeze(0))
            done += 1
            inc.offer((hv, mv), ev.objective, ev.feasible, done)
        for step in range(steps):
            n = min(o.batch, sample_budget - done)
            if n < 2:
                break
            temp = o.temperature + (o.final_temperature - o.temperature) * step / max(1, steps - 1)
            hw, maps, lp_h, lp_m = sp.sample(n, hl, ml, self.generator, temp)
            assert lp_h is not None and lp_m is not None  # given logits, sample returns log-probabilities
            hv, mv, ev = self.evaluate(hw, maps)
            done += n
            bar.update(n)
            inc.offer((hv, mv), ev.objective, ev.feasible, done)
            starts.add(hw, maps, ev)
            ranks.add(hw, ev)
            self._remember_maps(hw, maps, ev)
            finite = torch.isfinite(ev.objective)
            worst = ev.objective[finite].max() * 10 if bool(finite.any()) else torch.tensor(1.0)
            cost_h = torch.log(torch.where(finite, ev.objective, worst))
            if cap is not None:
                cost_h = cost_h + mu * (ev.area / cap - 1).clamp(min=0)
            cost_m = torch.log(ev.layer_dram_bits / compulsory)                       # (n, L)
            cost_m = torch.where(ev.layer_fits, cost_m, cost_m.max() + 1)
            adv_h = (cost_h - cost_h.mean()) / (cost_h.std() + 1e-9)
            adv_m = (cost_m - cost_m.mean(0)) / (cost_m.std(0) + 1e-9)
            loss = (adv_h.detach() * lp_h).mean() + (adv_m.detach() * lp_m).mean(0).sum()
            gh, gm = torch.autograd.grad(loss, (hl, ml))
            adam_h.step(gh)
            adam_m.step(gm)
            if cap is not None:  # raise mu while more than a tenth of the batch overspends, else lower it
                over = float((ev.area > cap).double().mean())
                mu = min(1e3, max(1e-2, mu * math.exp(o.dual_lr * (over - 0.1))))
        return done, mu, starts, ranks

    def _polish_starts(self, inc: Incumbent, starts: _Starts, done: int, per_round: int, bar) -> int:
        """Multi-start local search from ``starts``: one round per start in turn (so no start takes the
        whole budget); a start retires when a round does not improve it or after ``polish_rounds``
        rounds. Offers ``inc`` the best result; returns the evaluations used so far."""
        runs = []
        for h, m, value in starts.best():
            hv, mv = self.space.values(h[None], m[None])
            runs.append(Incumbent.at(value, (hv[0], mv[0])))
        rounds = [0] * len(runs)                                                          # rounds done per start
        active = list(range(len(runs)))
        while active and done + per_round <= self.budget:
            for i in list(active):
                if done + per_round > self.budget:
                    break
                improved, used = self._polish(runs[i], done)
                done += used
                bar.update(used)
                rounds[i] += 1
                if not improved or rounds[i] >= self.options.polish_rounds:
                    active.remove(i)
        for local in runs:
            inc.propose(local.score, local.best, done)
        return done

    def _buffer_stage(self, inc: Incumbent, ranks: _Ranks, done: int, bar) -> tuple[int, int]:
        """Cost every mapping of every layer once; screen every buffer configuration with the best
        arrays the sampling saw (each with its best mappings); then cost the configurations in the
        order of the screen exactly (every array design within the area budget, best mappings per
        layer) while the budget lasts. Returns the evaluations used (0: the stage does not fit) and
        the configurations solved."""
        sp, t = self.space, self.template
        table_cost = MappingTable.design_equivalents(sp)
        screen = ranks.top_arrays(self.options.screen_arrays)
        if done + table_cost + len(buffer_configs(sp)) * len(screen) > self.budget:
            return 0, 0
        table, used, solved = MappingTable(t, sp), table_cost, 0
        bar.update(table_cost)
        order = []
        for key in buffer_configs(sp):
            fronts = table.fronts(key)
            if fronts is None:
                continue
            hv = buffer_designs(t, sp, key, screen)
            screened = float("inf")
            if len(hv):
                value, pick = table.best(hv, fronts)
                screened = float(value.min())
                table.offer(hv, fronts, value, pick, inc, done + used + len(hv))
                used += len(hv)
                bar.update(len(hv))
            order.append((screened, ranks.buffers.get(key, float("inf")), key))
        for *_, key in sorted(order):
            hv = buffer_designs(t, sp, key)
            if done + used + len(hv) <= self.budget:
                offer_buffer(table, key, hv, inc, done + used, self.options.batch * 64)
                solved += 1
                used += len(hv)
                bar.update(len(hv))
        return used, solved

    def _buffer_key(self, hw: torch.Tensor) -> torch.Tensor:
        """The buffer configuration (size, split) of array designs (indices): (n, 2)."""
        return hw[:, [self.space.hw_index("gb_kib"), self.space.hw_index("gb_split")]]

    def _remember_maps(self, hw: torch.Tensor, maps: torch.Tensor, ev) -> None:
        """Per buffer configuration, every layer's mapping with the least DRAM traffic seen so far (a
        layer's traffic depends on its mapping and the buffer only), to cost array moves that change
        the buffer with mappings made for it rather than for the incumbent's buffer."""
        bits = torch.where(ev.layer_fits, ev.layer_dram_bits, torch.full_like(ev.layer_dram_bits, float("inf")))
        keys = self._buffer_key(hw)
        for key in torch.unique(keys, dim=0):
            sel = (keys == key).all(-1)
            b, i = bits[sel].min(0)                                                        # (L,)
            m = maps[sel][i, torch.arange(len(i))]                                         # (L, M)
            k = tuple(key.tolist())
            if k in self._buffer_maps:
                old_m, old_b = self._buffer_maps[k]
                keep = old_b <= b
                m, b = torch.where(keep.unsqueeze(-1), old_m, m), torch.where(keep, old_b, b)
            self._buffer_maps[k] = (m, b)

    def _maps_for(self, moves_h: torch.Tensor, hw_i: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """Mappings to cost array moves with: the incumbent's on its own buffer, on another buffer the
        best mapping seen per layer for that buffer (the incumbent's where none fitted)."""
        maps = base.expand(len(moves_h), -1, -1).clone()
        own = tuple(self._buffer_key(hw_i[None])[0].tolist())
        for j, key in enumerate(self._buffer_key(moves_h).tolist()):
            key = tuple(key)
            if key != own and key in self._buffer_maps:
                m, b = self._buffer_maps[key]
                maps[j] = torch.where(torch.isfinite(b).unsqueeze(-1), m, base)
        return maps

    def _fit_area(self, hw: torch.Tensor) -> torch.Tensor:
        """Array designs (indices) over the area budget with their buffer, then their register files,
        shrunk to the largest sizes that fit (a bigger array pays with a smaller buffer)."""
        sp, t = self.space, self.template
        cap = t.options.area_mm2
        if cap is None:
            return hw[:0]
        out = hw.clone()
        for f in ("gb_kib", "rf_bytes"):
            fi = sp.hw_index(f)
            vals = torch.nonzero(sp.hw_valid[fi]).flatten()                              # allowed indices
            cand = out.unsqueeze(1).repeat(1, len(vals), 1)
            cand[:, :, fi] = vals
            area = t.area(sp.hw_table.gather(1, cand.reshape(-1, cand.shape[-1]).T).T).view(len(out), -1)
            size = sp.hw_table[fi, vals].expand_as(area)
            best = torch.where(area <= cap, size, torch.full_like(size, -1.0)).argmax(-1)
            fits = (area <= cap).any(-1)
            over = t.area(sp.hw_table.gather(1, out.T).T) > cap
            out[:, fi] = torch.where(over & fits, vals[best], out[:, fi])
        return out

    def _joint_factors(self) -> list[int]:
        sp = self.space
        return [sp.hw_index(f) for f in ("rows", "cols", "dataflow") if f in sp.hw_factors]

    def _hw_moves(self) -> int:
        sp = self.space
        return 2 * (int(sp.hw_valid.sum()) + math.prod(int(sp.hw_valid[f].sum()) for f in self._joint_factors()))

    def _round_cost(self) -> int:
        sp = self.space
        n = len(self._map_moves(torch.zeros(sp.map_table.shape[:2], dtype=torch.long))[0])
        return self._hw_moves() + self.options.polish_candidates * (n + 1)

    def _polish(self, inc: Incumbent, done: int) -> tuple[bool, int]:
        """One round of moves around the incumbent: every single array-factor change and every array
        shape (rows x cols), costed with the incumbent's mappings; then, for the best few of them, a
        re-optimisation of every layer's mapping by single-factor moves."""
        sp = self.space
        H, Vh = sp.hw_table.shape
        hw_i, base = self.space.encode(inc.best)
        moves_h = hw_i.expand(H * Vh, H).clone()
        for f in range(H):
            moves_h[f * Vh:(f + 1) * Vh, f] = torch.arange(Vh)
        moves_h = moves_h[sp.hw_valid.reshape(-1)]
        # the array's shape and dataflow move together (rows and cols trade against each other under an
        # area budget, and which shape suits a layer depends on the dataflow)
        joint = self._joint_factors()
        combos = torch.cartesian_prod(*[torch.nonzero(sp.hw_valid[f]).flatten() for f in joint])
        shape = hw_i.expand(len(combos), H).clone()
        shape[:, joint] = combos
        moves_h = torch.cat([moves_h, shape])
        moves_h = torch.unique(torch.cat([moves_h, self._fit_area(moves_h)]), dim=0)
        maps = self._maps_for(moves_h, hw_i, base)
        hv, mv, ev = self.evaluate(moves_h, maps)
        used = len(moves_h)
        improved = inc.offer((hv, mv), ev.objective, ev.feasible, done + used)
        score = torch.where(ev.feasible, ev.objective, torch.full_like(ev.objective, float("inf")))
        for i in self._distinct_shapes(moves_h, score):
            ok, n = self._polish_maps(inc, moves_h[i], maps[i], done + used)
            improved |= ok
            used += n
        return improved, used

    def _distinct_shapes(self, moves_h: torch.Tensor, score: torch.Tensor) -> list[int]:
        """The best-scoring moves (indices), at most one per array shape (rows, cols, dataflow): re-optimising
        the mappings pays most where the shape changes, and the best few moves often share one."""
        out: list[int] = []
        seen: set[tuple[int, ...]] = set()
        joint = self._joint_factors()
        for i in torch.argsort(score).tolist():
            if len(out) == self.options.polish_candidates or not math.isfinite(float(score[i])):
                break
            key = tuple(moves_h[i, joint].tolist())
            if key not in seen:
                seen.add(key)
                out.append(i)
        return out

    def _polish_maps(self, inc: Incumbent, hw_i: torch.Tensor, base: torch.Tensor, done: int) -> tuple[bool, int]:
        """Single-factor mapping moves in every layer at once on one array design; each layer keeps
        its best move (a layer's mapping changes only that layer), and the result is offered."""
        sp, t = self.space, self.template
        L, M, Vm = sp.map_table.shape
        moves, allowed = self._map_moves(base)
        hv, mv, ev = self.evaluate(hw_i.expand(len(moves), -1), moves)
        # the linearised objective: d log(E L) = dE / E + dL / L
        obj = t.options.objective
        w_e = 1.0 / float(ev.energy.median()) if obj in ("energy", "edp") else 0.0
        w_l = 1.0 / float(ev.latency.median()) if obj in ("latency", "edp") else 0.0
        score = ev.layer_energy * w_e + ev.layer_latency * w_l
        score = torch.where(ev.layer_fits & allowed, score, torch.full_like(score, float("inf")))
        pick = score.argmin(0)                                                           # (L,)
        best_maps = moves[pick, torch.arange(L)].unsqueeze(0)
        hv1, mv1, ev1 = self.evaluate(hw_i.unsqueeze(0), best_maps)
        return inc.offer((hv1, mv1), ev1.objective, ev1.feasible, done + len(moves) + 1), len(moves) + 1

    def _map_moves(self, base: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mapping moves applied to every layer at once (L, M) -> (n, L, M), and where each is allowed
        (n, L): tk, tc and the loop order jointly (a buffer holds k x c weight tiles, so they trade
        against each other, and which tile shape is best depends on the order), the others one at a time."""
        sp = self.space
        L, M, Vm = sp.map_table.shape
        joint = [sp.map_index(f) for f in ("tk", "tc", "order")]
        V = [int(sp.map_valid[:, f].sum(-1).max()) for f in joint]
        combos = torch.cartesian_prod(*[torch.arange(v) for v in V])
        parts = [base.expand(len(combos), L, M).clone()]
        parts[0][:, :, joint] = combos.unsqueeze(1)
        for m in range(M):
            if m not in joint:
                mm = base.expand(Vm, L, M).clone()
                mm[:, :, m] = torch.arange(Vm).unsqueeze(1)
                parts.append(mm)
        moves = torch.cat(parts)
        ok = sp.map_valid.unsqueeze(0).expand(len(moves), -1, -1, -1).gather(-1, moves.unsqueeze(-1)).squeeze(-1)
        allowed = ok.all(-1)                                                               # (n, L)
        moves = torch.where(allowed.unsqueeze(-1), moves, base)
        keep = allowed.any(-1)
        return moves[keep], allowed[keep]


class _Ranks:
    """The best feasible objective sampled per buffer configuration (size, split) and per array (the
    other array factors), as index tuples."""

    def __init__(self, space: AsicSpace):
        self.buffer_cols = [space.hw_index("gb_kib"), space.hw_index("gb_split")]
        self.array_cols = array_factors(space)
        self.buffers: dict[tuple[int, ...], float] = {}
        self.arrays: dict[tuple[int, ...], float] = {}

    def add(self, hw: torch.Tensor, ev) -> None:
        score = torch.where(ev.feasible, ev.objective, torch.full_like(ev.objective, float("inf")))
        for best, cols in ((self.buffers, self.buffer_cols), (self.arrays, self.array_cols)):
            keys = hw[:, cols]
            for key in torch.unique(keys, dim=0):
                v = float(score[(keys == key).all(-1)].min())
                k = tuple(key.tolist())
                if math.isfinite(v) and v < best.get(k, float("inf")):
                    best[k] = v

    def top_arrays(self, k: int) -> torch.Tensor:
        """The ``k`` best arrays seen (indices of the non-buffer factors), (<= k, H - 2)."""
        keys = sorted(self.arrays, key=lambda a: self.arrays[a])[:k]
        return torch.tensor(keys, dtype=torch.long).reshape(len(keys), len(self.array_cols))


class _Starts:
    """The best feasible design seen for each of the ``n`` best distinct array shapes (the ``key``
    factors: rows, cols and dataflow), so that the polish starts from different shapes; a start
    whose buffer and mappings suit a smaller array rarely finds the way to a bigger one alone."""

    def __init__(self, n: int, key: list[int]):
        self.n, self.key = n, key
        self.items: dict[tuple, tuple[float, torch.Tensor, torch.Tensor]] = {}

    def add(self, hw: torch.Tensor, maps: torch.Tensor, ev) -> None:
        score = torch.where(ev.feasible, ev.objective, torch.full_like(ev.objective, float("inf")))
        for i in torch.argsort(score)[:4 * self.n].tolist():
            v = float(score[i])
            if v == float("inf"):
                break
            key = tuple(hw[i, self.key].tolist())
            if key not in self.items or v < self.items[key][0]:
                self.items[key] = (v, hw[i].clone(), maps[i].clone())
        if len(self.items) > 2 * self.n:
            self.items = dict(sorted(self.items.items(), key=lambda kv: kv[1][0])[:self.n])

    @classmethod
    def single(cls, value: float, hw: torch.Tensor, maps: torch.Tensor) -> _Starts:
        """One start: a design given as indices, with its objective."""
        starts = cls(1, [])
        starts.items[()] = (value, hw, maps)
        return starts

    def best(self) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
        return [(h, m, v) for v, h, m in sorted(self.items.values(), key=lambda x: x[0])[:self.n]]
