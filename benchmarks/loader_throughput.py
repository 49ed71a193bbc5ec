"""Images per second that the search's data loader delivers (decoded-image cache, random crop and flip,
normalisation, batching), against the rate the steps consume them: is the loader the bottleneck?

    python benchmarks/loader_throughput.py --data ../shared/data/cifar10-jpeg.zip --workers 0 1 2 --batch 128

The images are decoded once into memory first (as a search does: reported as decode_s), then each worker
count iterates ``--batches`` batches of the real ``loader`` (pinned memory when ``--pin``, as on a GPU).
One JSON line per worker count.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch

from autonba.data.datasets import DataConfig, load_data, search_split
from autonba.search import dist
from autonba.search.runs import loader


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="CIFAR-10 as an image folder or .zip")
    ap.add_argument("--subset", type=int, default=20000, help="training images decoded")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--batches", type=int, default=60)
    ap.add_argument("--pin", action="store_true", help="pinned batches (needs CUDA)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    cfg = DataConfig(name="imagefolder", path=a.data, input_size=32, train_subset=a.subset)
    weight_part, _ = search_split(load_data(cfg), cfg)
    decode = time.perf_counter() - t0
    ctx = dist.setup("cuda" if a.pin else "cpu")
    for w in a.workers:
        dl = loader(weight_part, a.batch, w, ctx, 0, 0)
        it = iter(dl)
        next(it)  # workers started
        t0 = time.perf_counter()
        n = 0
        for _, (x, _y) in zip(range(a.batches), it):
            n += len(x)
        dt = time.perf_counter() - t0
        print(json.dumps({"workers": w, "batch": a.batch, "batches": a.batches, "images_per_s": n / dt,
                          "pinned": a.pin, "decode_s": decode, "images": len(weight_part),
                          "cpus": os.cpu_count()}), flush=True)


if __name__ == "__main__":
    main()
