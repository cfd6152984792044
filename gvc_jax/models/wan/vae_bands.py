"""Exact horizontal bands for the Wan VAE's high-resolution layers: memory for TPUs.

The VAE's memory is its high-resolution layers: their activations and, above all, the causal
caches every 3-tap time conv keeps (2 frames each). At 720p the decoder holds ~8 GB of caches
and needs ~19 GB in all, more than a TPU v5e chip has. The middle attention (global over a
frame) sits at the latent resolution, and everything at higher resolution is local, so those
layers can run band by band with halos and give the untiled result:

* decode: the *head* (``conv_in``, the middle blocks with the attention, the first up level)
  runs on whole frames over time; its outputs (2x the latent resolution, small) are kept for
  all latent frames; then the *tail* (the remaining up levels, ``conv_out``) runs over time
  once per band of rows, each band with its own caches, widened by :func:`halo` rows on inner
  edges that are computed and dropped;
* encode: the head (``conv_in`` and the first two levels, down to 1/4 resolution) runs band by
  band over time, the tail (the rest, with the attention) on whole frames.

A halo at least the receptive radius of the banded layers makes every kept pixel the same
function of the same inputs as without bands (zero padding only at the image's own edges;
band edges are multiples of the strides), so bands change nothing but float rounding
(tests/wan/test_vae_tiling.py). :func:`auto_bands` asks for bands only for programs built
for a TPU (:mod:`gvc_jax.target`): on CPUs and GPUs the VAE runs as before.
"""
from __future__ import annotations

import math
import types

import jax
import jax.numpy as jnp
from flax import nnx

from gvc_jax import target

# Output pixels of one band in a program built for a TPU: a 480p frame (399,360 pixels) runs
# whole, 720p in 2 bands, 1080p in 4 (docs/fit.md).
TPU_BAND_PIXELS = 1 << 19
F32 = jnp.float32


def arch(model) -> types.SimpleNamespace:
    """The VAE config fields the bands need (``num_res_blocks``, ``dim_mult``), read off a
    ``WanVAEModel``'s modules."""
    levels = len(model.decoder.up)
    return types.SimpleNamespace(num_res_blocks=len(model.decoder.up[0].res) - 1,
                                 dim_mult=tuple(range(levels)))


def auto_bands(height: int, width: int) -> int:
    """Bands for frames of ``height`` x ``width`` pixels: 1 unless building for a TPU."""
    if target.current().platform != "tpu":
        return 1
    return max(1, math.ceil(height * width / TPU_BAND_PIXELS))


