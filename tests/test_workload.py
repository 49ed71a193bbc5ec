import json
import math
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

import autonba.nas
from autonba.errors import AutonbaError
from autonba.hw.asic.tech import load_technology
from autonba.hw.platform import Platform, load_platform
from autonba.hw.templates import TEMPLATES
from autonba.hw.templates.result import FpgaResult
from autonba.hw.workload import Layer, Workload, output_range
from autonba.hw.zoo import WORKLOADS
from autonba.io import read_json
from autonba.nas.arch import Arch
from autonba.nas.layout import REFERENCE_CIFAR, REFERENCE_IMAGENET, Layout, Stage
from autonba.nas.ops import OPS, OpSpec
from autonba.nas.space import load_space
from autonba.nas.workload import layers_from_arch

NATIVE = {"in_ch": 4, "out_ch": 8, "in_h": 8, "in_w": 8, "out_h": 8, "out_w": 8, "kernel": 3}
GOLDEN = {"N": 4, "M": 8, "R": 8, "K": 3, "S": 1}


def test_golden_file_is_a_workload_at_top_level_or_under_network(golden, tmp_path):
    w1 = Workload.from_dict(golden)
    w2 = Workload.from_dict({"layers": golden["network"]["layers"]})
    assert len(w1.layers) == len(w2.layers) == 70
    dw = w1.layers[1]
    assert dw.depthwise and dw.in_ch == dw.out_ch == dw.groups == 96 and dw.chunk == "dwa0q6"


def test_native_round_trip(tmp_path):
    w = WORKLOADS.get("resnet18-cifar")(6)
    p = tmp_path / "w.json"
    p.write_text(json.dumps(w.to_dict()))
    assert Workload.from_json(p).layers == w.layers


@pytest.mark.parametrize("data,msg", [
    ({"nolayers": 1}, "'layers' list"),
    ({"layers": [{"N": 3, "M": 4, "R": 8}]}, "missing ['K']"),
    ({"layers": [{"N": 3, "M": 4, "R": 8, "K": 1.5}]}, "layers[0].K must be an integer"),
    ({"layers": [{"in_ch": 3}]}, "missing"),
    ({"layers": [{"in_ch": 4, "out_ch": 6, "in_h": 8, "in_w": 8, "out_h": 8, "out_w": 8, "kernel": 1,
                  "groups": 4}]}, "groups=4 must divide"),
    ({"layers": []}, "has no layers"),
])
def test_bad_workloads_give_clear_errors(data, msg):
    with pytest.raises(AutonbaError, match=None) as e:
        Workload.from_dict(data)
    assert msg in str(e.value)


def test_zoo_macs_match_the_literature():
    # MobileNetV2 (ImageNet) ~300M MACs, ResNet-18 ~1.82G, VGG-16 ~15.5G
    assert abs(WORKLOADS.get("mobilenetv2-imagenet")(8).macs / 1e6 - 300.8) < 1
    assert abs(WORKLOADS.get("resnet18")(8).macs / 1e9 - 1.814) < 0.01
    assert abs(WORKLOADS.get("vgg16")(8).macs / 1e9 - 15.47) < 0.01
    assert WORKLOADS.get("mobilenetv2-cifar")(4).layers[0].bits == 4


