"""Seconds per retraining step of a derived network (channels-last, SGD, batch of random images),
to compare code versions on the same machine:

    python benchmarks/retrain_step_time.py runs/cifar-seq-cl/arch.json --threads 2 --batch 64
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from autonba.nas.arch import Arch
from autonba.nas.derived import DerivedNet


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("arch", help="an arch.json")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    arch = Arch.load(a.arch)
    lay = arch.layout
    model = DerivedNet(arch).to(memory_format=torch.channels_last)
    x = torch.randn(a.batch, lay.input_channels, lay.input_size, lay.input_size).contiguous(
        memory_format=torch.channels_last)
    y = torch.randint(0, lay.num_classes, (a.batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    print(f"{(time.perf_counter() - t0) / a.steps:.4f} s/step ({a.steps} steps, batch {a.batch}, {a.threads} threads)")


if __name__ == "__main__":
    main()
