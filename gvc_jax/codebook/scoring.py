"""Codebook scores s[f, k] = <atom(seed, gop, step, f, k), r_f> and the choice of how to compute
them (docs/codebook.md, "Selection and combination").

This module is the dispatcher: it holds the XLA paths ("fused", "matmul") and calls the Mosaic
GPU kernel (:mod:`gvc_jax.codebook.mosaic_scores`) for "mosaic"; the kernel module never imports
it. :mod:`gvc_jax.codebook.ops` selects top-M on these scores and the rcc candidates
(:mod:`gvc_jax.codebook.candidates`) use the same dispatch under their own keys.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
from jax import lax

from gvc_jax import target
from gvc_jax.codebook.mosaic_scores import available as mosaic_available
from gvc_jax.codebook.mosaic_scores import scores_for_keys
from gvc_jax.codebook.generate import DEFAULT_LOOKUP, U32, atoms_c4, frame_key

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
METHODS = ("fused", "matmul", "mosaic")
METHOD_ENV = "GVC_CODEBOOK_METHOD"


def chunk_budget() -> int:
    """:data:`CHUNK_BUDGET_BYTES`, or :data:`TPU_CHUNK_BUDGET_BYTES` for a program built for a
    TPU (:func:`gvc_jax.target.current`)."""
    return TPU_CHUNK_BUDGET_BYTES if target.current().platform == "tpu" else CHUNK_BUDGET_BYTES


def auto_chunk(K: int, F: int, D: int, budget: int | None = None) -> int:
    """Atoms per selection chunk so that F * chunk * D float32 stay under ``budget`` bytes
    (default :func:`chunk_budget`, and at most :data:`TPU_MAX_CHUNK` built for a TPU)."""
    tpu = budget is None and target.current().platform == "tpu"
    budget = chunk_budget() if budget is None else budget
    per_atom = F * 4 * (-(-D // 4)) * 4
    c = max(1, budget // per_atom)
    c = 1 << (c.bit_length() - 1)            # power of two
    return int(min(c, K, TPU_MAX_CHUNK if tpu else K))


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
    return "mosaic" if mosaic_available() else "fused"


def kernel_or_xla(keys_f2, r_fd, K: int, xla_scores):
    """Scores [F, K] of the frame keys ``keys_f2`` uint32 [F, 2]: the Mosaic kernel where the
    computation is lowered for CUDA, ``xla_scores(r_fd)`` ([F, >= K]) on any other platform,
    e.g. a CPU device of a GPU host."""
    return lax.platform_dependent(
        keys_f2, r_fd,
        cuda=lambda k2, r: scores_for_keys(k2, r, K)[:, :K],
        default=lambda k2, r: xla_scores(r)[:, :K])


def scores(seed, gop, step, r_fd, K: int, chunk: int, *, method: str = "fused",
           mode: str = DEFAULT_LOOKUP):
    """float32 scores [F, ceil(K/chunk)*chunk] = <atom(seed, gop, step, f, k), r_f>; k >= K junk
    ([F, K] with ``method="mosaic"``).

    ``method`` "fused": multiply-and-reduce in one expression so XLA can fuse generation into the
    reduction; "matmul": materialise the chunk of atoms and use a matrix-vector product;
    "mosaic": :func:`kernel_or_xla`."""
    F, D = r_fd.shape
    keys = jax.vmap(lambda f: frame_key(seed, gop, step, f))(jnp.arange(F, dtype=U32))  # ([F], [F])
    if method == "mosaic":       # the kernel on CUDA, "fused" elsewhere; both give [F, K]
        return kernel_or_xla(jnp.stack(keys, axis=1), r_fd, K, lambda r: scores(
            seed, gop, step, r, K, chunk, method="fused", mode=mode))
    nc = -(-D // 4)
    r = jnp.pad(r_fd.astype(jnp.float32), ((0, 0), (0, nc * 4 - D))).reshape(F, 1, nc, 4)
    n_chunks = -(-K // chunk)

    def one(start):
        k = start + lax.broadcasted_iota(U32, (F, chunk), 1)
        a = atoms_c4((keys[0][:, None, None], keys[1][:, None, None]), k, nc, mode)  # [F,chunk,nc,4]
        if method == "matmul":
            return jnp.einsum("fke,fe->fk", a.reshape(F, chunk, nc * 4), r.reshape(F, nc * 4),
                              precision=lax.Precision.HIGHEST)
        return jnp.sum(a * r, axis=(2, 3))                                 # fused generate-dot

    starts = jnp.arange(n_chunks, dtype=U32) * U32(chunk)
    s = lax.map(one, starts)                                               # [n_chunks, F, chunk]
    return jnp.moveaxis(s, 0, 1).reshape(F, n_chunks * chunk)
