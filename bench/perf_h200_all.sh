#!/usr/bin/env bash
# The runs behind bench/results/perf_h200.json that are still missing (random weights; a
# 2-GPU H200 machine): the two 2-GPU speedups and the cached process's first step, then the
# summary. The other figures come from bench/dit_gpu.py, bench/codebook_gpu.py,
# bench/wan_t2v_gpu_all.sh and bench/wan_image_gpu_all.sh (their JSON under bench/results/).
#   bash bench/perf_h200_all.sh [RESULTS_DIR]      (default bench/results/h200)
set -uo pipefail
res=${1:-bench/results/h200}
mkdir -p "$res"
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
python3 bench/wan_sharded_gpu.py --config t2v-14b --rules wan-seq --devices 2 \
    --out "$res/sharded_14b_2gpu.json" 2>&1 | tee "$res/log_sharded_14b_2gpu.txt"
python3 bench/wan_batch_gpu.py --out "$res/batch_2gpu.json" 2>&1 | tee "$res/log_batch_2gpu.txt"
python3 bench/first_step.py --dit t2v-1.3b --work /tmp/fs13 --clip .benchdata/bigbuckbunny.mp4 \
    --out "$res/first_step_1.3b.json" 2>&1 | tee "$res/log_first_step_1.3b.txt"
python3 bench/perf_summary.py
