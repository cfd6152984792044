"""JAX codebook: addressable atoms, chunked top-M selection and signed combination (docs/design.md §3).

Bit-identical to :mod:`gvc_jax.codebook.reference` (same Threefry words, layout and table); all
functions are jit-able with seed/gop/step traced uint32/int32 scalars.
"""
from __future__ import annotations

import functools
import math
import os
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gvc_jax import target
from gvc_jax.codebook.exact_math import reciprocal_rn, sqrt_rn
from gvc_jax.codebook.table import GRID_LOG2, MAX_EXACT_ATOMS, QUANTILES
from gvc_jax.codebook.threefry import INIT_FRAME, INIT_STEP, address_key, threefry2x32

U32 = jnp.uint32
# Upper bound on the [F, chunk, D] float32 atoms of one selection chunk, were XLA to materialise them
# (XLA:CPU does; on an H100 generation fuses into the reduction and chunk 128 vs 32 is 10% faster).
CHUNK_BUDGET_BYTES = 1 << 30
# The TPU compiler materialises a chunk's Threefry words: ~150 bytes of temporaries per atom
# element with libtpu 0.0.42 (F=21, D=99,840: 2.5 GB at chunk 8, 8.9 GB at 32, 33 GB at 128),
# and its compile time grows with the chunk (F=2, D=1,024: 7 s at chunk 8, 60 s at 128), so
# programs built for a TPU take chunks of at most 64 MiB of float32 atoms and 8 atoms
# (docs/fit.md).
TPU_CHUNK_BUDGET_BYTES = 1 << 26
TPU_MAX_CHUNK = 8


def chunk_budget() -> int:
    """:data:`CHUNK_BUDGET_BYTES`, or :data:`TPU_CHUNK_BUDGET_BYTES` for a program built for a
    TPU (:func:`gvc_jax.target.current`)."""
    return TPU_CHUNK_BUDGET_BYTES if target.current().platform == "tpu" else CHUNK_BUDGET_BYTES


def _u32(x):
    if isinstance(x, (int, np.integer)):
        if not 0 <= int(x) < 2 ** 32:
            raise ValueError(f"address component {int(x)} is not in [0, 2^32)")
        return jnp.asarray(np.uint32(x))
    return jnp.asarray(x).astype(U32)


def _size(shape) -> tuple[tuple[int, ...], int]:
    shape = (int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape)
    return shape, math.prod(shape)


def _key(seed, gop, step, frame):
    return address_key(_u32(seed), _u32(gop), _u32(step), _u32(frame), U32)


# The table in grid units as int16 (128 KiB): QUANTILES == TABLE_I16 * 2^-12 exactly.
TABLE_I16 = np.round(QUANTILES.astype(np.float64) * (1 << GRID_LOG2)).astype(np.int16)
assert np.array_equal(TABLE_I16.astype(np.float32) * np.float32(2.0 ** -GRID_LOG2), QUANTILES)
LOOKUPS = ("i16", "f32")
DEFAULT_LOOKUP = "i16"


def lookup(b, mode: str = DEFAULT_LOOKUP):
    """Table value of 16-bit indices b (uint32); both modes give the same float32 bits.

    "i16" gathers int16 grid units (half the bytes of "f32") and scales by 2^-12, exact. Each
    index is used once: uses of the Threefry words multiply the elemental code XLA emits.
    On an H200 one 720p step's scores take 81 ms with "i16", 186 ms with "f32" and 129 ms with
    a 32,768-entry antisymmetric half table (bench/results/h200/profile_gpu.json)."""
    i = b.astype(jnp.int32)
    if mode == "f32":
        return jnp.asarray(QUANTILES)[i]
    if mode == "i16":
        return jnp.asarray(TABLE_I16)[i].astype(jnp.float32) * jnp.float32(2.0 ** -GRID_LOG2)
    raise ValueError(f"unknown lookup {mode!r}")


def _atoms_c4(key, k, nc: int, mode: str = DEFAULT_LOOKUP):
    """Atoms of key for atom numbers k (uint32 [...]) as float32 [..., nc, 4] (4 per call)."""
    c = lax.broadcasted_iota(U32, k.shape + (nc,), k.ndim)
    w0, w1 = threefry2x32(key[0], key[1], c, k[..., None], U32)
    b = jnp.stack([w0 >> 16, w0 & U32(0xFFFF), w1 >> 16, w1 & U32(0xFFFF)], axis=-1)
    return lookup(b, mode)


def atoms(seed, gop, step, frame, indices, shape):
    """float32 atoms [len(indices), *shape] of address (seed, gop, step, frame) (docs/design.md §3)."""
    shape, _ = _size(shape)
    return _atoms_jit(_u32(seed), _u32(gop), _u32(step), _u32(frame),
                      jnp.asarray(indices).reshape(-1).astype(U32), shape)


