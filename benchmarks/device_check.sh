#!/usr/bin/env bash
# One short GPU check, for a lent GPU machine (about 8 minutes on one H100), run from the repository root:
#   bash benchmarks/device_check.sh            # results in $OUT (or /tmp/aisviz-device-check)
#   SECTIONS=3 bash benchmarks/device_check.sh # only section 3 (BUDGET_S: seconds for all; section 4 takes the rest)
# 1. the equality tests, whose CUDA cases run only where a GPU is present;
# 2. the engine benchmark on the GPU, float32 and TF32, each checked against float64;
# 3. the CLI's full protocol (5 folds x 8 seeds, every k) on the GPU and on the CPU, compared number by number;
# 4. the memory benchmark at 2000 images on the CPU (GPU hidden), as far as the time allows.
# The offline network's two pure-Python wheels travel in .whl/ when the machine has no package index.
set -u
OUT=${OUT:-/tmp/aisviz-device-check}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 AISVIZ_HOME=/tmp/aisviz-home
nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"

has() { [[ ${SECTIONS:-1234} == *$1* ]]; }
if has 1; then
echo "== 1. equality tests"
timeout 150 python3 -m pytest -q -p no:cacheprovider -rs tests/unit/test_engine.py tests/unit/test_ais.py tests/unit/test_features.py \
  2>&1 | tee "$OUT/tests.txt" | tail -8
fi

if has 2; then
echo "== 2. engine benchmark on the GPU"
for flag in "" "--tf32"; do
  timeout 100 python3 benchmarks/bench_engine.py --only protocol --device cuda $flag 2>&1 | tee -a "$OUT/bench_engine.txt"
done
fi

if has 3; then
echo "== 3. the CLI protocol, GPU against CPU"
for dev in cuda cpu; do
  TIMEFORMAT="validate --device $dev: %R s wall"
  time timeout 100 python3 -m aisviz validate --device $dev --json --quiet --no-cache >"$OUT/validate_$dev.json" \
    2>"$OUT/validate_$dev.err"
done
python3 - "$OUT" <<'EOF'
import json, sys
import numpy as np
a, b = (json.load(open(f"{sys.argv[1]}/validate_{d}.json")) for d in ("cuda", "cpu"))
print("engine:", a["engine"], "|", b["engine"])
for key in ("mean_r2_test_topk", "mean_r2_test_all", "mean_k_star"):
    if key in a["summary"]:
        print(f"{key}: cuda {a['summary'][key]:.10g} cpu {b['summary'][key]:.10g}")
ks = [(x["k_star"], y["k_star"]) for x, y in zip(a["splits"], b["splits"])]
print("splits with the same k*:", sum(x == y for x, y in ks), "of", len(ks))
for name, ca in a["curves_mean"].items():
    x, y = np.array(ca, dtype=float), np.array(b["curves_mean"][name], dtype=float)
    print(f"curve {name}: largest |cuda - cpu| = {np.nanmax(np.abs(x - y)):.3g}, "
          f"undefined at the same k: {np.array_equal(np.isnan(x), np.isnan(y))} ({int(np.isnan(x).sum())})")
EOF
fi

has 4 || exit 0
left=$((${BUDGET_S:-540} - SECONDS))
[ $left -gt 60 ] || { echo "== 4. skipped: $left s left of BUDGET_S"; exit 0; }
echo "== 4. memory at 2000 images, CPU only, for the $left s left"
CUDA_VISIBLE_DEVICES= timeout $left python3 benchmarks/bench_memory.py --sizes 2000 --threads 16 --trace \
  >"$OUT/memory.txt" 2>"$OUT/memory_trace.txt"
cat "$OUT/memory.txt"; tail -3 "$OUT/memory_trace.txt"
