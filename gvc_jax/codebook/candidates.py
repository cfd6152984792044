"""Addressable, bit-exact candidate noises for reverse channel coding (docs/rcc.md §2).

Candidate (seed, gop, step, frame, level, i) is a pure function of six integers. Its key is the
atom address key of docs/design.md §3, ``address_key(seed, gop, step, frame)``, hashed once more
with Threefry under counter ``(RCC_TAG, level)`` so candidates never coincide with top-M atoms.
Element e of candidate i then takes, like an atom, the 16-bit half ``e % 4`` of Threefry call
``e // 4`` under counter ``(e // 4, i)`` through the normal quantile table. The JAX functions and
the NumPy ``*_numpy`` reference give the same float32 bits on every backend.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gvc_jax.codebook.generate import atoms_c4
from gvc_jax.codebook.reference import bits16_numpy
from gvc_jax.codebook.scoring import default_method, kernel_or_xla
from gvc_jax.codebook.table import QUANTILES
from gvc_jax.codebook.threefry import address_key, threefry2x32

U32 = jnp.uint32
RCC_TAG = 0x52434300          # "RCC\0": first counter word of the level key


def level_key(seed, gop, step, frame, level, uint32):
    """Key (two uint32 words) of one (seed, gop, step, frame, level) address; NumPy or JAX."""
    k0, k1 = address_key(seed, gop, step, frame, uint32)
    return threefry2x32(k0, k1, uint32(RCC_TAG), level, uint32)


def _key(seed, gop, step, frame, level):
    u = lambda v: jnp.asarray(v).astype(U32)
    return level_key(u(seed), u(gop), u(step), u(frame), u(level), U32)


def candidates(seed, gop, step, frame, level, indices, d: int):
    """float32 candidates [len(indices), d] of one address (JAX, jit-able scalars)."""
    k = jnp.asarray(indices).reshape(-1).astype(U32)
    nc = -(-d // 4)
    a = atoms_c4(_key(seed, gop, step, frame, level), k, nc).reshape(k.shape[0], nc * 4)
    return a[:, :d]


def chosen(seed, gop, step, level, idx_f, d: int):
    """The chosen candidate of each frame: float32 [F, d] for indices idx_f [F] (frame = f)."""
    nc = -(-d // 4)
    f = jnp.arange(idx_f.shape[0], dtype=U32)
    keys = jax.vmap(lambda fr: _key(seed, gop, step, fr, level))(f)
    a = atoms_c4((keys[0][:, None, None], keys[1][:, None, None]), idx_f.astype(U32)[:, None], nc)
    return a.reshape(idx_f.shape[0], nc * 4)[:, :d]


def scores(seed, gop, step, level, e_fd, n_cand: int, chunk: int, method: str | None = None):
    """float32 projections [F, n_cand] = <candidate(seed, gop, step, f, level, i), e_f>.

    Candidates are generated ``chunk`` at a time (``n_cand`` must be a multiple), so the
    n_cand x d values are never held together. Encoder only: not bit-exact across backends."""
    F, D = e_fd.shape
    if n_cand % chunk:
        raise ValueError(f"n_cand={n_cand} is not a multiple of chunk={chunk}")
    method = default_method() if method is None else method
    keys = jax.vmap(lambda f: _key(seed, gop, step, f, level))(jnp.arange(F, dtype=U32))
    if method == "mosaic":       # the same generation under other keys: the GPU kernel applies
        return kernel_or_xla(jnp.stack(keys, axis=1), e_fd, n_cand, lambda e: scores(
            seed, gop, step, level, e, n_cand, chunk, "fused"))
    nc = -(-D // 4)
    r = jnp.pad(e_fd.astype(jnp.float32), ((0, 0), (0, nc * 4 - D)))

    def one(start):
        k = start + lax.broadcasted_iota(U32, (F, chunk), 1)
        a = atoms_c4((keys[0][:, None, None], keys[1][:, None, None]), k, nc)
        a = a.reshape(F, chunk, nc * 4)
        if method == "matmul":
            return jnp.einsum("fke,fe->fk", a, r, precision=lax.Precision.HIGHEST)
        return jnp.sum(a * r[:, None, :], axis=2)

    starts = jnp.arange(n_cand // chunk, dtype=U32) * U32(chunk)
    s = lax.map(one, starts)                                   # [n_chunks, F, chunk]
    return jnp.moveaxis(s, 0, 1).reshape(F, n_cand)


@functools.partial(jax.jit, static_argnums=(6,))
def candidates_jit(seed, gop, step, frame, level, indices, d):
    """Jitted :func:`candidates` (for tests and benches)."""
    return candidates(seed, gop, step, frame, level, indices, d)


# ---- NumPy reference -----------------------------------------------------------------------
def _u32(x) -> np.ndarray:
    v = int(x)
    if not 0 <= v < 2 ** 32:
        raise ValueError(f"address component {v} is not in [0, 2^32)")
    return np.array([v], dtype=np.uint32)


def candidates_numpy(seed, gop, step, frame, level, indices, d: int) -> np.ndarray:
    """Reference of :func:`candidates`: float32 [len(indices), d], NumPy only."""
    with np.errstate(over="ignore"):
        key = level_key(_u32(seed), _u32(gop), _u32(step), _u32(frame), _u32(level), np.uint32)
    return QUANTILES[bits16_numpy(key, indices, int(d))]
