"""``autonba train RUN_DIR``: retrain the derived quantised network from scratch.

Training split minus a held-out validation part (``data.val_fraction``); the epoch with the best
validation accuracy is kept (model selection never looks at the test split, which is only reported).
With ``retrain.seeds`` > 1 the network is trained that many times (seeds ``seed``, ``seed`` + 1, ...)
and ``final.json`` reports the mean test accuracy, its standard deviation and every seed's figures;
the saved weights are the first seed's.
Writes ``model.pt`` (weights + arch), ``model.onnx`` (per-layer bitwidths in its metadata) and
``final.json`` (test accuracy, FPS and resources of the final accelerator, params, MACs, bit-ops).
A checkpoint after every epoch lets ``--resume`` continue a killed retraining exactly.
"""
from __future__ import annotations

import copy
import json
import math
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from autonba.config import apply_overrides, validate
from autonba.data.datasets import load_data, train_val_split
from autonba.deploy.qonnx_export import export_qonnx
from autonba.errors import AutonbaError
from autonba.io import RunLock, load_checkpoint, read_json, save_checkpoint, write_json
from autonba.nas.arch import Arch
from autonba.nas.derived import DerivedNet, count_macs
from autonba.nas.quant import compile_wanted
from autonba.search.config import RetrainSchedule
from autonba.search.dist import Context, resolve_device
from autonba.search.runs import epoch_seed, load_run_config, loader

CHECKPOINT = "retrain_checkpoint.pt"


class TrainState(TypedDict):
    """One seed's training progress, checkpointed after every epoch."""
    epoch: int
    best_acc: float
    best_epoch: int
    best: dict[str, torch.Tensor] | None  # the best-validation weights
    log: list[dict[str, float]]
    seconds: float


@torch.no_grad()
def accuracy(model: torch.nn.Module, ds: Dataset, device: torch.device, workers: int = 0) -> float:
    model.eval()
    hits = total = 0
    for x, y in DataLoader(ds, batch_size=256, shuffle=False, num_workers=workers):
        x, y = x.to(device, memory_format=torch.channels_last), y.to(device)
        hits += int((model(x).argmax(1) == y).sum())
        total += len(y)
    model.train()
    return hits / max(total, 1)


def export_onnx(model: DerivedNet, path: Path, metadata: dict[str, Any]) -> None:
    """Trace the quantised network (fake quantisation as divide/round/clip/multiply) to ONNX and record
    the per-layer bitwidths and the accelerator summary in the model's metadata."""
    import onnx
    layout = model.arch.layout
    x = torch.zeros(1, layout.input_channels, layout.input_size, layout.input_size,
                    device=next(model.parameters()).device)
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17, input_names=["image"],
                          output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    m = onnx.load(str(path))
    for k, v in metadata.items():
        entry = m.metadata_props.add()
        entry.key, entry.value = f"autonba.{k}", v if isinstance(v, str) else json.dumps(v)
    onnx.save(m, str(path))


QONNX = "model_qonnx.onnx"  # the network with a Quant node on every weight and activation (deploy)
OUTPUTS = ("final.json", "model.pt", "model.onnx", QONNX, CHECKPOINT)


def retrain(run_dir: str | Path, epochs: int | None = None, overrides: list[str] | None = None,
            resume: bool = False, force: bool = False, progress: bool | None = None) -> dict[str, Any]:
    """Retrain a finished run's network (the run directory locked meanwhile). An earlier retraining is
    continued with ``resume`` or replaced with ``force``; without either it is an error."""
    run_dir = Path(run_dir)
    if resume and force:
        raise AutonbaError("--resume continues the retraining and --force replaces it: give one of them")
    for f in ("config.yaml", "arch.json", "result.json"):
        if not (run_dir / f).is_file():
            raise AutonbaError(f"{run_dir} lacks {f}: give the directory of a finished 'autonba search' run")
    with RunLock(run_dir, "train"):
        earlier = [f for f in OUTPUTS if (run_dir / f).exists()]
        if earlier and not (resume or force):
            raise AutonbaError(f"{run_dir} already holds a retraining ({', '.join(earlier)}); continue it with "
                               "--resume, or retrain from scratch with --force (which replaces it)")
        return _retrain(run_dir, epochs, overrides, resume, force, progress)


