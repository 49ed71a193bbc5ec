"""The ASIC cost model against the public simulators SCALE-Sim and ZigZag.

Run with ``pytest -m validate tests/test_asic_validate.py`` after ``pip install autonba[validate]``;
without the simulators these tests are skipped.
"""
import sys

import pytest
import torch

from autonba.errors import AutonbaError
from autonba.hw.asic.array import AsicArray
from autonba.hw.asic.cycles import DATAFLOWS, compute_cycles
from autonba.hw.asic.tech import load_technology
from autonba.hw.workload import Layer, Workload
from validation import asic as validate

pytestmark = [
    pytest.mark.validate,
    # SCALE-Sim 3.0.0 converts 1-element arrays to int, which NumPy 2.x deprecates
    pytest.mark.filterwarnings("ignore:Conversion of an array with ndim > 0:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def scalesim():
    pytest.importorskip("scalesim.scale_sim")
    return validate.scalesim_layer


@pytest.fixture(scope="module")
def zigzag():
    pytest.importorskip("six")  # ZigZag imports it without declaring it
    pytest.importorskip("zigzag.api")
    return validate.zigzag_layer


def ours(layer: dict, rows: int, cols: int, dataflow: str) -> int:
    """Our closed form, fed the SCALE-Sim way: output size from the padded input, one group per
    channel for a depthwise layer."""
    oy = validate.output_size(layer["ifmap_h"], layer["fh"], layer["stride"])
    ox = validate.output_size(layer["ifmap_w"], layer["fw"], layer["stride"])
    dw = layer.get("depthwise", False)
    groups = layer["channels"] if dw else layer.get("groups", 1)
    c = layer["channels"] // groups
    k = layer["filters"] // groups
    cyc = compute_cycles(DATAFLOWS.index(dataflow), rows, cols, sr=ox * oy, t=c * layer["fh"] * layer["fw"],
                         k=k, macs_per_pe=1, groups=groups)
    return int(cyc.item())


def test_output_size_is_scalesims():
    assert validate.output_size(18, 3, 1) == 16
    assert validate.output_size(16, 3, 2) == 8  # ceil((16 - 3) / 2) + 1, one more than floor
    assert validate.output_size(17, 3, 2) == 8


def conv(h, w, f, c, k, s, depthwise=False, groups=1):
    """A layer as ``scalesim_layer``'s keyword arguments (``groups`` only for a grouped layer)."""
    return {"ifmap_h": h, "ifmap_w": w, "fh": f, "fw": f, "channels": c, "filters": k, "stride": s,
            "depthwise": depthwise, **({"groups": groups} if groups > 1 else {})}


ISSUE = conv(18, 18, 3, 32, 64, 1)  # K=64, Cin=32, 16x16 output, 3x3 (padded 18x18 input)

# (layer, rows, cols, dataflow, SCALE-Sim's compute cycles where known)
CASES = [
    pytest.param(ISSUE, 32, 32, "os", 5599, id="issue-os-32x32"),
    pytest.param(ISSUE, 32, 32, "ws", 6299, id="issue-ws-32x32"),
    pytest.param(ISSUE, 32, 32, "is", 11375, id="issue-is-32x32"),
    pytest.param(conv(17, 17, 3, 16, 24, 2), 16, 8, "os", None, id="3x3-s2-os-16x8"),
    pytest.param(conv(17, 17, 3, 16, 24, 2), 16, 8, "ws", None, id="3x3-s2-ws-16x8"),
    pytest.param(conv(17, 17, 3, 16, 24, 2), 16, 8, "is", None, id="3x3-s2-is-16x8"),
    pytest.param(conv(16, 16, 3, 8, 16, 2), 8, 8, "os", None, id="3x3-s2-ceil-os-8x8"),  # ceil(13/2)+1 = 8
    pytest.param(conv(14, 14, 1, 64, 40, 1), 8, 16, "os", None, id="1x1-os-8x16"),
    pytest.param(conv(14, 14, 1, 64, 40, 1), 16, 8, "ws", None, id="1x1-ws-16x8"),
    pytest.param(conv(14, 14, 1, 24, 32, 2), 12, 20, "is", None, id="1x1-s2-is-12x20"),
    pytest.param(conv(10, 14, 3, 8, 20, 1), 4, 12, "ws", None, id="3x3-nonsquare-input-ws-4x12"),
    pytest.param(conv(9, 9, 3, 5, 13, 1), 7, 9, "ws", None, id="3x3-ragged-folds-ws-7x9"),
    pytest.param(conv(9, 9, 3, 5, 13, 1), 7, 9, "is", None, id="3x3-ragged-folds-is-7x9"),
    pytest.param(conv(18, 18, 3, 16, 16, 1, depthwise=True), 8, 8, "os", None, id="dw-os-8x8"),
    pytest.param(conv(10, 10, 3, 8, 8, 1, depthwise=True), 4, 8, "ws", None, id="dw-ws-4x8"),
    pytest.param(conv(17, 17, 3, 8, 8, 2, depthwise=True), 8, 4, "is", None, id="dw-s2-is-8x4"),
    pytest.param(conv(16, 16, 1, 24, 24, 1, groups=2), 8, 8, "os", None, id="g2-1x1-os-8x8"),
    pytest.param(conv(12, 12, 3, 12, 18, 1, groups=3), 4, 8, "ws", None, id="g3-3x3-ws-4x8"),
    pytest.param(conv(17, 17, 3, 16, 32, 2, groups=4), 8, 4, "is", None, id="g4-s2-is-8x4"),
]


@pytest.mark.parametrize("layer,rows,cols,dataflow,expected", CASES)
def test_compute_cycles_match_scalesim(scalesim, layer, rows, cols, dataflow, expected):
    got = scalesim(rows=rows, cols=cols, dataflow=dataflow, **layer)
    assert got["stall_cycles"] == 0  # large SRAMs, bandwidth computed by SCALE-Sim
    assert got["compute_cycles"] == ours(layer, rows, cols, dataflow)
    if expected is not None:
        assert got["compute_cycles"] == expected
    # depthwise: simulated channel by channel, grouped: group by group, each a layer of its own
    assert got["layers"] == (layer["channels"] if layer["depthwise"] else layer.get("groups", 1))


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
@pytest.mark.parametrize("rows,cols", [(8, 8), (16, 4)])
def test_grouped_layer_of_the_template_is_its_groups_run_as_layers_in_scalesim(scalesim, dataflow, rows, cols):
    """A cifar-space grouped 1x1 (24 -> 24 channels, 2 groups, 16x16) through the template equals the sum of
    SCALE-Sim's compute cycles over its groups simulated as two layers of 12 -> 12 channels."""
    layer = Layer("g", 24, 24, 16, 16, 16, 16, 1, groups=2)
    t = AsicArray(Workload("g", [layer]), load_technology("generic-45nm"), rows=[rows], cols=[cols])
    factors = {"rows": rows, "cols": cols, "rf_bytes": 4, "gb_kib": 16, "gb_split": 0,
               "dataflow": DATAFLOWS.index(dataflow)}
    hv = torch.tensor([[float(factors[f]) for f in t.space.hw_factors]], dtype=torch.float64)
    tiles = {"tk": 12, "tc": 12, "toy": 16, "order": 0}
    mv = torch.tensor([[[float(tiles[f]) for f in t.space.map_factors]]], dtype=torch.float64)
    ev = t.evaluate(hv, mv)
    got = scalesim(16, 16, 1, 1, 24, 24, 1, rows, cols, dataflow, groups=2, memory=False)
    assert got["layers"] == 2
    one = scalesim(16, 16, 1, 1, 12, 12, 1, rows, cols, dataflow, memory=False)
    assert got["compute_cycles"] == 2 * one["compute_cycles"] == int(ev.layer_compute[0, 0])


def test_depthwise_is_per_channel_layers_each_with_their_own_last_cycle(scalesim):
    """The '- 1' of the closed form is paid once per channel: C * (folds * per_fold - 1)."""
    layer = conv(10, 10, 3, 12, 12, 1, depthwise=True)
    got = scalesim(rows=4, cols=4, dataflow="os", **layer)
    folds, per = 16 * 1, 9 + 4 + 4 - 2  # ceil(64/4) * ceil(1/4) folds of T + R + C - 2
    assert got["compute_cycles"] == 12 * (folds * per - 1) == 12 * 239
    assert got["layers"] == 12


def test_stalls_are_reported_apart_from_compute_cycles(scalesim):
    """Tiny SRAMs and a narrow DRAM interface stall the array; the compute cycles stay the closed form."""
    layer = conv(8, 8, 3, 4, 8, 1)
    got = scalesim(rows=4, cols=4, dataflow="ws", sram_kib=(1, 1, 1), bandwidth=1, **layer)
    assert got["stall_cycles"] > 0
    assert got["total_cycles"] == got["compute_cycles"] + got["stall_cycles"]
    assert got["compute_cycles"] == ours(layer, 4, 4, "ws")
    assert got["ifmap_dram_reads"] > 0 and got["ofmap_dram_writes"] > 0


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_zigzag_runs_each_dataflow(zigzag, dataflow):
    rows = cols = 32
    got = zigzag(rows=rows, cols=cols, dataflow=dataflow, **ISSUE)
    macs = 16 * 16 * 3 * 3 * 32 * 64
    assert got["macs"] == macs
    assert got["pinned"]  # the temporal order we gave is the one ZigZag evaluated
    assert got["energy_pj"] > 0 and got["mac_energy_pj"] > 0
    assert got["ideal_cycles"] == macs / (rows * cols)
    assert got["latency_cycles"] >= macs / (rows * cols)
    assert set(got["energy_per_level"]) == {"W", "I", "O"}
    assert got["energy_pj"] == pytest.approx(got["mac_energy_pj"] + sum(got["energy_per_memory"].values()))


def test_zigzag_depthwise_and_separate_buffers(zigzag):
    layer = conv(18, 18, 3, 16, 16, 1, depthwise=True)
    got = zigzag(rows=8, cols=8, dataflow="ws", gb_bits={"W": 2 ** 16, "I": 2 ** 20, "O": 2 ** 20},
                 gb_read_pj_per_bit={"W": 0.1, "I": 0.15, "O": 0.2}, gb_write_pj_per_bit=0.15, **layer)
    macs = 16 * 16 * 3 * 3 * 16
    assert got["macs"] == macs and got["energy_pj"] > 0
    assert got["latency_cycles"] >= macs / 64
    assert {"gb_W", "gb_I", "gb_O"} <= set(got["energy_per_memory"])


def test_missing_simulator_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "scalesim.scale_sim", None)  # makes the import fail
    with pytest.raises(AutonbaError, match=r"pip install autonba\[validate\]"):
        validate.scalesim_layer(18, 18, 3, 3, 32, 64, 1, 32, 32, "os")
