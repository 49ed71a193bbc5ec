"""The joint search loop (``autonba search``): warm-up, alternating architecture and weight steps with
the hardware cost of the current single path, accelerator re-search, lambda adaptation toward the FPS
target, temperature schedule, derivation and the final accelerator.

Every epoch re-seeds its randomness from (seed, epoch), and a checkpoint written atomically after an
epoch holds everything else (weights, logits, optimisers, lambda, accelerator, log), so a killed run
resumed with ``--resume`` reaches the same result as an uninterrupted one.
"""
from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from autonba.config import validate
from autonba.data.datasets import DATASETS, DataSplits, load_data, search_split
from autonba.errors import AutonbaError
from autonba.hw.hardware import engines_for, load_hardware
from autonba.io import (
    LOCK,
    RunLock,
    dumps,
    finite_or_null,
    load_checkpoint,
    save_checkpoint,
    write_atomic,
    write_config,
    write_json,
)
from autonba.nas.arch import Arch, BlockChoice
from autonba.nas.handmade import check_arch_ref, resolve_arch
from autonba.nas.quant import compile_wanted
from autonba.nas.space import SearchSpace, load_space
from autonba.nas.supernet import Supernet
from autonba.search import dist as dist_
from autonba.search.config import SearchConfig
from autonba.search.costing import Costing, block_bitops
from autonba.search.runs import epoch_seed, loader

CHECKPOINT = "checkpoint.pt"
FORMAT = 1


def fit_space(cfg: SearchConfig, splits: DataSplits) -> SearchSpace:
    """The configured space with its layout's input size, channels and classes taken from the data."""
    data = load_space(cfg.space).model_dump()
    data["layout"].update(input_size=splits.input_size, input_channels=splits.channels,
                          num_classes=splits.num_classes)
    if cfg.quant_scales is not None:
        data["layout"]["scales"] = cfg.quant_scales
    if cfg.bits is not None:
        data["bits"] = cfg.bits
    return validate(SearchSpace, data, "search space")


