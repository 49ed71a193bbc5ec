#!/bin/bash
# The GPU half of the search-throughput bars on one CUDA GPU, in two parts that each fit in a 10-minute
# command (PART: steps, more, or all, the default). Needs a CUDA build of PyTorch and autonba's
# dependencies; autonba itself is taken from this checkout (PYTHONPATH), nothing is installed. Writes at
# most 5 files into OUT (default ./gpu-throughput):
#   steps: the step benchmark on the reference CIFAR layout at batch 128 and 256, compiled quantisers on and
#          off (steps and images per second, operator calls, kernels launched, host syncs, peak memory)
#          -> gpu.txt, steps.jsonl;
#   more:  the same, compiled with bf16 autocast (search.amp), and the default digits search on the GPU,
#          whose derived network is compared with the CPU's -> steps.jsonl, search.log, search_result.json.
#     bash benchmarks/gpu_throughput.sh [OUT] [PART]
# On this project's lent H200 (its image lacks pydantic: carry wheels of pydantic, pydantic-core,
# annotated-types and typing-inspection in .whl, downloaded as /work/.library/device/README.md says),
# one `run` per part, with carry [".whl"]:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
#     && bash benchmarks/gpu_throughput.sh $OUT steps
set -euo pipefail
OUT=${1:-gpu-throughput}
PART=${2:-all}
PY=${PYTHON:-python3}
case "$PART" in steps|more|all) ;; *) echo "PART must be steps, more or all, got '$PART'" >&2; exit 2;; esac
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

steps() {  # compile amp batch...
  local compile=$1 amp=$2
  shift 2
  for batch in "$@"; do
    $PY benchmarks/supernet_throughput.py --device cuda --batch "$batch" --steps 120 --arch-steps 40 \
      --warmup 10 --rounds 4 --compile "$compile" --amp "$amp" | tee -a "$OUT/steps.jsonl"
  done
}

if [[ $PART != more ]]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"
  steps on off 128 256
  steps off off 128 256
fi
if [[ $PART != steps ]]; then
  steps on bf16 128 256
  RUN=$(mktemp -d)/search
  { time $PY -m autonba.cli search --set device=cuda --out "$RUN" --no-progress; } 2>&1 | tee "$OUT/search.log"
  cp "$RUN/result.json" "$OUT/search_result.json"
  $PY - "$RUN/result.json" <<'EOF' | tee -a "$OUT/search.log"
import json, sys
r = json.load(open(sys.argv[1]))
print("derived:", " ".join(f"{b['op']}@{b['bits']}" for b in r["arch"]["blocks"]), "| fps", r["fps"],
      "| search seconds", r.get("search_seconds"))
EOF
fi
