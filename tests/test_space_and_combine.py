import itertools

import pytest
import torch

from autonba.errors import AutonbaError
from autonba.hw.engines import ENGINES
from autonba.hw.engines.combine import Front, combine, pareto_3d
from autonba.hw.platform import Platform, load_platform
from autonba.hw.templates import TEMPLATES
from autonba.hw.workload import Layer, Workload
from autonba.hw.zoo import WORKLOADS


@pytest.fixture(scope="module")
def tpl():
    return TEMPLATES.get("fpga-chunk")(WORKLOADS.get("mobilenetv2-cifar")(8), load_platform("ultra96"))


def test_samples_honour_constraints_and_choices(tpl):
    sp = tpl.space
    logits = torch.randn(sp.table.shape, dtype=torch.float64)
    idx, logp = sp.sample(512, logits, torch.Generator().manual_seed(0))
    vals = sp.values(idx)
    assert torch.isfinite(vals).all() and torch.isfinite(logp).all() and (logp <= 0).all()
    for child, par in sp.constraints:
        ci, pi = sp.factors.index(child), sp.factors.index(par)
        assert (vals[..., ci] <= vals[..., pi]).all()
    assert sp.valid.expand(512, -1, -1, -1).gather(-1, idx.unsqueeze(-1)).all()


def test_enumeration_covers_exactly_the_valid_space():
    t = TEMPLATES.get("fpga-legacy")(Workload("w", [Layer("a", 8, 8, 4, 4, 4, 4, 3, bits=8)]),
                                     load_platform("zc706-legacy"))
    sp = t.space
    rows = torch.cat(list(sp.enumerate(0, block=1000)))
    assert len(rows) == sp.size(0) == len(torch.unique(rows, dim=0))
    # brute force over the full product
    count = 0
    ch = sp.choices[sp.chunk_names[0]]
    for combo in itertools.product(*(ch[f] for f in sp.factors)):
        d = dict(zip(sp.factors, combo))
        count += all(d[c] <= d[p] for c, p in sp.constraints)
    assert count == len(rows)


def test_parse_rejects_bad_designs(tpl):
    good = {c: dict(comp_mode=1, Trb=1, Tcb=1, Tmb=1, Tnb=1, Tr=1, Tc=1, Tm=1, Tn=1) for c in tpl.chunk_names}
    tpl.space.parse([{"chunks": good}])
    bad = {**good, "a0q8": {**good["a0q8"], "Tr": 4}}
    with pytest.raises(AutonbaError, match="Tr=4 exceeds Trb=1"):
        tpl.space.parse([{"chunks": bad}])
    with pytest.raises(AutonbaError, match="comp_mode=2 is not allowed; allowed: 0, 1"):
        tpl.space.parse([{"chunks": {**good, "dwa0q8": {**good["dwa0q8"], "comp_mode": 2}}}])
    with pytest.raises(AutonbaError, match="chunk 'a1q8' is missing"):
        tpl.space.parse([{"chunks": {"a0q8": good["a0q8"]}}])
    with pytest.raises(AutonbaError, match="unknown factors"):
        tpl.space.parse([{"chunks": {**good, "a0q8": {**good["a0q8"], "Tx": 1}}}])


def test_repair_lowers_children_to_their_parents(tpl):
    sp = tpl.space
    idx = torch.zeros((1, sp.num_chunks, len(sp.factors)), dtype=torch.long)
    trb = sp.factors.index("Trb")
    idx[..., trb] = sp.num_values[:, trb] - 1          # smallest buffer tile (values are descending)
    vals = sp.values(sp.repair(idx))
    assert (vals[..., sp.factors.index("Tr")] <= vals[..., trb]).all()


def test_pareto_3d_matches_brute_force():
    g = torch.Generator().manual_seed(1)
    c = torch.randint(1, 30, (400,), generator=g).double()
    d = torch.randint(1, 12, (400,), generator=g).double()
    b = torch.randint(1, 12, (400,), generator=g).double()
    got = {(float(c[i]), float(d[i]), float(b[i])) for i in pareto_3d(c, d, b).tolist()}
    pts = set(zip(c.tolist(), d.tolist(), b.tolist()))
    want = {p for p in pts if not any(q != p and all(x <= y for x, y in zip(q, p)) for q in pts)}
    assert got == want


def test_combine_is_optimal_against_brute_force():
    g = torch.Generator().manual_seed(2)
    for _ in range(20):
        fronts = []
        for _ in range(3):
            n = 6
            c = torch.randint(10, 100, (n,), generator=g).double()
            d = torch.randint(0, 10, (n,), generator=g).double()
            b = torch.randint(0, 10, (n,), generator=g).double()
            fronts.append(Front(c, d, b, torch.zeros((n, 1))))
        caps = (12.0, 14.0)
        best = min((max(f.cycles[i] for f, i in zip(fronts, pick)).item()
                    for pick in itertools.product(range(6), repeat=3)
                    if sum(f.dsp[i] for f, i in zip(fronts, pick)) <= caps[0]
                    and sum(f.bram[i] for f, i in zip(fronts, pick)) <= caps[1]), default=None)
        pruned = [Front.empty(1).merge(f.cycles, f.dsp, f.bram, f.designs, *caps) for f in fronts]
        picks = combine(pruned, *caps)
        if best is None:
            assert picks is None
        else:
            assert max(float(f.cycles[i]) for f, i in zip(pruned, picks)) == best
            assert sum(float(f.dsp[i]) for f, i in zip(pruned, picks)) <= caps[0]
            assert sum(float(f.bram[i]) for f, i in zip(pruned, picks)) <= caps[1]


def test_exact_equals_brute_force_on_a_tiny_network():
    layers = [Layer("a", 4, 8, 4, 4, 4, 4, 3, bits=8), Layer("b", 8, 8, 2, 2, 2, 2, 1, bits=8),
              Layer("c", 8, 8, 4, 4, 4, 4, 3, groups=8, bits=8)]
    plat = Platform(name="p", dsp=3, bram18k=30, clock_mhz=100)
    t = TEMPLATES.get("fpga-chunk")(Workload("w", layers), plat, channel_tile_max=2, row_split=4)
    assert len(t.chunk_names) == 3
    out = ENGINES.get("exact")(t).run()
    per_chunk = [torch.cat([t.space.chunk_values(c, i) for i in t.space.enumerate(c)])
                 for c in range(t.space.num_chunks)]
    assert sum(len(v) for v in per_chunk) < 5000
    (c0, d0, b0), (c1, d1, b1), (c2, d2, b2) = (t.evaluate_chunk(c, v) for c, v in enumerate(per_chunk))
    # brute force over every combination: (n0, n1, n2) tensors
    cyc = torch.maximum(torch.maximum(c0[:, None, None], c1[None, :, None]), c2[None, None, :])
    dsp = d0[:, None, None] + d1[None, :, None] + d2[None, None, :]
    bram = b0[:, None, None] + b1[None, :, None] + b2[None, None, :]
    ok = (dsp <= plat.dsp) & (bram <= plat.bram18k)
    assert ok.any() and not ok.all()
    assert out.score == float(cyc[ok].min())
