"""Codebook scores s[f, k] = <atom(seed, gop, step, f, k), r_f> as one Pallas (Triton) kernel.

Computes the same numbers as :func:`gvc_jax.codebook.ops.scores` (up to float32 summation
order), but each program of the kernel regenerates its atoms in registers from the Threefry
counter (c, k) and the frame key, looks the 16-bit halves up in the int16 table and reduces them
against r at once: atoms are never written to memory. Atom definition: docs/design.md §3
(element 4c+j of atom k is the j-th 16-bit half of threefry2x32(key_f, (c, k)), high half of
word 0 first).

Launch grid (F, K/block_k); each program loops over the ceil(D/4) counters in blocks of
``block_c``. r is zero-padded so counters past D contribute exactly 0.

Measured on an H200 (bench/profile_gpu.py, F=9, D=230,400, K=16,384): 256-277 ms over seven
block shapes, against 81 ms for the XLA path (:func:`ops.scores`), so it is not the default.
Triton gathers the table through global memory/L1, one 16-bit load per element; accumulating
[block_k, block_c] across the loop instead of reducing every step was slower again (296-330 ms).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from gvc_jax.codebook import ops
from gvc_jax.codebook.table import GRID_LOG2
from gvc_jax.codebook.threefry import threefry2x32

U32 = jnp.uint32
_MASK16 = 0xFFFF


def _kernel(keys_ref, table_ref, r_ref, out_ref, *, block_k: int, block_c: int, n_cblocks: int):
    """One program: frame f = program 0, atoms [kb*block_k, (kb+1)*block_k) = program 1.

    keys_ref uint32 [F, 2]; table_ref int16 [2^16]; r_ref float32 [F, 4, nc_padded] (already
    scaled by 2^-12); out_ref float32 [block_k] (the block of row f)."""
    f = pl.program_id(0)
    kb = pl.program_id(1)
    k0 = keys_ref[f, 0]
    k1 = keys_ref[f, 1]
    # Atom numbers computed in uint32, so every k < 2^32 is reachable.
    k = kb.astype(U32) * U32(block_k) + lax.iota(jnp.int32, block_k).astype(U32)[:, None]
    lane = lax.broadcasted_iota(jnp.int32, (1, block_c), 1)

    def body(i, acc):
        start = pl.multiple_of(i * block_c, block_c)
        c = (start + lane).astype(U32)                                  # [1, block_c]
        w0, w1 = threefry2x32(k0, k1, c, k, U32)                        # [block_k, block_c]
        halves = (w0 >> 16, w0 & U32(_MASK16), w1 >> 16, w1 & U32(_MASK16))
        part = None
        for j, h in enumerate(halves):
            v = table_ref[h.astype(jnp.int32)].astype(jnp.float32)      # gather, grid units
            rj = r_ref[f, j, pl.ds(start, block_c)]                     # [block_c]
            t = v * rj[None, :]
            part = t if part is None else part + t
        return acc + jnp.sum(part, axis=1)

    acc = lax.fori_loop(0, n_cblocks, body, jnp.zeros((block_k,), jnp.float32))
    out_ref[...] = acc


def _check_pow2(name: str, v: int):
    if v <= 0 or v & (v - 1):
        raise ValueError(f"{name} must be a positive power of two (Triton tensors), got {v}")


def scores_pallas(seed, gop, step, r_fd, K: int, *, block_k: int = 64, block_c: int = 256,
                  interpret: bool = False, num_warps: int | None = None):
    """float32 scores [F, ceil(K/block_k)*block_k] = <atom(seed, gop, step, f, k), r_f>.

    Columns k >= K are junk (callers mask them). seed/gop/step are Python ints or uint32/int32
    scalars (traced is fine); r_fd is [F, D]. ``block_k`` atoms x ``block_c`` counters
    (4*block_c elements) are generated per loop step of one program; both must be powers of
    two. ``interpret=True`` runs the kernel through the Pallas interpreter (any backend)."""
    K, block_k, block_c = int(K), int(block_k), int(block_c)
    _check_pow2("block_k", block_k)
    _check_pow2("block_c", block_c)
    if not 0 < K <= 2 ** 32:
        raise ValueError(f"need 0 < K <= 2^32, got {K}")
    F, D = r_fd.shape
    nc = -(-D // 4)
    n_cblocks = -(-nc // block_c)
    ncp = n_cblocks * block_c
    n_kblocks = -(-K // block_k)
    keys = jax.vmap(lambda f: ops._key(seed, gop, step, f))(jnp.arange(F, dtype=U32))
    keys = jnp.stack(keys, axis=1)                                      # uint32 [F, 2]
    # r as [F, 4, ncp] (r[f, j, c] = r_fd[f, 4c+j]) times the table scale 2^-12, exact.
    r = jnp.pad(r_fd.astype(jnp.float32), ((0, 0), (0, ncp * 4 - D)))
    r = (r * jnp.float32(2.0 ** -GRID_LOG2)).reshape(F, ncp, 4).transpose(0, 2, 1)
    table = jnp.asarray(ops.TABLE_I16)
    kernel = functools.partial(_kernel, block_k=block_k, block_c=block_c, n_cblocks=n_cblocks)
    whole = lambda shape: pl.BlockSpec(shape, lambda f, kb: (0,) * len(shape))
    return pl.pallas_call(
        kernel,
        grid=(F, n_kblocks),
        in_specs=[whole((F, 2)), whole(table.shape), whole((F, 4, ncp))],
        out_specs=pl.BlockSpec((None, block_k), lambda f, kb: (f, kb)),
        out_shape=jax.ShapeDtypeStruct((F, n_kblocks * block_k), jnp.float32),
        compiler_params=plgpu.CompilerParams(num_warps=num_warps),
        interpret=interpret,
        name="codebook_scores",
    )(keys, table, r)
