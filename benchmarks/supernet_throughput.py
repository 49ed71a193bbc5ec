"""Steps per second and peak memory of the joint search's weight and architecture steps, on the
reference CIFAR layout (22 blocks, 9 ops) with synthetic CIFAR-shaped data, through the real loop code.

    python benchmarks/supernet_throughput.py --device cuda --steps 300 --batch 128

Prints one JSON line per step kind: steps/s, images/s, peak memory (GPU: max_memory_allocated; CPU: RSS).
"""
from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time

import torch

from autonba.search import dist
from autonba.search.config import SearchConfig
from autonba.search.joint import JointSearch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=300, help="weight steps timed")
    ap.add_argument("--arch-steps", type=int, default=100, help="architecture steps timed (each includes the "
                                                                 "hardware cost; every 20th a re-search)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--space", default="cifar")
    ap.add_argument("--bits", type=int, nargs="+", default=[4, 6, 8])
    ap.add_argument("--sampling", default="hetero")
    a = ap.parse_args()
    cfg = SearchConfig.model_validate({
        "device": a.device, "space": a.space, "bits": a.bits, "bits_sampling": a.sampling,
        "data": {"name": "synthetic", "input_size": 32, "channels": 3, "samples": 4 * a.batch},
        "target": {"fps": 100.0}, "search": {"batch_size": a.batch}})
    ctx = dist.setup(cfg.device)
    with tempfile.TemporaryDirectory() as tmp:
        js = JointSearch(cfg, tmp, ctx, progress=False)
        js.start()
        g = torch.Generator().manual_seed(0)
        x = torch.randn(a.batch, 3, 32, 32, device=ctx.device)
        y = torch.randint(0, 10, (a.batch,), device=ctx.device)
        sync = torch.cuda.synchronize if ctx.device.type == "cuda" else (lambda: None)
        for kind, step, n in (("weight", lambda: js.weight_step(x, y, 5.0, g), a.steps),
                              ("arch", lambda: js.arch_step(x, y, 5.0, g), a.arch_steps)):
            for _ in range(a.warmup):
                step()
            sync()
            if ctx.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            for _ in range(n):
                step()
            sync()
            dt = time.perf_counter() - t0
            peak = (torch.cuda.max_memory_allocated() if ctx.device.type == "cuda"
                    else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
            print(json.dumps({"step": kind, "device": str(ctx.device), "gpu": torch.cuda.get_device_name()
                              if ctx.device.type == "cuda" else None, "space": a.space, "bits": a.bits,
                              "sampling": a.sampling, "batch": a.batch, "steps": n,
                              "steps_per_s": n / dt, "images_per_s": n * a.batch / dt,
                              "peak_mem_mib": peak / 2 ** 20}), flush=True)


if __name__ == "__main__":
    main()
