"""The asic-array cost model against SCALE-Sim and ZigZag, layer by layer.

For each selected convolution (ResNet18-CIFAR and MobileNetV2-CIFAR at 8 bits: 3x3 and 1x1, stride
1 and 2, depthwise, a linear layer), each dataflow (os, ws, is) and each array shape:

- ours: ``AsicArray`` on a one-layer workload, one design: the given array, the smallest register
  file, one shared global buffer big enough for the whole layer (1 MiB, or the next power of two
  that holds the double-buffered full tiles), full tiles (tk = K, tc = Cin, toy = OY) so that every
  operand crosses the DRAM interface once (DRAM traffic = compulsory traffic, checked);
- SCALE-Sim (array model only, ``memory=False``: no stalls with its large SRAMs and computed
  bandwidth) on the padded input that gives our output size: compute cycles, which must equal ours;
- ZigZag on a hardware description built from the same technology numbers (MAC, register file,
  global buffer and DRAM energy per bit, DRAM bits per cycle), the same array and a spatial
  unrolling and loop order pinned to the dataflow; padding is declared so that it fetches the same
  input rows/cols as ours.

Writes ``results.json``, ``results.md`` (per-case table and per-dataflow summary: geometric mean,
min and max of ours/ZigZag for latency, energy total, energy without our array-hop term, MAC, RF,
GB, DRAM; compute-cycle equality with SCALE-Sim) and ``explanations.md`` (systematic differences,
with the figures that check each mechanism) to the output folder.

Usage: OMP_NUM_THREADS=1 python benchmarks/asic_validation.py [--out runs/bench/asic_validation]
           [--arrays 16x16 32x8] [--dataflows os ws is] [--layers NAME ...] [--scalesim-full N]
Needs the optional simulators (``pip install autonba[validate]``).
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from autonba.hw.asic import validate
from autonba.hw.asic.array import LEVELS, AsicArray
from autonba.hw.asic.space import DATAFLOWS, GB_SPLITS
from autonba.hw.asic.tech import Technology, load_technology
from autonba.hw.workload import Layer, Workload
from autonba.hw.zoo import WORKLOADS

# (network, layer name): what each one exercises
LAYERS = [
    ("resnet18-cifar", "stem"),              # 3x3 s1, 3 input channels (a short reduction)
    ("resnet18-cifar", "s0b0.conv1"),        # 3x3 s1, 64 -> 64, 32x32
    ("resnet18-cifar", "s1b0.conv1"),        # 3x3 s2, 64 -> 128, 32 -> 16
    ("resnet18-cifar", "s1b0.downsample"),   # 1x1 s2
    ("resnet18-cifar", "s2b0.conv2"),        # 3x3 s1, 256 -> 256, 8x8
    ("resnet18-cifar", "s3b1.conv2"),        # 3x3 s1, 512 -> 512, 4x4 (2.4 MB of weights)
    ("resnet18-cifar", "fc"),                # linear layer: 1x1 on a 1x1 map
    ("mobilenetv2-cifar", "s1b0.expand"),    # 1x1, 16 -> 96, 32x32
    ("mobilenetv2-cifar", "s1b0.dw"),        # depthwise 3x3 s1, 96 channels, 32x32
    ("mobilenetv2-cifar", "s2b0.dw"),        # depthwise 3x3 s2, 144 channels, 32 -> 16
    ("mobilenetv2-cifar", "s2b0.project"),   # 1x1, 144 -> 32, 16x16
    ("mobilenetv2-cifar", "s4b0.expand"),    # 1x1, 64 -> 384, 8x8
    ("mobilenetv2-cifar", "s5b1.project"),   # 1x1, 960 -> 160, 4x4 (weight traffic heavy)
    ("mobilenetv2-cifar", "head"),           # 1x1, 320 -> 1280, 4x4
]
TECH = "generic-45nm"
BITS = 8
ACC_BITS = 32
GB_MIN_KIB = 1024
PARTS = ("mac", "rf", "gb", "dram")
RATIOS = ("latency", "energy", "energy_no_hop", "mac", "rf", "gb", "dram")


def pick_layers(names: list[str] | None) -> list[tuple[str, Layer]]:
    out = []
    for net, name in LAYERS:
        if names and name not in names and f"{net}/{name}" not in names:
            continue
        layer = next(x for x in WORKLOADS.get(net)(BITS).layers if x.name == name)
        out.append((f"{net}/{name}", layer))
    return out


def padded_input(layer: Layer) -> tuple[int, int]:
    """The smallest input SCALE-Sim and ZigZag turn into our output size: (O - 1) * S + F per side
    (SCALE-Sim's output is ceil((H - F) / S) + 1 of the input it is given)."""
    h = (layer.out_h - 1) * layer.stride + layer.kernel
    w = (layer.out_w - 1) * layer.stride + layer.kernel
    assert validate.output_size(h, layer.kernel, layer.stride) == layer.out_h
    assert validate.output_size(w, layer.kernel, layer.stride) == layer.out_w
    return h, w


def template(layer: Layer, tech: Technology, rows: int, cols: int, gb_kib: int, rf_bytes: int) -> AsicArray:
    return AsicArray(Workload("one", [layer]), tech, rows=[rows], cols=[cols], rf_bytes=[rf_bytes],
                     gb_kib=[gb_kib], pe_bits=BITS, acc_bits=ACC_BITS)


def full_tiles(layer: Layer) -> tuple[int, int, int]:
    return layer.out_ch, 1 if layer.depthwise else layer.in_ch, layer.out_h


def gb_kib_for(layer: Layer, tech: Technology, rf_bytes: int) -> int:
    """1 MiB, or the next power of two holding the full tiles of every operand, double-buffered."""
    t = template(layer, tech, 16, 16, GB_MIN_KIB, rf_bytes)
    tiles = [torch.tensor([[float(v)]], dtype=torch.float64) for v in full_tiles(layer)]
    kib = float(t.footprint(*tiles).sum()) / 8192
    return max(GB_MIN_KIB, 2 ** math.ceil(math.log2(kib)))


def ours(layer: Layer, tech: Technology, rows: int, cols: int, df: str, gb_kib: int, rf_bytes: int) -> dict:
    t = template(layer, tech, rows, cols, gb_kib, rf_bytes)
    sp = t.space
    hv = {"rows": rows, "cols": cols, "rf_bytes": rf_bytes, "gb_kib": gb_kib,
          "gb_split": GB_SPLITS.index("shared"), "dataflow": DATAFLOWS.index(df)}
    tk, tc, toy = full_tiles(layer)
    mv = {"tk": tk, "tc": tc, "toy": toy, "order": 0}  # one tile per loop: any order fetches once
    hw = torch.tensor([[float(hv[f]) for f in sp.hw_factors]], dtype=torch.float64)
    maps = torch.tensor([[[float(mv[f]) for f in sp.map_factors]]], dtype=torch.float64)
    ev = t.evaluate(hw, maps)
    levels = {n: float(ev.energy_levels[0, i]) for i, n in enumerate(LEVELS)}
    dram_bits, compulsory = float(ev.layer_dram_bits[0, 0]), float(t.compulsory_bits()[0])
    assert bool(ev.fits[0]), f"{layer.name}: full tiles do not fit {gb_kib} KiB"
    assert dram_bits == compulsory, f"{layer.name}: DRAM traffic {dram_bits} != compulsory {compulsory}"
    assert ev.tiles[0, 0].tolist() == [float(tk), float(tc), float(toy)], "tiles were legalised"
    return {"latency": float(ev.latency[0]), "compute_cycles": float(ev.layer_compute[0, 0]),
            "dram_cycles": float(t.dram_cycles(torch.tensor(dram_bits))), "dram_bits": dram_bits,
            "utilisation": float(ev.layer_utilisation[0, 0]), "energy": float(ev.energy[0]),
            "energy_levels": levels, "energy_no_hop": float(ev.energy[0]) - levels["hop"]}


def scalesim(layer: Layer, rows: int, cols: int, df: str, memory: bool) -> dict:
    h, w = padded_input(layer)
    with warnings.catch_warnings():  # SCALE-Sim 3.0.0 converts 1-element arrays to int (NumPy 2.x)
        warnings.simplefilter("ignore", DeprecationWarning)
        r = validate.scalesim_layer(h, w, layer.kernel, layer.kernel, layer.in_ch, layer.out_ch, layer.stride,
                                    rows, cols, df, depthwise=layer.depthwise, memory=memory)
    assert r["ofmap"] == (layer.out_h, layer.out_w)
    return r


def zigzag(layer: Layer, tech: Technology, rows: int, cols: int, df: str, gb_kib: int, rf_bytes: int,
           t: AsicArray) -> dict:
    h, w = padded_input(layer)
    lay = t.lay
    pad = (h - int(lay.in_rows[0]), w - int(lay.in_cols[0]))  # rows/cols we do not fetch
    e_rf = float(tech.rf_pj_per_bit(torch.tensor(float(rf_bytes))))
    e_gb = float(tech.gb_pj_per_bit(torch.tensor(float(gb_kib))))
    r = validate.zigzag_layer(
        h, w, layer.kernel, layer.kernel, layer.in_ch, layer.out_ch, layer.stride, rows, cols, df,
        depthwise=layer.depthwise, weight_bits=layer.bits, act_bits=layer.bits, psum_bits=ACC_BITS,
        mac_pj=float(tech.mac_pj(torch.tensor(float(layer.bits)), torch.tensor(float(layer.bits)))),
        rf_read_pj_per_bit=e_rf, rf_write_pj_per_bit=e_rf,
        gb_bits=gb_kib * 8192, gb_read_pj_per_bit=e_gb, gb_write_pj_per_bit=e_gb,
        gb_bandwidth=rows * cols * ACC_BITS,  # our model has no buffer-port limit: a word per PE per cycle
        dram_pj_per_bit=tech.energy.dram_pj_per_bit, dram_bandwidth=int(tech.dram_bytes_per_cycle * 8),
        padding=pad)
    mem = r["energy_per_memory"]
    levels = {"mac": r["mac_energy_pj"], "rf": sum(v for k, v in mem.items() if k.startswith("rf_")),
              "gb": sum(v for k, v in mem.items() if k.startswith("gb")), "dram": mem.get("dram", 0.0)}
    keep = ("energy_pj", "latency_cycles", "latency_compute_cycles", "stall_cycles", "onloading_cycles",
            "offloading_cycles", "drain_cycles", "ideal_cycles", "ideal_temporal_cycles", "mac_utilisation",
            "spatial_mapping", "temporal_mapping", "pinned", "energy_per_level", "accesses")
    return {"energy_levels": levels, "padding": pad, **{k: r[k] for k in keep}}


def ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def run_case(name: str, layer: Layer, tech: Technology, rows: int, cols: int, df: str, rf_bytes: int,
             scalesim_memory: bool) -> dict:
    gb_kib = gb_kib_for(layer, tech, rf_bytes)
    t0 = time.perf_counter()
    o = ours(layer, tech, rows, cols, df, gb_kib, rf_bytes)
    t1 = time.perf_counter()
    ss = scalesim(layer, rows, cols, df, scalesim_memory)
    t2 = time.perf_counter()
    zz = zigzag(layer, tech, rows, cols, df, gb_kib, rf_bytes, template(layer, tech, rows, cols, gb_kib, rf_bytes))
    t3 = time.perf_counter()
    ol, zl = o["energy_levels"], zz["energy_levels"]
    ratios = {"latency": ratio(o["latency"], zz["latency_cycles"]),
              "energy": ratio(o["energy"], zz["energy_pj"]),
              "energy_no_hop": ratio(o["energy_no_hop"], zz["energy_pj"]),
              **{p: ratio(ol[p], zl[p]) for p in PARTS},
              "compute_vs_scalesim": ratio(o["compute_cycles"], ss["compute_cycles"])}
    return {"layer": name, "dims": layer.to_dict(), "rows": rows, "cols": cols, "dataflow": df,
            "depthwise": layer.depthwise, "gb_kib": gb_kib, "rf_bytes": rf_bytes, "macs": layer.macs,
            "ours": o, "scalesim": {k: v for k, v in ss.items()}, "zigzag": zz,
            "compute_equal": int(o["compute_cycles"]) == ss["compute_cycles"], "ratios": ratios,
            "seconds": {"ours": t1 - t0, "scalesim": t2 - t1, "zigzag": t3 - t2}}


def summarise(cases: list[dict]) -> list[dict]:
    groups: dict[str, list[dict]] = {}
    for c in cases:
        kind = "depthwise" if c["depthwise"] else "standard"
        for key in (f"{c['dataflow']} {kind}", f"{c['dataflow']} all", f"all {kind}", "all all"):
            groups.setdefault(key, []).append(c)
    order = [f"{d} {k}" for d in (*DATAFLOWS, "all") for k in ("standard", "depthwise", "all")]
    out = []
    for key in order:
        cs = groups.get(key)
        if not cs:
            continue
        row: dict[str, Any] = {"dataflow": key.split()[0], "layers": key.split()[1], "cases": len(cs),
                               "compute_equal": sum(c["compute_equal"] for c in cs)}
        for r in RATIOS:
            vals = [c["ratios"][r] for c in cs if c["ratios"][r]]
            row[r] = {"geomean": math.exp(sum(map(math.log, vals)) / len(vals)) if vals else None,
                      "min": min(vals) if vals else None, "max": max(vals) if vals else None}
        out.append(row)
    return out


def _f(x: float | None, nd: int = 3) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def markdown(cases: list[dict], summary: list[dict], meta: dict) -> str:
    lines = ["# asic-array vs SCALE-Sim and ZigZag", "",
             f"Command: `{meta['command']}`  ", f"Wall time: {meta['wall_s']:.0f} s on {meta['machine']}  ",
             f"Technology {TECH}, {BITS}-bit operands, {ACC_BITS}-bit partial sums, register file "
             f"{meta['rf_bytes']} B, one shared global buffer (KiB per case), full tiles (compulsory DRAM "
             "traffic). Ratios are ours / ZigZag (compute cycles: ours / SCALE-Sim). "
             "`energy -hop`: our energy without the array-hop term (ZigZag has no interconnect energy).", "",
             "## Summary (geometric mean [min, max] of ours / ZigZag)", "",
             "| dataflow | layers | cases | compute = SCALE-Sim | " + " | ".join(
                 {"energy_no_hop": "energy -hop"}.get(r, r) for r in RATIOS) + " |",
             "|---|---|---|---|" + "---|" * len(RATIOS)]
    for s in summary:
        cells = [f"{_f(s[r]['geomean'])} [{_f(s[r]['min'], 2)}, {_f(s[r]['max'], 2)}]" for r in RATIOS]
        lines.append(f"| {s['dataflow']} | {s['layers']} | {s['cases']} | {s['compute_equal']}/{s['cases']} | "
                     + " | ".join(cells) + " |")
    lines += ["", "## Per case", "",
              "| layer | array | df | MACs | GB KiB | compute ours | SCALE-Sim | lat ours | lat ZigZag | lat | "
              "energy ours (uJ) | ZigZag (uJ) | energy | -hop | MAC | RF | GB | DRAM | hop share |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in cases:
        o, z, r = c["ours"], c["zigzag"], c["ratios"]
        lines.append(
            f"| {c['layer']} | {c['rows']}x{c['cols']} | {c['dataflow']} | {c['macs']} | {c['gb_kib']} | "
            f"{int(o['compute_cycles'])} | {c['scalesim']['compute_cycles']}{'' if c['compute_equal'] else ' (!)'} | "
            f"{int(o['latency'])} | {int(z['latency_cycles'])} | {_f(r['latency'])} | "
            f"{o['energy'] / 1e6:.2f} | {z['energy_pj'] / 1e6:.2f} | {_f(r['energy'])} | {_f(r['energy_no_hop'])} | "
            f"{_f(r['mac'])} | {_f(r['rf'])} | {_f(r['gb'])} | {_f(r['dram'])} | "
            f"{o['energy_levels']['hop'] / o['energy']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/bench/asic_validation")
    ap.add_argument("--arrays", nargs="+", default=["16x16", "32x8"], help="rows x cols")
    ap.add_argument("--dataflows", nargs="+", default=list(DATAFLOWS), choices=DATAFLOWS)
    ap.add_argument("--layers", nargs="*", help="layer names (default: all listed in LAYERS)")
    ap.add_argument("--rf-bytes", type=int, default=None, help="register file (default: the template's smallest)")
    ap.add_argument("--scalesim-full", type=int, default=4, metavar="N",
                    help="also run SCALE-Sim's full memory simulation on the N cheapest cases and check it "
                         "reports the same compute cycles and no stalls")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    tech = load_technology(TECH)
    rf_bytes = args.rf_bytes or min(AsicArray.Options().rf_bytes)
    arrays = [tuple(int(v) for v in a.lower().split("x")) for a in args.arrays]
    layers = pick_layers(args.layers)
    cases = []
    for name, layer in layers:
        for rows, cols in arrays:
            for df in args.dataflows:
                c = run_case(name, layer, tech, rows, cols, df, rf_bytes, scalesim_memory=False)
                cases.append(c)
                r = c["ratios"]
                print(f"{name:32s} {rows:3d}x{cols:<3d} {df}  compute {'==' if c['compute_equal'] else '!='} "
                      f"SCALE-Sim  lat {_f(r['latency'])}  energy {_f(r['energy'])} (-hop {_f(r['energy_no_hop'])})"
                      f"  [{sum(c['seconds'].values()):.1f} s]", flush=True)
    # the array-model shortcut against SCALE-Sim's full memory simulation on the cheapest cases
    full_checks = []
    for c in sorted(cases, key=lambda c: c["ours"]["compute_cycles"])[:args.scalesim_full]:
        layer = next(lay for n, lay in layers if n == c["layer"])
        full = scalesim(layer, c["rows"], c["cols"], c["dataflow"], memory=True)
        ok = full["compute_cycles"] == c["scalesim"]["compute_cycles"] and full["stall_cycles"] == 0
        full_checks.append({"layer": c["layer"], "array": f"{c['rows']}x{c['cols']}", "dataflow": c["dataflow"],
                            "full_compute_cycles": full["compute_cycles"], "stall_cycles": full["stall_cycles"],
                            "array_model_cycles": c["scalesim"]["compute_cycles"], "same": ok})
        print(f"SCALE-Sim full memory simulation {c['layer']} {c['rows']}x{c['cols']} {c['dataflow']}: "
              f"{full['compute_cycles']} cycles, {full['stall_cycles']} stalls -> {'same' if ok else 'DIFFERENT'}")
    summary = summarise(cases)
    wall = time.perf_counter() - start
    command = "OMP_NUM_THREADS=1 python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
    meta = {"command": command, "wall_s": wall, "machine": f"{platform.machine()} {platform.system()}, "
            f"{torch.get_num_threads()} torch thread(s)", "tech": TECH, "bits": BITS, "acc_bits": ACC_BITS,
            "rf_bytes": rf_bytes, "arrays": args.arrays, "python": platform.python_version()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"meta": meta, "summary": summary, "cases": cases,
                                                  "scalesim_full_checks": full_checks}, indent=1, default=str))
    (out / "results.md").write_text(markdown(cases, summary, meta))
    mismatches = [c for c in cases if not c["compute_equal"]]
    print(f"\ncompute cycles equal to SCALE-Sim in {len(cases) - len(mismatches)}/{len(cases)} cases; "
          f"full-simulation checks {sum(f['same'] for f in full_checks)}/{len(full_checks)}")
    print(f"wrote {out / 'results.md'}, {out / 'results.json'}")
    print(f"reproduce: {command}")
    print(f"total wall time: {wall:.0f} s")
    if mismatches or not all(f["same"] for f in full_checks):
        sys.exit(1)


if __name__ == "__main__":
    main()
