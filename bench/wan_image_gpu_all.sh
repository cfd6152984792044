#!/usr/bin/env bash
# The full-size I2V or FLF2V run of one model on one GPU (random weights of the real shapes): a
# 3-GOP chain (97 frames of Big Buck Bunny at 720p) in one process that compiles as it goes, so
# GOP 0 holds the compilation and GOPs 1-2 are warm. The DiT is parked in host memory while the
# VAE and CLIP run (--offload always). The two modes run side by side on a 2-GPU machine:
#   CUDA_VISIBLE_DEVICES=0 bash bench/wan_image_gpu_all.sh i2v RESULTS_DIR
#   CUDA_VISIBLE_DEVICES=1 bash bench/wan_image_gpu_all.sh flf2v RESULTS_DIR
# Needs the official Wan code (wan22, with diffusers) to write the random folder.
set -uo pipefail
kind=${1:?i2v or flf2v}
res=${2:?results dir}
mkdir -p "$res" /tmp/benchdata
cp .benchdata/bigbuckbunny.mp4 /tmp/benchdata/   # outside the synced tree
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
python3 bench/wan_image_gpu.py --dit "$kind-14b-720p" --config "wan2.1-$kind-14b-720p" \
    --work "/tmp/w$kind" --clip /tmp/benchdata/bigbuckbunny.mp4 --anchor-codec jxl:1 \
    --offload always --jax-cache "/tmp/jc$kind" --frames 97 \
    --out "$res/${kind}_14b_720p_3gop.json" 2>&1 | tee "$res/log_${kind}_3gop.txt"
echo ALLDONE | tee -a "$res/log_${kind}_3gop.txt"
