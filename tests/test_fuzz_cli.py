"""Fuzzing the accelerator commands with malformed documents: workloads, designs, platforms and
technologies, random or mutated from valid ones, fed to ``autonba accel eval|search`` in-process.

Every run must end with code 0 and strict JSON holding only finite numbers, or code 2 and exactly
one ``autonba: error:`` line on stderr; anything else (a traceback) fails the test."""
import contextlib
import copy
import io
import json
import math
import tempfile
import traceback
from pathlib import Path

import torch
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import autonba.hw
from autonba.cli import main
from autonba.hw.asic.tech import load_technology
from autonba.hw.platform import load_platform
from autonba.hw.templates import TEMPLATES
from autonba.hw.workload import Workload

HW = Path(autonba.hw.__file__).parent
DEFAULT_PLATFORM = {"fpga-chunk": "zc706", "fpga-legacy": "zc706-legacy"}

# reproducible (derandomized), and a failure reports its inputs unshrunk: shrinking 100 kB inputs takes minutes
FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TEMPLATE_NAMES = ("fpga-chunk", "fpga-legacy", "asic-array")

WORKLOADS = [
    {"name": "tiny", "layers": [
        {"name": "c1", "in_ch": 3, "out_ch": 8, "in_h": 8, "in_w": 8, "out_h": 8, "out_w": 8, "kernel": 3},
        {"name": "dw", "in_ch": 8, "out_ch": 8, "in_h": 8, "in_w": 8, "out_h": 4, "out_w": 4, "kernel": 3,
         "stride": 2, "groups": 8, "bits": 4},
        {"name": "fc", "in_ch": 128, "out_ch": 10, "in_h": 1, "in_w": 1, "out_h": 1, "out_w": 1, "kernel": 1}]},
    {"network": {"layers": [  # golden format
        {"N": 3, "M": 16, "R": 16, "K": 3, "S": 1, "depthwise": False, "bits": 6},
        {"N": 1, "M": 16, "R": 8, "K": 3, "S": 2, "depthwise": True, "bits": 6},
        {"N": 16, "M": 8, "R": 8, "K": 1, "S": 1, "depthwise": False, "bits": 8}]}},
]


def _valid_design(template: str, workload: dict) -> dict:
    """The design of every factor's smallest value (constraints hold), as a design file holds it."""
    t = TEMPLATES.get(template)(Workload.from_dict(workload), load_technology("generic-45nm")
                                if template == "asic-array" else load_platform(DEFAULT_PLATFORM[template]))
    if template == "asic-array":
        sp = t.space
        hw = torch.zeros((1, len(sp.hw_factors)), dtype=torch.long)
        maps = torch.zeros((1, sp.num_layers, len(sp.map_factors)), dtype=torch.long)
        return sp.to_dicts(*sp.values(hw, maps))[0]
    vals = t.space.table.nan_to_num(float("inf")).min(-1).values.unsqueeze(0)
    return {"chunks": t.space.to_dicts(vals)[0]}


DESIGNS = {(t, i): _valid_design(t, w) for t in TEMPLATE_NAMES for i, w in enumerate(WORKLOADS)}
PLATFORM_DOCS = [yaml.safe_load(p.read_text()) for p in sorted((HW / "platforms").glob("*.yaml"))]
TECH_DOCS = [yaml.safe_load(p.read_text()) for p in sorted((HW / "asic" / "techs").glob("*.yaml"))]

# ---- strategies ---------------------------------------------------------------------------
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # what str.splitlines splits on
EXTREMES = [math.nan, math.inf, -math.inf, 0, 0.0, -0.0, -1, 0.5, 1.5, 1e-320, 1e-300, 1e300, 1.7e308, -1e308,
            2 ** 24, 2 ** 24 + 1, 2 ** 31, 2 ** 63, 10 ** 30, 10 ** 400, -(10 ** 400), True, False, None]
STRINGS = ["", "x", "NaN", "Infinity", "1e999", "8", "a0q8", "dwa1q4", "c1", "os", "kcy", "shared", "\u00e9\u0000",
           "a\nb", "\u2028"]


