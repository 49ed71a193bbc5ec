import pytest
import torch

from autonba.errors import AutonbaError
from autonba.hw.engines import ENGINES
from autonba.hw.engines.evolution import survivors, tournament
from autonba.hw.platform import load_platform
from autonba.hw.templates import TEMPLATES
from autonba.hw.workload import Workload
from autonba.hw.zoo import WORKLOADS


@pytest.fixture(scope="module")
def legacy(golden):
    return TEMPLATES.get("fpga-legacy")(Workload.from_dict(golden), load_platform("zc706-legacy"))


@pytest.fixture(scope="module")
def small():
    return TEMPLATES.get("fpga-chunk")(WORKLOADS.get("resnet18-cifar")(8), load_platform("ultra96"),
                                       channel_tile_max=32)


@pytest.mark.parametrize("pins,key", [({"comp_mode": 1}, "comp_mode_fixed_1"), ({}, "comp_mode_free")])
def test_das_reaches_99_percent_of_the_golden_optimum(golden, legacy, pins, key):
    opt = golden["network"]["optimum"][key]["fps"]
    for seed in range(5):
        out = ENGINES.get("das")(legacy, legacy.space.fix(pins), seed=seed).run()
        fps = legacy.clock_hz / out.score
        assert fps >= 0.99 * opt, (seed, fps, opt)
        assert out.evaluations <= ENGINES.get("das").default_budget and out.seconds > 0


@pytest.mark.parametrize("name", ["das", "random", "evolution"])
def test_engines_respect_budget_and_return_feasible_designs(small, name):
    out = ENGINES.get(name)(small, seed=3, budget=3000).run()
    assert out.evaluations <= 3000
    assert out.best is not None
    ev = small.evaluate(out.best.unsqueeze(0))
    assert bool(ev.feasible[0]) and float(ev.bottleneck[0]) == pytest.approx(out.score)
    fps = [f for _, f in out.trace]
    assert fps == sorted(fps)  # the incumbent only improves


def test_engines_are_reproducible(small):
    a = ENGINES.get("das")(small, seed=5, budget=2000).run()
    b = ENGINES.get("das")(small, seed=5, budget=2000).run()
    assert torch.equal(a.best, b.best) and a.evaluations == b.evaluations


def test_das_beats_random_at_equal_budget(small):
    exact = ENGINES.get("exact")(small).run().score
    das = [ENGINES.get("das")(small, seed=s, budget=4000).run().score for s in range(3)]
    rnd = [ENGINES.get("random")(small, seed=s, budget=4000).run().score for s in range(3)]
    assert sorted(das)[1] < sorted(rnd)[1]
    assert exact / max(das) >= 0.98


def test_warm_start_is_used(small):
    best = ENGINES.get("exact")(small).run()
    out = ENGINES.get("evolution")(small, seed=0, budget=300, warm_start=best.best).run()
    assert out.score == pytest.approx(best.score)
    das = ENGINES.get("das")(small, seed=0, budget=600, warm_start=best.best, warm_strength=8.0).run()
    assert das.score <= 1.02 * best.score


def test_bad_engine_options_and_budget(small):
    with pytest.raises(AutonbaError, match="unknown field"):
        ENGINES.get("das")(small, batch_size=3)
    with pytest.raises(AutonbaError, match="budget must be a positive"):
        ENGINES.get("random")(small, budget=0)
    with pytest.raises(AutonbaError, match="unknown engine 'nope'; allowed: das, evolution, exact, random"):
        ENGINES.get("nope")


def test_exact_refuses_an_intractable_space(small):
    with pytest.raises(AutonbaError, match="max_designs"):
        ENGINES.get("exact")(small, max_designs=10).run()


def test_tournament_and_survivors():
    """The selection both evolution engines (FPGA and asic-array) use."""
    fit = torch.tensor([3.0, 1.0, 2.0, 0.5])
    win = tournament(fit, 5, 4, torch.Generator().manual_seed(0))
    assert win.shape == (2, 5) and bool(((win >= 0) & (win < 4)).all())
    # the elite parent (index 3) stays although four children beat it
    keep = survivors(fit, torch.cat([fit, torch.tensor([0.1, 0.2, 0.3, 0.4])]), elite=1)
    assert keep.tolist() == [3, 4, 5, 6]

