#!/bin/bash
# The GPU half of the search-throughput bars, in one run of about 10 minutes on one H200, in an environment
# with a CUDA build of PyTorch and autonba installed (pip install -e .). Writes its JSON lines and logs into
# OUT (default ./gpu-throughput):
#   - the step benchmark on the reference CIFAR layout at batch 128 and 256: compiled quantisers on and off,
#     and compiled with bf16 autocast (steps and images per second, operator calls, kernels launched, host
#     syncs, peak memory);
#   - the default digits search on the GPU, whose derived network is compared with the CPU's.
#     bash benchmarks/gpu_throughput.sh [OUT]
set -euo pipefail
OUT=${1:-gpu-throughput}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"
for run in "on off" "off off" "on bf16"; do
  read -r compile amp <<< "$run"
  for batch in 128 256; do
    python benchmarks/supernet_throughput.py --device cuda --batch "$batch" --steps 120 --arch-steps 40 \
      --warmup 10 --rounds 4 --compile "$compile" --amp "$amp" | tee -a "$OUT/steps.jsonl"
  done
done
rm -rf "$OUT/search"
/usr/bin/time -v autonba search --set device=cuda --out "$OUT/search" --no-progress 2>&1 | tee "$OUT/search.log"
python - "$OUT/search/result.json" <<'EOF' | tee -a "$OUT/search.log"
import json, sys
r = json.load(open(sys.argv[1]))
print("derived:", " ".join(f"{b['op']}@{b['bits']}" for b in r["arch"]["blocks"]), "| fps", r["fps"],
      "| search seconds", r.get("search_seconds"))
EOF
