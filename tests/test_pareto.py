"""Pareto fronts: the non-dominated filter and the hypervolume against brute force, the exact fronts of
the FPGA chunk templates and asic-array against random designs, the searched fronts against the exact
ones, and ``autonba accel pareto``."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from autonba import accel
from autonba.cli import main
from autonba.hw.asic.pareto import sum_fronts
from autonba.hw.hardware import load_hardware
from autonba.hw.pareto import dominated_by, hypervolume, minimised, nondominated, pareto_front
from autonba.hw.workload import Layer, Workload

TINY = Workload("tiny", [Layer("stem", 3, 16, 16, 16, 16, 16, 3, bits=8),
                         Layer("dw", 16, 16, 16, 16, 8, 8, 3, stride=2, groups=16, bits=8),
                         Layer("pw", 16, 32, 8, 8, 8, 8, 1, bits=8),
                         Layer("fc", 32, 10, 1, 1, 1, 1, 1, bits=8)])
# a smaller asic-array space, so that the exact front takes a fraction of a second
ASIC_OPTIONS = {"rows": [4, 16, 64], "cols": [4, 16, 64], "gb_kib": [16, 64, 256], "area_mm2": 2.0}


def random_points(g: torch.Generator, n: int, k: int, integer: bool) -> torch.Tensor:
    """Small integer coordinates give ties and duplicates; floats give general position."""
    if integer:
        return torch.randint(0, 5, (n, k), generator=g).to(torch.float64)
    return torch.rand((n, k), generator=g, dtype=torch.float64)


def brute_nondominated(p: np.ndarray) -> set[tuple[float, ...]]:
    """The distinct points no other point weakly dominates."""
    return {tuple(a) for a in p if not any((b <= a).all() and (b < a).any() for b in p)}


def brute_hypervolume(p: np.ndarray, ref: np.ndarray) -> float:
    """The union of the boxes [point, ref], measured on the grid of every coordinate: a cell is covered
    when some point is <= its lower corner."""
    p = p[(p < ref).all(1)]
    if len(p) == 0:
        return 0.0
    axes = [np.unique(np.append(p[:, k], ref[k])) for k in range(p.shape[1])]
    lows = np.stack(np.meshgrid(*[a[:-1] for a in axes], indexing="ij"), -1).reshape(-1, p.shape[1])
    sizes = np.stack(np.meshgrid(*[np.diff(a) for a in axes], indexing="ij"), -1).reshape(-1, p.shape[1])
    covered = (p[None] <= lows[:, None]).all(-1).any(-1)
    return float((sizes.prod(1) * covered).sum())


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("integer", [True, False])
def test_nondominated_and_hypervolume_against_brute_force(k, integer):
    g = torch.Generator().manual_seed(10 * k + integer)
    for _ in range(40):
        p = random_points(g, int(torch.randint(1, 30, (1,), generator=g)), k, integer)
        keep = nondominated(p, block=7)        # small blocks: the block logic is exercised
        got = [tuple(x) for x in p[keep].tolist()]
        assert len(got) == len(set(got)) and set(got) == brute_nondominated(p.numpy())
        ref = torch.full((k,), 4.5 if integer else 1.0, dtype=torch.float64)
        assert hypervolume(p, ref, block=41) == pytest.approx(brute_hypervolume(p.numpy(), ref.numpy()), abs=1e-12)


def test_hypervolume_ignores_points_beyond_the_reference():
    p = torch.tensor([[0.5, 0.5, 0.5], [2.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    assert hypervolume(p, [1.0, 1.0, 1.0]) == pytest.approx(0.125)
    assert hypervolume(p[:0], [1.0, 1.0, 1.0]) == 0.0


def test_sum_fronts_against_every_combination():
    """The (sum E, sum L) trade-offs of one option per layer, with absent options (inf)."""
    g = torch.Generator().manual_seed(0)
    n, L, P = 5, 4, 3
    e = torch.randint(1, 6, (n, L, P), generator=g).to(torch.float64)
    lat = torch.randint(1, 6, (n, L, P), generator=g).to(torch.float64)
    e[:, 1, 2] = lat[:, 1, 2] = float("inf")
    E, T, picks = sum_fronts(e, lat)
    for i in range(n):
        combos = [c for c in itertools.product(range(P), repeat=L) if c[1] != 2]
        sums = np.array([[sum(e[i, l, c[l]] for l in range(L)), sum(lat[i, l, c[l]] for l in range(L))]
                         for c in combos])
        got = torch.isfinite(E[i])
        assert {tuple(x) for x in torch.stack([E[i], T[i]], 1)[got].tolist()} == brute_nondominated(sums)
        chosen = picks[i][got]                                        # the options behind each total
        assert torch.equal(e[i].gather(1, chosen.T).sum(0), E[i][got])


def bound(name: str, options: dict | None = None):
    cls, platform, opts = load_hardware(name, None, options or {})
    return cls(TINY, platform, **opts)


def slightly_worse(p: torch.Tensor) -> torch.Tensor:
    """Minimised points moved by rounding error's worth, so that a figure recomputed another way still ties."""
    return p + p.abs() * 1e-9 + 1e-12


def objective_values(t, front, designs):
    """The front's objectives of designs (their JSON form), as the template's own result reports them."""
    out = []
    for d in designs:
        r = t.result(t.parse([d])[0]).to_dict()
        row = {**r, "dsp": r.get("total_dsp"), "bram": r.get("total_bram")}
        out.append([row[o] for o in front.objectives])
    return torch.tensor(out, dtype=torch.float64)


