#!/usr/bin/env bash
# The accelerator figures issue 8 asks for, in one run sized for a short GPU lease
# (~9 minutes on an H200; each step time-limited):
#   env     versions, devices, nvidia-smi                                      -> env.txt
#   smoke   XOR training and three gradient checks; when it fails the run      -> env.txt
#           stops there rather than spend the lease on the long steps
#   bench   matmul, W1, W2 side by side with the peers (bench.py)              -> bench.log/.json
#   w3      W3 without its "jaxnn autodiff vmap" row: the vmapped depth-study  -> w3.log/.json
#           kernel against a loop over seeds, linen, PyTorch
#   w3-autodiff-vmap  that row alone, last: on the H200 (jax 0.11.2) it had    -> w3.log
#           not finished building after ~3 minutes, when everything else took seconds
#   depth   a 9-group depth study (depths 2, 8, 30 x sigmoid, tanh, relu, 5    -> depth.log,
#           initializers x 5 seeds, 300 steps: 109.5 s on the 2-core CPU)          depth.tar.gz
#           -- the full 54-group sweep is compile-bound there (~15 min before 2026-12-04)
#
#   OUT=DIR bash scripts/gpu_checks.sh            # on the GPU machine, from the repo root
#   OUT=DIR bash scripts/gpu_checks.sh --quick    # a rehearsal on any machine (tiny sizes)
#   STEPS=w3,depth OUT=DIR bash scripts/gpu_checks.sh   # only these steps (env always runs)
#
# Runs from the source tree (PYTHONPATH, no install: a lent machine has no network, and
# its JAX / Flax / optax / PyTorch are whatever its image holds -- recorded in env.txt).
# Writes 8 files at most into $OUT (default runs/gpu), the most a lease returns. A step
# that fails or runs past its time limit does not stop the next one (bench.py rewrites its
# JSON after each section, so a section cut off keeps the ones before it); status.txt
# has each step's exit status and time. Time limits (s): SMOKE_LIMIT (120), BENCH_LIMIT
# (170), W3_LIMIT (130), W3AD_LIMIT (60), DEPTH_LIMIT (180).
set -u -o pipefail
quick=""
if [ "${1:-}" = "--quick" ]; then quick="--quick"; fi
OUT=${OUT:-runs/gpu}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
STEPS=${STEPS:-smoke,bench,w3,w3-autodiff-vmap,depth}
: > "$OUT/status.txt"

want() { case ",$STEPS," in *",$1,"*) return 0 ;; esac; return 1; }

step() {  # step NAME LIMIT LOG COMMAND...  (LOG is appended to)
  local name=$1 limit=$2 log=$3
  shift 3
  local t0=$SECONDS
  timeout -k 15 "$limit" "$@" 2>&1 | tee -a "$log"
  local rc=${PIPESTATUS[0]}
  echo "$name: exit $rc after $((SECONDS - t0)) s (limit $limit s)" | tee -a "$OUT/status.txt"
  return "$rc"
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
if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm \
    --format=csv >> "$OUT/env.txt" 2>&1
fi

if want smoke; then
  smoke_dir=$(mktemp -d)
  if ! step smoke "${SMOKE_LIMIT:-120}" "$OUT/env.txt" bash -c "
      set -e -o pipefail
      $PY scripts/train.py --config configs/xor.yaml --workdir '$smoke_dir/xor' 2>&1 | tail -n 3
      $PY scripts/gradcheck.py
      $PY scripts/gradcheck.py --dtype float32 || echo 'float32 gradcheck failed (not fatal)'
      $PY scripts/gradcheck.py --config configs/default.yaml --set model.batch_norm=true"; then
    rm -rf "$smoke_dir"
    echo "smoke check failed: the long steps are not run (see $OUT/env.txt)" \
      | tee -a "$OUT/status.txt"
    exit 3
  fi
  rm -rf "$smoke_dir"
fi

if want bench; then
  step bench "${BENCH_LIMIT:-170}" "$OUT/bench.log" \
    "$PY" scripts/bench.py --workloads matmul,w1,w2 $quick --json "$OUT/bench.json"
fi
if want w3; then
  step w3 "${W3_LIMIT:-130}" "$OUT/w3.log" \
    "$PY" scripts/bench.py --workloads w3 $quick --skip "autodiff vmap" --json "$OUT/w3.json"
fi
if want w3-autodiff-vmap; then  # its build time, or how long it ran without finishing
  step w3-autodiff-vmap "${W3AD_LIMIT:-60}" "$OUT/w3.log" \
    "$PY" scripts/bench.py --workloads w3 $quick --repeats 1 \
    --skip "manual,linen,pytorch,pinned"
fi

if want depth; then
  depth_cfg=(--config configs/depth_study.yaml --set "depths=[2,8,30]"
             --set "activations=[sigmoid,tanh,relu]")
  if [ -n "$quick" ]; then depth_cfg=(--config configs/depth_smoke.yaml); fi
  depth_dir=$(mktemp -d)
  step depth "${DEPTH_LIMIT:-180}" "$OUT/depth.log" \
    "$PY" scripts/depth_study.py "${depth_cfg[@]}" --workdir "$depth_dir/depth" --no-plots
  if [ -d "$depth_dir/depth" ]; then
    tar -czf "$OUT/depth.tar.gz" -C "$depth_dir" depth
  fi
  rm -rf "$depth_dir"
fi
cat "$OUT/status.txt"