def _retrain(run_dir: Path, epochs: int | None, overrides: list[str] | None, resume: bool, force: bool,
             progress: bool | None) -> dict[str, Any]:
    cfg = load_run_config(run_dir)
    raw = cfg.retrain.model_dump()
    apply_overrides(raw, overrides or [])
    if epochs is not None:
        raw["epochs"] = epochs
    sched = validate(RetrainSchedule, raw, "retrain")
    arch = Arch.load(run_dir / "arch.json")
    accel, notes = recost(run_dir, cfg, arch)
    if sched.quant_scales is not None:  # the same network and hardware, other quantisers
        arch = arch.model_copy(update={"layout": arch.layout.model_copy(update={"scales": sched.quant_scales})})
    device = resolve_device(cfg.device)
    show = sys.stderr.isatty() if progress is None else progress

    torch.manual_seed(cfg.seed)
    splits = load_data(cfg.data)
    if (splits.channels, splits.input_size, splits.num_classes) != (
            arch.layout.input_channels, arch.layout.input_size, arch.layout.num_classes):
        raise AutonbaError(f"arch.json expects {arch.layout.input_channels}x{arch.layout.input_size}^2 inputs and "
                           f"{arch.layout.num_classes} classes, the run's data gives {splits.channels}x"
                           f"{splits.input_size}^2 and {splits.num_classes}")
    train_part, val_part = train_val_split(splits, cfg.data)
    ckpt = run_dir / CHECKPOINT
    saved = None
    if force:  # the user asked to replace the earlier retraining: nothing of it may be mixed with this one
        for f in OUTPUTS:
            (run_dir / f).unlink(missing_ok=True)
    if resume:
        saved = load_checkpoint(ckpt)
        if not isinstance(saved, dict) or "runs" not in saved or saved.get("schedule") != sched.model_dump():
            raise AutonbaError(f"--resume: {ckpt} is not a retraining checkpoint of this schedule")
    runs: list[dict[str, Any]] = saved["runs"] if saved else []      # finished seeds
    first = saved["first"] if saved else None                         # the first seed's best weights

    def keep(current: dict[str, Any] | None) -> None:
        save_checkpoint(ckpt, {"runs": runs, "first": first, "current": current, "schedule": sched.model_dump()})

    for i in range(len(runs), sched.seeds):
        seed = cfg.seed + i
        current = saved["current"] if saved and saved.get("current") else None
        model, state = _train_one(arch, sched, seed, train_part, val_part, device, show, current, keep)
        saved = None
        runs.append({"seed": seed, "test_acc": accuracy(model, splits.test, device, sched.workers),
                     "val_acc": state["best_acc"], "best_epoch": state["best_epoch"], "seconds": state["seconds"],
                     "log": state["log"]})
        if i == 0:
            first = state["best"]
        keep(None)

    model = DerivedNet(arch).to(device)
    assert first is not None  # set by the first seed (seeds >= 1)
    model.load_state_dict(first)
    wl = arch.workload()
    layer_bits = {layer.name: layer.bits for layer in wl.layers}
    x = torch.zeros(1, arch.layout.input_channels, arch.layout.input_size, arch.layout.input_size, device=device)
    tests = torch.tensor([r["test_acc"] for r in runs], dtype=torch.float64)
    final = {
        "test_acc": float(tests.mean()), "test_acc_std": float(tests.std()) if len(runs) > 1 else 0.0,
        "val_acc": sum(r["val_acc"] for r in runs) / len(runs), "seeds": [r["seed"] for r in runs],
        "per_seed": [{k: v for k, v in r.items() if k != "log"} for r in runs],
        "best_epoch": runs[0]["best_epoch"], "epochs": sched.epochs,
        "train_seconds": sum(r["seconds"] for r in runs),
        "fps": accel.fps, "target_fps": cfg.target.fps,
        "meets_target": cfg.target.met(accel.metrics()[cfg.target.metric], accel.feasible),
        **cfg.target.fields(accel.metrics()),
        **{k: v for k, v in accel.summary().items() if k not in ("engine", "feasible")},
        "accelerator_feasible": accel.feasible, "hardware_notes": notes,
        "params": sum(p.numel() for p in model.parameters()), "macs": count_macs(model, x),
        "bitops": sum(layer.bitops for layer in wl.layers),
        "model_bits": sum(layer.weights * layer.bits for layer in wl.layers),
        "layer_bits": layer_bits, "ops": [b.op for b in arch.blocks], "bits": [b.bits for b in arch.blocks],
        "quant_scales": arch.layout.scales,
        "schedule": sched.model_dump(), "log": runs[0]["log"],
    }
    save_checkpoint(run_dir / "model.pt", {"arch": arch.model_dump(), "state_dict": model.state_dict()})
    export_onnx(model, run_dir / "model.onnx", {"arch": arch.model_dump(), "layer_bits": layer_bits,
                                                "fps": accel.fps, "platform": accel.summary()["platform"],
                                                "test_acc": runs[0]["test_acc"]})
    export_qonnx(model.cpu(), run_dir / QONNX)
    write_json(run_dir / "final.json", final)
    return final


def _normalised(arch: Any) -> Any:
    """An arch as written by any version (fields added since take their defaults); as given if invalid."""
    try:
        return Arch.model_validate(arch).model_dump()
    except ValidationError:
        return arch