def _fmt(v: float | None, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


class JointSearch:
    def __init__(self, cfg: SearchConfig, run_dir: Path, ctx: dist_.Context, progress: bool | None = None):
        self.cfg, self.run_dir, self.ctx = cfg, Path(run_dir), ctx
        self.progress = (sys.stderr.isatty() if progress is None else progress) and ctx.main
        torch.manual_seed(cfg.seed)
        splits = load_data(cfg.data)
        self.space = fit_space(cfg, splits)
        self.costing = Costing(cfg, self.space)
        self.reachable_fps = self.costing.check_reachable()
        self.weight_part, self.arch_part = search_split(splits, cfg.data)
        for part, name in ((self.weight_part, "weight"), (self.arch_part, "architecture")):
            if len(part) < cfg.search.batch_size * ctx.world:
                raise AutonbaError(f"the {name} split has {len(part)} images, fewer than one batch of "
                                   f"{cfg.search.batch_size} per process; lower search.batch_size or use more data "
                                   "(data.train_subset, data.arch_fraction)")
        self.supernet = Supernet(self.space, cfg.bits_sampling, cfg.search.top_k).to(ctx.device)
        self.supernet.net.compile_quantisers(compile_wanted(cfg.search.compile, ctx.device))
        self.supernet.net.use_bf16(cfg.search.amp == "bf16")
        self.wnet: torch.nn.Module = self.supernet.net
        if ctx.distributed:
            self.wnet = torch.nn.parallel.DistributedDataParallel(
                self.supernet.net, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
                find_unused_parameters=True)
        s = cfg.search
        self.w_opt = torch.optim.SGD(self.supernet.weight_parameters(), lr=s.lr, momentum=s.momentum,
                                     weight_decay=s.weight_decay, nesterov=True, foreach=True)
        self.a_opt = torch.optim.Adam(self.supernet.arch_parameters(), lr=s.arch_lr, betas=s.arch_betas,
                                      weight_decay=s.arch_weight_decay)
        self.epoch, self.arch_steps, self.lam = 0, 0, cfg.target.lambda_init
        self.cost_mean: torch.Tensor | None = None  # per-block running mean of the sampled cost
        self.log: list[dict[str, Any]] = []
        self.info: dict[str, Any] = {}
        self.seconds = 0.0

    # ---- state ----------------------------------------------------------------------------------------
    def start(self) -> None:
        g = torch.Generator().manual_seed(epoch_seed(self.cfg.seed, -1))
        path = tuple(self.supernet.single_path(self.supernet.sample("weight", 1.0, g)))
        self.info = self.ctx.broadcast(self.costing.start(path, self.cfg.seed) if self.ctx.main else None)
        self.costing.load_state(self.ctx.broadcast(self.costing.state()))

    def state_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "config": self.cfg.model_dump(mode="json"), "epoch": self.epoch,
                "arch_steps": self.arch_steps, "lambda": self.lam, "cost_mean": self.cost_mean,
                "log": self.log, "info": self.info, "seconds": self.seconds, "supernet": self.supernet.state_dict(),
                "w_opt": self.w_opt.state_dict(), "a_opt": self.a_opt.state_dict(), "costing": self.costing.state()}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.supernet.load_state_dict(s["supernet"])
        self.w_opt.load_state_dict(s["w_opt"])
        self.a_opt.load_state_dict(s["a_opt"])
        self.costing.load_state(s["costing"])
        self.epoch, self.arch_steps, self.lam = s["epoch"], s["arch_steps"], s["lambda"]
        mean = s.get("cost_mean")
        self.cost_mean = None if mean is None else mean.to(self.ctx.device)
        self.log, self.info, self.seconds = s["log"], s["info"], s["seconds"]

    # ---- steps ----------------------------------------------------------------------------------------
    # Steps return tensors on the device, summed there: nothing in a step waits on the GPU but sampling
    def weight_step(self, x: torch.Tensor, y: torch.Tensor, temperature: float, g: torch.Generator) -> torch.Tensor:
        """One SGD step of the supernet weights on a sampled path; its loss."""
        sample = self.supernet.sample("weight", temperature, g)
        loss = F.cross_entropy(self.wnet(x, sample.paths), y)
        self.w_opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.supernet.weight_parameters(), 5.0, foreach=True)
        self.w_opt.step()
        return loss.detach()

    def arch_step(self, x: torch.Tensor, y: torch.Tensor, temperature: float, g: torch.Generator) -> torch.Tensor:
        """One step of alpha and beta; (cross-entropy, hardware cost of the single path, correct
        predictions) as one tensor."""
        sn = self.supernet
        sample = sn.sample("arch", temperature, g)
        logits = sn.net(x, sample.paths)
        ce = F.cross_entropy(logits, y)
        path = tuple(sn.single_path(sample))
        c = self.costing.block_cost(path).to(self.ctx.device, non_blocking=True)
        w = sn.path_weights(sample)
        cost = (w.detach() * c).sum()
        loss = ce + self.lam * (w * self._cost_advantage(c)).sum()
        params = sn.arch_parameters()
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        dense = [torch.zeros_like(p) if gr is None else gr for p, gr in zip(params, grads)]
        self.ctx.all_mean_(dense)
        before = [p.detach().clone() for p in params]
        for p, gr in zip(params, dense):
            p.grad = gr
        self.a_opt.step()
        self.a_opt.zero_grad(set_to_none=True)
        sn.offset_(sample, *before)
        self.arch_steps += 1
        if self.arch_steps % self.cfg.hardware.research_every == 0:
            if self.ctx.main:
                self.costing.research(path, epoch_seed(self.cfg.seed, self.arch_steps, 3))
            self.costing.load_state(self.ctx.broadcast(self.costing.state()))
        correct = (logits.detach().argmax(1) == y).sum()
        return torch.stack([ce.detach().double(), cost.double(), correct.double()])

    def _cost_advantage(self, c: torch.Tensor) -> torch.Tensor:
        """The per-block cost that enters the architecture gradient: the cost itself (reference), or its
        excess over the running mean of the block's sampled costs (``search.cost_baseline``). With two
        active choices a and b and the mean at the expected cost, the expected gradient of the baseline
        form is 2 p_a p_b (c_a - c_b), the direction of the expected cost's gradient; the reference
        form's is p_a p_b (p_a c_a - p_b c_b), which also pushes the likelier choice down at equal cost."""
        if self.cfg.search.cost_baseline == "none":
            return c
        mean = c.clone() if self.cost_mean is None else self.cost_mean
        self.cost_mean = 0.9 * mean + 0.1 * c
        return c - mean

    @torch.no_grad()
    def evaluate_path(self, ds: Dataset, arch) -> float:
        """Accuracy of the derived path of the supernet on a split (eval mode; summed over ranks)."""
        from autonba.nas.modules import LayerPath, QuantSpec
        ops = {o: i for i, o in enumerate(self.space.ops)}
        paths = [LayerPath([ops[b.op]], None, [QuantSpec.fixed(b.bits)]) for b in arch.blocks]
        self._recalibrate(paths)
        self.supernet.eval()
        hits = torch.zeros(2, dtype=torch.float64)
        dl = DataLoader(ds, batch_size=256, shuffle=False, num_workers=self.cfg.search.workers)
        for i, (x, y) in enumerate(dl):
            if i % self.ctx.world != self.ctx.rank:
                continue
            x, y = x.to(self.ctx.device), y.to(self.ctx.device)
            hits += torch.tensor([float((self.supernet.net(x, paths).argmax(1) == y).sum()), float(len(y))],
                                 dtype=torch.float64)
        self.supernet.train()
        hits = self.ctx.all_sum(hits).cpu()
        return float(hits[0] / hits[1])

    @torch.no_grad()
    def _recalibrate(self, paths, batches: int = 4) -> None:
        """Batch-norm statistics of this path, re-estimated on the first training batches (the running
        statistics of a weight-sharing supernet mix every path that ran; they only serve evaluation)."""
        bns = [m for m in self.supernet.net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
        self.supernet.train()
        dl = DataLoader(self.weight_part, batch_size=128, shuffle=False, num_workers=self.cfg.search.workers)
        for _, (x, _y) in zip(range(batches), dl):
            self.supernet.net(x.to(self.ctx.device), paths)
        for m in bns:
            m.momentum = 0.1

    # ---- the loop -------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        cfg, s, ctx = self.cfg, self.cfg.search, self.ctx
        from tqdm import tqdm
        while self.epoch < s.epochs:
            t0 = time.perf_counter()
            e = self.epoch
            torch.manual_seed(epoch_seed(cfg.seed, e, 4 + ctx.rank))
            g = torch.Generator().manual_seed(epoch_seed(cfg.seed, e, 5))
            for group in self.w_opt.param_groups:
                group["lr"] = 0.5 * s.lr * (1 + math.cos(math.pi * e / s.epochs))
            temperature = s.temperature * s.temperature_decay ** e
            warm = e < s.warmup_epochs
            wl = loader(self.weight_part, s.batch_size, s.workers, ctx, cfg.seed, e)
            al = None if warm else loader(self.arch_part, s.batch_size, s.workers, ctx, cfg.seed + 7, e)
            n = len(wl) if al is None else min(len(wl), len(al))
            sums = torch.zeros(5, dtype=torch.float64, device=ctx.device)  # weight loss, ce, cost, correct, seen
            bar = tqdm(total=n, desc=f"epoch {e + 1}/{s.epochs}" + (" warm-up" if warm else ""), leave=False,
                       disable=not self.progress, dynamic_ncols=True, file=sys.stderr)
            batches: Iterable[tuple[Any, ...]] = zip(wl) if al is None else zip(wl, al)
            for pair in batches:
                x, y = (t.to(ctx.device, non_blocking=True) for t in pair[0])
                if not warm:
                    xa, ya = (t.to(ctx.device, non_blocking=True) for t in pair[1])
                    sums[1:4] += self.arch_step(xa, ya, temperature, g)
                    sums[4] += len(ya)
                sums[0] += self.weight_step(x, y, temperature, g)
                bar.update(1)
            bar.close()
            sums = sums.cpu()
            self._check_finite("weight", float(sums[0]))
            self._check_finite("architecture", float(sums[1]))
            arch = self.supernet.derive()
            path = tuple((b.op, b.bits) for b in arch.blocks)
            m = self.costing.measure(path, epoch_seed(cfg.seed, e, 6)) if ctx.main else None
            m = ctx.broadcast(m)
            lam_used = self.lam
            if not warm:
                self.lam = self.costing.adapt(self.lam, m)
            acc = self.evaluate_path(self.arch_part, arch)
            self.seconds += time.perf_counter() - t0
            rec = {"epoch": e + 1, "phase": "warmup" if warm else "search", "weight_loss": float(sums[0]) / max(n, 1),
                   "arch_loss": float(sums[1]) / max(n, 1) if not warm else None,
                   "hw_cost": float(sums[2]) / max(n, 1) if not warm else None,
                   "sampled_arch_acc": float(sums[3] / sums[4]) if not warm else None,
                   "supernet_acc": acc, **finite_or_null(m),
                   "meets_spec": self.costing.meets(m), "lambda": lam_used, "next_lambda": self.lam,
                   "temperature": temperature,
                   "lr": self.w_opt.param_groups[0]["lr"], "arch_steps": self.arch_steps,
                   "blocks": [[b.op, b.bits] for b in arch.blocks], "seconds": self.seconds}
            self.log.append(rec)
            self.epoch += 1
            if ctx.main:
                self._epoch_line(rec)
                with open(self.run_dir / "search_log.jsonl", "a") as f:
                    f.write(dumps(rec, None) + "\n")
                if self.epoch % cfg.checkpoint_every == 0 or self.epoch == s.epochs:
                    save_checkpoint(self.run_dir / CHECKPOINT, self.state_dict())
            ctx.barrier()
        return self.finish()

    def _check_finite(self, which: str, loss_sum: float) -> None:
        """Stop a diverged search (checked once per epoch, on the summed losses) before it writes anything
        derived from NaN weights or logits."""
        if not math.isfinite(loss_sum):
            kept = ("its last checkpoint is kept unchanged" if (self.run_dir / CHECKPOINT).is_file()
                    else "no checkpoint was written")
            raise AutonbaError(f"the search diverged: the {which} loss became {loss_sum} in epoch {self.epoch + 1}; "
                               f"{kept}; lower search.lr (now {self.cfg.search.lr:g}) or search.arch_lr and start a "
                               "new run")

    def _epoch_line(self, r: dict[str, Any]) -> None:
        loss = f"loss {r['weight_loss']:.3f}" + (f" arch {r['arch_loss']:.3f}" if r["arch_loss"] is not None else "")
        print(f"epoch {r['epoch']:>3}/{self.cfg.search.epochs} {r['phase']:<6} {loss} | supernet acc "
              f"{100 * r['supernet_acc']:.1f}% | " + (
                  f"EDP {_fmt(r['edp_uj_ms'], '.4g')} uJ*ms (target {self.cfg.target.edp_uj_ms:g}) | "
                  if self.cfg.target.edp_uj_ms is not None else
                  f"FPS {r['fps']:,.0f} (target {self.cfg.target.fps:,.0f}) | ") +
              f"lambda {r['lambda']:.3g} | T {r['temperature']:.2f} | {r['seconds']:.0f}s", file=sys.stderr)

    def derived(self) -> tuple[Arch, int, float, list[dict[str, Any]]]:
        """The final network, the epoch it was derived after, its supernet accuracy on the
        architecture split, and the candidates rescored (``search.derive``)."""
        none: list[dict[str, Any]] = []
        last = (self.supernet.derive(), self.epoch, float(self.log[-1]["supernet_acc"]), none)
        if self.cfg.search.derive == "last":
            return last
        ok = [r for r in self.log if r["phase"] == "search" and r["meets_spec"]]
        if not ok:
            return last
        to_arch = lambda blocks: Arch(layout=self.space.layout,  # noqa: E731
                                      blocks=[BlockChoice(op=o, bits=b) for o, b in blocks])
        if self.cfg.search.derive == "best":
            best = max(ok, key=lambda r: (r["supernet_acc"], r["epoch"]))
            return to_arch(best["blocks"]), best["epoch"], best["supernet_acc"], []
        # rescore: each distinct candidate, at the last epoch it was derived, with the final weights
        latest = {tuple(map(tuple, r["blocks"])): r["epoch"] for r in ok}
        candidates = [{"epoch": e, "blocks": [list(b) for b in blocks], "logged_acc": self.log[e - 1]["supernet_acc"],
                       "fps": self.log[e - 1].get("fps"),
                       "final_weights_acc": self.evaluate_path(self.arch_part, to_arch(blocks))}
                      for blocks, e in latest.items()]
        best = max(candidates, key=lambda c: (c["final_weights_acc"], c["epoch"]))
        return to_arch(best["blocks"]), best["epoch"], best["final_weights_acc"], candidates

    def finish(self) -> dict[str, Any]:
        """Derive the final network, search its accelerator, write the results (rank 0)."""
        arch, epoch, acc, candidates = self.derived()
        agree = all(a == arch.model_dump() for a in self.ctx.gather(arch.model_dump()))
        if not agree:
            raise AutonbaError("ranks derived different architectures (the distributed run diverged)")
        if not self.ctx.main:
            return {}
        t0 = time.perf_counter()
        path = tuple((b.op, b.bits) for b in arch.blocks)
        accel = self.costing.final(path, self.cfg.seed)
        arch.save(self.run_dir / "arch.json")
        write_json(self.run_dir / "accelerator.json", accel.to_dict())
        result = {
            "mode": self.cfg.mode, "bits_sampling": self.cfg.bits_sampling, "seed": self.cfg.seed,
            "dataset": self.cfg.data.name, "space": self.cfg.space,
            "arch": arch.model_dump(), "ops": [b.op for b in arch.blocks], "bits": [b.bits for b in arch.blocks],
            "target_fps": self.cfg.target.fps, "fps": accel.fps, "meets_target": self.costing.final_meets(accel),
            **self.cfg.target.fields(accel.metrics()),
            "accelerator": accel.summary(),
            "macs": arch.workload().macs, "bitops": self.log[epoch - 1]["bitops"],
            "derived_after_epoch": epoch, "supernet_acc": acc, "derive": self.cfg.search.derive,
            "derive_candidates": candidates,
            "final_lambda": self.lam, "reachable_fps": self.reachable_fps,
            "search_seconds": self.seconds + time.perf_counter() - t0, "epochs": self.cfg.search.epochs,
            "arch_steps": self.arch_steps, "initial": self.info,
            "distributed": {"world_size": self.ctx.world, "ranks_agree": agree},
        }
        write_json(self.run_dir / "result.json", result)
        return result


# ---- entry points ---------------------------------------------------------------------------------------
def check_config(cfg: SearchConfig) -> None:
    """Every name of the config (space, bitwidths, dataset, template, platform, options, engines)
    resolved before any work, so that a typo never surfaces after the first epoch."""
    space = load_space(cfg.space).model_dump()
    if cfg.bits is not None:
        space["bits"] = cfg.bits
    validate(SearchSpace, space, f"search space '{cfg.space}' with bits")
    DATASETS.get(cfg.data.name)
    if cfg.arch is not None:
        check_arch_ref(cfg.arch)
    h = cfg.hardware
    load_hardware(h.template, h.platform, h.template_options)
    engines = engines_for(h.template)
    for field, name in (("engine", h.engine), ("final_engine", h.final_engine)):
        if name not in engines:
            raise AutonbaError(f"hardware.{field}: unknown engine '{name}' for template '{h.template}'; "
                               f"allowed: {', '.join(engines.names())}")


def config_differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the fields whose values differ between two config dumps, with both values."""
    out = []
    for k in sorted(set(a) | set(b), key=str):
        va, vb = a.get(k), b.get(k)
        name = f"{prefix}{k}"
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_differences(va, vb, name + ".")
        elif va != vb:
            out.append(f"{name} ({va!r} in the checkpoint, {vb!r} now)")
    return out


def _load_state(run_dir: Path, cfg: SearchConfig) -> dict[str, Any] | None:
    """The checkpoint of a run to resume (None: the run has a config but stopped before its first
    checkpoint, so it starts again); an error if the config differs from the one it started with."""
    ckpt = run_dir / CHECKPOINT
    if not ckpt.is_file():
        if not (run_dir / "config.yaml").is_file():
            raise AutonbaError(f"--resume: {run_dir} holds no run (no config.yaml, no {CHECKPOINT})")
        print(f"autonba: {run_dir} stopped before its first checkpoint; starting it again from its config.yaml",
              file=sys.stderr)
        return None
    state = load_checkpoint(ckpt)
    if not isinstance(state, dict) or state.get("format") != FORMAT or "config" not in state:
        raise AutonbaError(f"--resume: {ckpt} is not an autonba search checkpoint")
    saved = validate(SearchConfig, state["config"], f"checkpoint {ckpt} config")
    diff = config_differences(saved.model_dump(mode="json"), cfg.model_dump(mode="json"))
    if diff:
        raise AutonbaError(f"--resume: the config differs from the one the run started with in "
                           f"{'; '.join(diff[:6])}{' ...' if len(diff) > 6 else ''}; a run continues with its "
                           f"own config (restore {run_dir / 'config.yaml'}, or start a new run)")
    return state


def _require_empty(run_dir: Path) -> None:
    if any(p.name != LOCK for p in run_dir.iterdir()):
        raise AutonbaError(f"run directory {run_dir} already holds files; resume it with --resume or choose "
                           "another --out (nothing was overwritten)")


def fixed_arch(cfg: SearchConfig, run_dir: Path) -> dict[str, Any]:
    """``mode: fixed-arch``: no network search; the accelerator of the given network (``final_engine``),
    written as a search would write it, so that ``train``, ``report`` and ``export`` treat it alike."""
    assert cfg.arch is not None  # validated with the mode
    t0 = time.perf_counter()
    space = fit_space(cfg, load_data(cfg.data))
    arch = resolve_arch(cfg.arch, space.layout)
    costing = Costing(cfg, space)
    path = tuple((b.op, b.bits) for b in arch.blocks)
    accel = costing.final(path, cfg.seed)
    write_config(run_dir / "config.yaml", cfg)
    arch.save(run_dir / "arch.json")
    write_json(run_dir / "accelerator.json", accel.to_dict())
    result = {
        "mode": cfg.mode, "arch_source": cfg.arch, "seed": cfg.seed, "dataset": cfg.data.name, "space": cfg.space,
        "arch": arch.model_dump(), "ops": [b.op for b in arch.blocks], "bits": [b.bits for b in arch.blocks],
        "target_fps": cfg.target.fps, "fps": accel.fps, "meets_target": costing.final_meets(accel),
        **cfg.target.fields(accel.metrics()), "accelerator": accel.summary(),
        "macs": arch.workload().macs, "bitops": float(block_bitops(space, path).sum()), "supernet_acc": None,
        "search_seconds": time.perf_counter() - t0, "epochs": 0,
    }
    write_json(run_dir / "result.json", result)
    return result


def search(cfg: SearchConfig, run_dir: str | Path, resume: bool = False,
           progress: bool | None = None) -> dict[str, Any]:
    """Run (or resume) a joint search into ``run_dir``; returns result.json's content (rank 0).
    The directory is locked for the run's life; nothing is written in it until the run can start."""
    run_dir = Path(run_dir)
    check_config(cfg)
    if cfg.mode == "fixed-arch":  # seconds of work, done again when resumed
        with RunLock(run_dir, "search"):
            if resume:
                _load_state(run_dir, cfg)
            else:
                _require_empty(run_dir)
            return fixed_arch(cfg, run_dir)
    ctx = dist_.setup(cfg.device)
    try:
        with RunLock(run_dir, "search") if ctx.main else contextlib.nullcontext():
            ctx.barrier()  # rank 0 holds the directory before any rank reads it
            state = _load_state(run_dir, cfg) if resume else None
            if not resume:
                _require_empty(run_dir)
            ctx.barrier()  # every rank has checked the directory before rank 0 writes to it
            js = JointSearch(cfg, run_dir, ctx, progress)
            if state is not None:
                js.load_state_dict(state)
            else:
                js.start()
            if ctx.main:
                if state is None:
                    write_config(run_dir / "config.yaml", cfg)
                # a fresh log, or the log up to the checkpoint (lines of later epochs dropped)
                write_atomic(run_dir / "search_log.jsonl", "".join(dumps(r, None) + "\n" for r in js.log), "log")
            return js.run()
    finally:
        dist_.teardown(ctx)
