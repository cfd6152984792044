"""PSNR on uint8 RGB video [T,H,W,3], on RGB and on luma Y (BT.709).

(PSNR on YUV 4:2:0 planes is in :mod:`gvc_jax.metrics.yuv`.)

The reported figure is the mean of per-frame PSNR (the GVCC/DCVC convention); the PSNR of the
sequence MSE is given beside it. Everything is computed in NumPy float64, batched over frames.
"""
from __future__ import annotations

import numpy as np

_CAP_DB = 100.0  # identical frames: report a finite cap instead of inf
_PEAK = 255.0
# BT.709 luma weights, applied to full-range 0..255 RGB in float (no rounding, no offset).
_Y709 = np.array([0.2126, 0.7152, 0.0722], np.float64)
_CHUNK_BYTES = 256 << 20  # bounds the float64 working set at 1080p and above


def check_video_pair(ref, dist) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as uint8 [T,H,W,3] with equal shapes and T >= 1, else ValueError."""
    ref, dist = np.asarray(ref), np.asarray(dist)
    for name, a in (("ref", ref), ("dist", dist)):
        if a.dtype != np.uint8:
            raise ValueError(f"{name} must be uint8, got {a.dtype}")
        if a.ndim != 4 or a.shape[-1] != 3:
            raise ValueError(f"{name} must have shape [T,H,W,3], got {a.shape}")
        if 0 in a.shape:
            raise ValueError(f"{name} is empty: shape {a.shape}")
    if ref.shape != dist.shape:
        raise ValueError(f"shape mismatch: ref {ref.shape} vs dist {dist.shape}")
    return ref, dist


def _mse(ref, dist, luma: bool) -> np.ndarray:
    """Per-frame MSE [T] on RGB or on Y, over chunks of frames of about _CHUNK_BYTES of float64."""
    ref, dist = check_video_pair(ref, dist)
    n_t = ref.shape[0]
    step = max(1, _CHUNK_BYTES // (ref[0].size * 8))
    out = np.empty(n_t, np.float64)
    for t0 in range(0, n_t, step):
        d_thwc = ref[t0:t0 + step].astype(np.float64) - dist[t0:t0 + step].astype(np.float64)
        if luma:  # Y is linear in RGB, so Y(ref) - Y(dist) = Y(ref - dist)
            d_thwc = d_thwc @ _Y709
        out[t0:t0 + step] = np.mean(np.square(d_thwc).reshape(d_thwc.shape[0], -1), axis=1)
    return out


def _mse_rgb(ref, dist) -> np.ndarray:
    return _mse(ref, dist, luma=False)


def _mse_y(ref, dist) -> np.ndarray:
    return _mse(ref, dist, luma=True)


def psnr_from_mse(mse, peak: float = _PEAK) -> np.ndarray:
    """``10 log10(peak^2 / mse)`` in dB, float64, capped at 100 dB (so MSE 0 gives 100, not inf)."""
    mse = np.asarray(mse, np.float64)
    with np.errstate(divide="ignore"):
        out = 10.0 * np.log10(float(peak) * float(peak) / mse)
    return np.minimum(out, _CAP_DB)


def _db(mse) -> np.ndarray:
    return psnr_from_mse(mse, _PEAK)


def psnr(ref, dist) -> np.ndarray:
    """Per-frame RGB PSNR in dB (float64 [T]); MSE over all three channels, capped at 100 dB."""
    return _db(_mse_rgb(ref, dist))


def psnr_y(ref, dist) -> np.ndarray:
    """Per-frame PSNR of BT.709 luma Y = 0.2126 R + 0.7152 G + 0.0722 B (peak 255), capped at 100 dB."""
    return _db(_mse_y(ref, dist))


def psnr_mean(ref, dist) -> float:
    """Mean of per-frame RGB PSNR (the reported figure)."""
    return float(np.mean(psnr(ref, dist)))


def psnr_sequence(ref, dist) -> float:
    """RGB PSNR of the MSE over the whole sequence."""
    return float(_db(np.mean(_mse_rgb(ref, dist))))


def psnr_y_mean(ref, dist) -> float:
    """Mean of per-frame Y PSNR."""
    return float(np.mean(psnr_y(ref, dist)))


def psnr_y_sequence(ref, dist) -> float:
    """Y PSNR of the luma MSE over the whole sequence."""
    return float(_db(np.mean(_mse_y(ref, dist))))