class Values:
    """What mutations put in a document: ``junk`` of any kind, or ``near(value)``, of ``value``'s kind
    (often valid, at the edges of what is valid, or just past them). Each flag set to False leaves a
    kind out: line breaks in strings and keys, integers beyond the float range, numbers of magnitude
    outside 1e-6..1e6 (``bounded``)."""

    def __init__(self, line_breaks: bool = True, huge_ints: bool = True, bounded: bool = False):
        def kept(x):
            if isinstance(x, bool) or not isinstance(x, (int, float)) or x == 0:
                return True
            if isinstance(x, int) and abs(x) > 2 ** 1000:
                return huge_ints and not bounded
            return not bounded or 1e-6 <= abs(x) <= 1e6

        self.text = st.text(max_size=8) if line_breaks else st.text(st.characters(exclude_characters=LINE_BREAKS),
                                                                    max_size=8)
        self.strings = st.sampled_from([x for x in STRINGS if line_breaks or not set(x) & set(LINE_BREAKS)])
        floats = st.floats(-1e6, 1e6) if bounded else st.floats()
        scalars = st.one_of(st.sampled_from(list(filter(kept, EXTREMES))), st.integers(-3, 70), floats,
                            self.strings, self.text)
        self.junk = st.recursive(scalars, lambda kids: st.lists(kids, max_size=3)
                                 | st.dictionaries(self.text, kids, max_size=3), max_leaves=8)
        edges = [1e-6, 1e6, 2 ** 24, 2 ** 24 + 1, 10 ** 9, 10 ** 400, 1e-320, 1e-300, 1e-9, 1e9, 1e300, 1.7e308]
        self.numbers = (st.integers(1, 64) | st.sampled_from(list(filter(kept, edges)))
                        | st.floats(1e-6 if bounded else 0, 1e6))

    def near(self, value):
        if isinstance(value, bool):
            return st.booleans()
        if isinstance(value, (int, float)):
            return self.numbers
        if isinstance(value, str):
            return self.strings | st.just(value + "x")
        return self.junk


ANY = Values()


def _deep(depth: int) -> object:
    x: object = 1
    for i in range(depth):
        x = [x] if i % 2 else {"a": x}
    return x


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


def _get(doc, path):
    for p in path:
        doc = doc[p]
    return doc


@st.composite
def mutated(draw, docs, values=ANY):
    """A deep copy of one of ``docs`` with one or two mutations: a value replaced by one of its kind
    (``near``) or by junk, a key or list item dropped, a key added, a value wrapped in a list, an item
    duplicated, deep nesting."""
    doc = copy.deepcopy(draw(st.sampled_from(docs)))
    for _ in range(draw(st.integers(1, 2))):
        path = draw(st.sampled_from(list(_paths(doc))))
        op = draw(st.sampled_from(["near", "near", "near", "replace", "drop", "add", "wrap", "duplicate", "deep"]))
        if not path:
            if op in ("replace", "wrap", "deep"):  # of the whole document
                doc = draw(values.junk) if op == "replace" else [doc] if op == "wrap" else _deep(60)
            continue
        parent, key = _get(doc, path[:-1]), path[-1]
        if op == "near":
            parent[key] = draw(values.near(parent[key]))
        elif op == "replace":
            parent[key] = draw(values.junk)
        elif op == "drop":
            del parent[key]
        elif op == "add" and isinstance(parent[key], dict):
            parent[key][draw(values.text)] = draw(values.junk)
        elif op == "wrap":
            parent[key] = [parent[key]]
        elif op == "duplicate" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        elif op == "deep":
            parent[key] = _deep(draw(st.integers(5, 80)))
    return doc


RAW = [b"", b"\xff\xfe\x00garbage\x80", b"null", b"[]", b"{\"layers\": [NaN]}", b"\xef\xbb\xbf{}"]
DEEP = [b"[" * 100_000, b"{" * 50_000, b'{"a": ' * 50_000]  # deeper than any recursive parser goes
RAW_JSON = st.sampled_from(RAW + DEEP) | st.binary(max_size=40)
RAW_YAML = RAW_JSON


def _json_bytes(doc) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


def _yaml_bytes(doc) -> bytes:
    return yaml.safe_dump(doc, allow_unicode=True).encode()


# ---- running the CLI ----------------------------------------------------------------------
def _reject_constant(name: str):
    raise ValueError(f"non-strict JSON constant {name}")


