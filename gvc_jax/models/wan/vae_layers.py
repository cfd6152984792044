"""Building blocks of the Wan 2.1 causal video VAE (Flax NNX, ``x_bthwc`` layout).

Semantics follow the official ``wan/modules/vae2_1.py`` (and diffusers'
``AutoencoderKLWan``), rewritten functionally: every module takes an explicit
``cache`` pytree and returns ``(y, new_cache)``. ``cache=None`` marks the first
chunk of a stream.

Cache rules (equivalent to the reference's per-conv ``feat_cache`` list):
* a causal conv with a 3-tap time kernel keeps the last 2 frames of its input
  stream; before the first chunk those are zeros;
* ``downsample3d`` lets the first chunk (1 frame) through without its time conv
  and then keeps the last frame of its (spatially downsampled) input;
* ``upsample3d`` lets the first chunk through without its time conv (the
  reference's ``'Rep'`` marker); its time conv then sees a stream that starts at
  the second chunk, with 2 zero frames in front.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

_DN3 = ("NDHWC", "DHWIO", "NDHWC")
_DN2 = ("NHWC", "HWIO", "NHWC")


def _init(rngs: nnx.Rngs, shape, fan_in: int, dtype):
    return jax.random.normal(rngs.params(), shape, dtype) * (fan_in ** -0.5)


def _precision(name):
    return None if name in (None, "default") else jax.lax.Precision(name.upper()) \
        if isinstance(name, str) else name


@dataclasses.dataclass(frozen=True)
class Ctx:
    """Static numerics options shared by all layers: compute dtype and conv precision."""

    dtype: object = jnp.float32
    precision: object = None

    @staticmethod
    def make(dtype="float32", precision=None) -> "Ctx":
        return Ctx(jnp.dtype(dtype), _precision(precision))


def conv3d(x_bthwc, kernel, bias, ctx: Ctx, *, stride=(1, 1, 1), pad_hw=((1, 1), (1, 1))):
    """Valid-in-time 3-D conv; the caller has already prepended causal context."""
    y = jax.lax.conv_general_dilated(
        x_bthwc.astype(ctx.dtype), kernel.astype(ctx.dtype), window_strides=stride,
        padding=((0, 0),) + tuple(pad_hw), dimension_numbers=_DN3, precision=ctx.precision)
    return y + bias.astype(y.dtype)


def conv2d_frames(x_bthwc, kernel, bias, ctx: Ctx, *, stride=(1, 1), pad_hw=((1, 1), (1, 1))):
    """A 2-D conv applied to every frame independently."""
    b, t = x_bthwc.shape[:2]
    x = x_bthwc.reshape((b * t,) + x_bthwc.shape[2:]).astype(ctx.dtype)
    y = jax.lax.conv_general_dilated(x, kernel.astype(ctx.dtype), window_strides=stride,
                                     padding=pad_hw, dimension_numbers=_DN2,
                                     precision=ctx.precision)
    y = y + bias.astype(y.dtype)
    return y.reshape((b, t) + y.shape[1:])


class RMSNorm(nnx.Module):
    """Channel L2 normalisation times sqrt(C) and a learnt gain (reference ``RMS_norm``)."""

    def __init__(self, dim: int, ctx: Ctx):
        self.gamma = nnx.Param(jnp.ones((dim,), jnp.float32))
        self.ctx = ctx

    def __call__(self, x):
        xf = x.astype(jnp.float32)
        norm = jnp.sqrt(jnp.sum(xf * xf, axis=-1, keepdims=True))
        y = xf / jnp.maximum(norm, 1e-12) * (x.shape[-1] ** 0.5) * self.gamma[...]
        return y.astype(self.ctx.dtype)


class CausalConv3d(nnx.Module):
    """Conv3d with kernel (kt, k, k); kt=3 uses a 2-frame cache for causal context."""

    def __init__(self, cin: int, cout: int, k: int, ctx: Ctx, rngs: nnx.Rngs, kt: int | None = None):
        kt = k if kt is None else kt
        self.kt, self.k, self.ctx = kt, k, ctx
        self.kernel = nnx.Param(_init(rngs, (kt, k, k, cin, cout), kt * k * k * cin, jnp.float32))
        self.bias = nnx.Param(jnp.zeros((cout,), jnp.float32))

    def __call__(self, x_bthwc, cache=None):
        p = self.k // 2
        if self.kt == 1:
            return conv3d(x_bthwc, self.kernel[...], self.bias[...], self.ctx,
                          pad_hw=((p, p), (p, p))), None
        if cache is None:
            cache = jnp.zeros(x_bthwc.shape[:1] + (self.kt - 1,) + x_bthwc.shape[2:], x_bthwc.dtype)
        xf = jnp.concatenate([cache.astype(x_bthwc.dtype), x_bthwc], axis=1)
        y = conv3d(xf, self.kernel[...], self.bias[...], self.ctx, pad_hw=((p, p), (p, p)))
        return y, xf[:, -(self.kt - 1):]


class ResidualBlock(nnx.Module):
    """norm-SiLU-conv, norm-SiLU-conv, plus a 1x1x1 shortcut when dims differ."""

    def __init__(self, cin: int, cout: int, ctx: Ctx, rngs: nnx.Rngs):
        self.norm1 = RMSNorm(cin, ctx)
        self.conv1 = CausalConv3d(cin, cout, 3, ctx, rngs)
        self.norm2 = RMSNorm(cout, ctx)
        self.conv2 = CausalConv3d(cout, cout, 3, ctx, rngs)
        self.shortcut = CausalConv3d(cin, cout, 1, ctx, rngs) if cin != cout else None

    def __call__(self, x, cache=None):
        c1, c2 = (None, None) if cache is None else cache
        h = x if self.shortcut is None else self.shortcut(x)[0]
        y, c1 = self.conv1(jax.nn.silu(self.norm1(x)), c1)
        y, c2 = self.conv2(jax.nn.silu(self.norm2(y)), c2)
        return y + h, (c1, c2)


class AttentionBlock(nnx.Module):
    """Single-head self-attention over the pixels of each frame (no cache)."""

    def __init__(self, dim: int, ctx: Ctx, rngs: nnx.Rngs):
        self.norm = RMSNorm(dim, ctx)
        self.qkv_kernel = nnx.Param(_init(rngs, (dim, 3 * dim), dim, jnp.float32))
        self.qkv_bias = nnx.Param(jnp.zeros((3 * dim,), jnp.float32))
        self.proj_kernel = nnx.Param(_init(rngs, (dim, dim), dim, jnp.float32))
        self.proj_bias = nnx.Param(jnp.zeros((dim,), jnp.float32))
        self.ctx = ctx

    def __call__(self, x_bthwc, cache=None):
        b, t, h, w, c = x_bthwc.shape
        dt, prec = self.ctx.dtype, self.ctx.precision
        xn = self.norm(x_bthwc).reshape(b * t, h * w, c)
        qkv = jnp.einsum("nlc,cd->nld", xn, self.qkv_kernel[...].astype(dt), precision=prec)
        qkv = qkv + self.qkv_bias[...].astype(dt)
        q, k, v = jnp.split(qkv, 3, axis=-1)
        s = jnp.einsum("nqc,nkc->nqk", q, k, precision=prec,
                       preferred_element_type=jnp.float32) * (c ** -0.5)
        a = jax.nn.softmax(s, axis=-1).astype(dt)
        o = jnp.einsum("nqk,nkc->nqc", a, v, precision=prec)
        o = jnp.einsum("nlc,cd->nld", o, self.proj_kernel[...].astype(dt), precision=prec)
        o = o + self.proj_bias[...].astype(dt)
        return o.reshape(b, t, h, w, c) + x_bthwc, None


class Resample(nnx.Module):
    """Spatial (and optionally temporal) 2x down/up sampling (reference ``Resample``).

    modes: 'down2d', 'down3d' (stride-2 time conv), 'up2d', 'up3d' (time conv to
    2C channels then frame interleave). Spatial up: nearest 2x then 3x3 conv to C/2.
    """

    def __init__(self, dim: int, mode: str, ctx: Ctx, rngs: nnx.Rngs):
        assert mode in ("down2d", "down3d", "up2d", "up3d"), mode
        self.mode, self.ctx = mode, ctx
        cout = dim if mode.startswith("down") else dim // 2
        self.kernel = nnx.Param(_init(rngs, (3, 3, dim, cout), 9 * dim, jnp.float32))
        self.bias = nnx.Param(jnp.zeros((cout,), jnp.float32))
        if mode == "down3d":
            self.time_conv = CausalConv3d(dim, dim, 1, ctx, rngs, kt=3)
        elif mode == "up3d":
            self.time_conv = CausalConv3d(dim, 2 * dim, 1, ctx, rngs, kt=3)
        else:
            self.time_conv = None

    def __call__(self, x, cache=None):
        if self.mode == "up3d":
            if cache is None:  # first chunk: no time conv, the stream starts next chunk
                cache = jnp.zeros(x.shape[:1] + (2,) + x.shape[2:], x.dtype)
            else:
                y, cache = self.time_conv(x, cache)
                b, t, h, w, c2 = y.shape
                y = y.reshape(b, t, h, w, 2, c2 // 2).transpose(0, 1, 4, 2, 3, 5)
                x = y.reshape(b, 2 * t, h, w, c2 // 2)
        if self.mode.startswith("up"):
            x = jnp.repeat(jnp.repeat(x, 2, axis=2), 2, axis=3)
            x = conv2d_frames(x, self.kernel[...], self.bias[...], self.ctx)
        else:
            x = conv2d_frames(x, self.kernel[...], self.bias[...], self.ctx, stride=(2, 2),
                              pad_hw=((0, 1), (0, 1)))
        if self.mode == "down3d":
            if cache is None:  # first chunk passes through; remember its last frame
                cache = x[:, -1:]
            else:
                xf = jnp.concatenate([cache.astype(x.dtype), x], axis=1)
                cache = x[:, -1:]
                tc = self.time_conv
                x = conv3d(xf, tc.kernel[...], tc.bias[...], self.ctx, stride=(2, 1, 1),
                           pad_hw=((0, 0), (0, 0)))
        return x, cache
