"""Time grids for the rectified flow, kept apart from the steppers."""
from __future__ import annotations

import numpy as np


def shifted_times(n_steps: int, shift: float) -> np.ndarray:
    """Shifted grid t' = s·t / (1 + (s−1)·t) over linspace(1, 0, N+1) (docs/design.md §2).

    Computed in float64 on the host and cast once to float32, so encoder and
    decoder (any backend) see identical times. Decreasing, t[0]=1, t[N]=0.
    """
    if n_steps < 1:
        raise ValueError(f"need at least one step, got {n_steps}")
    if not shift > 0:
        raise ValueError(f"shift must be positive, got {shift}")
    t = np.linspace(1.0, 0.0, n_steps + 1, dtype=np.float64)
    t = shift * t / (1.0 + (shift - 1.0) * t)
    return t.astype(np.float32)


def logsnr_times(n_steps: int, lam_min: float = -9.0, lam_max: float = 9.0) -> np.ndarray:
    """Grid uniform in log-SNR λ = log((1−t)/t) between ``lam_min`` and ``lam_max``,
    with the endpoints t=1 and t=0 added: N steps in all, float32, decreasing.

    A uniform-in-t grid resolves a Gaussian component of std σ only when
    Δt ≪ σ/(1+σ); when the prior's spectrum spans decades (block DCT of video)
    this grid spends the steps evenly across scales instead.
    """
    if n_steps < 2:
        raise ValueError(f"the log-SNR grid needs at least 2 steps, got {n_steps}")
    if not lam_min < lam_max:
        raise ValueError("need lam_min < lam_max")
    lam = np.linspace(lam_min, lam_max, n_steps - 1, dtype=np.float64)
    t = np.concatenate([[1.0], 1.0 / (1.0 + np.exp(lam)), [0.0]])
    return t.astype(np.float32)


def make_times(schedule: str, n_steps: int, shift: float = 1.0) -> np.ndarray:
    """Dispatches on the schedule name carried in the bitstream header."""
    if schedule == "shifted":
        return shifted_times(n_steps, shift)
    if schedule == "logsnr":
        return logsnr_times(n_steps)
    raise ValueError(f"unknown schedule {schedule!r} (known: shifted, logsnr)")
