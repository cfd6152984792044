"""PSNR on RGB uint8 video. The reported figure is the mean of per-frame PSNR
(the GVCC/DCVC convention); the sequence-MSE PSNR is given beside it."""
from __future__ import annotations

import numpy as np

_CAP_DB = 100.0  # identical frames: report a finite cap instead of inf


def _mse_per_frame(ref: np.ndarray, dist: np.ndarray) -> np.ndarray:
    ref, dist = np.asarray(ref), np.asarray(dist)
    if ref.shape != dist.shape:
        raise ValueError(f"shape mismatch: {ref.shape} vs {dist.shape}")
    d = ref.astype(np.float64) - dist.astype(np.float64)
    return (d * d).reshape(d.shape[0], -1).mean(axis=1)


def _db(mse, peak=255.0):
    mse = np.asarray(mse, np.float64)
    with np.errstate(divide="ignore"):
        out = 10.0 * np.log10(peak * peak / mse)
    return np.minimum(out, _CAP_DB)


def psnr(ref: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Per-frame PSNR in dB (float64 [T]), capped at 100 dB for equal frames."""
    return _db(_mse_per_frame(ref, dist))


def psnr_mean(ref, dist) -> float:
    return float(np.mean(psnr(ref, dist)))


def psnr_sequence(ref, dist) -> float:
    return float(_db(np.mean(_mse_per_frame(ref, dist))))
