import json

import pytest
import yaml

from autonba.cli import main


def run(args, capsys):
    rc = main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_search_writes_result_and_resolved_config(tmp_path, capsys):
    out = tmp_path / "r.json"
    rc, _, err = run(["accel", "search", "--network", "resnet18-cifar", "--platform", "ultra96", "--budget", "1500",
                      "--seed", "4", "--set", "engine_options.batch=128", "--out", str(out)], capsys)
    assert rc == 0 and "FPS" in err
    r = json.loads(out.read_text())
    for key in ("fps", "bottleneck_cycles", "feasible", "total_dsp", "total_bram", "chunks", "layers", "engine",
                "evaluations", "seconds", "design"):
        assert key in r
    assert r["engine"] == "das" and r["evaluations"] <= 1500 and r["feasible"]
    assert all({"design", "cycles", "dsp", "bram"} <= set(c) for c in r["chunks"].values())
    assert all({"chunk", "cycles"} <= set(l) for l in r["layers"])
    cfg = yaml.safe_load((tmp_path / "r.config.yaml").read_text())
    assert cfg["seed"] == 4 and cfg["engine_options"] == {"batch": 128} and cfg["platform"] == "ultra96"
    assert r["config"] == cfg


def test_eval_round_trips_a_search_result(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["accel", "search", "--network", "vgg16-cifar", "--engine", "random", "--budget", "500",
                 "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    design = tmp_path / "d.json"
    design.write_text(json.dumps(r["design"]))
    rc, stdout, _ = run(["accel", "eval", "--network", "vgg16-cifar", "--design", str(design)], capsys)
    assert rc == 0 and json.loads(stdout)["fps"] == pytest.approx(r["fps"])
    design.write_text(json.dumps({"designs": [r["design"], r["design"]]}))
    rc, stdout, _ = run(["accel", "eval", "--network", "vgg16-cifar", "--design", str(design)], capsys)
    assert rc == 0 and [x["fps"] for x in json.loads(stdout)["results"]] == pytest.approx([r["fps"]] * 2)


def test_eval_golden_design_from_config_file(tmp_path, golden, golden_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"accel": {"workload": {"file": str(golden_path)}, "template": "fpga-legacy"}}))
    case = golden["network"]["design_cases"][3]
    design = tmp_path / "d.json"
    design.write_text(json.dumps({"chunks": case["chunks"]}))  # with the two chunks no layer uses: refused
    rc, _, err = run(["accel", "eval", "-c", str(cfg), "--design", str(design)], capsys)
    assert rc == 2 and "unknown chunks ['a1q4', 'dwa1q4']" in err
    used = {k: v for k, v in case["chunks"].items() if k not in ("a1q4", "dwa1q4")}
    design.write_text(json.dumps({"chunks": used}))
    rc, stdout, _ = run(["accel", "eval", "-c", str(cfg), "--design", str(design)], capsys)
    assert rc == 0
    assert json.loads(stdout)["bottleneck_cycles"] == pytest.approx(case["expected"]["bottleneck_cycles"], rel=1e-9)


def test_search_fix_comp_mode_exact_on_golden(golden_path, capsys):
    rc, stdout, _ = run(["accel", "search", "--workload", str(golden_path), "--template", "fpga-legacy",
                         "--engine", "exact", "--fix", "comp_mode=1"], capsys)
    assert rc == 0 and json.loads(stdout)["fps"] == pytest.approx(176.8027694385805, rel=1e-9)


@pytest.mark.parametrize("args,msg", [
    (["--network", "nope"], "unknown network 'nope'; allowed:"),
    (["--network", "vgg16-cifar", "--engine", "x"], "unknown engine 'x'"),
    (["--network", "vgg16-cifar", "--template", "x"], "unknown template 'x'"),
    (["--network", "vgg16-cifar", "--platform", "x"], "unknown platform 'x'"),
    (["--workload", "/does/not/exist.json"], "workload file not found"),
    (["--network", "vgg16-cifar", "--set", "bogus=1"], "field 'bogus': unknown field"),
    (["--network", "vgg16-cifar", "--set", "budget=-1"], "field 'budget'"),
    (["--network", "vgg16-cifar", "--fix", "comp_mode=9"], "comp_mode=9: not allowed"),
    (["--network", "vgg16-cifar", "--set", "engine_options.nope=1"], "allowed options:"),
    ([], "give exactly one of workload.file"),
])
def test_bad_input_is_one_clear_line_and_exit_2(args, msg, capsys):
    rc, stdout, err = run(["accel", "search", *args], capsys)
    assert rc == 2 and stdout == ""
    assert err.startswith("autonba: error:") and msg in err and err.count("\n") == 1
    assert "Traceback" not in err


def test_malformed_inputs(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    rc, _, err = run(["accel", "search", "--workload", str(bad)], capsys)
    assert rc == 2 and "not valid JSON" in err
    yml = tmp_path / "bad.yaml"
    yml.write_text("a: [1, 2\n")
    rc, _, err = run(["accel", "search", "-c", str(yml)], capsys)
    assert rc == 2 and "not valid YAML" in err
    d = tmp_path / "d.json"
    d.write_text(json.dumps({"chunks": {"a0q8": {"comp_mode": 1, "Trb": 1, "Tcb": 1, "Tmb": 1, "Tnb": 1,
                                                  "Tr": 2, "Tc": 1, "Tm": 1, "Tn": 1}}}))
    rc, _, err = run(["accel", "eval", "--network", "vgg16-cifar", "--design", str(d)], capsys)
    assert rc == 2 and "Tr=2 exceeds Trb=1" in err


def test_infeasible_spec_is_reported(tmp_path, capsys):
    p = tmp_path / "tiny.yaml"
    p.write_text("name: tiny\ndsp: 1\nbram18k: 1\nclock_mhz: 100\n")
    rc, _, err = run(["accel", "search", "--network", "vgg16-cifar", "--platform", str(p), "--engine", "exact"],
                     capsys)
    assert rc == 2 and "fits the budgets of tiny (1 DSP, 1 BRAM18K)" in err


def test_list(capsys):
    rc, stdout, _ = run(["accel", "list"], capsys)
    assert rc == 0 and "fpga-chunk" in stdout and "zc706" in stdout and "das" in stdout


def test_search_on_a_derived_arch(tmp_path, capsys):
    from autonba.nas.space import load_space
    from autonba.nas.supernet import Supernet
    arch = Supernet(load_space("small")).derive()
    p = tmp_path / "arch.json"
    arch.save(p)
    rc, stdout, _ = run(["accel", "search", "--arch", str(p), "--platform", "ultra96", "--budget", "1000"], capsys)
    r = json.loads(stdout)
    assert rc == 0 and r["feasible"] and r["workload"] == "arch"
    names = [l["name"] for l in r["layers"]]
    assert names[0] == "stem" and names[-1] == "classifier" and any(n.startswith("block5.") for n in names)
    p.write_text("{}")
    rc, _, err = run(["accel", "search", "--arch", str(p)], capsys)
    assert rc == 2 and "field 'layout'" in err
