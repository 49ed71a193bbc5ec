import json

import pytest

from autonba.errors import AutonbaError
from autonba.hw.network import layers_from_arch
from autonba.hw.workload import Workload
from autonba.hw.zoo import WORKLOADS
from autonba.nas.arch import Arch
from autonba.nas.layout import REFERENCE_CIFAR, REFERENCE_IMAGENET, Layout, Stage
from autonba.nas.ops import OPS, OpSpec


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
            macs += size * size * cin * h // spec.groups + out * out * h * spec.kernel ** 2 + out * out * h * cout // spec.groups
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