def recost(run_dir: Path, cfg, arch: Arch) -> tuple[Any, list[str]]:
    """The hardware figures of the network in ``arch.json`` on the design in ``accelerator.json``,
    costed now (never copied from ``result.json``), and notes on where they differ from the search's."""
    from autonba.accel import AccelConfig, run_evaluate

    path = run_dir / "accelerator.json"
    doc = read_json(path, "accelerator")
    design = doc.get("design") if isinstance(doc, dict) else None
    if not isinstance(design, dict):
        raise AutonbaError(f"{path} holds no 'design' object: it is not the accelerator a search wrote; "
                           f"restore it or search one with 'autonba accel search --arch {run_dir / 'arch.json'}'")
    h = cfg.hardware
    acfg = validate(AccelConfig, {"workload": {"arch": str(run_dir / "arch.json")}, "template": h.template,
                                  "platform": h.platform, "template_options": h.template_options}, "run hardware")
    try:
        accel = run_evaluate(acfg, [design], arch.workload())[0]
    except AutonbaError as e:
        raise AutonbaError(f"the design in {path} does not fit the network in {run_dir / 'arch.json'} ({e}); "
                           "restore the files the search wrote, or search an accelerator for this network with "
                           f"'autonba accel search --arch {run_dir / 'arch.json'}'") from None
    notes = []
    result = read_json(run_dir / "result.json", "result")
    searched = result.get("arch") if isinstance(result, dict) else None
    if _normalised(searched) != arch.model_dump():
        notes.append("arch.json is not the network the search derived (result.json): the hardware figures are "
                     "those of arch.json's network on accelerator.json's design")
    said = result.get("fps") if isinstance(result, dict) else None
    if not isinstance(said, (int, float)) or not math.isclose(said, accel.fps, rel_tol=1e-9):
        notes.append(f"FPS re-costed: {accel.fps:,.1f} (result.json says {said})")
    if not accel.feasible:
        notes.append("the design does not fit the platform's budgets (infeasible)")
    for n in notes:
        print(f"autonba: warning: {n}", file=sys.stderr)
    return accel, notes


def _train_one(arch: Arch, sched: RetrainSchedule, seed: int, train_part: Dataset, val_part: Dataset,
               device: torch.device, show: bool, current: dict[str, Any] | None,
               checkpoint: Callable[[dict[str, Any] | None], None]) -> tuple[DerivedNet, TrainState]:
    """Train one copy of the network from scratch with ``seed`` (or continue ``current``, a checkpointed
    one); ``checkpoint(current)`` after every epoch. Returns the model with its best-validation weights."""
    torch.manual_seed(seed)
    # channels-last: about 30% less time per step on CPU for the CIFAR networks (Module.to takes memory_format;
    # torch's overloads omit it)
    model: DerivedNet = DerivedNet(arch).to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    model.net.compile_quantisers(compile_wanted(sched.compile, device))
    model.net.use_bf16(sched.amp == "bf16")
    opt = torch.optim.SGD(model.parameters(), lr=sched.lr, momentum=sched.momentum,
                          weight_decay=sched.weight_decay, nesterov=True)
    state: TrainState = {"epoch": 0, "best_acc": -1.0, "best_epoch": 0, "best": None, "log": [], "seconds": 0.0}
    if current is not None:
        model.load_state_dict(current["model"])
        opt.load_state_dict(current["opt"])
        state = current["state"]
    one = Context(0, 1, device)
    tag = "" if sched.seeds == 1 else f" seed {seed}"
    while state["epoch"] < sched.epochs:
        t0 = time.perf_counter()
        e = state["epoch"]
        torch.manual_seed(epoch_seed(seed, e, 11))
        for group in opt.param_groups:
            group["lr"] = 0.5 * sched.lr * (1 + math.cos(math.pi * e / sched.epochs))
        losses = torch.zeros((), dtype=torch.float64, device=device)
        dl = loader(train_part, sched.batch_size, sched.workers, one, seed + 13, e)
        for x, y in tqdm(dl, desc=f"retrain{tag} {e + 1}/{sched.epochs}", leave=False, disable=not show,
                         file=sys.stderr):
            x = x.to(device, memory_format=torch.channels_last, non_blocking=True)
            loss = F.cross_entropy(model(x), y.to(device, non_blocking=True))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            losses += loss.detach()  # summed on the device: a step never waits for it
        total = float(losses)
        if not math.isfinite(total):
            raise AutonbaError(f"the retraining diverged: the loss became {total} in epoch {e + 1}; the checkpoint "
                               f"of the last finished epoch is kept; lower lr (now {sched.lr:g}, --set lr=...) "
                               "and retrain with --force")
        val = accuracy(model, val_part, device, sched.workers)
        state["epoch"] = e + 1
        state["seconds"] += time.perf_counter() - t0
        if val > state["best_acc"]:
            state["best_acc"], state["best_epoch"] = val, e + 1
            state["best"] = copy.deepcopy(model.state_dict())
        rec = {"epoch": e + 1, "loss": total / max(len(dl), 1), "val_acc": val, "seconds": state["seconds"]}
        state["log"].append(rec)
        print(f"retrain{tag} {e + 1:>3}/{sched.epochs} loss {rec['loss']:.3f} | val acc {100 * val:.1f}% | "
              f"{state['seconds']:.0f}s", file=sys.stderr)
        checkpoint({"model": model.state_dict(), "opt": opt.state_dict(), "state": state})
    assert state["best"] is not None  # set after the first epoch (epochs >= 1)
    model.load_state_dict(state["best"])
    return model, state
