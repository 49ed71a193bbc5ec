"""Every registered template, and every engine of its family, through the hardware-template interface
(as timm's tests run over ``list_models()``): a family or engine is tested the moment it is registered."""
from __future__ import annotations

import json
import math

import pytest
import torch

from autonba.errors import Intractable
from autonba.hw.hardware import load_hardware, search_template
from autonba.hw.template import METRICS, Costs, Figures
from autonba.hw.templates import TEMPLATES
from autonba.hw.workload import Layer, Workload

TINY = Workload("tiny", [Layer("stem", 3, 16, 16, 16, 16, 16, 3, bits=8),
                         Layer("dw", 16, 16, 16, 16, 8, 8, 3, stride=2, groups=16, bits=8),
                         Layer("pw", 16, 32, 8, 8, 8, 8, 1, bits=8),
                         Layer("fc", 32, 10, 1, 1, 1, 1, 1, bits=8)])
FAMILY_ENGINES = [(t, e) for t, cls in TEMPLATES.items() for e in cls.engines().names()]


def bound(name: str):
    cls, platform, options = load_hardware(name, None, {})
    return cls(TINY, platform, **options)


@pytest.mark.parametrize("name", TEMPLATES.names())
def test_template_interface(name):
    cls = TEMPLATES.get(name)
    assert cls.name == name and cls.default_platform in cls.shipped_platforms()
    assert cls.metric_names[0] == "fps" and set(cls.metric_names) <= set(METRICS)
    assert {"das", "random", "evolution", "exact"} <= set(cls.engines().names())
    t = bound(name)
    assert t.clock_hz > 0
    idx = t.space.draw(8, torch.Generator().manual_seed(0))
    vals = t.space.decode(idx)
    c = t.cost(vals)
    assert isinstance(c, Costs) and c.objective.shape == c.feasible.shape == c.overflow.shape == (8,)
    assert (c.overflow >= 0).all() and (c.overflow[c.feasible] == 0).all()


@pytest.mark.parametrize("name,engine", FAMILY_ENGINES)
def test_every_engine_of_every_family(name, engine):
    """A small search finds a feasible design; its result is strict JSON that parses back to the same
    design with the same figures; the same seed gives the same design."""
    t = bound(name)
    try:
        r = search_template(t, engine, seed=1, budget=256, progress=False)
    except Intractable:
        pytest.skip(f"{engine} refuses the space as intractable")
    again = search_template(t, engine, seed=1, budget=256, progress=False)
    timeless = lambda d: {k: v for k, v in d.items() if k != "seconds"}  # noqa: E731
    assert r.feasible and timeless(r.to_dict()) == timeless(again.to_dict())
    doc = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    design = t.parse([doc["design"]])[0]
    fig = t.figures(design)
    assert isinstance(fig, Figures) and fig.feasible and set(fig.metrics) == set(t.metric_names)
    assert fig.metrics == pytest.approx(r.metrics(), rel=1e-12)
    assert fig.layer_cycles.shape == (len(TINY.layers),) and math.isclose(float(fig.layer_cycles.sum()), fig.cycles)
    assert t.to_json(design) == doc["design"] and t.result(design).to_dict()["feasible"]
    carried = t.adapt(doc["design"])                     # a design carried over to the same workload is itself
    assert t.to_json(carried) == doc["design"]
    assert isinstance(r.table(), str) and r.summary()["template"] == name
    rows = doc["layers"]   # what exports read: every layer's MACs and compute cycles
    assert [x["name"] for x in rows] == [x.name for x in TINY.layers]
    assert all(x["compute_cycles"] > 0 and x["macs"] == lay.macs for x, lay in zip(rows, TINY.layers))
