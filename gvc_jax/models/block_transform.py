"""Orthonormal colour + 3-D block DCT-II transform of a video (the `gaussian` model's autoencoder).

Pixels ``x_thwz`` (uint8, z = RGB) are mapped to ``x/255 - 0.5``, rotated by an orthonormal 3x3
colour matrix and transformed by an orthonormal DCT-II over blocks of ``bt x bs x bs`` pixels
(time x height x width). Coefficient channels are ordered ``(colour, kt, ky, kx)``, so
``c = ((colour*bt + kt)*bs + ky)*bs + kx`` and the latent layout is ``x_cthw`` with
``C = 3*bt*bs*bs``, ``T' = T/bt``, ``H' = H/bs``, ``W' = W/bs``.

Every step is orthonormal, so the squared error in this domain equals the squared error of
``x/255`` (an MSE of ``e`` here is ``255^2 * e`` in pixel units). The model adds one global
scale on top (see :mod:`gvc_jax.models.gaussian`).

Functions take ``xp`` (``numpy`` or ``jax.numpy``) so the fit script can run in float64 NumPy
and the model in jitted float32 JAX with the same code.
"""
from __future__ import annotations

import functools

import numpy as np

PIXEL_OFFSET = 0.5  # x/255 - 0.5: centres the pixel range on zero


@functools.lru_cache(maxsize=None)
def colour_matrix() -> np.ndarray:
    """Orthonormal RGB -> (luma, chroma1, chroma2) rows: (1,1,1)/sqrt3, (1,0,-1)/sqrt2, (1,-2,1)/sqrt6.

    A YCbCr-like basis: the first row is the equal-weight luma, the other two are the
    orthonormal complement (red-minus-blue, and green against the red+blue average).
    """
    m = np.array([[1.0, 1.0, 1.0], [1.0, 0.0, -1.0], [1.0, -2.0, 1.0]])
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    m.setflags(write=False)
    return m


@functools.lru_cache(maxsize=None)
def dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix ``D[k, i] = a_k cos(pi (2i+1) k / 2n)``, a_0 = sqrt(1/n), else sqrt(2/n)."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    d = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    d[0] /= np.sqrt(2.0)
    d.setflags(write=False)
    return d


def check_geometry(t: int, h: int, w: int, bt: int, bs: int) -> None:
    """Raise ValueError unless T is a multiple of ``bt`` and H, W are multiples of ``bs``."""
    if t <= 0 or h <= 0 or w <= 0:
        raise ValueError(f"empty video: T={t}, H={h}, W={w}")
    if t % bt or h % bs or w % bs:
        raise ValueError(
            f"video of T={t}, H={h}, W={w} does not fit blocks of {bt}x{bs}x{bs}: "
            f"T must be a multiple of {bt} and H, W multiples of {bs} (pad first)")


def _einsum(xp, spec, *ops):
    if xp is np:
        return np.einsum(spec, *ops, optimize=True)
    import jax
    return xp.einsum(spec, *ops, precision=jax.lax.Precision.HIGHEST)


def forward(x_thwz, bt: int, bs: int, xp=np, dtype=None):
    """Pixels ``[T,H,W,3]`` (0..255) -> coefficients ``x_cthw`` ``[3*bt*bs*bs, T/bt, H/bs, W/bs]``."""
    t, h, w, z = x_thwz.shape
    if z != 3:
        raise ValueError(f"expected RGB frames [T,H,W,3], got shape {tuple(x_thwz.shape)}")
    check_geometry(t, h, w, bt, bs)
    dtype = dtype or (np.float64 if xp is np else np.float32)
    m = xp.asarray(colour_matrix(), dtype)
    dt = xp.asarray(dct_matrix(bt), dtype)
    ds = xp.asarray(dct_matrix(bs), dtype)
    x = xp.asarray(x_thwz).astype(dtype) / 255.0 - PIXEL_OFFSET
    # x_[T', a, H', b, W', c, z]: a, b, c index pixels inside a block
    x = x.reshape(t // bt, bt, h // bs, bs, w // bs, bs, 3)
    if xp is np:
        return _forward_np(x, m, dt, ds).reshape(3 * bt * bs * bs, t // bt, h // bs, w // bs)
    x = _einsum(xp, "jz,TaHbWcz->jTaHbWc", m, x)
    x = _einsum(xp, "ka,jTaHbWc->jkTHbWc", dt, x)
    x = _einsum(xp, "lb,jkTHbWc->jklTHWc", ds, x)
    x = _einsum(xp, "mc,jklTHWc->jklmTHW", ds, x)
    return x.reshape(3 * bt * bs * bs, t // bt, h // bs, w // bs)


def _forward_np(x, m, dt, ds):
    """NumPy fast path of :func:`forward`: the same contractions as batched matmuls (~10x faster)."""
    x = x.transpose(6, 1, 3, 5, 0, 2, 4)  # [z, a, b, c, T', H', W']
    n = x.shape[4] * x.shape[5] * x.shape[6]
    x = m @ x.reshape(3, -1)                                # z -> j
    x = dt @ x.reshape(3, dt.shape[0], -1)                  # a -> k
    x = ds @ x.reshape(-1, ds.shape[0], ds.shape[0] * n)    # b -> l
    x = ds @ x.reshape(-1, ds.shape[0], n)                  # c -> m
    return x


def inverse(x_cthw, bt: int, bs: int, xp=np):
    """Coefficients ``x_cthw`` -> pixels ``[T,H,W,3]`` in 0..255 (float, not clipped)."""
    c, tq, hq, wq = x_cthw.shape
    if c != 3 * bt * bs * bs:
        raise ValueError(f"expected {3 * bt * bs * bs} coefficient channels, got {c}")
    dtype = x_cthw.dtype
    m = xp.asarray(colour_matrix(), dtype)
    dt = xp.asarray(dct_matrix(bt), dtype)
    ds = xp.asarray(dct_matrix(bs), dtype)
    x = x_cthw.reshape(3, bt, bs, bs, tq, hq, wq)
    x = _einsum(xp, "mc,jklmTHW->jklTHWc", ds, x)
    x = _einsum(xp, "lb,jklTHWc->jkTHbWc", ds, x)
    x = _einsum(xp, "ka,jkTHbWc->jTaHbWc", dt, x)
    x = _einsum(xp, "jz,jTaHbWc->TaHbWcz", m, x)
    x = x.reshape(tq * bt, hq * bs, wq * bs, 3)
    return (x + PIXEL_OFFSET) * 255.0
