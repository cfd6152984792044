"""Memory-bounded attention in plain JAX: online softmax over key blocks, one query block at a time.

softmax(q k^T / sqrt(H)) v on [B, L, N, H] without the [L, S] score matrix. Queries are cut
into blocks of ``block_q`` rows (``lax.map``: one block at a time) and, for each, keys and
values into blocks of ``block_k`` (``lax.scan``). Per query row the scan carries the running
maximum m, the running sum l of exp(s - m) and the unnormalised output acc, all in float32
(the flash-attention recurrence):

    m' = max(m, max_j s_j),   l' = l e^{m - m'} + Σ_j e^{s_j - m'},
    acc' = acc e^{m - m'} + Σ_j e^{s_j - m'} v_j,   o = acc / l   (after the last block).

Scores are float32 dots of the input dtype (bf16 inputs: bf16 x bf16 -> f32, as
``jax.nn.dot_product_attention(implementation="xla")`` computes them); the probabilities meet
``v`` in its own dtype, accumulated in float32. Keys past S in the last block are zero padding
and masked to -inf; every block keeps at least one real key, so no row's maximum is -inf.

Memory bound: besides the output and zero-padded copies of q, k and v (at most one block more
than L or S), one step holds the float32 scores and probabilities of one tile, 2·B·N·bq·bk·4
bytes, the probabilities in the input dtype (≤ B·N·bq·bk·4 more), and the carry, 2·B·N·bq·(H+2)·4
bytes. :func:`block_sizes` picks ``bq`` so one float32 tile stays within ``budget_bytes``
(default :data:`TILE_BUDGET_BYTES`, 64 MiB), hence at most ~3·budget + 2·B·N·bq·(H+2)·4 bytes:
about 0.2 GB for Wan's 40 heads, whatever the sequence length.

Used on GPUs where cuDNN flash attention is not available (float32 inputs, GPUs before sm80,
shapes cuDNN refuses; :func:`gvc_jax.models.wan.attention.choose_implementation`); it runs on
any backend.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

BLOCK_K = 512                  # keys per scan step
TILE_BUDGET_BYTES = 64 << 20   # float32 bytes of one [B, N, bq, bk] score tile
ROW_MULTIPLE = 64              # query block sizes are multiples of this (or all of L)

F32 = jnp.float32


def block_sizes(b: int, l: int, n: int, s: int, *, block_k: int = BLOCK_K,
                budget_bytes: int = TILE_BUDGET_BYTES) -> tuple[int, int]:
    """``(bq, bk)``: keys per step ``min(block_k, S)`` and the largest query block, a multiple
    of :data:`ROW_MULTIPLE` (or L itself when smaller), whose float32 score tile
    B·N·bq·bk·4 fits ``budget_bytes`` (at least one multiple)."""
    bk = max(1, min(block_k, s))
    rows = budget_bytes // (4 * b * n * bk)
    bq = max(ROW_MULTIPLE, rows // ROW_MULTIPLE * ROW_MULTIPLE)
    return (l if l <= bq else bq), bk


def peak_extra_bytes(b: int, l: int, n: int, h: int, s: int, **kw) -> int:
    """The bound of the module docstring for these shapes (bytes beyond inputs and output)."""
    bq, bk = block_sizes(b, l, n, s, **kw)
    tile = b * n * bq * bk * 4
    return 3 * tile + 2 * b * n * bq * (h + 2) * 4


def _blocks(x, axis_len: int, block: int):
    """[B, T, N, H] zero-padded to a multiple of ``block`` and cut to [T/block, B, block, N, H]."""
    b, t, n, h = x.shape
    nblk = -(-axis_len // block)
    x = jnp.pad(x, ((0, 0), (0, nblk * block - t), (0, 0), (0, 0)))
    return jnp.moveaxis(x.reshape(b, nblk, block, n, h), 1, 0)


def blocked_attention(q_blnh: jax.Array, k_bsnh: jax.Array, v_bsnh: jax.Array, *,
                      block_q: int | None = None, block_k: int | None = None,
                      budget_bytes: int = TILE_BUDGET_BYTES) -> jax.Array:
    """softmax(q k^T / sqrt(H)) v for [B, L, N, H] queries and [B, S, N, H] keys/values, in the
    dtype of ``q``; ``block_q``/``block_k`` override :func:`block_sizes`."""
    b, l, n, h = q_blnh.shape
    s = k_bsnh.shape[1]
    if k_bsnh.shape != (b, s, n, h) or v_bsnh.shape[:3] != (b, s, n):
        raise ValueError(f"shapes q {q_blnh.shape}, k {k_bsnh.shape}, v {v_bsnh.shape} do not "
                         "match [B, L, N, H], [B, S, N, H], [B, S, N, H_v]")
    auto_q, auto_k = block_sizes(b, l, n, s, block_k=block_k or BLOCK_K,
                                 budget_bytes=budget_bytes)
    bq, bk = block_q or auto_q, block_k or auto_k
    scale = F32(1.0 / math.sqrt(h))
    ks, vs = _blocks(k_bsnh, s, bk), _blocks(v_bsnh, s, bk)        # [nk, B, bk, N, H]
    qs = _blocks(q_blnh, l, bq)                                    # [nq, B, bq, N, H]
    starts = jnp.arange(ks.shape[0], dtype=jnp.int32) * bk
    ragged = s % bk != 0

    def one_query_block(qb):
        def step(carry, kvj):
            m, lsum, acc = carry                                   # [B,N,bq], [B,N,bq], [B,N,bq,Hv]
            kb, vb, start = kvj
            sc = jnp.einsum("bqnh,bknh->bnqk", qb, kb, preferred_element_type=F32) * scale
            if ragged:
                valid = start + lax.broadcasted_iota(jnp.int32, (bk,), 0) < s
                sc = jnp.where(valid, sc, -jnp.inf)
            m_new = jnp.maximum(m, jnp.max(sc, axis=-1))
            corr = jnp.exp(m - m_new)
            p = jnp.exp(sc - m_new[..., None])
            lsum = lsum * corr + jnp.sum(p, axis=-1)
            pv = jnp.einsum("bnqk,bknh->bnqh", p.astype(vb.dtype), vb, preferred_element_type=F32)
            return (m_new, lsum, acc * corr[..., None] + pv), None

        init = (jnp.full((b, n, bq), -jnp.inf, F32), jnp.zeros((b, n, bq), F32),
                jnp.zeros((b, n, bq, v_bsnh.shape[3]), F32))
        (_, lsum, acc), _ = lax.scan(step, init, (ks, vs, starts))
        o = acc / lsum[..., None]                                   # [B, N, bq, Hv]
        return jnp.swapaxes(o, 1, 2).astype(q_blnh.dtype)           # [B, bq, N, Hv]

    o = lax.map(one_query_block, qs)                                # [nq, B, bq, N, Hv]
    o = jnp.moveaxis(o, 0, 1).reshape(b, -1, n, v_bsnh.shape[3])
    return o[:, :l]
