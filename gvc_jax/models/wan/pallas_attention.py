"""TPU attention path: Pallas splash attention behind the DiT's ``attention`` function.

Uses ``jax.experimental.pallas.ops.tpu.splash_attention`` (forward only, full mask). Sequence
lengths are padded up to the block size; padded keys get segment id 1 and are masked out for
every query (all queries have id 0, so no softmax row is empty); padded query rows are dropped.

Status: numerics checked on CPU in Pallas interpret mode (``tests/wan/test_dit_pallas.py``);
lowered through Mosaic TPU and compiled for TPU v5e/v6e by libtpu on a CPU host, inside the
codec's scans and under ``shard_map`` (``tests/test_fit.py``, docs/fit.md). It has NOT been run
or timed on a TPU. Block sizes are untuned defaults.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp


def _pad_to(n: int, block: int) -> int:
    return -(-n // block) * block


@functools.lru_cache(maxsize=32)
def _kernel(n_heads: int, lq: int, lk: int, block_q: int, block_kv: int, interpret: bool):
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as sm

    mask = sm.MultiHeadMask([sm.FullMask((lq, lk)) for _ in range(n_heads)])
    sizes = sk.BlockSizes(block_q=block_q, block_kv=block_kv, block_kv_compute=block_kv)
    return sk.make_splash_mha(mask, head_shards=1, q_seq_shards=1, block_sizes=sizes,
                              interpret=interpret)


def tpu_flash_attention(q_blnh: jax.Array, k_bsnh: jax.Array, v_bsnh: jax.Array, *,
                        block: int = 512, interpret: bool = False) -> jax.Array:
    """softmax(q k^T / sqrt(H)) v for [B, L, N, H] inputs with the splash kernel."""
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk

    b, lq, n, h = q_blnh.shape
    lk = k_bsnh.shape[1]
    bq, bk = min(block, _pad_to(lq, 128)), min(block, _pad_to(lk, 128))
    lq_p, lk_p = _pad_to(lq, bq), _pad_to(lk, bk)
    scale = jnp.asarray(1.0 / math.sqrt(h), q_blnh.dtype)
    q = jnp.pad(q_blnh * scale, ((0, 0), (0, lq_p - lq), (0, 0), (0, 0))).transpose(0, 2, 1, 3)
    k = jnp.pad(k_bsnh, ((0, 0), (0, lk_p - lk), (0, 0), (0, 0))).transpose(0, 2, 1, 3)
    v = jnp.pad(v_bsnh, ((0, 0), (0, lk_p - lk), (0, 0), (0, 0))).transpose(0, 2, 1, 3)
    seg = sk.SegmentIds(q=jnp.zeros((lq_p,), jnp.int32),
                        kv=(jnp.arange(lk_p) >= lk).astype(jnp.int32))
    kernel = _kernel(n, lq_p, lk_p, bq, bk, interpret)
    o = jax.vmap(lambda q1, k1, v1: kernel(q1, k1, v1, segment_ids=seg))(q, k, v)
    return o.transpose(0, 2, 1, 3)[:, :lq].astype(q_blnh.dtype)
