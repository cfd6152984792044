"""Small NNX layers of the Wan DiT: dense, RMS/layer norms, MLPs.

Reference: ``WanRMSNorm``, ``WanLayerNorm``, the ``nn.Sequential`` MLPs and ``MLPProj`` of the
official ``wan/modules/model.py``. Kernels are stored ``[in, out]``; norms compute in fp32.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

Dtype = jnp.dtype


def _param(rngs: nnx.Rngs, init, shape, dtype):
    return nnx.Param(init(rngs.params(), shape, dtype))


class Dense(nnx.Module):
    """y = x @ kernel + bias, computed in ``dtype`` (the reference's nn.Linear)."""

    def __init__(self, d_in: int, d_out: int, *, rngs: nnx.Rngs, dtype=jnp.bfloat16,
                 param_dtype=jnp.bfloat16):
        self.dtype = dtype
        self.kernel = _param(rngs, nnx.initializers.lecun_normal(), (d_in, d_out), param_dtype)
        self.bias = _param(rngs, nnx.initializers.zeros_init(), (d_out,), param_dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel[...].astype(self.dtype)
        y = jnp.einsum("...i,io->...o", x.astype(self.dtype), k)
        return y + self.bias[...].astype(self.dtype)


class RMSNorm(nnx.Module):
    """x * rsqrt(mean(x^2) + eps) * scale over the last axis (all heads at once)."""

    def __init__(self, dim: int, eps: float, *, rngs: nnx.Rngs, param_dtype=jnp.float32):
        del rngs
        self.eps = eps
        self.scale = nnx.Param(jnp.ones((dim,), param_dtype))

    def __call__(self, x: jax.Array) -> jax.Array:
        xf = x.astype(jnp.float32)
        y = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + self.eps)
        return (y * self.scale[...].astype(jnp.float32)).astype(x.dtype)


def layer_norm(x: jax.Array, eps: float) -> jax.Array:
    """Non-affine LayerNorm in fp32 (returns fp32)."""
    xf = x.astype(jnp.float32)
    mu = jnp.mean(xf, axis=-1, keepdims=True)
    xc = xf - mu
    var = jnp.mean(xc * xc, axis=-1, keepdims=True)
    return xc * jax.lax.rsqrt(var + eps)


class LayerNorm(nnx.Module):
    """Affine LayerNorm computed in fp32 (returns fp32)."""

    def __init__(self, dim: int, eps: float, *, rngs: nnx.Rngs, param_dtype=jnp.float32):
        del rngs
        self.eps = eps
        self.scale = nnx.Param(jnp.ones((dim,), param_dtype))
        self.bias = nnx.Param(jnp.zeros((dim,), param_dtype))

    def __call__(self, x: jax.Array) -> jax.Array:
        y = layer_norm(x, self.eps)
        return y * self.scale[...].astype(jnp.float32) + self.bias[...].astype(jnp.float32)


class MLP(nnx.Module):
    """fc2(act(fc1(x))): the reference's Linear-GELU/SiLU-Linear sequences."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int, act: str, *, rngs: nnx.Rngs,
                 dtype=jnp.bfloat16, param_dtype=jnp.bfloat16):
        self.act = act
        self.fc1 = Dense(d_in, d_hidden, rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.fc2 = Dense(d_hidden, d_out, rngs=rngs, dtype=dtype, param_dtype=param_dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = self.fc1(x)
        if self.act == "gelu_tanh":
            h = jax.nn.gelu(h, approximate=True)
        elif self.act == "gelu":
            h = jax.nn.gelu(h, approximate=False)
        elif self.act == "silu":
            h = jax.nn.silu(h)
        else:
            raise ValueError(self.act)
        return self.fc2(h)


class ImageEmbedding(nnx.Module):
    """CLIP tokens -> model width (official ``MLPProj``): LN, Linear, GELU, Linear, LN.

    FLF2V adds a learned position table ``emb_pos`` over both images' tokens.
    """

    def __init__(self, d_in: int, d_out: int, n_pos: int | None, *, rngs: nnx.Rngs,
                 dtype=jnp.bfloat16, param_dtype=jnp.bfloat16):
        self.norm1 = LayerNorm(d_in, 1e-5, rngs=rngs)
        self.mlp = MLP(d_in, d_in, d_out, "gelu", rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.norm2 = LayerNorm(d_out, 1e-5, rngs=rngs)
        self.emb_pos = (nnx.Param(jnp.zeros((n_pos, d_in), jnp.float32)) if n_pos else None)

    def __call__(self, clip_bld: jax.Array) -> jax.Array:
        x = clip_bld.astype(jnp.float32)
        if self.emb_pos is not None:
            x = x + self.emb_pos[...].astype(jnp.float32)
        x = self.mlp(self.norm1(x))
        return self.norm2(x)
