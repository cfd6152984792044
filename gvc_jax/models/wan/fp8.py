"""fp8 compute for the Wan DiT (docs/fp8.md): quantised linear layers and fp8 self-attention.

The rule, fixed by a stream header's ``dtype: fp8``:

* **Weights** (:func:`quantize_kernel`): each kernel ``[in, out]`` is stored as
  ``float8_e4m3fn`` with one float32 scale per output channel, ``s = absmax / 448`` (the absmax
  over the input axis, times the float32 constant ``1/448``, :data:`INV_MAX`; a column of
  zeros gets ``s = 1``), ``q = e4m3(clip(w / s, ±448))`` with round-to-nearest-even.
  Computed in float32 by single IEEE operations, so NumPy (the cache, ``gvc_jax.weights.dit``)
  and JAX on a CPU (random initialisation) give the same bytes. (A product with a constant,
  not a division: XLA turns a division by a constant into that product.)
* **Activations** (:func:`quantize_activation`): one dynamic scale per tensor,
  ``s_x = absmax(x) * INV_MAX`` computed in float32, then the same cast. A max is exact and
  order-free, so the scale does not depend on how a device reduces.
* **Matmul** (:func:`fp8_matmul`): ``dot_general`` of the two e4m3 operands with float32
  accumulation (``preferred_element_type``), then ``* (s_x * s_w) + bias`` in float32 and a
  cast to the compute dtype. On a Hopper GPU XLA's GEMM rewriter turns a dot of fp8 operands
  into a cuBLASLt fp8 GEMM; on a CPU the same program converts the operands and runs a float32
  dot (deterministic).
* **Self-attention** (:func:`fp8_attention`): cuDNN's fp8 flash attention, on a GPU of compute
  capability 9.x (Hopper) only: q, k, v per-tensor e4m3 as above, the softmax probabilities in
  e4m3 at scale 448 (they lie in [0, 1]) and the output in e4m3 at ``1 / s_v`` (an attention
  output is a convex combination of value rows, so ``|o| <= absmax(v)``). Elsewhere, or under
  multi-device sharding, or when a kernel is named, the caller's bf16 kernel runs instead.
  ``GVC_FP8_ATTENTION=0`` in the environment also turns it off: a diagnostic switch that
  changes the numerics, so a stream must be decoded with the setting it was encoded with.

Everything else stays in the compute dtype or float32 (docs/wan_dit.md, "Numerics").
"""
from __future__ import annotations

import os
from typing import Callable

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
from flax import nnx

from gvc_jax.models.wan.layers import Names, named_param

E4M3 = np.dtype(ml_dtypes.float8_e4m3fn)
E4M3_MAX = 448.0
INV_MAX = np.float32(1.0 / E4M3_MAX)   # the scale rule's factor, rounded to float32 once
F32 = jnp.float32


def quantize_kernel(w, xp=np):
    """``(q, scale)`` of a kernel ``w [..., in, out]``: ``q`` e4m3 of ``w``'s shape, ``scale``
    float32 ``[..., out]`` (per output channel), ``w ~= q * scale``. ``xp``: ``np`` or
    ``jnp``; both give the same bytes (IEEE float32 division, round-to-nearest-even cast)."""
    wf = xp.asarray(w).astype(xp.float32)
    amax = xp.maximum(xp.max(wf, axis=-2), -xp.min(wf, axis=-2))
    scale = xp.where(amax > 0, amax * INV_MAX, xp.float32(1.0)).astype(xp.float32)
    q = xp.clip(wf / scale[..., None, :], -E4M3_MAX, E4M3_MAX)
    return q.astype(E4M3), scale


def dequantize_kernel(q, scale, xp=np):
    """``q * scale`` in float32 (the kernel an fp8 layer computes with)."""
    return xp.asarray(q).astype(xp.float32) * xp.asarray(scale)[..., None, :]


def _amax_scale(x: jax.Array) -> jax.Array:
    """float32 scalar ``absmax(x) * INV_MAX`` (1 for an all-zero tensor)."""
    amax = jnp.max(jnp.abs(x)).astype(F32)
    return jnp.where(amax > 0, amax * INV_MAX, F32(1.0))