@functools.partial(jax.jit, static_argnums=5)
def _atoms_jit(seed, gop, step, frame, k, shape):
    d = math.prod(shape)
    nc = -(-d // 4)
    a = _atoms_c4(_key(seed, gop, step, frame), k, nc).reshape(k.shape[0], nc * 4)
    return a[:, :d].reshape((k.shape[0],) + shape)


def init_noise(seed, gop, shape):
    """The seeded x_T (float32 ``shape``): atom 0 of the reserved address step = frame = 2^32-1."""
    return atoms(seed, gop, INIT_STEP, INIT_FRAME, jnp.zeros((1,), U32), shape)[0]


def auto_chunk(K: int, F: int, D: int, budget: int | None = None) -> int:
    """Atoms per selection chunk so that F * chunk * D float32 stay under ``budget`` bytes
    (default :func:`chunk_budget`, and at most :data:`TPU_MAX_CHUNK` built for a TPU)."""
    tpu = budget is None and target.current().platform == "tpu"
    budget = chunk_budget() if budget is None else budget
    per_atom = F * 4 * (-(-D // 4)) * 4
    c = max(1, budget // per_atom)
    c = 1 << (c.bit_length() - 1)            # power of two
    return int(min(c, K, TPU_MAX_CHUNK if tpu else K))


def scores(seed, gop, step, r_fd, K: int, chunk: int, *, method: str = "fused",
           mode: str = DEFAULT_LOOKUP):
    """float32 scores [F, ceil(K/chunk)*chunk] = <atom(seed, gop, step, f, k), r_f>; k >= K junk
    ([F, K] with ``method="mosaic"``).

    ``method`` "fused": multiply-and-reduce in one expression so XLA can fuse generation into the
    reduction; "matmul": materialise the chunk of atoms and use a matrix-vector product."""
    F, D = r_fd.shape
    keys = jax.vmap(lambda f: _key(seed, gop, step, f))(jnp.arange(F, dtype=U32))  # ([F], [F])
    if method == "mosaic":       # the kernel on CUDA, "fused" elsewhere; both give [F, K]
        from gvc_jax.codebook.mosaic_scores import dispatch
        return dispatch(jnp.stack(keys, axis=1), r_fd, K, lambda r: scores(
            seed, gop, step, r, K, chunk, method="fused", mode=mode))
    nc = -(-D // 4)
    r = jnp.pad(r_fd.astype(jnp.float32), ((0, 0), (0, nc * 4 - D))).reshape(F, 1, nc, 4)
    n_chunks = -(-K // chunk)

    def one(start):
        k = start + lax.broadcasted_iota(U32, (F, chunk), 1)
        a = _atoms_c4((keys[0][:, None, None], keys[1][:, None, None]), k, nc, mode)  # [F,chunk,nc,4]
        if method == "matmul":
            return jnp.einsum("fke,fe->fk", a.reshape(F, chunk, nc * 4), r.reshape(F, nc * 4),
                              precision=lax.Precision.HIGHEST)
        return jnp.sum(a * r, axis=(2, 3))                                 # fused generate-dot

    starts = jnp.arange(n_chunks, dtype=U32) * U32(chunk)
    s = lax.map(one, starts)                                               # [n_chunks, F, chunk]
    return jnp.moveaxis(s, 0, 1).reshape(F, n_chunks * chunk)


METHODS = ("fused", "matmul", "mosaic")
METHOD_ENV = "GVC_CODEBOOK_METHOD"


def forced_method() -> str | None:
    """``$GVC_CODEBOOK_METHOD`` if it is set; ValueError if it names no method."""
    forced = os.environ.get(METHOD_ENV)
    if forced and forced not in METHODS:
        raise ValueError(f"${METHOD_ENV}={forced!r} is not one of {', '.join(METHODS)}")
    return forced or None


def default_method() -> str:
    """How scores are computed on the target platform (:func:`gvc_jax.target.current`: the
    default backend unless a program is built for another; ``$GVC_CODEBOOK_METHOD`` overrides):

    * CUDA GPUs with 128 KiB of shared memory per block (A100, H100/H200, B200; see
      :func:`gvc_jax.codebook.mosaic_scores.fits`): "mosaic", one hand-written kernel with the table in
      shared memory (:mod:`gvc_jax.codebook.mosaic_scores`; 40 ms against 81 ms for "fused" on an
      H200 at F=9, D=230,400, K=16,384);
    * other accelerators: "fused", generation and reduction in one XLA expression;
    * CPU: "matmul", about 1.5-2x faster than "fused" there (measured on 2 cores: ~60 vs ~110 M
      atom elements/s at F=4, D=49,152, K=1024)."""
    forced = forced_method()
    if forced:
        return forced
    platform = target.current().platform
    if platform == "cpu":
        return "matmul"
    if platform != "gpu":
        return "fused"
    from gvc_jax.codebook.mosaic_scores import available
    return "mosaic" if available() else "fused"


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
        keys = jax.vmap(lambda f: _key(seed, gop, step, f))(jnp.asarray(frames, U32))
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
            a = _atoms_c4((keys[0][:, None, None], keys[1][:, None, None]), kk, nc)   # [nf, jc, nc, 4]
            return acc + jnp.sum(a * ww[:, :, None, None], axis=1), None

        acc, _ = lax.scan(body, jnp.zeros((nf, nc, 4), jnp.float32), (k, w))
        z = z.at[frames].set(acc.reshape(nf, nc * 4))
    return _normalise(z[:, :d], m_per_frame, norm)
