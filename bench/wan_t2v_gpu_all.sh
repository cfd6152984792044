#!/usr/bin/env bash
# The full-size Wan T2V runs on one H200 (random weights of the real shapes), in the order the
# disk allows (64 GiB: one model folder at a time; the 14B is loaded without the weight cache).
#   bash bench/wan_t2v_gpu_all.sh RESULTS_DIR
set -uo pipefail
res=${1:?results dir}
mkdir -p "$res" /tmp/benchdata
cp .benchdata/bigbuckbunny.mp4 /tmp/benchdata/   # outside the synced tree
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
clip=/tmp/benchdata/bigbuckbunny.mp4
python3 bench/wan_t2v_gpu.py --dit t2v-14b --work /tmp/w14 --clip $clip --no-cache \
    --decodes 1 --out "$res/wan_t2v_14b_h200.json" 2>&1 | tee "$res/log_14b.txt"
rm -rf /tmp/w14
python3 bench/wan_t2v_gpu.py --dit t2v-1.3b --work /tmp/w13 --clip $clip --warm-encode \
    --fp32-decode --out "$res/wan_t2v_1.3b_h200.json" 2>&1 | tee "$res/log_1.3b.txt"
echo ALLDONE | tee -a "$res/log_1.3b.txt"
