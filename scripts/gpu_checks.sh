#!/usr/bin/env bash
# The accelerator figures issue 8 asks for, in one run sized for a short GPU lease
# (one call of at most 10 minutes; the steps run in this order, each time-limited, and
# all of them within TOTAL_LIMIT seconds):
#   env     versions, devices, nvidia-smi                                      -> env.txt
#   smoke   XOR training and three gradient checks; when it fails the run      -> env.txt
#           stops there rather than spend the lease on the long steps
#   w3      W3 without its "jaxnn autodiff vmap" row: the vmapped depth-study  -> w3.log/.json
#           kernel against a loop over seeds (the open ">= 3x" GPU target), linen, PyTorch
#   depth   a 9-group depth study (depths 2, 8, 30 x sigmoid, tanh, relu, 5    -> depth.log,
#           initializers x 5 seeds, 300 steps: ~57 s on the 2-core CPU); each    depth.tar.gz
#           group's line says how much of its time was compilation
#   w3-autodiff-vmap  that W3 row alone: on the H200 (jax 0.11.2) it had not   -> w3.log
#           finished building after ~3 minutes, when everything else took seconds
#   w3-autodiff-vmap-notune  the same with XLA's GPU autotuning off            -> w3.log
#           (NOTUNE_FLAGS): if it builds now, autotuning was the cost
#   depth-notune  depths 8 and 30 of the depth step with NOTUNE_FLAGS: does    -> depth.log
#           autotuning make the depth study compile-bound on the GPU?
#   bench   matmul, W1, W2 side by side with the peers (measured on the H200   -> bench.log/.json
#           on 2026-12-04; last, run if time is left -- or alone: STEPS=bench)
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
# has each step's exit status and time, and names the steps skipped for lack of time.
# Time limits (s): TOTAL_LIMIT (570: a 600 s call with room to pack the files),
# SMOKE_LIMIT (120), W3_LIMIT (130), DEPTH_LIMIT (150), W3AD_LIMIT (60), DEPTH_NOTUNE_LIMIT
# (100), BENCH_LIMIT (170); a step gets the smaller of its own and what is left of the
# total, and is skipped when fewer than 30 s are left.
# NOTUNE_FLAGS (appended to XLA_FLAGS): --xla_gpu_autotune_level=0
# --xla_gpu_experimental_enable_fusion_autotuner=false; a JAX whose XLA does not know the
# second flag (XLA aborts on an unknown flag) gets the first alone.
set -u -o pipefail
quick=""
if [ "${1:-}" = "--quick" ]; then quick="--quick"; fi
OUT=${OUT:-runs/gpu}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
STEPS=${STEPS:-smoke,w3,depth,w3-autodiff-vmap,w3-autodiff-vmap-notune,depth-notune,bench}
TOTAL_LIMIT=${TOTAL_LIMIT:-570}
for v in TOTAL_LIMIT SMOKE_LIMIT W3_LIMIT DEPTH_LIMIT W3AD_LIMIT DEPTH_NOTUNE_LIMIT BENCH_LIMIT; do
  case ${!v:-0} in
    '' | *[!0-9]*) echo "error: $v must be a whole number of seconds, got '${!v}'" >&2; exit 2 ;;
  esac
done
NOTUNE_FLAGS=${NOTUNE_FLAGS:---xla_gpu_autotune_level=0 --xla_gpu_experimental_enable_fusion_autotuner=false}
: > "$OUT/status.txt"

want() { case ",$STEPS," in *",$1,"*) return 0 ;; esac; return 1; }

step() {  # step NAME LIMIT LOG COMMAND...  (LOG is appended to)
  local name=$1 limit=$2 log=$3
  shift 3
  local left=$((TOTAL_LIMIT - SECONDS))
  if [ "$left" -lt 30 ]; then
    echo "$name: skipped, $left s left of TOTAL_LIMIT=$TOTAL_LIMIT" | tee -a "$OUT/status.txt"
    return 124
  fi
  if [ "$left" -lt "$limit" ]; then limit=$left; fi
  local t0=$SECONDS
  echo "== $name (limit $limit s)" >> "$log"
  timeout -k 15 "$limit" "$@" 2>&1 | tee -a "$log"
  local rc=${PIPESTATUS[0]}
  echo "$name: exit $rc after $((SECONDS - t0)) s (limit $limit s)" | tee -a "$OUT/status.txt"
  return "$rc"
}

