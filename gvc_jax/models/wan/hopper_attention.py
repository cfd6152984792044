"""Hopper attention path: JAX's Mosaic GPU flash-attention kernel behind the DiT's ``attention``.

The kernel (``jax.experimental.pallas.ops.gpu.attention_mgpu``, warp-specialised, TMA + WGMMA)
needs key lengths that are multiples of its key block and query lengths that are multiples of
two query blocks; Wan's token counts are not (32,760 at 480p x 81 frames, 32,400 at 720p x 33).
So queries are zero-padded (their rows are dropped), and the keys are split into a head that
the kernel takes and a short tail (< one block) that XLA takes exactly. The two partial
softmaxes are merged with their log-sum-exps (the flash-attention merge):

    o = (e^{l_1} o_1 + e^{l_2} o_2) / (e^{l_1} + e^{l_2}),  l_i = log Σ_{keys of part i} e^{q·k/√H}

The kernel has no softmax scale, so q is scaled by 1/√H first; it returns its log-sum-exp in
base 2. Only for NVIDIA Hopper GPUs; :func:`merge_partial` and the split are plain JAX and
are tested on CPU against full attention with an XLA stand-in for the kernel.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

BLOCK_Q = 64            # the kernel's query block (it takes two per program)
BLOCK_KV = 128


def _xla_partial(q_blnh, k_bsnh, v_bsnh):
    """Softmax attention of pre-scaled q with its natural-log log-sum-exp [B, N, L] (float32)."""
    s = jnp.einsum("blnh,bsnh->bnls", q_blnh.astype(jnp.float32), k_bsnh.astype(jnp.float32))
    lse = jax.nn.logsumexp(s, axis=-1)
    p = jnp.exp(s - lse[..., None])
    o = jnp.einsum("bnls,bsnh->blnh", p, v_bsnh.astype(jnp.float32))
    return o, lse


def merge_partial(o1_blnh, lse1_bnl, o2_blnh, lse2_bnl):
    """Exact merge of two softmax-attention results over disjoint key sets (natural-log lse)."""
    m = jnp.maximum(lse1_bnl, lse2_bnl)
    w1, w2 = jnp.exp(lse1_bnl - m), jnp.exp(lse2_bnl - m)
    to_blnh = lambda w: jnp.transpose(w, (0, 2, 1))[..., None]  # noqa: E731
    w1, w2, den = to_blnh(w1), to_blnh(w2), to_blnh(w1 + w2)
    return (o1_blnh.astype(jnp.float32) * w1 + o2_blnh.astype(jnp.float32) * w2) / den


def split_attention(q_blnh, k_bsnh, v_bsnh, head_kernel, *, block_q: int = BLOCK_Q,
                    block_kv: int = BLOCK_KV):
    """softmax(q k^T / √H) v with ``head_kernel`` on the first ⌊S/block_kv⌋·block_kv keys.

    ``head_kernel(q, k, v) -> (o [B, Lp, N, H], lse2 [B, N, Lp])`` takes pre-scaled float32
    queries whose length Lp is a multiple of 2·block_q, and returns its log-sum-exp in base 2."""
    b, l, n, h = q_blnh.shape
    s = k_bsnh.shape[1]
    q = q_blnh.astype(jnp.float32) * (1.0 / math.sqrt(h))      # the kernel casts it once
    lp = -(-l // (2 * block_q)) * (2 * block_q)
    q = jnp.pad(q, ((0, 0), (0, lp - l), (0, 0), (0, 0)))
    s_head = (s // block_kv) * block_kv
    if s_head == 0:
        o, _ = _xla_partial(q, k_bsnh, v_bsnh)
        return o[:, :l].astype(q_blnh.dtype)
    o1, lse2 = head_kernel(q, k_bsnh[:, :s_head], v_bsnh[:, :s_head])
    if s_head == s:
        return o1[:, :l].astype(q_blnh.dtype)
    o2, lse_tail = _xla_partial(q, k_bsnh[:, s_head:], v_bsnh[:, s_head:])
    o = merge_partial(o1, lse2.astype(jnp.float32) * math.log(2.0), o2, lse_tail)
    return o[:, :l].astype(q_blnh.dtype)


def _mgpu_kernel(q, k, v, *, block_q: int, block_kv: int):
    """The kernel takes float16 only: bf16 inputs are cast (exact for |x| < 65,504 above
    2^-14; float16 has 3 more mantissa bits than bf16) and the output cast back."""
    from jax.experimental.pallas.ops.gpu import attention_mgpu as am
    cfg = am.TuningConfig(block_q=block_q, block_kv=block_kv, max_concurrent_steps=2)
    o, (lse2,) = am.attention(*(x.astype(jnp.float16) for x in (q, k, v)), cfg,
                              save_residuals=True)
    return o, lse2


def hopper_flash_attention(q_blnh, k_bsnh, v_bsnh, *, block_q: int = BLOCK_Q,
                           block_kv: int = BLOCK_KV):
    """The Mosaic GPU kernel with the key tail in XLA (bf16/fp16, head dim a multiple of 64)."""
    kern = functools.partial(_mgpu_kernel, block_q=block_q, block_kv=block_kv)
    return split_attention(q_blnh, k_bsnh, v_bsnh, kern, block_q=block_q, block_kv=block_kv)
