"""Small NNX layers of the Wan DiT: dense, RMS/layer norms, MLPs.

Reference: ``WanRMSNorm``, ``WanLayerNorm``, the ``nn.Sequential`` MLPs and ``MLPProj`` of the
official ``wan/modules/model.py``. Kernels are stored ``[in, out]``; norms compute in fp32.

Parameters carry *logical* axis names (``names=``, e.g. ``("embed", "heads")``) as
``out_sharding`` metadata; ``configs/sharding.py`` maps them to mesh axes (docs/sharding.md).
The names change neither the numerics nor the parameter paths.
"""
from __future__ import annotations

from typing import Optional, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from gvc_jax.sharding import constrain

Dtype = jnp.dtype
Names = Optional[Sequence[Optional[str]]]


def named_param(value, names=None) -> nnx.Param:
    """An ``nnx.Param`` with logical axis ``names`` (one per dim) as ``out_sharding`` metadata.
    Eager sharding is off: the names are logical, resolved only by a rules table."""
    if names is None:
        return nnx.Param(value)
    names = tuple(names)
    if len(names) != jnp.ndim(value):
        raise ValueError(f"logical names {names} for a parameter of shape {jnp.shape(value)}")
    return nnx.Param(value, out_sharding=names, eager_sharding=False)


def _param(rngs: nnx.Rngs, init, shape, dtype, names=None):
    return named_param(init(rngs.params(), shape, dtype), names)


class Dense(nnx.Module):
    """y = x @ kernel + bias, computed in ``dtype`` (the reference's nn.Linear).

    ``names``: logical names of (input, output) axes; the bias takes the output's."""

    def __init__(self, d_in: int, d_out: int, *, rngs: nnx.Rngs, dtype=jnp.bfloat16,
                 param_dtype=jnp.bfloat16, names: Names = None):
        self.dtype = dtype
        self.kernel = _param(rngs, nnx.initializers.lecun_normal(), (d_in, d_out), param_dtype,
                             names)
        self.bias = _param(rngs, nnx.initializers.zeros_init(), (d_out,), param_dtype,
                           None if names is None else names[1:])

    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel[...].astype(self.dtype)
        y = jnp.einsum("...i,io->...o", x.astype(self.dtype), k)
        return y + self.bias[...].astype(self.dtype)


class RMSNorm(nnx.Module):
    """x * rsqrt(mean(x^2) + eps) * scale over the last axis (all heads at once)."""

    def __init__(self, dim: int, eps: float, *, rngs: nnx.Rngs, param_dtype=jnp.float32,
                 name: str | None = None):
        del rngs
        self.eps = eps
        self.scale = named_param(jnp.ones((dim,), param_dtype), None if name is None else (name,))

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

    def __init__(self, dim: int, eps: float, *, rngs: nnx.Rngs, param_dtype=jnp.float32,
                 name: str | None = None):
        del rngs
        self.eps = eps
        names = None if name is None else (name,)
        self.scale = named_param(jnp.ones((dim,), param_dtype), names)
        self.bias = named_param(jnp.zeros((dim,), param_dtype), names)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = layer_norm(x, self.eps)
        return y * self.scale[...].astype(jnp.float32) + self.bias[...].astype(jnp.float32)


class MLP(nnx.Module):
    """fc2(act(fc1(x))): the reference's Linear-GELU/SiLU-Linear sequences.

    ``names``: logical names of the (input, hidden, output) widths; ``hidden_act``: logical
    names of the hidden activation's axes, constrained when sharding rules are active;
    ``dense``: the linear layer class (:class:`Dense`, or the fp8 one of
    :mod:`gvc_jax.models.wan.fp8`)."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int, act: str, *, rngs: nnx.Rngs,
                 dtype=jnp.bfloat16, param_dtype=jnp.bfloat16, names: Names = None,
                 hidden_act: Names = None, dense=None):
        self.act = act
        dense = Dense if dense is None else dense
        n1 = None if names is None else names[:2]
        n2 = None if names is None else names[1:]
        self.fc1 = dense(d_in, d_hidden, rngs=rngs, dtype=dtype, param_dtype=param_dtype,
                         names=n1)
        self.fc2 = dense(d_hidden, d_out, rngs=rngs, dtype=dtype, param_dtype=param_dtype,
                         names=n2)
        self.hidden_act = None if hidden_act is None else tuple(hidden_act)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = self.fc1(x)
        if self.hidden_act is not None:
            h = constrain(h, self.hidden_act)
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
        self.norm1 = LayerNorm(d_in, 1e-5, rngs=rngs, name="clip_embed")
        self.mlp = MLP(d_in, d_in, d_out, "gelu", rngs=rngs, dtype=dtype, param_dtype=param_dtype,
                       names=("clip_embed", "mlp", "embed"))
        self.norm2 = LayerNorm(d_out, 1e-5, rngs=rngs, name="embed")
        self.emb_pos = (named_param(jnp.zeros((n_pos, d_in), jnp.float32),
                                    ("clip_tokens", "clip_embed")) if n_pos else None)

    def __call__(self, clip_bld: jax.Array) -> jax.Array:
        x = clip_bld.astype(jnp.float32)
        if self.emb_pos is not None:
            x = x + self.emb_pos[...].astype(jnp.float32)
        x = self.mlp(self.norm1(x))
        return self.norm2(x)