NOTUNE_XLA=""
notune_init() {  # sets NOTUNE_XLA: XLA_FLAGS + NOTUNE_FLAGS (the second flag dropped if unknown)
  if [ -n "$NOTUNE_XLA" ] || [ $((TOTAL_LIMIT - SECONDS)) -lt 30 ]; then return; fi
  if ! XLA_FLAGS="${XLA_FLAGS:-} $NOTUNE_FLAGS" timeout 60 "$PY" -c \
      'import jax; jax.devices()' > /dev/null 2>&1; then
    echo "NOTUNE_FLAGS '$NOTUNE_FLAGS' refused by this XLA; using --xla_gpu_autotune_level=0" \
      | tee -a "$OUT/status.txt"
    NOTUNE_FLAGS="--xla_gpu_autotune_level=0"
  fi
  NOTUNE_XLA="${XLA_FLAGS:-} $NOTUNE_FLAGS"
}

if "$PY" -c 'import torch' > /dev/null 2>&1; then torch_rows=",pytorch"; else torch_rows=""; fi

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

if want w3; then
  step w3 "${W3_LIMIT:-130}" "$OUT/w3.log" \
    "$PY" scripts/bench.py --workloads w3 $quick --skip "autodiff vmap" --json "$OUT/w3.json"
fi

depth_groups=(--config configs/depth_study.yaml --set "depths=[2,8,30]"
              --set "activations=[sigmoid,tanh,relu]")
if [ -n "$quick" ]; then depth_groups=(--config configs/depth_smoke.yaml); fi
if want depth; then
  depth_dir=$(mktemp -d)
  step depth "${DEPTH_LIMIT:-150}" "$OUT/depth.log" \
    "$PY" scripts/depth_study.py "${depth_groups[@]}" --workdir "$depth_dir/depth" --no-plots
  if [ -d "$depth_dir/depth" ]; then
    tar -czf "$OUT/depth.tar.gz" -C "$depth_dir" depth
  fi
  rm -rf "$depth_dir"
fi

ad_only=(--workloads w3 $quick --repeats 1 --skip "manual,linen,pinned$torch_rows")
if want w3-autodiff-vmap; then  # its build time, or how long it ran without finishing
  step w3-autodiff-vmap "${W3AD_LIMIT:-60}" "$OUT/w3.log" "$PY" scripts/bench.py "${ad_only[@]}"
fi
if want w3-autodiff-vmap-notune; then
  notune_init
  step w3-autodiff-vmap-notune "${W3AD_LIMIT:-60}" "$OUT/w3.log" \
    env XLA_FLAGS="$NOTUNE_XLA" "$PY" scripts/bench.py "${ad_only[@]}"
fi
if want depth-notune; then  # its per-group compile times against the depth step's
  notune_init
  notune_dir=$(mktemp -d)
  notune_groups=("${depth_groups[@]}")
  if [ -z "$quick" ]; then notune_groups+=(--set "depths=[8,30]"); fi
  step depth-notune "${DEPTH_NOTUNE_LIMIT:-100}" "$OUT/depth.log" \
    env XLA_FLAGS="$NOTUNE_XLA" "$PY" scripts/depth_study.py "${notune_groups[@]}" \
    --workdir "$notune_dir/depth" --no-plots
  rm -rf "$notune_dir"
fi

if want bench; then
  step bench "${BENCH_LIMIT:-170}" "$OUT/bench.log" \
    "$PY" scripts/bench.py --workloads matmul,w1,w2 $quick --json "$OUT/bench.json"
fi
cat "$OUT/status.txt"
