"""Wan 2.1 causal video VAE in Flax NNX: encoder, decoder and the codec-facing ``WanVAE``.

Reference: official ``wan/modules/vae2_1.py`` (``WanVAE_``, ``Wan2_1_VAE``) and
diffusers ``AutoencoderKLWan``. Layout is ``x_bthwc`` inside; the public
low-level API speaks ``[B, C, T, H, W]`` like the reference.

Streaming: encode runs the first frame on its own, then ``lax.scan`` over
4-frame chunks; decode runs the first latent frame on its own, then
``lax.scan`` over the remaining latent frames one at a time. The causal-conv
caches (see :mod:`vae_layers`) are the scan carry.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gvc_jax.models.wan import tiling, vae_bands
from gvc_jax.models.wan.vae_layers import (AttentionBlock, CausalConv3d, Ctx, Resample,
                                           ResidualBlock, RMSNorm)


def _ctx(cfg) -> Ctx:
    return Ctx.make(cfg.get("dtype", "float32"), cfg.get("precision", None))


class Encoder(nnx.Module):
    """Pixels [B,T,H,W,3] -> 2*z_dim channels at stride (4, 8, 8)."""

    def __init__(self, cfg, ctx: Ctx, rngs: nnx.Rngs):
        dims = [cfg.base_dim * u for u in [1] + list(cfg.dim_mult)]
        self.conv_in = CausalConv3d(3, dims[0], 3, ctx, rngs)
        blocks = []
        for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResidualBlock(cin, cout, ctx, rngs))
                cin = cout
            if i != len(cfg.dim_mult) - 1:
                mode = "down3d" if cfg.temperal_downsample[i] else "down2d"
                blocks.append(Resample(cout, mode, ctx, rngs))
        self.down = nnx.List(blocks)  # flat, same order as the reference's `downsamples`
        c = dims[-1]
        self.mid_res0 = ResidualBlock(c, c, ctx, rngs)
        self.mid_attn = AttentionBlock(c, ctx, rngs)
        self.mid_res1 = ResidualBlock(c, c, ctx, rngs)
        self.norm_out = RMSNorm(c, ctx)
        self.conv_out = CausalConv3d(c, 2 * cfg.z_dim, 3, ctx, rngs)

    def __call__(self, x, cache=None):
        c = cache if cache is not None else (None, [None] * len(self.down), None, None, None)
        x, c_in = self.conv_in(x, c[0])
        c_down = []
        for blk, cb in zip(self.down, c[1]):
            x, cb = blk(x, cb)
            c_down.append(cb)
        x, c_m0 = self.mid_res0(x, c[2])
        x, _ = self.mid_attn(x)
        x, c_m1 = self.mid_res1(x, c[3])
        x, c_out = self.conv_out(jax.nn.silu(self.norm_out(x)), c[4])
        return x, (c_in, c_down, c_m0, c_m1, c_out)


class UpLevel(nnx.Module):
    """num_res_blocks+1 residual blocks, then an optional Resample (diffusers ``WanUpBlock``)."""

    def __init__(self, cin, cout, n, mode, ctx, rngs):
        res = []
        for _ in range(n):
            res.append(ResidualBlock(cin, cout, ctx, rngs))
            cin = cout
        self.res = nnx.List(res)
        self.resample = Resample(cout, mode, ctx, rngs) if mode else None

    def __call__(self, x, cache=None):
        c = cache if cache is not None else ([None] * len(self.res), None)
        c_res = []
        for blk, cb in zip(self.res, c[0]):
            x, cb = blk(x, cb)
            c_res.append(cb)
        c_rs = None
        if self.resample is not None:
            x, c_rs = self.resample(x, c[1])
        return x, (c_res, c_rs)


class Decoder(nnx.Module):
    """z_dim latents [B,T',h,w,z] -> pixels, time x4 (after the first frame), space x8."""

    def __init__(self, cfg, ctx: Ctx, rngs: nnx.Rngs):
        mult = list(cfg.dim_mult)
        dims = [cfg.base_dim * u for u in [mult[-1]] + mult[::-1]]
        t_up = list(cfg.temperal_downsample)[::-1]
        self.conv_in = CausalConv3d(cfg.z_dim, dims[0], 3, ctx, rngs)
        self.mid_res0 = ResidualBlock(dims[0], dims[0], ctx, rngs)
        self.mid_attn = AttentionBlock(dims[0], ctx, rngs)
        self.mid_res1 = ResidualBlock(dims[0], dims[0], ctx, rngs)
        levels = []
        for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
            if i > 0:  # the previous level's upsampling conv halved the channels
                cin //= 2
            mode = None
            if i != len(mult) - 1:
                mode = "up3d" if t_up[i] else "up2d"
            levels.append(UpLevel(cin, cout, cfg.num_res_blocks + 1, mode, ctx, rngs))
        self.up = nnx.List(levels)
        self.norm_out = RMSNorm(dims[-1], ctx)
        self.conv_out = CausalConv3d(dims[-1], 3, 3, ctx, rngs)

    def __call__(self, x, cache=None):
        c = cache if cache is not None else (None, None, None, [None] * len(self.up), None)
        x, c_in = self.conv_in(x, c[0])
        x, c_m0 = self.mid_res0(x, c[1])
        x, _ = self.mid_attn(x)
        x, c_m1 = self.mid_res1(x, c[2])
        c_up = []
        for lvl, cl in zip(self.up, c[3]):
            x, cl = lvl(x, cl)
            c_up.append(cl)
        x, c_out = self.conv_out(jax.nn.silu(self.norm_out(x)), c[4])
        return x, (c_in, c_m0, c_m1, c_up, c_out)


class WanVAEModel(nnx.Module):
    """Parameters of the whole VAE (reference ``WanVAE_``): encoder, 1x1 convs, decoder."""

    def __init__(self, cfg, *, rngs: nnx.Rngs):
        ctx = _ctx(cfg)
        self.encoder = Encoder(cfg, ctx, rngs)
        self.quant = CausalConv3d(2 * cfg.z_dim, 2 * cfg.z_dim, 1, ctx, rngs)
        self.post_quant = CausalConv3d(cfg.z_dim, cfg.z_dim, 1, ctx, rngs)
        self.decoder = Decoder(cfg, ctx, rngs)
        self.z_dim = int(cfg.z_dim)
        self.mean = tuple(float(v) for v in cfg.latents_mean)
        self.std = tuple(float(v) for v in cfg.latents_std)


# ------------------------------------------------------------------ jitted streams
def _encode_impl(graphdef, state, x_bcthw):
    """[B,3,T,H,W] in [-1,1] -> normalised latent mean [B,z,T',H/8,W/8] (float32).

    Built for a TPU, large frames run their high-resolution layers in exact bands
    (:mod:`vae_bands`); elsewhere the whole frame at once."""
    model = nnx.merge(graphdef, state)
    x = jnp.transpose(x_bcthw, (0, 2, 3, 4, 1))
    b, t, h, w, _ = x.shape
    bands = vae_bands.auto_bands(h, w)
    if bands > 1:
        return _latent_mean(model, vae_bands.encode_banded(graphdef, state, x, bands,
                                                           vae_bands.arch(model)))
    y0, cache = model.encoder(x[:, :1], None)
    ys = [y0]
    k = (t - 1) // 4
    if k:
        chunks = x[:, 1:].reshape(b, k, 4, h, w, 3).swapaxes(0, 1)

        def body(cache, chunk):
            y, cache = nnx.merge(graphdef, state).encoder(chunk, cache)
            return cache, y

        _, yk = jax.lax.scan(body, cache, chunks)  # [k, B, 1, h', w', 2z]
        ys.append(yk.swapaxes(0, 1).reshape((b, k) + yk.shape[3:]))
    return _latent_mean(model, jnp.concatenate(ys, axis=1))


def _latent_mean(model, y):
    mu = model.quant(y)[0][..., :model.z_dim].astype(jnp.float32)
    mean = jnp.asarray(model.mean, jnp.float32)
    inv_std = 1.0 / jnp.asarray(model.std, jnp.float32)
    return jnp.transpose((mu - mean) * inv_std, (0, 4, 1, 2, 3))


def _decode_impl(graphdef, state, z_bcthw):
    """Normalised latent [B,z,T',h,w] -> frames [B,3,1+4(T'-1),8h,8w] clamped to [-1,1]."""
    model = nnx.merge(graphdef, state)
    z = jnp.transpose(z_bcthw.astype(jnp.float32), (0, 2, 3, 4, 1))
    mean = jnp.asarray(model.mean, jnp.float32)
    std = jnp.asarray(model.std, jnp.float32)
    x = model.post_quant(z * std + mean)[0]
    b, t = x.shape[:2]
    bands = vae_bands.auto_bands(8 * x.shape[2], 8 * x.shape[3])
    if bands > 1:
        out = jnp.clip(vae_bands.decode_banded(graphdef, state, x, bands,
                                                 vae_bands.arch(model)), -1.0, 1.0)
        return jnp.transpose(out, (0, 4, 1, 2, 3))
    y0, cache = model.decoder(x[:, :1], None)
    ys = [y0.astype(jnp.float32)]
    if t > 1:
        def body(cache, frame):
            y, cache = nnx.merge(graphdef, state).decoder(frame, cache)
            return cache, y.astype(jnp.float32)

        _, yk = jax.lax.scan(body, cache, x[:, 1:, None].swapaxes(0, 1))  # [t-1, B, 4, H, W, 3]
        ys.append(yk.swapaxes(0, 1).reshape((b, -1) + yk.shape[3:]))
    out = jnp.clip(jnp.concatenate(ys, axis=1), -1.0, 1.0)
    return jnp.transpose(out, (0, 4, 1, 2, 3))


encode_bcthw_jit = jax.jit(_encode_impl, static_argnums=0)
decode_bcthw_jit = jax.jit(_decode_impl, static_argnums=0)


# ------------------------------------------------------------------ codec-facing wrapper
class WanVAE:
    """Autoencoder for the codec: ``encode(frames_uint8) -> latent``, ``decode(latent) -> frames``.

    Tiling (memory-bounded, see :mod:`tiling`): pass ``tile=(th, tw)`` in latent
    pixels, with ``margin`` (context cropped from each inner tile edge) and
    ``blend`` (linear cross-fade width), both in latent pixels.
    """

    def __init__(self, cfg, model: WanVAEModel):
        """``model``: a loaded :class:`WanVAEModel` (:func:`gvc_jax.weights.vae.load`, or
        :func:`gvc_jax.weights.vae.random_model` for tests)."""
        self.cfg = cfg
        self.graphdef, self.state = nnx.split(model)
        self.z_dim = self.latent_channels = int(cfg.z_dim)

    # geometry, as the codec's model registry reads it
    frames_per_latent = 4
    causal = True
    spatial_multiple = 8

    def latent_shape(self, t: int, h: int, w: int) -> tuple[int, int, int, int]:
        """``(z, 1+(T-1)/4, H/8, W/8)``; ValueError if the geometry does not fit."""
        _check_video_shape(t, h, w)
        return (self.z_dim, 1 + (t - 1) // 4, h // 8, w // 8)

    # --- low level, [-1, 1] floats in [B, C, T, H, W]
    def encode_bcthw(self, x_bcthw, *, tile=None, margin=4, blend=4):
        _check_video_shape(x_bcthw.shape[2], x_bcthw.shape[3], x_bcthw.shape[4])
        fn = functools.partial(encode_bcthw_jit, self.graphdef, self.state)
        if tile is None:
            return fn(jnp.asarray(x_bcthw))
        return jnp.asarray(tiling.tiled_apply(fn, x_bcthw, tile=tile, margin=margin, blend=blend,
                                              in_scale=8, out_scale=1))

    def decode_bcthw(self, z_bcthw, *, tile=None, margin=4, blend=4):
        if z_bcthw.ndim != 5 or z_bcthw.shape[1] != self.z_dim:
            raise ValueError(f"latent must be [B, {self.z_dim}, T', h, w], got {tuple(z_bcthw.shape)}")
        fn = functools.partial(decode_bcthw_jit, self.graphdef, self.state)
        if tile is None:
            return fn(jnp.asarray(z_bcthw))
        return jnp.asarray(tiling.tiled_apply(fn, z_bcthw, tile=tile, margin=margin, blend=blend,
                                              in_scale=1, out_scale=8))

    # --- codec API
    def encode(self, frames_uint8, **tiling_kw):
        """uint8 [T,H,W,3] (T = 1+4k, H and W multiples of 8) -> latent [z, T', H/8, W/8] float32."""
        f = np.asarray(frames_uint8)
        if f.ndim != 4 or f.shape[-1] != 3:
            raise ValueError(f"frames must be [T, H, W, 3], got {f.shape}")
        if f.dtype != np.uint8:
            raise ValueError(f"frames must be uint8, got {f.dtype}")
        _check_video_shape(*f.shape[:3])
        x = jnp.asarray(f, jnp.float32) / 127.5 - 1.0
        x = jnp.transpose(x, (3, 0, 1, 2))[None]
        return self.encode_bcthw(x, **tiling_kw)[0]

    def decode(self, latent, **tiling_kw):
        """latent [z, T', h, w] -> frames float32 [1+4(T'-1), 8h, 8w, 3] in [-1, 1]."""
        z = jnp.asarray(latent)
        if z.ndim != 4:
            raise ValueError(f"latent must be [{self.z_dim}, T', h, w], got {tuple(z.shape)}")
        return jnp.transpose(self.decode_bcthw(z[None], **tiling_kw)[0], (1, 2, 3, 0))

    def decode_uint8(self, latent, **tiling_kw) -> np.ndarray:
        return to_uint8(self.decode(latent, **tiling_kw))

    def encode_uint8(self, frames_uint8, **tiling_kw):
        return self.encode(frames_uint8, **tiling_kw)


def receptive_radius(cfg, which: str) -> int:
    """Spatial receptive-field radius in latent pixels, ignoring the middle attention.

    Every 3x3 conv adds one pixel at its own resolution; the encoder's stride-2
    convs (padded right/bottom) reach two pixels of their input. A tiling
    ``margin`` of at least this many latent pixels makes tiles exact whenever
    the attention block is local (see :mod:`tiling`).
    """
    n, levels = cfg.num_res_blocks, len(cfg.dim_mult)
    if which == "decode":
        r = 1 + 4  # conv_in, middle residual blocks
        for i in range(levels):
            r += 2 * (n + 1) / 2 ** i
            if i != levels - 1:
                r += 1 / 2 ** (i + 1)
        r += 1 / 2 ** (levels - 1)  # conv_out
    elif which == "encode":
        f = 2 ** (levels - 1)
        r = 1 / f  # conv_in
        for i in range(levels):
            r += 2 * n * 2 ** i / f
            if i != levels - 1:
                r += 2 * 2 ** i / f
        r += 4 + 1  # middle residual blocks, conv_out
    else:
        raise ValueError(which)
    return int(np.ceil(r))


def to_uint8(x) -> np.ndarray:
    """[-1, 1] floats -> uint8 with rounding."""
    return np.asarray(jnp.clip(jnp.round((jnp.asarray(x) + 1.0) * 127.5), 0, 255)).astype(np.uint8)


def _check_video_shape(t: int, h: int, w: int) -> None:
    if t < 1 or (t - 1) % 4:
        raise ValueError(f"the Wan VAE needs 1 + 4k frames, got {t} (the codec pads)")
    if h % 8 or w % 8 or h <= 0 or w <= 0:
        raise ValueError(f"the Wan VAE needs H and W multiples of 8, got {h}x{w} (the codec pads)")
