"""Work and time per step of the joint search, on the reference CIFAR layout (22 blocks, 9 ops) with
synthetic CIFAR-shaped data, through the real loop code.

    python benchmarks/supernet_throughput.py --device cpu --threads 1 --batch 32 --steps 12 --arch-steps 6
    python benchmarks/supernet_throughput.py --device cuda --batch 128 --steps 200 --arch-steps 100

Step kinds, each timed over the same pre-drawn paths:

- ``weight``: ``JointSearch.weight_step`` (sampling, hetero forward/backward, SGD);
- ``arch``: ``JointSearch.arch_step`` (sampling, top-k paths, hardware cost of the single path, Adam;
  every ``research_every``-th a re-search of the accelerator on the host);
- ``float``: the weight step's single paths with every layer unquantised (32 bits), same loss, backward
  and SGD: the floor a quantised supernet step is measured against;
- ``quant``: the same single paths at their sampled bitwidth (what the derived network computes).

Before measuring, weight steps on two-image batches run until every candidate operation has its
optimiser state (as in a search after its first few hundred steps). Per kind, one JSON line: time per
step (the median of ``--rounds`` turns in which the kinds take their steps alternately) and its ratio
to the float step, images per second, operator calls in one step (PyTorch profiler: top-level
``aten::`` operators, plus the kernels of compiled regions), on CUDA the kernels launched and the host
synchronisations PyTorch reports (``torch.cuda.set_sync_debug_mode``), and peak memory (on CPU the
process's peak RSS so far).
``--compile on`` runs the quantisers through their compiled kernels (``torch.compile``); the first steps
(warm-up) then include compilation, reported as ``warmup_s``. ``--amp bf16`` runs every kind's training
forward under bfloat16 autocast (``search.amp``).
"""
from __future__ import annotations

import argparse
import collections
import itertools
import json
import resource
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from autonba.nas.modules import LayerPath, QuantSpec
from autonba.search import dist
from autonba.search.config import SearchConfig
from autonba.search.joint import JointSearch


def operator_calls(prof: profile) -> dict[str, int]:
    """Top-level aten operators (those not called by another aten operator), kernels of compiled CPU
    regions, and on CUDA the device kernels and kernel launches."""
    out: collections.Counter[str] = collections.Counter()
    for e in prof.events():
        if e.device_type == DeviceType.CUDA:
            out["gpu_kernels"] += 1
            continue
        name = e.name
        if "cpp_fused" in name:
            out["compiled_kernels"] += 1
        elif name in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernelEx"):
            out["launches"] += 1
        elif name.startswith("aten::"):
            parent = e.cpu_parent
            while parent is not None and not parent.name.startswith("aten::"):
                parent = parent.cpu_parent
            if parent is None:
                out["aten_ops"] += 1
    out["ops"] = out["aten_ops"] + out["compiled_kernels"]
    return dict(out)


