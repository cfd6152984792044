"""Attention for the Wan DiT: self-attention with 3-D RoPE, and text(+image) cross-attention.

Reference: ``WanSelfAttention``, ``WanCrossAttention`` and the Wan 2.1 ``WanI2VCrossAttention``
of the official code. The kernel is ``jax.nn.dot_product_attention`` in [B, L, N, H] layout:
cuDNN flash attention on GPU with bf16, a Pallas splash kernel on TPU, XLA elsewhere. No attention matrix is materialised on
GPU. There is no mask: the text context is zero-padded to text_len and attended in full,
as in the reference (``context_lens=None``).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from gvc_jax.models.wan.layers import Dense, RMSNorm
from gvc_jax.models.wan.rope import apply_rope


def attention(q_blnh: jax.Array, k_bsnh: jax.Array, v_bsnh: jax.Array,
              implementation: str | None = None) -> jax.Array:
    """softmax(q k^T / sqrt(H)) v on [B, L, N, H].

    ``implementation``: None picks cuDNN on GPU for bf16/fp16, the Pallas splash kernel on TPU
    (unverified on hardware, see ``pallas_attention``), XLA otherwise; or one of "xla",
    "cudnn", "pallas", "pallas_interpret" (the Pallas kernel interpreted, for CPU tests).
    """
    if implementation is None:
        backend = jax.default_backend()
        half = q_blnh.dtype in (jnp.bfloat16, jnp.float16)
        implementation = ("pallas" if backend == "tpu" else
                          "cudnn" if (backend == "gpu" and half) else "xla")
    if implementation in ("pallas", "pallas_interpret"):
        from gvc_jax.models.wan.pallas_attention import tpu_flash_attention
        return tpu_flash_attention(q_blnh, k_bsnh, v_bsnh,
                                   interpret=implementation == "pallas_interpret")
    return jax.nn.dot_product_attention(q_blnh, k_bsnh, v_bsnh, implementation=implementation)


def _heads(x_bld: jax.Array, n: int) -> jax.Array:
    b, l, d = x_bld.shape
    return x_bld.reshape(b, l, n, d // n)


class SelfAttention(nnx.Module):
    """q/k/v/o projections, RMSNorm on q and k across all heads, RoPE, attention."""

    def __init__(self, dim: int, num_heads: int, eps: float, *, rngs: nnx.Rngs,
                 dtype=jnp.bfloat16, param_dtype=jnp.bfloat16):
        self.num_heads, self.dtype = num_heads, dtype
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.q, self.k, self.v, self.o = (Dense(dim, dim, **kw) for _ in range(4))
        self.norm_q = RMSNorm(dim, eps, rngs=rngs)
        self.norm_k = RMSNorm(dim, eps, rngs=rngs)

    def __call__(self, x_bld, cos_lk, sin_lk, implementation=None):
        n = self.num_heads
        q = apply_rope(_heads(self.norm_q(self.q(x_bld)), n), cos_lk, sin_lk)
        k = apply_rope(_heads(self.norm_k(self.k(x_bld)), n), cos_lk, sin_lk)
        v = _heads(self.v(x_bld), n)
        o = attention(q.astype(self.dtype), k.astype(self.dtype), v.astype(self.dtype),
                      implementation)
        b, l = x_bld.shape[:2]
        return self.o(o.reshape(b, l, -1))


class CrossAttention(nnx.Module):
    """Attention of video tokens to the text context; with ``image`` also to CLIP tokens
    through separate k_img/v_img (+ norm_k_img), the two results summed before ``o``."""

    def __init__(self, dim: int, num_heads: int, eps: float, image: bool, *, rngs: nnx.Rngs,
                 dtype=jnp.bfloat16, param_dtype=jnp.bfloat16):
        self.num_heads, self.dtype = num_heads, dtype
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.q, self.k, self.v, self.o = (Dense(dim, dim, **kw) for _ in range(4))
        self.norm_q = RMSNorm(dim, eps, rngs=rngs)
        self.norm_k = RMSNorm(dim, eps, rngs=rngs)
        if image:
            self.k_img = Dense(dim, dim, **kw)
            self.v_img = Dense(dim, dim, **kw)
            self.norm_k_img = RMSNorm(dim, eps, rngs=rngs)
        else:
            self.k_img = self.v_img = self.norm_k_img = None

    def __call__(self, x_bld, ctx_bsd, img_bsd=None, implementation=None):
        n, dt = self.num_heads, self.dtype
        q = _heads(self.norm_q(self.q(x_bld)), n).astype(dt)
        k = _heads(self.norm_k(self.k(ctx_bsd)), n).astype(dt)
        v = _heads(self.v(ctx_bsd), n).astype(dt)
        o = attention(q, k, v, implementation)
        if self.k_img is not None:
            if img_bsd is None:
                raise ValueError("this model needs CLIP image tokens (clip_bld)")
            ki = _heads(self.norm_k_img(self.k_img(img_bsd)), n).astype(dt)
            vi = _heads(self.v_img(img_bsd), n).astype(dt)
            o = o + attention(q, ki, vi, implementation)
        b, l = x_bld.shape[:2]
        return self.o(o.reshape(b, l, -1))