def quantize_activation(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(x_q, s_x)``: ``x`` in e4m3 with one dynamic float32 scale, ``x ~= x_q * s_x``."""
    s = _amax_scale(x)
    return jnp.clip(x.astype(F32) / s, -E4M3_MAX, E4M3_MAX).astype(E4M3), s


def fp8_matmul(x: jax.Array, kernel_q: jax.Array, scale: jax.Array, bias: jax.Array | None,
               dtype) -> jax.Array:
    """``x @ (kernel_q * scale) + bias`` over the last axis of ``x`` with both operands in e4m3
    (``x`` quantised per tensor here), float32 accumulation, the result in ``dtype``."""
    xq, sx = quantize_activation(x)
    y = jax.lax.dot_general(xq, kernel_q, (((x.ndim - 1,), (0,)), ((), ())),
                            preferred_element_type=F32)
    y = y * (sx * scale.astype(F32))
    if bias is not None:
        y = y + bias.astype(F32)
    return y.astype(dtype)


class Fp8Dense(nnx.Module):
    """A :class:`~gvc_jax.models.wan.layers.Dense` whose kernel is e4m3 with per-output-channel
    float32 scales (``kernel``, ``scale``; ``bias`` in ``param_dtype``), computed by
    :func:`fp8_matmul`. Same constructor; the random initial kernel is the quantised
    LeCun-normal one. Converted weights come from ``gvc_jax.weights.dit.quantize_fp8``."""

    def __init__(self, d_in: int, d_out: int, *, rngs: nnx.Rngs, dtype=jnp.bfloat16,
                 param_dtype=jnp.bfloat16, names: Names = None):
        self.dtype = dtype
        w = nnx.initializers.lecun_normal()(rngs.params(), (d_in, d_out), F32)
        q, s = quantize_kernel(w, jnp)
        out = None if names is None else tuple(names)[1:]
        self.kernel = named_param(q, names)
        self.scale = named_param(s, out)
        self.bias = named_param(jnp.zeros((d_out,), param_dtype), out)

    def __call__(self, x: jax.Array) -> jax.Array:
        return fp8_matmul(x, self.kernel[...], self.scale[...], self.bias[...], self.dtype)


# ------------------------------------------------------------------ attention
def cudnn_fp8_available(head_dim: int) -> bool:
    """cuDNN fp8 attention can run here: a CUDA GPU of compute capability 9.x (Hopper) as the
    default backend, a head dim cuDNN's fp8 inference kernel takes (<= 256, multiple of 16),
    and ``GVC_FP8_ATTENTION`` not ``0``. Decided at trace time."""
    if jax.default_backend() != "gpu" or head_dim > 256 or head_dim % 16:
        return False
    if os.environ.get("GVC_FP8_ATTENTION", "1") == "0":
        return False
    try:
        cc = str(jax.devices()[0].compute_capability)
    except (AttributeError, RuntimeError):
        return False
    return cc.split(".")[0] == "9"


def _cudnn_fp8(q_blnh, k_bsnh, v_bsnh) -> jax.Array:
    from jax._src.cudnn.fused_attention_stablehlo import (dot_product_attention,
                                                          fp8_params_keys)

    (q, sq), (k, sk), (v, sv) = (quantize_activation(a) for a in (q_blnh, k_bsnh, v_bsnh))
    one = lambda s: jnp.asarray(s, F32).reshape(1, 1, 1, 1)  # noqa: E731
    params = {key: one(1.0) for key in fp8_params_keys}      # backward-only keys unused
    params.update(descale_q=one(sq), descale_k=one(sk), descale_v=one(sv),
                  descale_s=one(1.0 / E4M3_MAX), scale_s=one(E4M3_MAX), scale_o=one(1.0 / sv))
    o, _, _ = dot_product_attention(q, k, v, fp8_params=params,
                                    scale=float(1.0 / np.sqrt(q_blnh.shape[-1])),
                                    use_fp8=True, qkv_layout="BTNH")
    return (o.astype(F32) * sv).astype(q_blnh.dtype)


def fp8_attention(q_blnh: jax.Array, k_bsnh: jax.Array, v_bsnh: jax.Array,
                  fallback: Callable[[], jax.Array], implementation: str | None = None,
                  sharded: bool = False) -> jax.Array:
    """softmax(q k^T / sqrt(H)) v on [B, L, N, H] by cuDNN's fp8 kernel where
    :func:`cudnn_fp8_available` (and no kernel was named, no multi-device sharding is active);
    otherwise ``fallback()``, the bf16 kernel choice. Output in ``q``'s dtype."""
    if implementation is None and not sharded and cudnn_fp8_available(q_blnh.shape[-1]):
        return _cudnn_fp8(q_blnh, k_bsnh, v_bsnh)
    return fallback()
