"""Multi-scale SSIM (Wang, Simoncelli & Bovik 2003) per frame of uint8 RGB video [T,H,W,3], in JAX.

Conventions (those of pytorch_msssim.ms_ssim with data_range=255; agreement measured in docs/metrics.md):
11-tap Gaussian window (sigma 1.5) applied as two separable 1-D 'valid' passes, K1=0.01, K2=0.03,
5 scales weighted (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), 2x2 average pooling between scales
(a side of odd length gets one zero row/column at its start, and every 2x2 block is divided by 4),
contrast-structure terms of scales 1-4 and the SSIM of scale 5 clipped at 0 before the weighted
product, computed per RGB channel and averaged over the three channels.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from gvc_jax.metrics.errors import MetricUnavailable
from gvc_jax.metrics.psnr import check_video_pair

WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WIN_SIZE = 11
WIN_SIGMA = 1.5
K1, K2 = 0.01, 0.03
DATA_RANGE = 255.0
# Each of the 4 downsamplings must leave a side of more than WIN_SIZE - 1 pixels.
MIN_SIDE = (WIN_SIZE - 1) * 2 ** (len(WEIGHTS) - 1) + 1  # 161
_CENTER = 127.5  # moments are taken about this value to cut float32 cancellation in E[x^2] - E[x]^2


def _gauss_taps() -> tuple[float, ...]:
    r = np.arange(WIN_SIZE, dtype=np.float64) - WIN_SIZE // 2
    g = np.exp(-(r * r) / (2.0 * WIN_SIGMA ** 2))
    return tuple(float(v) for v in g / g.sum())


_TAPS = _gauss_taps()


def ms_ssim_supported(height: int, width: int) -> bool:
    """True when frames of this size can be evaluated at all 5 scales (smaller side >= 161)."""
    return min(int(height), int(width)) >= MIN_SIDE


def _blur_valid(x, axis: int):
    """Gaussian filter along one axis, 'valid' mode (the axis shrinks by WIN_SIZE - 1)."""
    n_out = x.shape[axis] - (WIN_SIZE - 1)
    acc = None
    for k, w in enumerate(_TAPS):
        term = w * jax.lax.slice_in_dim(x, k, k + n_out, axis=axis)
        acc = term if acc is None else acc + term
    return acc


def _spatial_mean(m_bhwc):
    """Mean over H and W, in two stages (W then H) to keep float32 sums short."""
    return jnp.mean(jnp.mean(m_bhwc, axis=2), axis=1)


def _ssim_cs(x_bhwc, y_bhwc):
    """(SSIM, contrast-structure) per frame and channel [B,C] at one scale."""
    c1 = (K1 * DATA_RANGE) ** 2
    c2 = (K2 * DATA_RANGE) ** 2
    xc, yc = x_bhwc - _CENTER, y_bhwc - _CENTER
    s_kbhwc = jnp.stack([xc, yc, xc * xc, yc * yc, xc * yc])
    f_kbhwc = _blur_valid(_blur_valid(s_kbhwc, axis=2), axis=3)
    mx, my, exx, eyy, exy = f_kbhwc
    var_x = exx - mx * mx
    var_y = eyy - my * my
    cov = exy - mx * my
    mx, my = mx + _CENTER, my + _CENTER
    cs_map = (2.0 * cov + c2) / (var_x + var_y + c2)
    lum_map = (2.0 * mx * my + c1) / (mx * mx + my * my + c1)
    return _spatial_mean(lum_map * cs_map), _spatial_mean(cs_map)


def _pool2(x_bhwc):
    """2x2 average pooling; an odd side gets one leading zero row/column (divisor stays 4)."""
    _, h, w, _ = x_bhwc.shape
    x_bhwc = jnp.pad(x_bhwc, ((0, 0), (h % 2, 0), (w % 2, 0), (0, 0)))
    b, h, w, c = x_bhwc.shape
    return x_bhwc.reshape(b, h // 2, 2, w // 2, 2, c).sum(axis=(2, 4)) * 0.25


def _ms_ssim_frames(ref_bhwc, dist_bhwc):
    """MS-SSIM per frame [B] (float32) of uint8 frames, all frames vectorized."""
    x = ref_bhwc.astype(jnp.float32)
    y = dist_bhwc.astype(jnp.float32)
    levels = []
    for i in range(len(WEIGHTS)):
        ssim_bc, cs_bc = _ssim_cs(x, y)
        if i < len(WEIGHTS) - 1:
            levels.append(jax.nn.relu(cs_bc))
            x, y = _pool2(x), _pool2(y)
        else:
            levels.append(jax.nn.relu(ssim_bc))
    w_l = jnp.asarray(WEIGHTS, jnp.float32)[:, None, None]
    val_bc = jnp.prod(jnp.power(jnp.stack(levels), w_l), axis=0)
    return jnp.mean(val_bc, axis=1)


@partial(jax.jit, static_argnames="micro")
def _ms_ssim_batch(ref_bhwc, dist_bhwc, micro: int):
    """MS-SSIM per frame [B]; `micro` frames are vectorized at a time, micro-batches run in sequence."""
    def one(pair):
        return _ms_ssim_frames(pair[0][None], pair[1][None])[0]
    return jax.lax.map(one, (ref_bhwc, dist_bhwc), batch_size=micro)


def _micro_batch(step: int) -> int:
    # On CPU one frame at a time is both faster (cache) and ~5x lighter in memory than a
    # vectorized batch (measured at 1080p); accelerators get the whole chunk vectorized.
    return 1 if jax.default_backend() == "cpu" else step


def ms_ssim(ref, dist, *, batch: int = 16) -> np.ndarray:
    """Per-frame MS-SSIM (float64 [T]) of uint8 video [T,H,W,3], evaluated `batch` frames at a time.

    Raises ValueError on bad input and MetricUnavailable when the smaller side is below 161 px.
    """
    ref, dist = check_video_pair(ref, dist)
    if not isinstance(batch, (int, np.integer)) or isinstance(batch, bool) or batch < 1:
        raise ValueError(f"batch must be a positive int, got {batch!r}")
    n_t, h, w, _ = ref.shape
    if not ms_ssim_supported(h, w):
        raise MetricUnavailable(
            f"MS-SSIM needs both frame sides >= {MIN_SIDE} px for its 5 scales, got {h}x{w} (HxW)")
    step = min(int(batch), n_t)
    micro = _micro_batch(step)
    out = np.empty(n_t, np.float64)
    for t0 in range(0, n_t, step):
        r, d = ref[t0:t0 + step], dist[t0:t0 + step]
        n = r.shape[0]
        if n < step:  # pad the last chunk so that every call has one shape (one compilation)
            pad = ((0, step - n), (0, 0), (0, 0), (0, 0))
            r, d = np.pad(r, pad), np.pad(d, pad)
        out[t0:t0 + n] = np.asarray(_ms_ssim_batch(r, d, micro), np.float64)[:n]
    return out