def host_syncs(step: Callable[[], object]) -> int:
    """Synchronisations of the host with the GPU that PyTorch reports during one step."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    ap.add_argument("--steps", type=int, default=300, help="weight, float and quant steps timed")
    ap.add_argument("--arch-steps", type=int, default=100, help="architecture steps timed")
    ap.add_argument("--warmup", type=int, default=5, help="steps of each kind before it is measured")
    ap.add_argument("--rounds", type=int, default=5, help="the timed steps of each kind, split into this many "
                                                          "turns")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--space", default="cifar")
    ap.add_argument("--bits", type=int, nargs="+", default=[4, 6, 8])
    ap.add_argument("--sampling", default="hetero")
    ap.add_argument("--compile", choices=["on", "off"], default="off", help="compiled quantiser kernels")
    ap.add_argument("--amp", choices=["off", "bf16"], default="off", help="search.amp: bfloat16 autocast of "
                                                                          "the training forwards")
    ap.add_argument("--kinds", nargs="+", default=["weight", "float", "quant", "arch"])
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch._inductor.config.cpp.enable_kernel_profile = True  # compiled CPU kernels appear in the profile
    cfg = SearchConfig.model_validate({
        "device": a.device, "space": a.space, "bits": a.bits, "bits_sampling": a.sampling,
        "data": {"name": "synthetic", "input_size": 32, "channels": 3, "samples": 4 * a.batch},
        "target": {"fps": 100.0}, "search": {"batch_size": a.batch, "amp": a.amp}})
    ctx = dist.setup(cfg.device)
    cuda = ctx.device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    with tempfile.TemporaryDirectory() as tmp:
        js = JointSearch(cfg, tmp, ctx, progress=False)
        js.start()
        sn = js.supernet
        if a.compile == "on":
            sn.net.compile_quantisers(True)
        x = torch.randn(a.batch, 3, 32, 32, device=ctx.device)
        y = torch.randint(0, 10, (a.batch,), device=ctx.device)
        # the paths the weight steps will draw (sampling does not change the logits): float and quant run them too
        draw = torch.Generator().manual_seed(0)
        samples = [sn.sample("weight", 5.0, draw) for _ in range(8)]

        def single(bits_of: Callable[[int, int], int]) -> list[list[LayerPath]]:
            return [[LayerPath(lp.ops, None, [QuantSpec.fixed(bits_of(l, s.bits[l]))]) for l, lp in enumerate(s.paths)]
                    for s in samples]

        def path_step(paths: list[LayerPath]) -> None:
            loss = F.cross_entropy(sn.net(x, paths), y)
            js.w_opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(sn.weight_parameters(), 5.0)
            js.w_opt.step()

        space_bits = sn.space.bits
        float_paths = itertools.cycle(single(lambda l, b: 32))
        quant_paths = itertools.cycle(single(lambda l, b: space_bits[b]))
        g = torch.Generator().manual_seed(0)
        ga = torch.Generator().manual_seed(1)
        steps: dict[str, tuple[Callable[[], object], int]] = {
            "weight": (lambda: js.weight_step(x, y, 5.0, g), a.steps),
            "float": (lambda: path_step(next(float_paths)), a.steps),
            "quant": (lambda: path_step(next(quant_paths)), a.steps),
            "arch": (lambda: js.arch_step(x, y, 5.0, ga), a.arch_steps)}
        # steady state first: every candidate's momentum buffer and activation range exist (a search creates
        # them in its first few hundred steps), found with small batches so that it is quick
        t0 = time.perf_counter()
        small = torch.Generator().manual_seed(2)
        params = sn.weight_parameters()
        for _ in range(1000):
            if all("momentum_buffer" in js.w_opt.state.get(p, {}) for p in params):
                break
            js.weight_step(x[:2], y[:2], 5.0, small)
        prime = time.perf_counter() - t0
        stats: dict[str, dict[str, object]] = {}
        for kind in a.kinds:
            step, _ = steps[kind]
            t0 = time.perf_counter()
            for _ in range(a.warmup):
                step()
            sync()
            warm = time.perf_counter() - t0
            with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
                step()
                sync()
            stats[kind] = {"warmup_s": warm, **operator_calls(prof), "host_syncs": host_syncs(step) if cuda else None}
        # the kinds timed in turns, each round's steps back to back: a load that comes and goes on the machine
        # weighs on every kind alike; the median round is reported
        times: dict[str, list[float]] = {k: [] for k in a.kinds}
        peak: dict[str, float] = {}
        for _ in range(a.rounds):
            for kind in a.kinds:
                step, n = steps[kind]
                if cuda:
                    torch.cuda.reset_peak_memory_stats()
                t0 = time.perf_counter()
                for _ in range(max(1, n // a.rounds)):
                    step()
                sync()
                times[kind].append((time.perf_counter() - t0) / max(1, n // a.rounds))
                peak[kind] = max(peak.get(kind, 0.0), torch.cuda.max_memory_allocated() if cuda
                                 else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        for kind in a.kinds:
            dt = statistics.median(times[kind])
            print(json.dumps({
                "step": kind, "device": str(ctx.device), "gpu": torch.cuda.get_device_name() if cuda else None,
                "torch": torch.__version__, "threads": torch.get_num_threads(), "compile": a.compile, "amp": a.amp,
                "space": a.space, "bits": a.bits, "sampling": a.sampling, "batch": a.batch,
                "steps": max(1, steps[kind][1] // a.rounds) * a.rounds, "rounds": a.rounds,
                "ms_per_step": 1000 * dt, "steps_per_s": 1 / dt, "images_per_s": a.batch / dt,
                "ratio_to_float": dt / statistics.median(times["float"]) if "float" in times else None,
                "prime_s": prime, **stats[kind], "peak_mem_mib": peak[kind] / 2 ** 20}), flush=True)


if __name__ == "__main__":
    main()
