"""The asic-array template: SCALE-Sim compute cycles, physical bounds of the cost model, exact
search optimality, engines, files and errors, grouped layers (as their groups run one after another)
and the joint search on the CIFAR space."""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
import random

import pytest
import torch

from autonba import accel
from autonba.errors import AutonbaError
from autonba.hw.asic.array import AsicArray
from autonba.hw.asic.cycles import compute_cycles
from autonba.hw.asic.engines import ASIC_ENGINES
from autonba.hw.asic.space import DATAFLOWS
from autonba.hw.asic.tech import LEVELS, load_technology
from autonba.hw.engines.base import Incumbent
from autonba.hw.workload import Layer, Workload

TECH = load_technology("generic-45nm")


def scalesim_cycles(df: str, R: int, C: int, sr: int, t: int, k: int) -> int:
    """The closed form, written out independently in plain integers."""
    cd = lambda a, b: -(-a // b)  # noqa: E731
    if df == "os":
        return cd(sr, R) * cd(k, C) * (t + R + C - 2) - 1
    if df == "ws":
        return cd(t, R) * cd(k, C) * (sr + 2 * R + C - 2) - 1
    return cd(t, R) * cd(sr, C) * (k + 2 * R + C - 2) - 1


def test_issue_example():
    sr, t, k = 16 * 16, 32 * 9, 64
    assert [float(compute_cycles(d, 32, 32, sr, t, k)) for d in range(3)] == [5599, 6299, 11375]


def test_fifty_random_cases_match_the_closed_form():
    rng = random.Random(0)
    for _ in range(50):
        R, C = rng.choice([2, 3, 4, 8, 12, 16, 32, 64, 128]), rng.choice([2, 4, 5, 8, 16, 32, 64, 128])
        f, o = rng.choice([1, 3, 5, 7]), rng.randint(1, 56)  # output size (any stride)
        cin, k = rng.randint(1, 512), rng.randint(1, 512)
        d = rng.randrange(3)
        got = float(compute_cycles(d, R, C, o * o, cin * f * f, k))
        assert got == scalesim_cycles(("os", "ws", "is")[d], R, C, o * o, cin * f * f, k)


def workload(bits: int = 8) -> Workload:
    return Workload("tiny", [
        Layer("stem", 3, 16, 16, 16, 16, 16, 3, bits=bits),
        Layer("dw", 16, 16, 16, 16, 8, 8, 3, stride=2, groups=16, bits=bits),
        Layer("pw", 16, 32, 8, 8, 8, 8, 1, bits=bits),
        Layer("conv", 32, 32, 8, 8, 8, 8, 3, bits=bits),
        Layer("fc", 32, 10, 1, 1, 1, 1, 1, bits=bits),
    ])


def sample(t: AsicArray, n: int, seed: int = 0):
    hw, maps, _, _ = t.space.sample(n, generator=torch.Generator().manual_seed(seed))
    return t.space.values(hw, maps)


@pytest.mark.parametrize("dataflow", ["per-accelerator", "per-layer"])
def test_physical_bounds(dataflow):
    t = AsicArray(workload(), TECH, dataflow=dataflow)
    hv, mv = sample(t, 2000)
    ev = t.evaluate(hv, mv)
    R, C = hv[:, 0:1], hv[:, 1:2]
    lay = t.lay
    # compute bound, utilisation <= 100 %
    assert (ev.layer_compute >= lay.macs / (R * C * lay.macs_per_pe)).all()
    assert (ev.layer_utilisation <= 1 + 1e-12).all() and (ev.layer_utilisation > 0).all()
    # memory roofline: latency >= DRAM traffic / bandwidth, and >= compute
    assert (ev.layer_latency >= ev.layer_dram_bits / (8 * TECH.dram_bytes_per_cycle) - 1e-9).all()
    assert (ev.layer_latency >= ev.layer_compute).all()
    # DRAM traffic >= compulsory traffic; energy >= compulsory traffic + MACs
    comp = t.compulsory_bits()
    assert (ev.layer_dram_bits >= comp - 1e-6).all()
    floor = (comp * TECH.energy.dram_pj_per_bit + lay.macs * TECH.mac_pj(lay.bits, lay.bits)).sum()
    assert (ev.energy >= floor).all()
    assert torch.allclose(ev.energy_levels.sum(-1), ev.energy)
    # area of the PEs and the buffer, positive; every sampled design's tiles legalised to fit
    assert (ev.area > 0).all() and ev.fits.float().mean() > 0.9


def test_lower_bitwidths_never_raise_cycles_or_energy():
    prev = None
    for bits in (8, 6, 4, 2):
        t = AsicArray(workload(bits), TECH)
        hv, mv = sample(t, 500, seed=3)  # same seed, same space shape: the same designs
        ev = t.evaluate(hv, mv)
        if prev is not None:
            assert (ev.layer_compute <= prev.layer_compute).all()
            assert (ev.layer_latency <= prev.layer_latency).all()
            assert (ev.energy <= prev.energy * (1 + 1e-12)).all()
            assert (ev.layer_dram_bits <= prev.layer_dram_bits).all()
        prev = ev


def test_precision_scaling_and_depthwise_mapping():
    t = AsicArray(workload(2), TECH, pe_bits=8)
    assert t.lay.macs_per_pe.tolist() == [16.0] * 5
    t16 = AsicArray(workload(16), TECH, pe_bits=8)
    assert t16.lay.macs_per_pe.tolist() == [0.25] * 5  # a 16-bit MAC takes four 8-bit PE cycles
    # a depthwise layer runs channel by channel: 16 single-channel layers
    t8 = AsicArray(workload(8), TECH)
    hv, mv = sample(t8, 1)
    ev = t8.evaluate(hv, mv)
    R, C, df = (int(hv[0, t8.space.hw_index(f)]) for f in ("rows", "cols", "dataflow"))
    assert float(ev.layer_compute[0, 1]) == 16 * scalesim_cycles(("os", "ws", "is")[df], R, C, 64, 9, 1)


def brute_force(t: AsicArray):
    """Every array design x every combination of layer mappings: the true optimum."""
    sp = t.space
    hw_all = torch.cat(list(sp.enumerate_hw()))
    per_layer = [sp.enumerate_maps(i) for i in range(sp.num_layers)]
    combos = torch.stack([torch.stack(c) for c in itertools.product(*per_layer)])       # (n, L, M)
    best = float("inf")
    for h in hw_all:
        hv, mv = sp.values(h.expand(len(combos), -1), combos)
        ev = t.evaluate(hv, mv)
        best = min(best, float(torch.where(ev.feasible, ev.objective, torch.tensor(float("inf"))).min()))
    return best


@pytest.mark.parametrize("objective", ["edp", "energy", "latency"])
def test_exact_is_optimal(objective):
    wl = Workload("two", [Layer("a", 8, 16, 8, 8, 8, 8, 3), Layer("b", 16, 8, 8, 8, 4, 4, 1, stride=2)])
    t = AsicArray(wl, TECH, objective=objective, area_mm2=0.06, rows=[2, 4], cols=[2, 8], rf_bytes=[4, 64],
                  gb_kib=[1, 4])
    space = t.space.fix({"order": "kcy", "gb_split": "shared"})
    t.space = space
    out = ASIC_ENGINES.get("exact")(t, space, progress=False).run()
    want = brute_force(t)
    assert out.score == pytest.approx(want, rel=1e-12)
    hv, mv = out.best
    ev = t.evaluate(hv.unsqueeze(0), mv.unsqueeze(0))
    assert bool(ev.feasible[0]) and float(ev.objective[0]) == pytest.approx(want, rel=1e-12)


def test_engines_rank_and_respect_the_area_budget():
    t = AsicArray(workload(), TECH, objective="edp", area_mm2=0.5)
    exact = ASIC_ENGINES.get("exact")(t, progress=False).run()
    results = {name: ASIC_ENGINES.get(name)(t, seed=0, budget=2048, progress=False).run()
               for name in ("das", "random", "evolution")}
    for name, out in results.items():
        hv, mv = out.best
        ev = t.evaluate(hv.unsqueeze(0), mv.unsqueeze(0))
        assert bool(ev.feasible[0]) and float(ev.area[0]) <= 0.5
        assert out.score >= exact.score * (1 - 1e-12), name
        assert out.evaluations <= 2048
    assert results["das"].score <= 1.05 * exact.score
    assert results["das"].score <= results["random"].score


def test_das_buffer_stage_finds_the_optimum_when_the_budget_covers_every_buffer():
    """Sampling takes half of 4,096 evaluations; the layer-mapping table (467 design equivalents), the
    screen and the 1,254 array designs within the area budget fit in the other half, so the buffer
    stage solves every buffer configuration exactly; a budget of 512 leaves it out (local polish only)."""
    t = AsicArray(workload(), TECH, objective="edp", area_mm2=0.5)
    exact = ASIC_ENGINES.get("exact")(t, progress=False).run()
    assert exact.evaluations == 1254
    for seed in (0, 1):
        das = ASIC_ENGINES.get("das")(t, seed=seed, budget=4096, progress=False).run()
        assert das.score == pytest.approx(exact.score, rel=1e-12) and das.evaluations <= 4096
    small = ASIC_ENGINES.get("das")(t, seed=0, budget=512, progress=False).run()
    assert small.evaluations <= 512 and small.score >= exact.score * (1 - 1e-12)


def test_incumbent_keeps_the_best_and_its_trace():
    inc = Incumbent()
    hw, maps = torch.ones(3), torch.ones(2, 4)
    assert inc.propose(5.0, (hw, maps), 10) and not inc.propose(6.0, (2 * hw, maps), 11)
    assert inc.propose(4.0, (3 * hw, maps), 12)
    assert inc.score == 4.0 and torch.equal(inc.best[0], 3 * hw) and inc.trace == [(10, 5.0), (12, 4.0)]
    start = Incumbent.at(2.0, (hw, maps))
    assert start.score == 2.0 and start.trace == [] and not start.propose(3.0, (hw, maps), 1)


def test_simulator_drivers_are_not_installed():
    """The SCALE-Sim and ZigZag drivers are test tooling (``validation/`` at the repo root)."""
    import importlib.util
    assert importlib.util.find_spec("autonba.hw.asic.validate") is None


def test_accel_api_cli_and_design_files(tmp_path, capsys):
    from autonba.cli import main

    wl_path = tmp_path / "wl.json"
    wl_path.write_text(json.dumps(workload().to_dict()))
    r = accel.search(file=str(wl_path), template="asic-array", engine="das", budget=512, seed=1,
                     template_options={"objective": "edp", "area_mm2": 1.0})
    assert r.feasible and r.area_mm2 <= 1.0 and r.edp_uj_ms == pytest.approx(r.energy_uj * r.latency_ms)
    assert len(r.layers) == 5 and r.layers[1]["depthwise"] and 0 < r.layers[1]["utilisation"] < 1
    again = accel.evaluate([r.design], file=str(wl_path), template="asic-array",
                           template_options={"objective": "edp", "area_mm2": 1.0})[0]
    assert again.energy_uj == pytest.approx(r.energy_uj) and again.latency_cycles == r.latency_cycles
    out = tmp_path / "r.json"
    main(["accel", "search", "--workload", str(wl_path), "--template", "asic-array", "--objective", "latency",
          "--area-mm2", "2", "--engine", "evolution", "--budget", "512", "--out", str(out)])
    d = json.loads(out.read_text())
    assert d["objective"] == "latency" and d["config"]["template_options"]["area_mm2"] == 2
    design = tmp_path / "d.json"
    design.write_text(json.dumps(d["design"]))
    main(["accel", "eval", "--workload", str(wl_path), "--template", "asic-array", "--design", str(design)])
    assert json.loads(capsys.readouterr().out)["latency_cycles"] == d["latency_cycles"]


def test_bad_input_gives_clear_errors(tmp_path):
    wl = workload()
    t = AsicArray(wl, TECH)
    design = t.space.to_dicts(*sample(t, 1))[0]
    bad = json.loads(json.dumps(design))
    bad["array"]["dataflow"] = "diagonal"
    with pytest.raises(AutonbaError, match="dataflow.*allowed: os, ws, is"):
        t.space.parse([bad])
    bad = json.loads(json.dumps(design))
    bad["layers"]["pw"]["tk"] = 64
    with pytest.raises(AutonbaError, match="layer 'pw': tk=64 .* from 1 to 32"):
        t.space.parse([bad])
    bad = json.loads(json.dumps(design))
    bad["array"]["banks"] = 2
    with pytest.raises(AutonbaError, match="unknown factors \\['banks'\\]"):
        t.space.parse([bad])
    with pytest.raises(AutonbaError, match="rows.*>= 2"):
        accel.search(network="resnet18-cifar", template="asic-array", template_options={"rows": [1, 4]})
    with pytest.raises(AutonbaError, match="fits the area budget of 0.001 mm2"):
        accel.search(file=None, network="resnet18-cifar", template="asic-array", engine="random", budget=64,
                     template_options={"area_mm2": 0.001})
    with pytest.raises(AutonbaError, match="unknown technology 'nm3'"):
        accel.search(network="resnet18-cifar", template="asic-array", platform="nm3")
    with pytest.raises(AutonbaError, match="--fix: unknown or per-layer design factor 'tk'"):
        accel.search(network="resnet18-cifar", template="asic-array", fix={"tk": 4})
    assert math.isfinite(TECH.clock_hz)


# ---- grouped layers ----------------------------------------------------------------------
GROUPED = [Layer("g2", 24, 48, 16, 16, 16, 16, 1, groups=2),          # a 1x1 of the CIFAR space's e1_g2 blocks
           Layer("g3", 12, 18, 10, 10, 8, 8, 3, groups=3),            # 3x3, unpadded
           Layer("g4", 32, 16, 17, 17, 8, 8, 3, stride=2, groups=4),  # stride 2, 8 inputs -> 4 outputs per group
           Layer("g8", 8, 16, 6, 6, 6, 6, 3, groups=8)]               # groups = in_ch, 2 filters each: not depthwise


def split(layer: Layer) -> list[Layer]:
    """The g groups of a grouped layer as g standard layers of in_ch/g -> out_ch/g channels."""
    g = layer.groups
    return [dataclasses.replace(layer, name=f"{layer.name}.{i}", in_ch=layer.in_ch // g, out_ch=layer.out_ch // g,
                                groups=1) for i in range(g)]


@pytest.mark.parametrize("layer", GROUPED, ids=lambda x: x.name)
def test_grouped_layer_costs_what_its_groups_cost_as_layers(layer):
    """Compute cycles are the closed form g x (folds x per_fold - 1) with T = (in_ch/g) F^2 and K = out_ch/g
    (os/ws/is on several arrays); compute, accesses, DRAM traffic, energy per level, tiles and fits equal
    the sums over the g groups as standard layers under the same tiling; latency too, except that the layer
    rounds its DRAM cycles once rather than per group (fewer by at most g - 1 when DRAM-bound)."""
    g = layer.groups
    sr, T, K = layer.out_h * layer.out_w, layer.in_ch // g * layer.kernel ** 2, layer.out_ch // g
    no_leak = slice(0, LEVELS.index("leakage"))  # leakage follows the latency
    for df in ("per-accelerator", "per-layer"):
        t = AsicArray(Workload("g", [layer]), TECH, dataflow=df, gb_kib=[1, 4, 16, 64, 1024])
        s = AsicArray(Workload("s", split(layer)), TECH, dataflow=df, gb_kib=[1, 4, 16, 64, 1024])
        assert s.space.map_choices[f"{layer.name}.0"] == t.space.map_choices[layer.name]
        hv, mv = sample(t, 3000, seed=g)
        arrays = list(itertools.product(range(3), [(2, 2), (4, 8), (16, 4), (8, 8), (32, 16), (3, 5)]))
        for i, (code, (R, C)) in enumerate(arrays):  # the first designs: every dataflow on several arrays
            hv[i, t.space.hw_index("rows")], hv[i, t.space.hw_index("cols")] = R, C
            if df == "per-accelerator":
                hv[i, t.space.hw_index("dataflow")] = code
            else:
                mv[i, 0, t.space.map_index("dataflow")] = code
        ev, es = t.evaluate(hv, mv), s.evaluate(hv, mv.repeat(1, g, 1))
        for i, (code, (R, C)) in enumerate(arrays):
            assert float(ev.layer_compute[i, 0]) == g * scalesim_cycles(DATAFLOWS[code], R, C, sr, T, K)
        assert torch.equal(ev.layer_compute[:, 0], es.layer_compute.sum(-1))
        assert torch.equal(ev.layer_dram_bits[:, 0], es.layer_dram_bits.sum(-1))
        assert torch.allclose(ev.energy_levels[:, no_leak], es.energy_levels[:, no_leak], rtol=1e-12, atol=0)
        assert torch.equal(ev.layer_fits[:, 0], es.layer_fits.all(-1)) and float(ev.layer_fits.double().mean()) > 0.5
        assert all(torch.equal(ev.tiles[:, 0], es.tiles[:, j]) for j in range(g))
        assert (ev.tiles[..., 0] <= K).all() and (ev.tiles[..., 1] <= layer.in_ch // g).all()
        lat, lat_s = ev.layer_latency[:, 0], es.layer_latency.sum(-1)
        assert ((lat <= lat_s) & (lat_s <= lat + g - 1)).all()
        compute_bound = (es.layer_latency == es.layer_compute).all(-1)
        assert compute_bound.any() and torch.equal(lat[compute_bound], lat_s[compute_bound])
        assert torch.equal(t.compulsory_bits(), s.compulsory_bits().sum(-1, keepdim=True))
        assert float(t.lay.macs.sum()) == float(s.lay.macs.sum()) == layer.macs


def test_grouped_design_space_and_files():
    """Tiles of a grouped layer go up to one group (tk <= out_ch/g, tc <= in_ch/g); a depthwise layer's stay
    as they were (tk over all channels, tc = 1); design files are checked against those ranges."""
    wl = Workload("m", [Layer("g", 24, 48, 8, 8, 8, 8, 1, groups=2), Layer("dw", 48, 48, 8, 8, 8, 8, 3, groups=48)])
    t = AsicArray(wl, TECH)
    assert t.space.map_choices["g"]["tk"] == [1, 2, 4, 8, 16, 24] and t.space.map_choices["g"]["tc"] == [1, 2, 4, 8, 12]
    assert t.space.map_choices["dw"]["tk"][-1] == 48 and t.space.map_choices["dw"]["tc"] == [1]
    design = t.space.to_dicts(*sample(t, 1))[0]
    design["layers"]["g"]["tk"] = 48
    with pytest.raises(AutonbaError, match="layer 'g': tk=48 .* from 1 to 24"):
        t.space.parse([design])
    tk, tc, toy = (torch.full((1, 2), v, dtype=torch.float64) for v in (48.0, 24.0, 8.0))
    tk, tc, _ = t.clip(tk, tc, toy)                                      # tiles beyond a group: clipped to it
    assert tk.tolist() == [[24.0, 48.0]] and tc.tolist() == [[12.0, 1.0]]


def test_exact_is_optimal_with_grouped_layers():
    wl = Workload("two", [Layer("a", 8, 16, 8, 8, 8, 8, 3, groups=2),
                          Layer("b", 16, 8, 8, 8, 4, 4, 1, stride=2, groups=4)])
    t = AsicArray(wl, TECH, objective="edp", area_mm2=0.06, rows=[2, 4], cols=[2, 8], rf_bytes=[4, 64], gb_kib=[1, 4])
    t.space = t.space.fix({"order": "kcy", "gb_split": "shared"})
    out = ASIC_ENGINES.get("exact")(t, t.space, progress=False).run()
    assert out.score == pytest.approx(brute_force(t), rel=1e-12)


def grouped_workload() -> Workload:
    """A small network with the CIFAR space's k3_e1_g2 block (grouped 1x1 expand and project)."""
    return Workload("grouped", [
        Layer("stem", 3, 16, 16, 16, 16, 16, 3),
        Layer("b.expand", 16, 16, 16, 16, 16, 16, 1, groups=2),
        Layer("b.dw", 16, 16, 16, 16, 8, 8, 3, stride=2, groups=16),
        Layer("b.project", 16, 24, 8, 8, 8, 8, 1, groups=2),
        Layer("conv", 24, 32, 8, 8, 8, 8, 3, groups=4),
        Layer("fc", 32, 10, 1, 1, 1, 1, 1),
    ])


def test_accel_search_cli_on_grouped_layers(tmp_path, capsys):
    from autonba.cli import main

    wl_path = tmp_path / "wl.json"
    wl_path.write_text(json.dumps(grouped_workload().to_dict()))
    results = {}
    for engine, extra in (("exact", []), ("das", ["--budget", "1024"])):
        out = tmp_path / f"{engine}.json"
        assert main(["accel", "search", "--workload", str(wl_path), "--template", "asic-array", "--objective",
                     "edp", "--area-mm2", "1", "--engine", engine, *extra, "--out", str(out)]) == 0
        assert "grouped layers: 3, utilisation" in capsys.readouterr().err
        results[engine] = d = json.loads(out.read_text())
        assert d["feasible"] and d["area_mm2"] <= 1
        for layer, r in zip(grouped_workload().layers, d["layers"]):
            assert r["groups"] == layer.groups and r["compute_cycles"] > 0 and r["fits"]
            if not layer.depthwise:
                assert r["tiles"]["tk"] <= layer.out_ch // layer.groups
                assert r["tiles"]["tc"] <= layer.in_ch // layer.groups
    assert results["exact"]["edp_uj_ms"] <= results["das"]["edp_uj_ms"] * (1 + 1e-9)
    design = tmp_path / "d.json"
    design.write_text(json.dumps(results["das"]["design"]))
    assert main(["accel", "eval", "--workload", str(wl_path), "--template", "asic-array", "--objective", "edp",
                 "--area-mm2", "1", "--design", str(design)]) == 0
    assert json.loads(capsys.readouterr().out)["latency_cycles"] == results["das"]["latency_cycles"]


@pytest.mark.slow
def test_joint_search_on_the_cifar_space(tmp_path):
    """The joint search on the paper's CIFAR space (grouped ops k3_e1_g2, k5_e1_g2) with asic-array: 2 epochs
    on 32 synthetic 4x4 images, small array lists and engine budgets (17-27 s on 2 shared cores)."""
    from test_joint import searched

    cfg = {"seed": 3, "space": "cifar", "device": "cpu",
           "data": {"name": "synthetic", "input_size": 4, "channels": 3, "samples": 32},
           "hardware": {"template": "asic-array", "engine_budget": 64, "final_engine": "das", "final_budget": 256,
                        "research_every": 1000,
                        "template_options": {"objective": "edp", "rows": [8, 16], "cols": [8, 16], "rf_bytes": [4, 64],
                                             "gb_kib": [64, 256]}},
           "target": {"edp_uj_ms": 20.0},
           "search": {"epochs": 2, "warmup_epochs": 1, "batch_size": 8}}
    run, r, acc = searched(tmp_path, cfg)
    assert len(r["ops"]) == 22 and any(op.endswith("_g2") for op in r["ops"])
    assert acc["template"] == "asic-array" and acc["feasible"]
    grouped = [x for x in acc["layers"] if x["groups"] > 1 and not x["depthwise"]]
    assert grouped and all(x["compute_cycles"] > 0 for x in grouped)
    again = accel.evaluate([acc["design"]], arch=str(run / "arch.json"), template="asic-array",
                           template_options=cfg["hardware"]["template_options"])[0]
    assert again.edp_uj_ms == pytest.approx(acc["edp_uj_ms"], rel=1e-12)
