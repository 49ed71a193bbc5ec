"""Memory and speed of one weight step + one architecture step of the supernet.

Reference CIFAR layout, batch 32, 32x32 input, CPU. For every (sampling mode, number of bitwidth
choices, step kind) point a fresh process builds the supernet and measures the step's own memory
on its first run (so the allocator holds no memory from an earlier step):
  - saved: bytes of the tensors autograd saves for backward (torch.autograd.graph.saved_tensors_hooks,
    each storage counted once),
  - peak: the peak resident memory during the step above the resident memory just before it
    (/proc/self/statm polled every millisecond from a thread),
and then the time per step (median of the next runs).

Usage: python benchmarks/supernet_memory.py [--modes hetero multipath soft] [--json out.json]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import threading
import time

BITS = {1: [8], 2: [4, 8], 4: [2, 4, 6, 8], 6: [2, 3, 4, 5, 6, 8]}


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(mode: str, nbits: int, kind: str, reps: int, batch: int = 32) -> dict:
    import torch
    import torch.nn.functional as F

    from autonba.nas.space import load_space
    from autonba.nas.supernet import Supernet

    torch.manual_seed(0)
    space = load_space("cifar").model_copy(update={"bits": BITS[nbits]})
    net = Supernet(space, mode)
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    g = torch.Generator().manual_seed(0)

    def one(kind: str, count: dict | None = None):
        net.zero_grad(set_to_none=True)
        s = net.sample(kind, 1.0, g)
        if count is None:
            F.cross_entropy(net(x, s), y).backward()
            return
        seen = set()

        def pack(t):
            key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
            if key not in seen:
                seen.add(key)
                count["saved"] += key[1]
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = F.cross_entropy(net(x, s), y)
        loss.backward()

    gc.collect()
    count = {"saved": 0}
    base, peak, stop = _rss(), [0], threading.Event()

    def poll():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.001)

    th = threading.Thread(target=poll)
    th.start()
    one(kind, count)
    stop.set()
    th.join()
    peak[0] = max(peak[0], _rss())
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        one(kind)
        times.append(time.perf_counter() - t0)
    return {"saved_mb": count["saved"] / 2**20, "peak_mb": (peak[0] - base) / 2**20,
            "seconds": statistics.median(times) if times else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--modes", nargs="+", default=["hetero", "multipath", "soft"])
    ap.add_argument("--bits", nargs="+", type=int, default=[1, 2, 4, 6])
    ap.add_argument("--reps", type=int, default=2, help="timed runs per step after the measured one")
    ap.add_argument("--json")
    ap.add_argument("--point", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.point:
        print(json.dumps(measure(a.point[0], int(a.point[1]), a.point[2], a.reps)))
        return
    rows = []
    for mode in a.modes:
        for nb in a.bits:
            row = {"mode": mode, "bits": nb}
            for kind in ("weight", "arch"):
                r = subprocess.run([sys.executable, __file__, "--point", mode, str(nb), kind, "--reps", str(a.reps)],
                                   capture_output=True, text=True)
                if r.returncode:
                    sys.exit(r.stderr)
                row[kind] = json.loads(r.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"done {mode} {nb}: {row}", file=sys.stderr, flush=True)
    print("| mode | bit choices | weight step saved MB | weight step peak MB | arch step saved MB | "
          "arch step peak MB | weight step s | arch step s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        w, ar = r["weight"], r["arch"]
        print(f"| {r['mode']} | {r['bits']} | {w['saved_mb']:.1f} | {w['peak_mb']:.1f} | {ar['saved_mb']:.1f} | "
              f"{ar['peak_mb']:.1f} | {w['seconds']:.3f} | {ar['seconds']:.3f} |")
    for mode in a.modes:
        pts = {r["bits"]: r for r in rows if r["mode"] == mode}
        if 1 in pts and 6 in pts:
            for kind in ("weight", "arch"):
                for m in ("saved_mb", "peak_mb"):
                    print(f"- {mode} {kind} {m}: 6 vs 1 choices x{pts[6][kind][m] / max(pts[1][kind][m], 1e-9):.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
