import pytest
import torch

from autonba.hw.platform import load_platform
from autonba.nas.space import load_space
from autonba.search.hw_cost import HardwareCost


@pytest.fixture(scope="module")
def hw():
    return HardwareCost(load_space("small").layout, "fpga-chunk", load_platform("zc706"))


def test_block_cycles_sum_the_layers_of_each_block(hw):
    path = (("k3_e3", 8), ("skip", 8), ("k5_e6", 4), ("k3_e1_g2", 4), ("skip", 8), ("k5_e1", 8))
    found = hw.search(path, budget=2000)
    assert found is not None
    design, fps = found
    per_block, fps2, feasible = hw.block_cycles(path, design)
    assert feasible and fps2 == pytest.approx(fps)
    assert per_block[1] == 0          # identity skip
    assert (per_block[[0, 2, 3, 5]] > 0).all()
    t = hw.template(path)
    ev = t.evaluate(hw.adapt(t, design).unsqueeze(0), layers=True)
    fixed = sum(float(ev.layer_cycles[0, i]) for i, l in enumerate(t.workload.layers) if not l.name.startswith("block"))
    assert float(per_block.sum()) + fixed == pytest.approx(float(ev.layer_cycles.sum()))


def test_a_new_bitwidth_borrows_the_nearest_chunk_design(hw):
    path8 = tuple(("k3_e3", 8) for _ in range(6))
    design, _ = hw.search(path8, budget=1500)
    path4 = (("k3_e3", 4),) + path8[1:]
    t4 = hw.template(path4)
    assert set(t4.chunk_names) - set(design)          # the 4-bit chunks are new
    vals = hw.adapt(t4, design)
    a0q4 = t4.chunk_names.index("a0q4")
    assert vals[a0q4].tolist() == [float(design["a0q8"][f]) for f in t4.space.factors]
    per_block, _, _ = hw.block_cycles(path4, design)
    assert per_block.shape == (6,) and torch.isfinite(per_block).all()


def test_warm_started_research_is_no_worse(hw):
    path = tuple(("k5_e6", 6) for _ in range(6))
    first, fps = hw.search(path, budget=4000, seed=1)
    again, fps2 = hw.search(path, warm=first, budget=1000, seed=2)
    assert fps2 >= fps  # the warm start is itself a candidate