def halo(cfg, which: str) -> int:
    """Rows of context a band needs on each inner edge, in rows of the banded grid (decode:
    the head's output at 2x the latent resolution; encode: input pixels), rounded up to the
    grid's alignment (encode: 4, its two stride-2 levels)."""
    n = 2 * cfg.num_res_blocks                    # 3x3 convs per encoder level
    if which == "encode":
        # conv_in, level 0 (n convs, stride-2 conv reaching 2 rows), level 1 at 1/2 (n convs,
        # stride-2 conv reaching 2 of its rows), plus one stride of slack
        r = 1 + n + 2 + 2 * n + 4 + 4
        return -(-r // 4) * 4
    levels = len(cfg.dim_mult)
    m = 2 * (cfg.num_res_blocks + 1)              # 3x3 convs per decoder level
    r = 0.0
    for i in range(1, levels):                    # tail levels, level i at 2^(i-1) x the grid
        r += m / 2 ** (i - 1)
        if i != levels - 1:
            r += 1 / 2 ** i                       # the resample's conv after the 2x upsampling
    r += 1 / 2 ** (levels - 2)                    # conv_out
    return math.ceil(r) + levels - 2              # a row for each nearest upsampling's floor


def plan(rows: int, bands: int, margin: int, align: int = 1) -> list[tuple[int, int, int, int]]:
    """``(lo, hi, keep_lo, keep_hi)`` per band over ``rows``: kept rows split evenly at
    multiples of ``align``, computed rows widened by ``margin`` inside the image."""
    bands = max(1, min(bands, rows // align))
    cuts = [round(rows / align * i / bands) * align for i in range(bands)] + [rows]
    out = []
    for k0, k1 in zip(cuts[:-1], cuts[1:]):
        out.append((max(0, k0 - margin), min(rows, k1 + margin), k0, k1))
    return out


# ------------------------------------------------------------------ decoder
def _dec_head(dec, x, c):
    c = c if c is not None else (None, None, None, None)
    x, c_in = dec.conv_in(x, c[0])
    x, c_m0 = dec.mid_res0(x, c[1])
    x, _ = dec.mid_attn(x)
    x, c_m1 = dec.mid_res1(x, c[2])
    x, c_u0 = dec.up[0](x, c[3])
    return x, (c_in, c_m0, c_m1, c_u0)


def _dec_tail(dec, x, c):
    c = c if c is not None else ([None] * (len(dec.up) - 1), None)
    c_up = []
    for lvl, cl in zip(list(dec.up)[1:], c[0]):
        x, cl = lvl(x, cl)
        c_up.append(cl)
    x, c_out = dec.conv_out(jax.nn.silu(dec.norm_out(x)), c[1])
    return x, (c_up, c_out)


def _over_time(first, rest, step, graphdef, state, part):
    """``step`` on the first frame(s) alone, then ``lax.scan`` over ``rest`` [T, B, ...]
    (None: no more), concatenated on the time axis (1)."""
    y0, cache = step(part(nnx.merge(graphdef, state)), first, None)
    if rest is None:
        return y0, [y0]
    b = y0.shape[0]

    def body(c, xk):
        y, c = step(part(nnx.merge(graphdef, state)), xk, c)
        return c, y

    _, yk = jax.lax.scan(body, cache, rest)               # [T, B, t, ...]
    return y0, [y0, yk.swapaxes(0, 1).reshape((b, -1) + yk.shape[3:])]


def decode_banded(graphdef, state, x_bthwc, bands: int, cfg):
    """The decoder on post-quant latents ``x`` [B, T', h, w, z] in ``bands`` bands: frames
    [B, 1+4(T'-1), 8h, 8w, 3] (float32, not clamped), as ``Decoder`` over time gives them."""
    dec_of = lambda m: m.decoder  # noqa: E731
    t = x_bthwc.shape[1]
    rest = x_bthwc[:, 1:, None].swapaxes(0, 1) if t > 1 else None
    _, heads = _over_time(x_bthwc[:, :1], rest, _dec_head, graphdef, state, dec_of)
    first, later = heads[0], (heads[1] if t > 1 else None)   # [B, 1, H2, W2, C], [B, 2(T'-1), ..]
    scale = 4                                               # 2x latent grid -> pixels
    outs = []
    for lo, hi, k0, k1 in plan(first.shape[2], bands, halo(cfg, "decode")):
        rest_b = None
        if later is not None:
            band = later[:, :, lo:hi]
            rest_b = band.reshape(band.shape[0], t - 1, 2, *band.shape[2:]).swapaxes(0, 1)
        _, parts = _over_time(first[:, :, lo:hi], rest_b, _dec_tail, graphdef, state, dec_of)
        band = jnp.concatenate([p.astype(F32) for p in parts], axis=1)
        outs.append(band[:, :, (k0 - lo) * scale:(k1 - lo) * scale])
    return jnp.concatenate(outs, axis=2)


# ------------------------------------------------------------------ encoder
def _n_head_blocks(cfg) -> int:
    return 2 * (cfg.num_res_blocks + 1)           # levels 0 and 1 with their resamples


def _enc_head(enc, x, c, k):
    c = c if c is not None else (None, [None] * k)
    x, c_in = enc.conv_in(x, c[0])
    c_down = []
    for blk, cb in zip(list(enc.down)[:k], c[1]):
        x, cb = blk(x, cb)
        c_down.append(cb)
    return x, (c_in, c_down)


def _enc_tail(enc, x, c, k):
    rest = list(enc.down)[k:]
    c = c if c is not None else ([None] * len(rest), None, None, None)
    c_down = []
    for blk, cb in zip(rest, c[0]):
        x, cb = blk(x, cb)
        c_down.append(cb)
    x, c_m0 = enc.mid_res0(x, c[1])
    x, _ = enc.mid_attn(x)
    x, c_m1 = enc.mid_res1(x, c[2])
    x, c_out = enc.conv_out(jax.nn.silu(enc.norm_out(x)), c[3])
    return x, (c_down, c_m0, c_m1, c_out)


def encode_banded(graphdef, state, x_bthwc, bands: int, cfg):
    """The encoder on frames ``x`` [B, 1+4k, H, W, 3] with its first two levels in ``bands``
    bands: [B, 1+k, H/8, W/8, 2z], as ``Encoder`` over chunks of 4 frames gives it."""
    k = _n_head_blocks(cfg)
    enc_of = lambda m: m.encoder  # noqa: E731
    head = lambda e, x, c: _enc_head(e, x, c, k)  # noqa: E731
    tail = lambda e, x, c: _enc_tail(e, x, c, k)  # noqa: E731
    b, t, h, w, _ = x_bthwc.shape
    n = (t - 1) // 4
    firsts, laters = [], []
    for lo, hi, k0, k1 in plan(h, bands, halo(cfg, "encode"), align=4):
        xb = x_bthwc[:, :, lo:hi]
        rest = xb[:, 1:].reshape(b, n, 4, *xb.shape[2:]).swapaxes(0, 1) if n else None
        _, parts = _over_time(xb[:, :1], rest, head, graphdef, state, enc_of)
        crop = lambda y: y[:, :, (k0 - lo) // 4:(k1 - lo) // 4]  # noqa: E731
        firsts.append(crop(parts[0]))
        if n:
            laters.append(crop(parts[1]))
    first = jnp.concatenate(firsts, axis=2)                 # [B, 1, H/4, W/4, C]
    rest = None
    if n:
        later = jnp.concatenate(laters, axis=2)             # [B, 2n, H/4, W/4, C]
        rest = later.reshape(b, n, 2, *later.shape[2:]).swapaxes(0, 1)
    _, parts = _over_time(first, rest, tail, graphdef, state, enc_of)
    return jnp.concatenate(parts, axis=1)
