#!/usr/bin/env bash
# The runs behind bench/results/perf_h200.json that bench/dit_gpu.py, bench/codebook_gpu.py,
# bench/wan_t2v_gpu_all.sh and bench/wan_image_gpu_all.sh do not make (random weights; a 2-GPU
# H200 machine):
#   1. side by side, one GPU each: the profile of the DiT forward and of the codebook search
#      (bench/profile_gpu.py, GPU 0) and the cached process's first step (GPU 1);
#   2. one 14B GOP over 2 GPUs against 1 (bench/wan_sharded_gpu.py, wan-seq rules);
#   3. data parallel batches of GOPs on 2 GPUs against 1 (bench/wan_batch_gpu.py);
#   4. the summary (bench/perf_summary.py).
#   bash bench/perf_h200_all.sh [RESULTS_DIR] [PHASES]   (defaults bench/results/h200, 1234)
set -uo pipefail
res=${1:-bench/results/h200}
phases=${2:-1234}
mkdir -p "$res"
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
n_gpu=$(nvidia-smi -L 2>/dev/null | wc -l)
second=$(( n_gpu > 1 ? 1 : 0 ))
if [[ $phases == *1* ]]; then
  CUDA_VISIBLE_DEVICES=0 python3 bench/profile_gpu.py --out "$res/profile_gpu.json" \
      > "$res/log_profile_gpu.txt" 2>&1 &
  p1=$!
  if (( second == 0 )); then wait $p1; fi
  CUDA_VISIBLE_DEVICES=$second python3 bench/first_step.py --dit t2v-1.3b --work /tmp/fs13 \
      --clip .benchdata/bigbuckbunny.mp4 --out "$res/first_step_1.3b.json" \
      > "$res/log_first_step_1.3b.txt" 2>&1
  wait
fi
if [[ $phases == *2* ]]; then
  python3 bench/wan_sharded_gpu.py --config t2v-14b --rules wan-seq --devices 2 \
      --out "$res/sharded_14b_2gpu.json" > "$res/log_sharded_14b_2gpu.txt" 2>&1
fi
if [[ $phases == *3* ]]; then
  python3 bench/wan_batch_gpu.py --batches 1 --out "$res/batch_2gpu.json" \
      > "$res/log_batch_2gpu.txt" 2>&1
fi
if [[ $phases == *4* ]]; then
  python3 bench/perf_summary.py
fi
echo "perf_h200_all: done"