def _macs_by_hand(layout: Layout, ops: list[str]) -> int:
    """Independent MAC count of the block structure of the spec."""
    size = layout.input_size // layout.stem.stride
    macs = size * size * layout.stem.channels * layout.input_channels * layout.stem.kernel ** 2
    for (cin, cout, s), op in zip(layout.block_plan(), ops):
        spec = OPS.get(op)
        out = (size - 1) // s + 1
        if spec.skip:
            macs += 0 if (cin == cout and s == 1) else out * out * cin * cout
        else:
            h = cin * spec.expansion
            macs += (size * size * cin * h // spec.groups + out * out * h * spec.kernel ** 2
                     + out * out * h * cout // spec.groups)
        size = out
    head = size * size * layout.stages[-1].channels * layout.head_channels
    return macs + head + layout.head_channels * layout.num_classes


@pytest.mark.parametrize("op", OPS.names())
@pytest.mark.parametrize("layout", [REFERENCE_CIFAR, REFERENCE_IMAGENET])
def test_arch_workload_on_every_op(op, layout):
    ops = [op] * layout.num_blocks
    w = layers_from_arch(layout, ops, [6] * layout.num_blocks)
    assert w.macs == _macs_by_hand(layout, ops)
    assert w.layers[0].bits == 8 and w.layers[-1].bits == 8  # fixed-precision stem / classifier
    if op == "skip":  # identity blocks cost nothing; shape-changing ones are a 1x1 conv
        assert sum(1 for l in w.layers if l.name.endswith(".skip")) == len(
            [1 for cin, cout, s in layout.block_plan() if cin != cout or s != 1])
    else:
        spec = OPS.get(op)
        dws = [l for l in w.layers if l.name.endswith(".dw")]
        assert len(dws) == layout.num_blocks and all(l.kernel == spec.kernel for l in dws)
        assert [l.stride for l in dws] == [s for _, _, s in layout.block_plan()]
        assert all(l.groups == spec.groups for l in w.layers if l.name.endswith((".expand", ".project")))


def test_registering_an_operation_needs_no_edit_of_our_modules():
    OPS.register("k7_e2_test", OpSpec(kernel=7, expansion=2))
    layout = Layout(stages=[Stage(blocks=2, channels=8, stride=2)], stem={"channels": 4}, head_channels=16,
                    input_size=8)
    w = layers_from_arch(layout, ["k7_e2_test", "skip"], [4, 4])
    assert [l.kernel for l in w.layers if l.name.endswith(".dw")] == [7]


def test_arch_json_round_trip_and_errors(tmp_path):
    layout = Layout(stages=[Stage(blocks=2, channels=8)], head_channels=16)
    a = Arch(layout=layout, blocks=[{"op": "k3_e3", "bits": 4}, {"op": "skip", "bits": 8}])
    p = tmp_path / "arch.json"
    a.save(p)
    assert Arch.load(p).workload().macs == a.workload().macs
    p.write_text(json.dumps({"layout": layout.model_dump(), "blocks": [{"op": "k9", "bits": 4}]}))
    with pytest.raises(AutonbaError, match="2 searchable blocks"):
        Arch.load(p)


def test_the_golden_layer_cases_are_workloads(golden):
    for case in golden["layer_cases"]:
        Workload.from_dict({"layers": [case["layer"]]})


@pytest.mark.parametrize("name", [p.stem for p in (Path(autonba.nas.__file__).parent / "spaces").glob("*.yaml")])
def test_every_shipped_space_builds_valid_workloads(name):
    space = load_space(name)
    n = space.layout.num_blocks
    for op in space.ops:
        for bits in (min(space.bits), max(space.bits)):
            w = layers_from_arch(space.layout, [op] * n, [bits] * n)
            assert all(output_range(x.in_h, x.kernel, x.stride)[0] <= x.out_h for x in w.layers)


def test_output_range_is_what_pytorch_computes_with_padding_up_to_same():
    """The sizes conv1d gives for every total padding from none to 'same' (how it splits does not matter)."""
    for size in range(1, 11):
        for kernel in range(1, 10):
            for stride in (1, 2, 3):
                outs = {torch.nn.functional.conv1d(torch.zeros(1, 1, size + p), torch.zeros(1, 1, kernel),
                                                   stride=stride).shape[-1]
                        for p in range(2 * (kernel // 2) + 1) if size + p >= kernel}
                lo, hi = output_range(size, kernel, stride)
                assert outs == set(range(lo, hi + 1)), (size, kernel, stride)


@pytest.mark.parametrize("layer,msg", [
    ({**NATIVE, "out_h": 64, "out_w": 64, "stride": 2},
     "out_h=64 is not what a 3x3 convolution at stride 2 produces from in_h=8; allowed: out_h from 3 to 4"),
    ({**NATIVE, "in_h": 4, "in_w": 4, "kernel": 9, "out_h": 5, "out_w": 4},
     "out_h=5 is not what a 9x9 convolution at stride 1 produces from in_h=4; allowed: out_h from 1 to 4"),
    ({**NATIVE, "out_w": 9}, "allowed: out_w from 6 to 8"),
    ({**NATIVE, "in_ch": True}, "layers[0].in_ch must be an integer in 1..16777216, got True"),
    ({**NATIVE, "in_ch": 2 ** 24 + 1}, "layers[0].in_ch must be an integer in 1..16777216"),
    ({**NATIVE, "bits": 33}, "layers[0].bits must be an integer in 1..32"),
    ({**NATIVE, "name": 3}, "layers[0].name must be a non-empty string of printable characters, got 3"),
    ({**NATIVE, "name": "a\nb"}, "layers[0].name must be a non-empty string"),
    ({**NATIVE, "chunk": ["a0q8"]}, "layers[0].chunk must be a non-empty string of printable characters or null"),
    ({**GOLDEN, "depthwise": "yes"}, "layers[0].depthwise must be true or false, got 'yes'"),
    ({**GOLDEN, "depthwise": True}, "a depthwise layer has N=1 (or N=M=8), got N=4"),
    ({**GOLDEN, "S": False}, "layers[0].S must be an integer in 1..16777216, got False"),
])
def test_impossible_layers_give_one_clear_error(layer, msg):
    with pytest.raises(AutonbaError) as e:
        Workload.from_dict({"layers": [layer]})
    assert msg in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e999", "1" + "0" * 400])
@pytest.mark.parametrize("field", ["in_ch", "out_h", "kernel", "stride", "groups", "bits", "N", "R", "K", "S"])
def test_non_finite_and_huge_numbers_name_the_field(tmp_path, text, field):
    layer = dict(GOLDEN if field in GOLDEN or field == "S" else NATIVE)
    layer[field] = "@"
    p = tmp_path / "w.json"
    p.write_text(json.dumps({"layers": [NATIVE, layer]}).replace('"@"', text))
    with pytest.raises(AutonbaError, match=rf"layers\[1\]\.{field} must be an integer"):
        Workload.from_json(p)


@pytest.mark.parametrize("data,msg", [
    ({"name": 7, "layers": [NATIVE]}, "name must be a non-empty string of printable characters, got 7"),
    ({"name": float("nan"), "layers": [NATIVE]}, "got nan"),
])
def test_workload_names_are_strings(data, msg):
    with pytest.raises(AutonbaError, match=msg):
        Workload.from_dict(data)


def test_read_json_refuses_nesting_deeper_than_the_parser_goes(tmp_path):
    p = tmp_path / "w.json"
    p.write_text("[" * 100_000)
    with pytest.raises(AutonbaError, match="nests lists or objects too deeply"):
        read_json(p, "workload")


def test_chunks_for_some_layers_but_not_all_are_an_error():
    w = Workload("w", [Layer("a", 4, 8, 8, 8, 8, 8, 3, chunk="a0q8"), Layer("b", 8, 8, 8, 8, 8, 8, 3)])
    with pytest.raises(AutonbaError, match="layers b have no chunk while others have one"):
        TEMPLATES.get("fpga-chunk")(w, load_platform("zc706"))


# ---- design documents --------------------------------------------------------------------
@pytest.fixture(scope="module")
def chunk_tpl():
    return TEMPLATES.get("fpga-chunk")(Workload.from_dict({"layers": [NATIVE]}), load_platform("zc706"))


def _fpga_design(t, **factors):
    base = {f: 1 for f in t.space.factors}
    return {"chunks": {c: {**base, **factors} for c in t.chunk_names}}


def test_a_design_with_a_chunk_the_workload_lacks_lists_the_known_chunks(chunk_tpl):
    d = _fpga_design(chunk_tpl)
    d["chunks"]["a0q4"] = d["chunks"]["a1q8"]
    with pytest.raises(AutonbaError, match=r"unknown chunks \['a0q4'\]; the workload's chunks are a1q8"):
        chunk_tpl.space.parse([d])


@pytest.mark.parametrize("value", [math.nan, math.inf, 1e300, 10 ** 400, 2 ** 24 + 1, True, "8", [8], {"v": 8},
                                   None, 0, 2.5])
def test_bad_factor_values_give_one_clear_error(chunk_tpl, value):
    with pytest.raises(AutonbaError, match=r"Tmb=.* is not allowed; allowed: an integer from 1 to 16777216"):
        chunk_tpl.space.parse([_fpga_design(chunk_tpl, Tmb=value)])
    with pytest.raises(AutonbaError, match="--fix Tmb=.*: not allowed"):
        chunk_tpl.space.fix({"Tmb": value})


@pytest.mark.parametrize("value", [math.nan, math.inf, 10 ** 400, True, 2.5, [4]])
def test_bad_asic_factor_values_give_one_clear_error(value):
    t = TEMPLATES.get("asic-array")(Workload.from_dict({"layers": [NATIVE]}), load_technology("generic-45nm"))
    d = t.space.to_dicts(*t.space.values(torch.zeros((1, len(t.space.hw_factors)), dtype=torch.long),
                                         torch.zeros((1, 1, len(t.space.map_factors)), dtype=torch.long)))[0]
    for where in ("array", "layers"):
        bad = json.loads(json.dumps(d))
        (bad["array"] if where == "array" else bad["layers"]["L0"])["rows" if where == "array" else "tk"] = value
        with pytest.raises(AutonbaError, match="(rows|tk)=.* (must be an integer|is not allowed)"):
            t.space.parse([bad])
    d["layers"]["L9"] = d["layers"]["L0"]
    with pytest.raises(AutonbaError, match=r"unknown \['L9'\]; the workload's layers are L0"):
        t.space.parse([d])


# ---- results -------------------------------------------------------------------------------
def test_a_result_holds_no_non_finite_number(chunk_tpl):
    """A platform whose clock or bandwidth overflows the cost model: refused when loaded; built anyway
    (the safety net behind the bounds), null in JSON and n/a in the table."""
    extreme = dict(name="extreme", dsp=900, bram18k=1090, clock_mhz=1e308, dram_bytes_per_cycle=1e-320)
    with pytest.raises(ValidationError):
        Platform(**extreme)
    p = Platform.model_construct(**extreme)
    t = TEMPLATES.get("fpga-chunk")(Workload.from_dict({"layers": [NATIVE]}), p)
    r = FpgaResult.from_design(t, t.space.parse([_fpga_design(t)])[0], trace=[(1, math.inf)])
    d = r.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["fps"] is None and d["bottleneck_cycles"] is None and d["trace"] == [[1, None]]
    assert "n/a FPS (bottleneck n/a cycles)" in r.table()
    assert r.summary()["dsp"] == r.total_dsp
