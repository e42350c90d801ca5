#!/usr/bin/env bash
# The accelerator figures issue 8 asks for, in one run sized for a short GPU lease:
# environment, W1/W2/W3 side by side with the peers (bench.py), and the full depth study.
#
#   OUT=DIR bash scripts/gpu_checks.sh            # on the GPU machine, from the repo root
#   OUT=DIR bash scripts/gpu_checks.sh --quick    # a rehearsal on any machine (tiny sizes)
#
# Runs from the source tree (PYTHONPATH, no install: a lent machine has no network, and
# its JAX / Flax / optax / PyTorch are whatever its image holds -- recorded in env.txt).
# Writes at most 6 files into $OUT (default runs/gpu): env.txt, bench.log, bench.json,
# depth.log, depth.tar.gz (the study's table, report and config) and status.txt (each
# step's exit status). A step that fails or runs past its time limit does not stop the
# next one. Time limits (s): BENCH_LIMIT (default 330), DEPTH_LIMIT (default 210).
set -u -o pipefail
quick=""
if [ "${1:-}" = "--quick" ]; then quick="--quick"; fi
OUT=${OUT:-runs/gpu}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
: > "$OUT/status.txt"

step() {  # step NAME LIMIT LOG COMMAND...
  local name=$1 limit=$2 log=$3
  shift 3
  local t0=$SECONDS
  timeout -k 15 "$limit" "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  echo "$name: exit $rc after $((SECONDS - t0)) s (limit $limit s)" | tee -a "$OUT/status.txt"
}

step env 60 "$OUT/env.txt" "$PY" -c '
import platform, jax, jaxlib, optax, flax
print("python", platform.python_version(), "jax", jax.__version__, "jaxlib",
      jaxlib.__version__, "optax", optax.__version__, "flax", flax.__version__)
try:
    import torch
    print("torch", torch.__version__, "cuda", torch.cuda.is_available())
except Exception as e:
    print("torch: not importable:", e)
print("devices", jax.devices())
'

step bench "${BENCH_LIMIT:-330}" "$OUT/bench.log" \
  "$PY" scripts/bench.py --workloads matmul,w1,w2,w3 $quick --json "$OUT/bench.json"

depth_cfg=configs/depth_study.yaml
if [ -n "$quick" ]; then depth_cfg=configs/depth_smoke.yaml; fi
depth_dir=$(mktemp -d)
step depth "${DEPTH_LIMIT:-210}" "$OUT/depth.log" \
  "$PY" scripts/depth_study.py --config "$depth_cfg" --workdir "$depth_dir/depth" --no-plots
if [ -d "$depth_dir/depth" ]; then
  tar -czf "$OUT/depth.tar.gz" -C "$depth_dir" depth
fi
rm -rf "$depth_dir"
cat "$OUT/status.txt"
