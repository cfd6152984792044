#!/usr/bin/env bash
# Runs the GPU tests and benches on the lent GPU machine (the `.library` device tool), in the
# repository root there, with wheels the image lacks carried in .whl/ (constriction,
# ml_collections, diffusers, DISTS_pytorch, wan22, easydict, ftfy, wcwidth; and flax 0.12.8 with
# treescope, used with bench/device/sitecustomize.py only if the image's flax fails to import):
#
#   bash bench/device/gpu.sh bg/tests:240 bg/memory:480p-blocked:240 wait fp8:dit,diffusers
#
# Stages run in order (bg/STAGE beside the following ones, until `wait`), each under its own
# limit in seconds and all within $BUDGET (default 570) seconds from the start:
#   tests[:LIMIT]              pytest -m gpu on the GPU tests of blocked attention, fp8, DISTS
#   fp8:PARTS[:LIMIT]          bench/fp8_gpu.py --parts PARTS  -> bench/results/fp8_<gpu>.json
#   memory:RUNS[:LIMIT]        bench/memory_gpu.py --runs RUNS -> bench/results/memory_gpu.json
# Logs and JSON are copied to $OUT after every stage; the JSON is also kept in /tmp/gvc_results so
# that later calls on the same warm machine add their parts to it.
set -u
OUT=${OUT:-/tmp/gpu_out}
KEEP=/tmp/gvc_results      # outside the tree, which every call replaces
mkdir -p "$OUT" "$KEEP" bench/results
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
SITE=/tmp/site
if [ ! -f $SITE/.ready ]; then
  # Only what the image lacks; flax, optax, pytest, torch, torchvision are the image's own.
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target $SITE .whl/constriction-*.whl .whl/ml_collections-*.whl .whl/diffusers-*.whl \
    .whl/DISTS_pytorch-*.whl .whl/wan22-*.whl .whl/easydict-*.whl .whl/ftfy-*.whl \
    .whl/wcwidth-*.whl || exit 5
  touch $SITE/.ready
fi
export PYTHONPATH=$SITE:$PWD
CHECK='import flax, jax, flax.nnx as n, jax.numpy as jnp
m = n.Linear(2, 3, rngs=n.Rngs(0)); assert m(jnp.ones((1, 2))).shape == (1, 3)
print("flax", flax.__version__, "jax", jax.__version__, jax.devices()[0].device_kind)'
if ! python3 -c "$CHECK" 2>"$OUT/flax_check.txt"; then
  # The image's flax does not work here: the carried flax 0.12.8 with its import shim.
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target $SITE .whl/flax-*.whl .whl/treescope-*.whl || exit 6
  cp bench/device/sitecustomize.py $SITE/
  python3 -c "$CHECK" || exit 7
fi
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
case "$GPU" in *H200*) TAG=h200 ;; *H100*) TAG=h100 ;; *) TAG=gpu ;; esac
echo "gpu: $GPU"
save() {
  for f in bench/results/fp8_$TAG.json bench/results/memory_gpu.json; do
    [ -f "$f" ] && cp "$f" "$KEEP"/ && cp "$f" "$OUT/"
  done
}
for f in fp8_$TAG.json memory_gpu.json; do       # parts measured by earlier calls
  [ -f "$KEEP/$f" ] && [ ! -f bench/results/$f ] && cp "$KEEP/$f" bench/results/
done
START=$(date +%s); BUDGET=${BUDGET:-570}         # the whole command's limit, seconds
run_stage() {                                   # run_stage STAGE
  local what arg limit left
  IFS=: read -r what arg limit <<<"$1"
  [ "$what" = tests ] && { limit=$arg; arg=; }   # tests:LIMIT
  left=$((START + BUDGET - $(date +%s)))
  limit=${limit:-$left}; [ "$limit" -gt "$left" ] && limit=$left
  [ "$limit" -gt 20 ] || { echo "=== $1: no time left"; return 124; }
  echo "=== $1 (limit $limit s, $(date +%T))"
  case "$what" in
    tests)
      XLA_PYTHON_CLIENT_PREALLOCATE=false timeout "$limit" python3 -m pytest -q -m gpu \
        -p no:cacheprovider tests/wan/test_blocked_attention.py tests/wan/test_fp8.py \
        tests/test_dists.py >"$OUT/tests.log" 2>&1 ;;
    fp8)
      timeout "$limit" python3 bench/fp8_gpu.py --parts "$arg" \
        --out bench/results/fp8_$TAG.json >>"$OUT/fp8.log" 2>&1 ;;
    memory)
      timeout "$limit" python3 bench/memory_gpu.py --runs "$arg" --timeout 280 \
        >>"$OUT/memory.log" 2>&1 ;;
    *) echo "unknown stage $1"; return 2 ;;
  esac
  local r=$?; echo "=== $1: rc $r ($(date +%T))"; save; return $r
}
# A stage written bg/STAGE runs beside the next ones, until a stage `wait`.
rc=0
for stage in "$@"; do
  case "$stage" in
    bg/*) run_stage "${stage#bg/}" & ;;
    wait) wait || rc=1 ;;
    *) run_stage "$stage" || rc=1 ;;
  esac
done
wait
tail -n 25 "$OUT"/*.log
exit $rc
