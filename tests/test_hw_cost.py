import pytest
import torch

from autonba.hw.platform import load_platform
from autonba.nas.space import load_space
from autonba.search.hw_cost import HardwareCost, sum_per_block


@pytest.fixture(scope="module")
def hw():
    return HardwareCost(load_space("small").layout, "fpga-chunk", load_platform("zc706"))


def test_block_cycles_sum_the_layers_of_each_block(hw):
    path = (("k3_e3", 8), ("skip", 8), ("k5_e6", 4), ("k3_e1_g2", 4), ("skip", 8), ("k5_e1", 8))
    found = hw.search(path, budget=2000)
    assert found is not None
    design, fig = found
    again = hw.figures(path, design)
    per_block = sum_per_block(hw.template(path).workload, again.layer_cycles, len(path))
    assert again.feasible and again.fps == pytest.approx(fig.fps)
    assert per_block[1] == 0          # identity skip
    assert (per_block[[0, 2, 3, 5]] > 0).all()
    t = hw.template(path)
    ev = t.evaluate(t.adapt(design).unsqueeze(0), layers=True)
    fixed = sum(float(ev.layer_cycles[0, i]) for i, l in enumerate(t.workload.layers) if not l.name.startswith("block"))
    assert float(per_block.sum()) + fixed == pytest.approx(float(ev.layer_cycles.sum()))


def test_a_new_bitwidth_borrows_the_nearest_chunk_design(hw):
    path8 = tuple(("k3_e3", 8) for _ in range(6))
    design, _ = hw.search(path8, budget=1500)
    path4 = (("k3_e3", 4),) + path8[1:]
    t4 = hw.template(path4)
    assert set(t4.chunk_names) - set(design["chunks"])          # the 4-bit chunks are new
    vals = t4.adapt(design)
    a0q4 = t4.chunk_names.index("a0q4")
    assert vals[a0q4].tolist() == [float(design["chunks"]["a0q8"][f]) for f in t4.space.factors]
    per_block = sum_per_block(t4.workload, hw.figures(path4, design).layer_cycles, 6)
    assert per_block.shape == (6,) and torch.isfinite(per_block).all()


def test_warm_started_research_is_no_worse(hw):
    path = tuple(("k5_e6", 6) for _ in range(6))
    first, fig = hw.search(path, budget=4000, seed=1)
    again, fig2 = hw.search(path, warm=first, budget=1000, seed=2)
    assert fig2.fps >= fig.fps  # the warm start is itself a candidate
