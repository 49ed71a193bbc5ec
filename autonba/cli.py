"""Command line: ``autonba search|train|report`` and ``autonba accel search|eval|list``. A thin layer
over the Python API."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autonba.errors import AutonbaError, exit_code

if TYPE_CHECKING:  # imported where used: the CLI starts without loading torch until a command needs it
    from autonba.accel import AccelConfig
    from autonba.search.config import SearchConfig


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", help="YAML config (fields of AccelConfig, at the top level or under 'accel')")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set engine_options.batch=512 (repeatable)")
    p.add_argument("--seed", type=int, help="seed of everything random")
    p.add_argument("--out", help="write the JSON result here (default: stdout); the resolved config goes "
                                 "next to it as <name>.config.yaml")
    p.add_argument("--force", action="store_true", help="replace an earlier result at --out (never an input)")


def _workload_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("workload (one of)")
    g.add_argument("--workload", dest="file", help="workload JSON with a 'layers' list (golden format or native)")
    g.add_argument("--network", help="a zoo network (see 'autonba accel list')")
    g.add_argument("--arch", help="an arch.json written by the NAS derivation")
    g.add_argument("--onnx", help="an ONNX or QONNX model: its convolutions and linear layers, at the bitwidths its "
                                  "Quant / QuantizeLinear nodes state (else --bits)")
    g.add_argument("--bits", type=int, help="uniform bitwidth of a zoo network, or of an ONNX model's layers whose "
                                            "bitwidth it does not state (default 8)")
    p.add_argument("--template", help="fpga-chunk (default), fpga-legacy, asic-array or a registered one "
                                      "(see 'autonba accel list')")
    p.add_argument("--platform", help="shipped platform name (zc706, zcu102, ultra96, zc706-legacy; for asic-array "
                                      "a technology: generic-45nm) or YAML path")
    p.add_argument("--objective", choices=["latency", "energy", "edp"],
                   help="asic-array: what to minimise (default edp)")
    p.add_argument("--area-mm2", type=float, help="asic-array: area budget in mm2")


def _count(text: str) -> int:
    """A count >= 0 (argparse reports anything else as one error line naming the option)."""
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return n


def _fix_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fix", action="append", default=[], metavar="FACTOR=VALUE",
                   help="pin a design factor: in every chunk on FPGA (e.g. --fix comp_mode=1), an array factor or "
                        "every layer's order / dataflow on asic-array (e.g. --fix rows=16); repeatable")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="autonba", description="Joint search of network, bitwidths and accelerator.")
    sub = ap.add_subparsers(dest="command", required=True)
    accel = sub.add_parser("accel", help="accelerator cost models and search engines")
    asub = accel.add_subparsers(dest="action", required=True)

    s = asub.add_parser("search", help="search the best accelerator design for a workload")
    _workload_args(s)
    s.add_argument("--engine", help="das (default), random, evolution or exact")
    s.add_argument("--budget", type=int, help="design evaluations (default: the engine's)")
    _fix_arg(s)
    _common(s)

    e = asub.add_parser("eval", help="evaluate given designs on a workload")
    _workload_args(e)
    e.add_argument("--design", required=True, help="JSON: one design (in the template's design-file format, or a "
                                                   "result of 'accel search'), or {'designs': [...]}")
    _common(e)

    pp = asub.add_parser("pareto", help="the non-dominated designs of a workload in 2 or 3 objectives (JSON, and "
                                        "with --out a PNG plot next to it: <stem>.png)")
    _workload_args(pp)
    pp.add_argument("--objectives", help="comma-separated; FPGA templates: fps, dsp, bram (default all three); "
                                         "asic-array: fps, latency_ms, energy_uj, edp_uj_ms, area_mm2 (default "
                                         "latency_ms,energy_uj,area_mm2)")
    pp.add_argument("--engine", help="exact: the exact front (the whole space); das (default), random or evolution: "
                                     "a front searched with that engine")
    pp.add_argument("--budget", type=int, help="design evaluations of a searched front (default: the family's)")
    _fix_arg(pp)
    _common(pp)

    asub.add_parser("list", help="list templates, platforms, engines and zoo networks")

    js = sub.add_parser("search", help="joint search of network, bitwidths and accelerator into a run directory")
    js.add_argument("-c", "--config", help="YAML config (fields of SearchConfig); default: the embedded "
                                           "digits search on zc706")
    js.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config field, e.g. --set target.fps=30000 (repeatable)")
    js.add_argument("--seed", type=int, help="seed of everything random")
    js.add_argument("--out", help="run directory (default: runs/search-<date>-<time>)")
    js.add_argument("--resume", action="store_true",
                    help="continue the run in --out from its last checkpoint (with the config it started with)")
    js.add_argument("--no-progress", action="store_true", help="no progress bar (per-epoch lines only)")

    tr = sub.add_parser("train", help="retrain the derived network of a run from scratch; writes final.json")
    tr.add_argument("run_dir")
    tr.add_argument("--epochs", type=int, help="retraining epochs (default: the run config's retrain.epochs)")
    tr.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a retrain field, e.g. --set lr=0.1 (repeatable)")
    tr.add_argument("--resume", action="store_true", help="continue a killed retraining from its checkpoint")
    tr.add_argument("--force", action="store_true",
                    help="retrain from scratch, replacing an earlier retraining's final.json, model.pt, model.onnx, "
                         "model_qonnx.onnx and checkpoint")
    tr.add_argument("--no-progress", action="store_true")

    ex = sub.add_parser("export", help="the retrained network of a run for hardware flows (QONNX, hls4ml)")
    ex.add_argument("run_dir")
    ex.add_argument("--format", choices=["qonnx", "hls4ml"], default="qonnx",
                    help="qonnx: a Quant node on every weight and activation at its searched bitwidth; hls4ml: an "
                         "HLS project (Vitis, io_stream) of the fixed-point network, per-layer precisions and reuse "
                         "factors from the search, its emulation checked bit for bit")
    ex.add_argument("--out", help="file (qonnx; default RUN_DIR/model_qonnx.onnx) or folder (hls4ml; default "
                                  "RUN_DIR/hls4ml) to write")
    ex.add_argument("--force", action="store_true", help="replace an existing file or project at --out")
    ex.add_argument("--approximate", action="store_true",
                    help="hls4ml: accept a network no fixed-point datapath computes exactly (float scales), "
                         "put on power-of-two grids")
    ex.add_argument("--verify", type=_count, default=64, metavar="N",
                    help="hls4ml: compile the emulation and compare it with the fixed-point network on N probe "
                         "images (default 64; 0: write the project only)")

    sw = sub.add_parser("sweep", help="a grid of searches (specs, modes, seeds, hand-designed networks), run here or "
                                      "on SLURM; 'autonba sweep status ROOT' tells each point's state",
                        description="autonba sweep SWEEP.yaml [options] | autonba sweep status ROOT")
    sw.add_argument("sweep", metavar="SWEEP.yaml", help="the sweep file (or 'status')")
    sw.add_argument("status_root", nargs="?", metavar="ROOT", help=argparse.SUPPRESS)
    sw.add_argument("--root", help="folder of the points' run directories (default runs/sweep-<file name>)")
    sw.add_argument("--executor", choices=["local", "slurm"], default="local",
                    help="local: --jobs points at a time on this machine; slurm: one SLURM job per point (the "
                         "sweep file's slurm section), through submitit")
    sw.add_argument("--jobs", type=_count, default=1, help="local: points at a time (the cores divided between them)")
    sw.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a field of every point, e.g. --set data.path=/data/c10.zip (repeatable; saved "
                         "with the sweep)")
    sw.add_argument("--dry-run", action="store_true", help="list the points and their state; run nothing")
    sw.add_argument("--no-wait", action="store_true",
                    help="slurm: submit and return (see 'autonba sweep status'; rerun the sweep to collect)")
    sw.add_argument("--no-progress", action="store_true", help="no progress bar (a line per point only)")

    rp = sub.add_parser("report", help="plots and a Markdown summary of one or more runs")
    rp.add_argument("run_dirs", nargs="+")
    rp.add_argument("--out", help="folder of the report (default: RUN_DIR/report for one run, "
                                  "runs/report for several)")
    return ap


def _accel_config(args: argparse.Namespace) -> AccelConfig:
    from autonba.accel import AccelConfig
    from autonba.config import apply_overrides, load_yaml, parse_value, validate

    data: dict[str, Any] = {}
    if args.config:
        data = load_yaml(args.config)
        if isinstance(data.get("accel"), dict):
            data = data["accel"]
    wl = data.setdefault("workload", {})
    if not isinstance(wl, dict):
        raise AutonbaError("config field 'workload' must be a mapping (file / network / arch / onnx / bits)")
    given = {k: getattr(args, k) for k in ("file", "network", "arch", "onnx") if getattr(args, k)}
    if given:
        for k in ("file", "network", "arch", "onnx"):
            wl.pop(k, None)
        wl.update(given)
    if args.bits is not None:
        wl["bits"] = args.bits
    for key in ("template", "platform", "engine", "budget", "seed"):
        if getattr(args, key, None) is not None:
            data[key] = getattr(args, key)
    for key in ("objective", "area_mm2"):  # shorthands of template options
        if getattr(args, key, None) is not None:
            opts = data.setdefault("template_options", {})
            if not isinstance(opts, dict):
                raise AutonbaError("config field 'template_options' must be a mapping")
            opts[key] = getattr(args, key)
    for item in getattr(args, "fix", []):
        k, sep, v = item.partition("=")
        if not sep:
            raise AutonbaError(f"--fix expects FACTOR=VALUE, got '{item}'")
        data.setdefault("fix", {})[k.strip()] = parse_value(v)
    apply_overrides(data, args.set)
    return validate(AccelConfig, data)


def _config_path(out: Path) -> Path:
    return out.with_name(out.stem + ".config.yaml")


def _check_out(args: argparse.Namespace, cfg) -> None:
    """Before any work: the result and its config can be written, and neither is an input."""
    from autonba.io import check_output_file

    if not args.out:
        return
    out = Path(args.out)
    wl = cfg.workload
    inputs = [args.config, wl.file, wl.arch, wl.onnx, getattr(args, "design", None), cfg.platform]
    check_output_file(out, "--out", inputs, args.force)
    check_output_file(_config_path(out), "--out's config file", inputs, args.force)


def _emit(args: argparse.Namespace, payload: dict[str, Any], cfg) -> None:
    from autonba.io import dumps, write_config, write_json

    payload = {**payload, "config": cfg.model_dump(mode="json")}
    if args.out:
        out = Path(args.out)
        write_json(out, payload)
        write_config(_config_path(out), cfg)
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(dumps(payload) + "\n")


def _cmd_search(args: argparse.Namespace) -> None:
    from autonba.accel import run_search

    cfg = _accel_config(args)
    _check_out(args, cfg)
    workload, imported = cfg.workload.resolve()
    result = run_search(cfg, workload)
    print(result.table(), file=sys.stderr)
    _emit(args, _with_import(result.to_dict(), imported), cfg)


def _with_import(payload: dict[str, Any], imported: dict[str, Any] | None) -> dict[str, Any]:
    """A result with what an ONNX import costed and did not cost (its operators by count)."""
    if imported is None:
        return payload
    skipped = ", ".join(f"{op} x{n}" for op, n in imported["not_costed"].items())
    print(f"imported {imported['layers']} layers ({imported['macs']:,} MACs); not costed: {skipped or 'nothing'}",
          file=sys.stderr)
    return {**payload, "workload_import": imported}


def _cmd_eval(args: argparse.Namespace) -> None:
    from autonba.accel import run_evaluate
    from autonba.io import read_json

    cfg = _accel_config(args)
    _check_out(args, cfg)
    data = read_json(args.design, "design")
    if isinstance(data, dict) and "template" in data and "design" in data:  # a result of 'accel search'
        data = data["design"]
    many = isinstance(data, dict) and "designs" in data
    designs = data["designs"] if many else [data]
    if not isinstance(designs, list) or not designs:
        raise AutonbaError(f"design file {args.design}: 'designs' must be a non-empty list")
    workload, imported = cfg.workload.resolve()
    results = run_evaluate(cfg, designs, workload)
    for r in results:
        print(r.table(), file=sys.stderr)
    payload = {"results": [r.to_dict() for r in results]} if many else results[0].to_dict()
    _emit(args, _with_import(payload, imported), cfg)


def _cmd_pareto(args: argparse.Namespace) -> None:
    from autonba.accel import run_pareto
    from autonba.io import check_output_file

    cfg = _accel_config(args)
    _check_out(args, cfg)
    plot = Path(args.out).with_name(Path(args.out).stem + ".png") if args.out else None
    if plot is not None:
        if plot == Path(args.out):
            raise AutonbaError("--out: give the JSON file a name not ending in .png (the plot goes next to it)")
        wl = cfg.workload
        check_output_file(plot, "--out's plot", [args.config, wl.file, wl.arch, wl.onnx, cfg.platform], args.force)
    workload, imported = cfg.workload.resolve()
    objectives = [o.strip() for o in args.objectives.split(",")] if args.objectives else None
    front = run_pareto(cfg, objectives, workload)
    print(front.table(), file=sys.stderr)
    if plot is not None:
        front.save_plot(plot)
        print(f"wrote {plot}", file=sys.stderr)
    _emit(args, _with_import(front.to_dict(), imported), cfg)


def _cmd_list(args: argparse.Namespace) -> None:
    from autonba.hw.templates import TEMPLATES
    from autonba.hw.zoo import WORKLOADS

    for name, cls in TEMPLATES.items():
        print(f"template {name}: platforms {', '.join(cls.shipped_platforms())} (default {cls.default_platform}); "
              f"engines {', '.join(cls.engines().names())}; reports {', '.join(cls.metric_names)}")
    print("networks:", ", ".join(WORKLOADS.names()))
    from autonba.nas.handmade import HAND_DESIGNED
    print("hand-designed networks (autonba search --set mode=fixed-arch --set arch=NAME):")
    for name, net in HAND_DESIGNED.items():
        print(f"  {name}: {net.description}")


def _search_config(args: argparse.Namespace) -> SearchConfig:
    from autonba.config import apply_overrides, load_yaml
    from autonba.search.config import search_config

    data: dict[str, Any] = load_yaml(args.config) if args.config else {}
    if args.seed is not None:
        data["seed"] = args.seed
    apply_overrides(data, args.set)
    return search_config(data)


def _cmd_joint_search(args: argparse.Namespace) -> None:
    import time

    from autonba.search.joint import search
    from autonba.search.runs import load_run_config

    if args.resume:
        if not args.out:
            raise AutonbaError("--resume needs --out RUN_DIR (the run to continue)")
        if args.config or args.set or args.seed is not None:
            raise AutonbaError("--resume continues with the run's own config.yaml; drop -c/--set/--seed")
        if not Path(args.out).is_dir():
            raise AutonbaError(f"--resume: {args.out} is not a run directory")
        cfg = load_run_config(args.out)
    else:
        cfg = _search_config(args)
    out = args.out or time.strftime("runs/search-%Y%m%d-%H%M%S")
    if Path(out).exists() and not Path(out).is_dir():
        raise AutonbaError(f"--out {out} is a file; a run directory is needed")
    result = search(cfg, out, resume=args.resume, progress=False if args.no_progress else None)
    if result:
        m = cfg.target.metric
        spec = (f"FPS {result['fps']:,.1f} (target {result['target_fps']:,.0f}, " if m == "fps" else
                f"{m} {result[m]:.4g} (target {result['target_' + m]:g}, ")
        print(f"derived: {' '.join(f'{o}@{b}' for o, b in zip(result['ops'], result['bits']))}\n"
              f"{spec}{'met' if result['meets_target'] else 'NOT met'}) | "
              + ("" if result["supernet_acc"] is None else f"supernet acc {100 * result['supernet_acc']:.1f}% | ")
              + f"search {result['search_seconds']:.0f} s\n"
              f"wrote {out}/result.json", file=sys.stderr)


def _cmd_train(args: argparse.Namespace) -> None:
    from autonba.hw.templates import TEMPLATES
    from autonba.train.retrain import retrain

    final = retrain(args.run_dir, epochs=args.epochs, overrides=args.set, resume=args.resume, force=args.force,
                    progress=False if args.no_progress else None)
    hw = TEMPLATES.get(final["template"]).Result.describe(final)
    print(f"test accuracy {100 * final['test_acc']:.2f}% | FPS {final['fps']:,.1f} | {hw} | "
          f"params {final['params']:,} | MACs {final['macs']:,} | train {final['train_seconds']:.0f} s\n"
          f"wrote {args.run_dir}/final.json", file=sys.stderr)


def _cmd_export(args: argparse.Namespace) -> None:
    from autonba.deploy.qonnx_export import export_qonnx, load_trained
    from autonba.io import check_output_file

    if args.format == "hls4ml":
        from autonba.deploy.hls4ml_project import MARKER, export_run
        doc = export_run(args.run_dir, args.out, args.force, args.approximate, args.verify)
        out = Path(args.out) if args.out else Path(args.run_dir) / "hls4ml"
        v = doc.get("verify")
        check = (f"emulation equal to the fixed-point network on {v['equal']}/{v['inputs']} probe images "
                 f"(compiled in {v['compile_seconds']:.0f} s)" if v else "emulation not compiled (--verify 0)")
        exact = "exact" if doc["exact"] else "APPROXIMATE (" + "; ".join(doc["notes"]) + ")"
        print(f"hls4ml project: {len(doc['layers'])} layers, {exact}; {check}\nwrote {out} ({MARKER}: "
              "per-layer types and reuse factors)", file=sys.stderr)
        return
    if args.approximate:
        raise AutonbaError("--approximate applies to --format hls4ml only")

    out = Path(args.out) if args.out else Path(args.run_dir) / "model_qonnx.onnx"
    check_output_file(out, "--out", [Path(args.run_dir) / "model.pt"], args.force)  # before any work
    model = load_trained(args.run_dir)
    print(f"wrote {export_qonnx(model, out)}", file=sys.stderr)


def _cmd_sweep(args: argparse.Namespace) -> None:
    from autonba.sweep import run_sweep

    if args.sweep == "status":
        if not args.status_root:
            raise AutonbaError("usage: autonba sweep status ROOT")
        return _sweep_status(args.status_root)
    if args.status_root:
        raise AutonbaError(f"unexpected argument '{args.status_root}' (the root is given with --root)")
    if args.no_wait and args.executor != "slurm":
        raise AutonbaError("--no-wait applies to --executor slurm only")
    failed = {k: v for k, v in run_sweep(args.sweep, args.root, args.executor, args.jobs, args.dry_run,
                                         not args.no_wait, False if args.no_progress else None, args.set).items()
              if v}
    if failed:
        first = next(iter(failed))
        raise AutonbaError(f"{len(failed)} point(s) failed ({', '.join(failed)}); {first}: {failed[first]}")


def _sweep_status(root: str) -> None:
    from collections import Counter

    from autonba.sweep import status

    states = status(root)
    width = max(len(s.name) for s in states)
    for s in states:
        print(f"{s.state:<8} {s.name:<{width}}  {s.detail}".rstrip())
    counts = Counter(s.state for s in states)
    print(", ".join(f"{counts[k]} {k}" for k in ("done", "running", "failed", "pending") if counts[k]),
          file=sys.stderr)


def _cmd_report(args: argparse.Namespace) -> None:
    from autonba.report.report import write_report

    out = write_report(args.run_dirs, args.out)
    print(f"wrote {out}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {("accel", "search"): _cmd_search, ("accel", "eval"): _cmd_eval, ("accel", "pareto"): _cmd_pareto,
                ("accel", "list"): _cmd_list,
                ("search", None): _cmd_joint_search, ("train", None): _cmd_train, ("report", None): _cmd_report,
                ("export", None): _cmd_export, ("sweep", None): _cmd_sweep}
    return exit_code(lambda: handlers[(args.command, getattr(args, "action", None))](args))


if __name__ == "__main__":
    sys.exit(main())
