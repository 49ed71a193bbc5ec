"""fpga-legacy reproduces the reference model: every golden case to a relative error <= 1e-9."""
import pytest
import torch

from autonba.hw.engines import ENGINES
from autonba.hw.platform import load_platform
from autonba.hw.templates import TEMPLATES
from autonba.hw.workload import Workload

PLATFORM = load_platform("zc706-legacy")


def close(a, b, rel=1e-9):
    return abs(a - b) <= rel * max(1.0, abs(b))


def test_all_layer_cases(golden):
    bad = []
    for i, case in enumerate(golden["layer_cases"]):
        t = TEMPLATES.get("fpga-legacy")(Workload.from_dict({"layers": [case["layer"]]}), PLATFORM)
        ev = t.evaluate(t.space.parse([{"chunks": {t.chunk_names[0]: case["design"]}}]), layers=True)
        e = case["expected"]
        got = (float(ev.layer_cycles[0, 0]), float(ev.chunk_dsp[0, 0]), float(ev.chunk_bram[0, 0]))
        if not all(close(g, x) for g, x in zip(got, (e["latency_cycles"], e["dsp"], e["bram"]))):
            bad.append((i, got, e))
    assert not bad, f"{len(bad)} of {len(golden['layer_cases'])} layer cases differ, first: {bad[:3]}"
    assert len(golden["layer_cases"]) == 1500


@pytest.fixture(scope="module")
def network(golden):
    return TEMPLATES.get("fpga-legacy")(Workload.from_dict(golden), PLATFORM)


def test_network_chunks_follow_the_allocation_rule(golden, network):
    from autonba.hw.templates.fpga_common import allocate_by_rule
    w = Workload.from_dict(golden)
    stripped = Workload(w.name, [type(l)(**{**l.__dict__, "chunk": None}) for l in w.layers])
    assert allocate_by_rule(stripped, 16) == [l["chunk"] for l in golden["network"]["layers"]]


def test_all_design_cases(golden, network):
    cases = golden["network"]["design_cases"]
    # the reference files list designs for 12 chunks, 2 of which (a1q4, dwa1q4) no layer of the network uses
    ours = [{"chunks": {k: v for k, v in c["chunks"].items() if k in network.chunk_names}} for c in cases]
    assert {k for c in cases for k in c["chunks"]} - set(network.chunk_names) == {"a1q4", "dwa1q4"}
    ev = network.evaluate(network.space.parse(ours), layers=True)
    for b, case in enumerate(cases):
        e = case["expected"]
        assert close(float(ev.bottleneck[b]), e["bottleneck_cycles"])
        assert close(float(ev.fps[b]), e["fps"])
        assert close(float(ev.total_dsp[b]), e["total_dsp"])
        assert close(float(ev.total_bram[b]), e["total_bram"])
        assert bool(ev.feasible[b]) == e["feasible"]
        for i, c in enumerate(network.chunk_names):
            assert close(float(ev.chunk_cycles[b, i]), e["chunk_cycles"][c])
        assert torch.allclose(ev.layer_cycles[b], torch.tensor(e["layer_cycles"], dtype=torch.float64), rtol=1e-9)


@pytest.mark.parametrize("pins,key", [({"comp_mode": 1}, "comp_mode_fixed_1"), ({}, "comp_mode_free")])
def test_exact_reaches_the_golden_optimum(golden, network, pins, key):
    out = ENGINES.get("exact")(network, network.space.fix(pins)).run()
    opt = golden["network"]["optimum"][key]
    assert close(out.score, opt["bottleneck_cycles"])
    ev = network.evaluate(out.best.unsqueeze(0))
    assert bool(ev.feasible[0]) and close(float(ev.fps[0]), opt["fps"])


def test_design_space_matches_the_golden_table(golden, network):
    table = golden["network"]["design_space"]
    for c in network.chunk_names:
        kind = c.split("q")[0]
        for f, vals in table[kind].items():
            assert sorted(network.space.choices[c][f]) == sorted(float(v) for v in vals)
