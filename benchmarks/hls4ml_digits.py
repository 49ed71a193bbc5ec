"""The default digits run exported to hls4ml: compile time of the emulation, its agreement with the
fixed-point network on the whole digits test split (bit-exact means 100% of logits), and test
accuracy of the trained, the folded fixed-point and the emulated network.

    python benchmarks/hls4ml_digits.py RUN_DIR [--out DIR]

RUN_DIR is a run `autonba train` retrained with `quant_scales: pow2` (a float-scale run is exported
with --approximate, as the flag says). Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from autonba.data.datasets import load_data
from autonba.deploy.hls4ml_export import convert, predict
from autonba.deploy.hls4ml_project import _quiet, plan_run
from autonba.search.runs import load_run_config


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--out", default="/tmp/hls4ml_digits")
    args = ap.parse_args()
    run = Path(args.run_dir)
    approximate = json.loads((run / "final.json").read_text())["quant_scales"] != "pow2"   # as retrained
    plan = plan_run(run, approximate)
    model, net, plans = plan.model, plan.net, plan.layers
    t0 = time.perf_counter()
    hm = convert(net, args.out, plans, plan.part, plan.clock_ns)
    convert_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with _quiet():
        hm.compile()
    compile_s = time.perf_counter() - t0
    xs, ys = [], []
    for x, y in DataLoader(load_data(load_run_config(run).data).test, batch_size=4096):
        xs.append(x.double())
        ys.append(y)
    x, y = torch.cat(xs), torch.cat(ys)
    with torch.no_grad():
        trained = model(x.float()).argmax(1)
        ref = net(x).numpy()
    t0 = time.perf_counter()
    emu = predict(hm, x.numpy())
    predict_s = time.perf_counter() - t0
    acc = lambda p: float((torch.as_tensor(p) == y).double().mean())  # noqa: E731
    print(json.dumps({
        "run": args.run_dir, "scales": model.arch.layout.scales, "approximate": approximate,
        "test_images": len(y), "convert_s": round(convert_s, 1), "compile_s": round(compile_s, 1),
        "predict_s": round(predict_s, 1),
        "logits_equal": int((emu == ref).sum()), "logits": int(ref.size),
        "images_all_logits_equal": int((emu == ref).all(1).sum()),
        "max_abs_diff": float(np.abs(emu - ref).max()),
        "acc_trained": acc(trained), "acc_fixed": acc(ref.argmax(1)), "acc_emulated": acc(emu.argmax(1)),
        "reuse_factors": {p.name: p.reuse_factor for p in plans}}, indent=1))


if __name__ == "__main__":
    main()