def _finite(x, where="$"):
    if isinstance(x, float):
        assert math.isfinite(x), f"non-finite number at {where}"
    elif isinstance(x, dict):
        for k, v in x.items():
            _finite(v, f"{where}.{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            _finite(v, f"{where}[{i}]")


def check_cli(args: list[str], files: dict[str, bytes], to_file: bool) -> int:
    """Run ``autonba <args>`` with ``files`` (name -> bytes; a file's name in args becomes its path) and
    check the contract; returns the exit code."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for name, data in files.items():
            (d / name).write_bytes(data)
        argv = [str(d / a) if a in files else a for a in args]
        out = d / "out" / "result.json"
        if to_file:
            argv += ["--out", str(out)]
        stdout, stderr = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                rc = main(argv)
        except SystemExit as e:  # argparse
            return int(e.code or 0)
        except Exception:  # noqa: BLE001  (any other escape is the bug being hunted)
            raise AssertionError(f"autonba {' '.join(args)} raised:\n{traceback.format_exc()}\n"
                                 f"inputs: { {n: b[:500] for n, b in files.items()} }") from None
        err = stderr.getvalue()
        assert rc in (0, 2), (rc, err)
        if rc == 2:
            lines = [line for line in err.splitlines() if line.startswith("autonba: error:")]
            assert len(lines) == 1 and err.strip().splitlines()[-1] == lines[0], err
        else:
            text = out.read_text() if to_file else stdout.getvalue()
            _finite(json.loads(text, parse_constant=_reject_constant))
        return rc


def _accel(action: str, template: str, extra: list[str]) -> list[str]:
    args = ["accel", action, "--template", template]
    if action == "search":
        args += ["--engine", "random", "--budget", "64", "--set", "engine_options.batch=64"]
    return args + extra


# ---- the fuzz tests ------------------------------------------------------------------------
@FUZZ
@given(doc=mutated(WORKLOADS), template=st.sampled_from(TEMPLATE_NAMES),
       action=st.sampled_from(["eval", "search"]), index=st.integers(0, len(WORKLOADS) - 1), to_file=st.booleans())
def test_workload_documents(doc, template, action, index, to_file):
    files = {"w.json": _json_bytes(doc), "d.json": _json_bytes(DESIGNS[template, index])}
    extra = ["--workload", "w.json"] + (["--design", "d.json"] if action == "eval" else [])
    check_cli(_accel(action, template, extra), files, to_file)


@FUZZ
@given(data=st.data(), template=st.sampled_from(TEMPLATE_NAMES), index=st.integers(0, len(WORKLOADS) - 1),
       many=st.booleans(), to_file=st.booleans())
def test_design_documents(data, template, index, many, to_file):
    design = data.draw(mutated([DESIGNS[template, index]]))
    doc = {"designs": [DESIGNS[template, index], design]} if many else design
    files = {"w.json": _json_bytes(WORKLOADS[index]), "d.json": _json_bytes(doc)}
    check_cli(_accel("eval", template, ["--workload", "w.json", "--design", "d.json"]), files, to_file)


@FUZZ
@given(doc=mutated(PLATFORM_DOCS), template=st.sampled_from(TEMPLATE_NAMES[:2]),
       action=st.sampled_from(["eval", "search"]), to_file=st.booleans())
def test_platform_documents(doc, template, action, to_file):
    files = {"w.json": _json_bytes(WORKLOADS[0]), "d.json": _json_bytes(DESIGNS[template, 0]),
             "p.yaml": _yaml_bytes(doc)}
    extra = ["--workload", "w.json", "--platform", "p.yaml"] + (["--design", "d.json"] if action == "eval" else [])
    check_cli(_accel(action, template, extra), files, to_file)


@FUZZ
@given(doc=mutated(TECH_DOCS), action=st.sampled_from(["eval", "search"]), to_file=st.booleans())
def test_technology_documents(doc, action, to_file):
    files = {"w.json": _json_bytes(WORKLOADS[0]), "d.json": _json_bytes(DESIGNS["asic-array", 0]),
             "t.yaml": _yaml_bytes(doc)}
    extra = ["--workload", "w.json", "--platform", "t.yaml"] + (["--design", "d.json"] if action == "eval" else [])
    check_cli(_accel(action, "asic-array", extra), files, to_file)


@settings(FUZZ, max_examples=60)
@given(data=st.data(), which=st.sampled_from(["w.json", "d.json", "p.yaml", "t.yaml"]),
       template=st.sampled_from(TEMPLATE_NAMES))
def test_raw_bytes(data, which, template):
    """Empty files, non-UTF-8 bytes, random bytes, nesting deeper than any parser recurses."""
    raw = data.draw(RAW_YAML if which.endswith(".yaml") else RAW_JSON)
    if which == "t.yaml":
        template = "asic-array"
    elif which == "p.yaml" and template == "asic-array":
        template = "fpga-chunk"
    files = {"w.json": _json_bytes(WORKLOADS[0]), "d.json": _json_bytes(DESIGNS[template, 0]), which: raw}
    extra = ["--workload", "w.json", "--design", "d.json"]
    if which in ("p.yaml", "t.yaml"):
        extra += ["--platform", which]
    assert check_cli(_accel("eval", template, extra), files, False) == 2


@settings(FUZZ, max_examples=60)
@given(value=ANY.junk | ANY.numbers, template=st.sampled_from(TEMPLATE_NAMES),
       factor=st.sampled_from(["comp_mode", "Tm", "Tnb", "rows", "gb_split", "order", "dataflow", "zz"]))
def test_fix_values(value, template, factor):
    text = value if isinstance(value, str) else json.dumps(value)
    check_cli(_accel("search", template, ["--workload", "w.json", "--fix", f"{factor}={text}"]),
              {"w.json": _json_bytes(WORKLOADS[0])}, False)


def test_the_valid_documents_pass():
    """The unmutated documents the fuzzer starts from evaluate and search cleanly."""
    for (template, index), design in DESIGNS.items():
        files = {"w.json": _json_bytes(WORKLOADS[index]), "d.json": _json_bytes(design)}
        assert check_cli(_accel("eval", template, ["--workload", "w.json", "--design", "d.json"]), files, True) == 0
        assert check_cli(_accel("search", template, ["--workload", "w.json"]), files, False) == 0
