"""PSNR on YUV 4:2:0 planes: PSNR-Y, PSNR-U, PSNR-V and the weighted PSNR-YUV (docs/metrics.md).

Per frame and plane: ``10 log10(peak^2 / MSE)`` with MSE over the plane's samples, capped at
100 dB; ``peak = 2**bits - 1`` (255 for 8 bits). The weighted figures combine the three *PSNRs*
(dB), not the MSEs, as DCVC does (``(6 PSNR_Y + PSNR_U + PSNR_V) / 8`` per frame):

* ``psnr_yuv_611 = (6 PSNR_Y + PSNR_U + PSNR_V) / 8``
* ``psnr_yuv_411 = (4 PSNR_Y + PSNR_U + PSNR_V) / 6`` (each 4:2:0 plane weighted by its sample count)

A video's figure is the mean of the per-frame values (:func:`psnr_yuv_mean`); its sequence
figure (:func:`psnr_yuv_sequence`) takes each plane's PSNR of the MSE averaged over all frames and
weights those the same way. Inputs are ``(y, u, v)`` triples of integer arrays [T,h,w] (or any
object with a ``planes`` attribute holding one, such as :class:`gvc_jax.io.yuv.YuvPlanes`).
"""
from __future__ import annotations

import numpy as np

from gvc_jax.metrics.psnr import psnr_from_mse

PLANES = ("y", "u", "v")
WEIGHTS = {"psnr_yuv_611": (6.0, 1.0, 1.0), "psnr_yuv_411": (4.0, 1.0, 1.0)}
KEYS = ("psnr_y", "psnr_u", "psnr_v", *WEIGHTS)
_CHUNK_BYTES = 256 << 20  # bounds the float64 working set at 1080p and above


def _triple(x, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    planes = getattr(x, "planes", x)
    if not isinstance(planes, (tuple, list)) or len(planes) != 3:
        raise ValueError(f"{name} must be (y, u, v) planes, got {type(x).__name__}")
    out = tuple(np.asarray(p) for p in planes)
    for p, a in zip(PLANES, out):
        if a.ndim != 3 or 0 in a.shape or a.dtype.kind not in "ui":
            raise ValueError(f"{name} plane {p} must be a non-empty integer array [T,h,w], got "
                             f"{a.dtype} {list(a.shape)}")
    if not out[0].shape[0] == out[1].shape[0] == out[2].shape[0]:
        raise ValueError(f"{name} planes have different frame counts")
    return out


def _check_pair(ref, dist):
    ref, dist = _triple(ref, "ref"), _triple(dist, "dist")
    for p, a, b in zip(PLANES, ref, dist):
        if a.shape != b.shape:
            raise ValueError(f"plane {p} shape mismatch: ref {list(a.shape)} vs dist "
                             f"{list(b.shape)}")
    return ref, dist


def plane_mse(ref, dist) -> dict[str, np.ndarray]:
    """Per-frame MSE of each plane, ``{"y": [T], "u": [T], "v": [T]}`` in float64."""
    ref, dist = _check_pair(ref, dist)
    out = {}
    for p, a, b in zip(PLANES, ref, dist):
        n_t = a.shape[0]
        step = max(1, _CHUNK_BYTES // (a[0].size * 8))
        mse = np.empty(n_t, np.float64)
        for t0 in range(0, n_t, step):
            d = a[t0:t0 + step].astype(np.float64) - b[t0:t0 + step].astype(np.float64)
            mse[t0:t0 + step] = np.mean(np.square(d).reshape(d.shape[0], -1), axis=1)
        out[p] = mse
    return out


def weighted(psnr_y, psnr_u, psnr_v, weights: tuple[float, float, float]):
    """``(wy PSNR_Y + wu PSNR_U + wv PSNR_V) / (wy + wu + wv)`` on dB values."""
    wy, wu, wv = weights
    return (wy * np.asarray(psnr_y) + wu * np.asarray(psnr_u) + wv * np.asarray(psnr_v)) \
        / (wy + wu + wv)


def psnr_yuv_from_mse(mse: dict, peak: float = 255.0) -> dict:
    """The five PSNR keys from ``{"y", "u", "v"}`` MSEs (per-frame arrays or scalars)."""
    out = {f"psnr_{p}": psnr_from_mse(mse[p], peak) for p in PLANES}
    for key, w in WEIGHTS.items():
        out[key] = weighted(out["psnr_y"], out["psnr_u"], out["psnr_v"], w)
    return out


def psnr_yuv(ref, dist, *, peak: float = 255.0) -> dict[str, np.ndarray]:
    """Per-frame float64 [T] arrays for ``psnr_y, psnr_u, psnr_v, psnr_yuv_611, psnr_yuv_411``."""
    return psnr_yuv_from_mse(plane_mse(ref, dist), peak)


def psnr_yuv_mean(ref, dist, *, peak: float = 255.0) -> dict[str, float]:
    """The mean over frames of each :func:`psnr_yuv` value (the reported figures)."""
    return {k: float(np.mean(v)) for k, v in psnr_yuv(ref, dist, peak=peak).items()}


def psnr_yuv_sequence(ref, dist, *, peak: float = 255.0) -> dict[str, float]:
    """Each plane's PSNR of its MSE averaged over all frames, and those three weighted."""
    mse = {p: np.mean(v) for p, v in plane_mse(ref, dist).items()}
    return {k: float(v) for k, v in psnr_yuv_from_mse(mse, peak).items()}


def summarize(per_frame: dict[str, np.ndarray], mse: dict[str, np.ndarray],
              peak: float) -> dict[str, float]:
    """``{key: mean, key + "_seq": sequence value}`` from per-frame values and per-frame MSEs
    (what :func:`psnr_yuv_mean` and :func:`psnr_yuv_sequence` give, without recomputing)."""
    seq = psnr_yuv_from_mse({p: np.mean(v) for p, v in mse.items()}, peak)
    out = {}
    for k in KEYS:
        out[k] = float(np.mean(per_frame[k]))
        out[k + "_seq"] = float(seq[k])
    return out
