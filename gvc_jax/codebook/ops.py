"""JAX codebook: addressable atoms, top-M selection and signed combination (docs/design.md §3).

Bit-identical to :mod:`gvc_jax.codebook.reference` (same Threefry words, layout and table); all
functions are jit-able with seed/gop/step traced uint32/int32 scalars. Scores and the choice of
how to compute them are in :mod:`gvc_jax.codebook.scoring`; atom generation in
:mod:`gvc_jax.codebook.generate`.
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gvc_jax import target
from gvc_jax.codebook.exact_math import reciprocal_rn, sqrt_rn
from gvc_jax.codebook.generate import U32, atoms_c4, frame_key, u32
# METHOD_ENV, METHODS and forced_method are part of this module's API (the CLI checks the
# environment through ops.forced_method).
from gvc_jax.codebook.scoring import (CHUNK_BUDGET_BYTES, METHOD_ENV, METHODS,  # noqa: F401
                                      auto_chunk, chunk_budget, default_method, forced_method, scores)
from gvc_jax.codebook.table import GRID_LOG2, MAX_EXACT_ATOMS
from gvc_jax.codebook.threefry import INIT_FRAME, INIT_STEP


def _size(shape) -> tuple[tuple[int, ...], int]:
    shape = (int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape)
    return shape, math.prod(shape)


def atoms(seed, gop, step, frame, indices, shape):
    """float32 atoms [len(indices), *shape] of address (seed, gop, step, frame) (docs/design.md §3)."""
    shape, _ = _size(shape)
    return _atoms_jit(u32(seed), u32(gop), u32(step), u32(frame),
                      jnp.asarray(indices).reshape(-1).astype(U32), shape)


@functools.partial(jax.jit, static_argnums=5)
def _atoms_jit(seed, gop, step, frame, k, shape):
    d = math.prod(shape)
    nc = -(-d // 4)
    a = atoms_c4(frame_key(seed, gop, step, frame), k, nc).reshape(k.shape[0], nc * 4)
    return a[:, :d].reshape((k.shape[0],) + shape)


def init_noise(seed, gop, shape):
    """The seeded x_T (float32 ``shape``): atom 0 of the reserved address step = frame = 2^32-1."""
    return atoms(seed, gop, INIT_STEP, INIT_FRAME, jnp.zeros((1,), U32), shape)[0]


def select_topm(seed, gop, step, r_fd, K: int, m_max: int, *, chunk: int | None = None,
                method: str | None = None):
    """Top-``m_max`` atoms by |<atom_k, r_f>| per latent frame f (address frame = f).

    Returns (idx int32 [F, m_max], sign bool [F, m_max]) ordered by |s| descending, ties by
    smaller k; sign = s >= 0. The XLA methods generate and dot ``chunk`` atoms at a time
    (default from :func:`auto_chunk`), so the K x D atoms are never held together; "mosaic"
    keeps them in registers (:func:`default_method`).
    """
    F, D = r_fd.shape
    if not 0 < m_max <= K <= 2 ** 32:
        raise ValueError(f"need 0 < m_max <= K, got m_max={m_max}, K={K}")
    method = default_method() if method is None else method
    if chunk is None:
        chunk = min(64, auto_chunk(K, F, D)) if method == "matmul" else auto_chunk(K, F, D)
    s = scores(seed, gop, step, r_fd, K, int(chunk), method=method)
    n = s.shape[1]
    k = lax.broadcasted_iota(jnp.int32, (F, n), 1)
    key = jnp.where(k < K, -jnp.abs(s), jnp.inf)
    _, k_sorted = lax.sort((key, k), dimension=1, num_keys=2)
    idx = k_sorted[:, :m_max]
    sign = jnp.take_along_axis(s, idx, axis=1) >= 0
    return idx, sign


def sum_squares_units(z):
    """Σ_d (z·2^12)² per row of z [F, D] (grid values, |z| < 2^12) as float32 [F], computed
    with exact uint32 partial sums so the result does not depend on reduction order; mirrors
    :func:`gvc_jax.codebook.reference.sum_squares_units_numpy` bit for bit."""
    F, d = z.shape
    nb = -(-d // 256)
    if nb > 1 << 16:
        raise ValueError("D too large for the exact sum of squares (max 2^24)")
    u = jnp.abs(z * jnp.float32(1 << GRID_LOG2)).astype(jnp.int32).astype(U32)
    u = jnp.pad(u, ((0, 0), (0, nb * 256 - d))).reshape(F, nb, 256)
    a, b = u >> 12, u & U32(0xFFF)

    def total(x):                      # exact Σ of x < 2^24 over [F, nb, 256] as float32
        blk = jnp.sum(x, axis=2, dtype=U32)                    # < 2^32
        lo = jnp.sum(blk & U32(0xFFFF), axis=1, dtype=U32)     # < 2^32
        hi = jnp.sum(blk >> 16, axis=1, dtype=U32)
        return hi.astype(jnp.float32) * jnp.float32(65536) + lo.astype(jnp.float32)

    sa, sab, sb = total(a * a), total(a * b), total(b * b)
    return sa * jnp.float32(2.0 ** 24) + sab * jnp.float32(2.0 ** 13) + sb


def _normalise(z, m_per_frame, norm: str):
    if norm == "sqrt_m":
        c = np.array([1.0 / math.sqrt(m) for m in m_per_frame], np.float32)
        return z * jnp.asarray(c)[:, None]
    if norm == "rms":
        ms = sum_squares_units(z) * jnp.float32(2.0 ** (-2 * GRID_LOG2) / z.shape[1])
        # Integer-exact IEEE sqrt and 1/x: GPU f32 division is not correctly rounded under XLA.
        return z * reciprocal_rn(sqrt_rn(ms))[:, None]
    raise ValueError(f"unknown norm {norm!r}")


def _combine_pass(m: int, nf: int, nc: int) -> int:
    """Atoms generated per pass of :func:`combine` (the sum is exact, so any value gives the
    same bits). XLA:CPU is fastest one atom at a time: on 2 cores, 8 frames x 23,040 values x
    M=64 run at 199 M samples/s with 1 atom per pass, 57 M/s with 22 and 18 M/s with 64; at
    4 x 706,560 x M=16, 0.23 s with 1 against 28 s with 16. Accelerators take as many as fit
    the chunk budget."""
    if target.current().platform == "cpu":
        return 1
    return max(1, min(m, chunk_budget() // (nf * nc * 16)))


def combine(seed, gop, step, idx_fm, sign_fm, m_per_frame: Sequence[int], shape_d,
            norm: str = "rms"):
    """z_f = normalise(Σ_{j<M_f} ±atom(seed, gop, step, f, idx[f, j])) as float32 [F, D].

    Only the M_f chosen atoms of each frame are generated (frames sharing one M are batched);
    entries j >= M_f are ignored. The signed sums are exact in any order (table grid), so they
    equal :func:`gvc_jax.codebook.reference.combine_numpy` bit for bit.
    """
    _, d = _size(shape_d)
    F, m_cap = idx_fm.shape
    m_per_frame = tuple(int(m) for m in m_per_frame)
    if len(m_per_frame) != F:
        raise ValueError("m_per_frame needs one entry per frame")
    for f, m in enumerate(m_per_frame):
        if not 0 < m <= min(m_cap, MAX_EXACT_ATOMS):
            raise ValueError(f"M={m} for frame {f} is outside [1, {min(m_cap, MAX_EXACT_ATOMS)}]")
    nc = -(-d // 4)
    idx = jnp.asarray(idx_fm).astype(U32)
    w_all = jnp.where(jnp.asarray(sign_fm), jnp.float32(1), jnp.float32(-1))
    z = jnp.zeros((F, nc * 4), jnp.float32)
    for m in sorted(set(m_per_frame)):
        frames = np.array([f for f in range(F) if m_per_frame[f] == m])
        keys = jax.vmap(lambda f: frame_key(seed, gop, step, f))(jnp.asarray(frames, U32))
        nf = len(frames)
        jc = _combine_pass(m, nf, nc)
        n_j = -(-m // jc)
        pad = n_j * jc - m
        k = jnp.pad(idx[frames, :m], ((0, 0), (0, pad)))
        w = jnp.pad(w_all[frames, :m], ((0, 0), (0, pad)))         # padded atoms weigh 0
        k = k.reshape(nf, n_j, jc).transpose(1, 0, 2)
        w = w.reshape(nf, n_j, jc).transpose(1, 0, 2)

        def body(acc, kw):
            kk, ww = kw
            a = atoms_c4((keys[0][:, None, None], keys[1][:, None, None]), kk, nc)   # [nf, jc, nc, 4]
            return acc + jnp.sum(a * ww[:, :, None, None], axis=1), None

        acc, _ = lax.scan(body, jnp.zeros((nf, nc, 4), jnp.float32), (k, w))
        z = z.at[frames].set(acc.reshape(nf, nc * 4))
    return _normalise(z[:, :d], m_per_frame, norm)
