"""NumPy-only codebook: atoms, seeded initial noise, brute-force selection and combination.

Bit-identical to the JAX functions in :mod:`gvc_jax.codebook.ops` (same Threefry words, same bit
layout, same quantile table). Imports no JAX. Layout of one atom with D elements: Threefry call
c = i // 4 under counter (c, k) gives words (w0, w1); element i takes the 16-bit half
``[w0 >> 16, w0 & 0xFFFF, w1 >> 16, w1 & 0xFFFF][i % 4]`` through the quantile table. Element i
does not depend on D, so a longer atom extends a shorter one.
"""
from __future__ import annotations

import math

import numpy as np

from gvc_jax.codebook.table import GRID_LOG2, MAX_EXACT_ATOMS, QUANTILES
from gvc_jax.codebook.threefry import INIT_FRAME, INIT_STEP, address_key, threefry2x32

U32 = np.uint32


def _u32(x) -> np.ndarray:
    v = int(x)
    if not 0 <= v < 2 ** 32:
        raise ValueError(f"address component {v} is not in [0, 2^32)")
    return np.array([v], dtype=U32)


def _key(seed, gop, step, frame):
    with np.errstate(over="ignore"):
        return address_key(_u32(seed), _u32(gop), _u32(step), _u32(frame), U32)


def _size(shape) -> tuple[tuple[int, ...], int]:
    shape = (int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape)
    return shape, math.prod(shape)


def bits16_numpy(key, indices, d: int) -> np.ndarray:
    """16-bit table indices [n, d] for atoms ``indices`` under the address key."""
    k = np.asarray(indices).astype(np.int64).reshape(-1)
    if k.size and (k.min() < 0 or k.max() >= 2 ** 32):
        raise ValueError("atom indices must be in [0, 2^32)")
    nc = -(-d // 4)
    c = np.arange(nc, dtype=U32)[None, :]
    with np.errstate(over="ignore"):
        w0, w1 = threefry2x32(key[0], key[1], c, k.astype(U32)[:, None], U32)
    b = np.stack([w0 >> 16, w0 & U32(0xFFFF), w1 >> 16, w1 & U32(0xFFFF)], axis=-1)
    return b.reshape(k.size, nc * 4)[:, :d]


def atoms_numpy(seed, gop, step, frame, indices, shape) -> np.ndarray:
    """float32 atoms [len(indices), *shape] of address (seed, gop, step, frame); NumPy only."""
    shape, d = _size(shape)
    b = bits16_numpy(_key(seed, gop, step, frame), indices, d)
    return QUANTILES[b].reshape((b.shape[0],) + shape)


def init_noise_numpy(seed, gop, shape) -> np.ndarray:
    """The seeded x_T, float32 ``shape``: atom 0 of the reserved address (step = frame = 2^32-1)."""
    return atoms_numpy(seed, gop, INIT_STEP, INIT_FRAME, [0], shape)[0]


def scores_numpy(seed, gop, step, r_fd, K: int) -> np.ndarray:
    """Exact-ish (float64) scores [F, K] = <atom(seed, gop, step, f, k), r_f>; brute force."""
    r = np.asarray(r_fd, dtype=np.float64)
    out = np.empty((r.shape[0], K), np.float64)
    for f in range(r.shape[0]):
        a = atoms_numpy(seed, gop, step, f, np.arange(K), r.shape[1]).astype(np.float64)
        out[f] = a @ r[f]
    return out


def order_topm(scores_fk: np.ndarray, m_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-m by |s| descending, ties by smaller k; returns (idx int32 [F, m], sign bool [F, m])."""
    s = np.asarray(scores_fk)
    k = np.broadcast_to(np.arange(s.shape[1]), s.shape)
    order = np.lexsort((k, -np.abs(s)), axis=-1)[:, :m_max]
    return order.astype(np.int32), np.take_along_axis(s, order, -1) >= 0


def select_topm_numpy(seed, gop, step, r_fd, K: int, m_max: int):
    """Brute-force reference of :func:`gvc_jax.codebook.select_topm` (float64 scores)."""
    return order_topm(scores_numpy(seed, gop, step, r_fd, K), m_max)


def combine_numpy(seed, gop, step, idx_fm, sign_fm, m_per_frame, shape_d,
                  norm: str = "rms") -> np.ndarray:
    """Reference of :func:`gvc_jax.codebook.combine`: float32 [F, D], bit-identical to it."""
    _, d = _size(shape_d)
    idx = np.asarray(idx_fm)
    sign = np.asarray(sign_fm)
    if len(m_per_frame) != idx.shape[0]:
        raise ValueError("m_per_frame needs one entry per frame")
    z = np.zeros((idx.shape[0], d), np.float32)
    for f, m in enumerate(m_per_frame):
        if not 0 < m <= min(idx.shape[1], MAX_EXACT_ATOMS):
            raise ValueError(f"M={m} for frame {f} is outside [1, {min(idx.shape[1], MAX_EXACT_ATOMS)}]")
        a = atoms_numpy(seed, gop, step, f, idx[f, :m], d)
        w = np.where(sign[f, :m], np.float32(1), np.float32(-1))
        z[f] = (w[:, None] * a).sum(0, dtype=np.float32)   # exact: grid values, |sum| < 2^24 units
    return normalise_numpy(z, m_per_frame, norm)


def sum_squares_units_numpy(z: np.ndarray) -> np.ndarray:
    """Σ (z·2^12)² per row, float32 [F]: exact uint32 block sums, then fixed float32 steps."""
    F, d = z.shape
    nb = -(-d // 256)
    u = np.abs(z * np.float32(1 << GRID_LOG2)).astype(np.int32).astype(U32)
    u = np.pad(u, ((0, 0), (0, nb * 256 - d))).reshape(F, nb, 256)
    a, b = u >> 12, u & U32(0xFFF)

    def total(x):
        blk = np.sum(x, axis=2, dtype=U32)
        lo = np.sum(blk & U32(0xFFFF), axis=1, dtype=U32)
        hi = np.sum(blk >> 16, axis=1, dtype=U32)
        return hi.astype(np.float32) * np.float32(65536) + lo.astype(np.float32)

    sa, sab, sb = total(a * a), total(a * b), total(b * b)
    return sa * np.float32(2.0 ** 24) + sab * np.float32(2.0 ** 13) + sb


def normalise_numpy(z: np.ndarray, m_per_frame, norm: str) -> np.ndarray:
    """Unit-std normalisation of the signed sums z [F, D] (see :func:`gvc_jax.codebook.combine`)."""
    if norm == "sqrt_m":
        c = np.array([1.0 / math.sqrt(m) for m in m_per_frame], np.float32)
        return z * c[:, None]
    if norm == "rms":
        ms = sum_squares_units_numpy(z) * np.float32(2.0 ** (-2 * GRID_LOG2) / z.shape[1])
        with np.errstate(divide="ignore"):                      # float32 sqrt, divide, multiply
            inv = np.where(ms > 0, np.float32(1) / np.sqrt(ms), np.float32(0)).astype(np.float32)
        return z * inv[:, None]
    raise ValueError(f"unknown norm {norm!r}")