CASES = [("fpga-chunk", None, None), ("fpga-legacy", None, ["fps", "bram"]),
         ("asic-array", ASIC_OPTIONS, None), ("asic-array", ASIC_OPTIONS, ["edp_uj_ms", "area_mm2"])]


@pytest.mark.parametrize("name,options,objectives", CASES)
def test_exact_front_dominates_every_design_and_searched_front_stays_below(name, options, objectives):
    t = bound(name, options)
    ex = pareto_front(t, objectives, engine="exact")
    m = ex.minimised()
    others = [torch.cat([m[:i], m[i + 1:]]) for i in range(len(m))]
    assert len(m) > 3 and not any(dominated_by(m[i:i + 1], o) for i, o in enumerate(others))  # truly non-dominated
    assert torch.allclose(objective_values(t, ex, ex.designs), ex.values, rtol=1e-9)   # what it says they cost
    # every feasible random design is weakly dominated by (or equal to) a front point
    g = torch.Generator().manual_seed(0)
    vals = t.space.decode(t.space.draw(4000, g))
    c = t.cost(vals)
    sample = [t.to_json(x) for x, ok in zip(vals if isinstance(vals, torch.Tensor) else zip(*vals), c.feasible) if ok]
    assert len(sample) > 100
    pts = minimised(objective_values(t, ex, sample[:150]), ex.objectives)
    assert dominated_by(slightly_worse(pts), m).all()
    # a searched front: its points are designs the exact front dominates, and its hypervolume is not larger
    s = pareto_front(t, objectives, engine="das", budget=600, seed=1)
    assert s.evaluations <= 600 and s.objectives == ex.objectives
    assert dominated_by(slightly_worse(s.minimised()), m).all()
    ideal, nadir = ex.bounds()
    assert 0 < s.hypervolume(ideal, nadir) <= ex.hypervolume() + 1e-12


def run(args, capsys):
    rc = main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_writes_front_and_plot_and_refuses_to_overwrite(tmp_path, capsys):
    wl = tmp_path / "tiny.json"
    wl.write_text(json.dumps(TINY.to_dict()))
    out = tmp_path / "front.json"
    args = ["accel", "pareto", "--workload", str(wl), "--template", "asic-array", "--objectives",
            "latency_ms,energy_uj", "--engine", "exact", "--set", "template_options.rows=[4,16]",
            "--set", "template_options.cols=[4,16]", "--out", str(out)]
    rc, _, err = run(args, capsys)
    assert rc == 0 and "Pareto front of tiny" in err
    doc = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    assert [o["name"] for o in doc["objectives"]] == ["latency_ms", "energy_uj"]
    assert doc["method"] == "exact" and doc["config"]["engine"] == "exact" and doc["points"]
    p = doc["points"][0]
    assert set(p) == {"objectives", "design", "metrics"} and {"array", "layers"} <= set(p["design"])
    assert set(p["metrics"]) == {"fps", "latency_ms", "energy_uj", "edp_uj_ms", "area_mm2"}
    assert 0 < doc["hypervolume"]["value"] <= 1.1 ** 2
    png = tmp_path / "front.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "front.config.yaml").is_file()
    rc, _, err = run(args, capsys)
    assert rc == 2 and "already exists" in err and "--force" in err
    png.unlink()
    rc, _, err = run(args + ["--force"], capsys)
    assert rc == 0 and png.is_file()
    api = accel.pareto(workload=TINY, template="asic-array", objectives=["latency_ms", "energy_uj"], engine="exact",
                       template_options={"rows": [4, 16], "cols": [4, 16]})
    assert [p["design"] for p in doc["points"]] == api.designs


def test_cli_front_with_a_pinned_factor(tmp_path, capsys):
    """--fix pins a factor in every design of the front (as in accel search); an unknown one is one line."""
    wl = tmp_path / "tiny.json"
    wl.write_text(json.dumps(TINY.to_dict()))
    args = ["accel", "pareto", "--workload", str(wl), "--template", "asic-array", "--objectives",
            "latency_ms,energy_uj", "--engine", "exact", "--set", "template_options.rows=[4,16]",
            "--set", "template_options.cols=[4,16]", "--fix", "rows=16"]
    rc, stdout, _ = run(args, capsys)
    doc = json.loads(stdout)
    assert rc == 0 and doc["config"]["fix"] == {"rows": 16}
    assert doc["points"] and all(p["design"]["array"]["rows"] == 16 for p in doc["points"])
    rc, stdout, err = run(args[:-1] + ["bogus=1"], capsys)
    assert rc == 2 and stdout == "" and err.startswith("autonba: error: --fix: unknown") and "allowed: rows" in err


@pytest.mark.parametrize("template,objectives,allowed", [
    ("fpga-chunk", "fps,latency_ms", "allowed: fps, dsp, bram"),
    ("asic-array", "fps,dsp", "allowed: fps, latency_ms, energy_uj, edp_uj_ms, area_mm2"),
    ("fpga-chunk", "fps", "give 2 or 3 distinct objectives"),
])
def test_cli_bad_objective_is_one_line_and_exit_2(template, objectives, allowed, capsys):
    rc, stdout, err = run(["accel", "pareto", "--network", "vgg16-cifar", "--template", template,
                           "--objectives", objectives], capsys)
    assert rc == 2 and stdout == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("autonba: error: objectives:") and allowed in err
