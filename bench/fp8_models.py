"""Models and measurements for ``bench/fp8_gpu.py``: random Wan weights of the real shapes made
on the device, the codec model around them, a synthetic clip, stream comparisons.

Random weights: every DiT parameter is drawn per path (its key folds in the CRC-32 of the path),
rounded to bfloat16 once (as a bf16 checkpoint holds them), then kept in float32, bfloat16, or
quantised to fp8 (:func:`gvc_jax.models.wan.fp8.quantize_kernel`, on the device, one stacked
layer at a time, so the 14B fp8 model never holds a bf16 copy). The three variants of one seed
therefore hold the same weights. Kernels ~ N(0, 1/fan_in), modulation tables ~ N(0, 1/dim),
norm gains 1 + N(0, 0.1^2), biases and the rest N(0, 0.02^2).
"""
from __future__ import annotations

import hashlib
import math
import zlib
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from gvc_jax.models.wan.fp8 import quantize_kernel
from gvc_jax.weights.dit import dit_factory, fp8_kernels
from gvc_jax.weights.progress import base_dtype, jnp_dtype
from gvc_jax.weights.table import abstract_targets, load_into


def _kind(path: str) -> str:
    if path.endswith("kernel"):
        return "kernel"
    if path.endswith("modulation"):
        return "modulation"
    if path.endswith("scale"):
        return "gain"
    return "small"


def _values(key, shape, kind):
    """float32 values of one parameter (or one layer of a stacked one), bf16-rounded."""
    r = jax.random.normal(key, shape, jnp.float32)
    if kind == "kernel":
        r = r / math.sqrt(shape[-2])
    elif kind == "modulation":
        r = r / math.sqrt(shape[-1])
    elif kind == "gain":
        r = 1.0 + 0.1 * r
    else:
        r = 0.02 * r
    return r.astype(jnp.bfloat16).astype(jnp.float32)


def _quantised(key, shape):
    """A stacked kernel [L, in, out] drawn and quantised layer by layer: (e4m3, scales)."""
    keys = jax.random.split(key, shape[0])
    return jax.lax.map(lambda k: quantize_kernel(_values(k, shape[1:], "kernel"), jnp), keys)


def _stacked(key, shape, dtype):
    keys = jax.random.split(key, shape[0])
    return jax.lax.map(lambda k: _values(k, shape[1:], "kernel").astype(dtype), keys)


@partial(jax.jit, static_argnums=(1, 2))
def _draw_all(key, plan, fp8):
    """Every parameter of ``plan`` (``((path, shape, dtype name, stacked kernel?), ...)``) in
    one compiled function; the fp8 kernels come with their scales."""
    out = {}
    for path, shape, dtype, stacked in plan:
        k = jax.random.fold_in(key, zlib.crc32(path.encode()))
        if stacked and fp8:
            out[path], out[path[:-len("kernel")] + "scale"] = _quantised(k, shape)
        elif stacked:
            out[path] = _stacked(k, shape, jnp.dtype(dtype))
        else:
            out[path] = _values(k, shape, _kind(path)).astype(jnp.dtype(dtype))
    return out


def random_dit(cfg, dtype: str, seed: int = 0):
    """A ``WanDiT(cfg)`` with the random weights of ``seed`` (module docstring), made on the
    default device; ``dtype`` "float32", "bfloat16" or "fp8" (bf16 for what fp8 leaves)."""
    fp8 = dtype == "fp8"
    jd = jnp_dtype(base_dtype(dtype))
    quantised = set(fp8_kernels(cfg))   # the blocks' stacked kernels, drawn per layer
    plan = tuple((path, tuple(shape), str(jnp.dtype(want)), path in quantised)
                 for path, (shape, want) in sorted(abstract_targets(dit_factory(cfg, jd, jd))
                                                   .items()))
    arrays = _draw_all(jax.random.key(seed), plan, fp8)
    return load_into(dit_factory(cfg, jd, jd, fp8=fp8), arrays)


def random_vae(tiny: bool, seed: int = 0):
    from configs.wan_vae import get_config
    from gvc_jax.models.wan.vae import WanVAE
    from gvc_jax.weights.vae import random_model

    cfg = get_config("tiny" if tiny else "wan2.1")
    return WanVAE(cfg, random_model(cfg, seed))


def codec_model(name: str, dit_cfg, dit, vae, dtype: str, offload: str = "never", seed: int = 0):
    """A :class:`~gvc_jax.codec.codec_model.CodecModel` over random modules: a random
    120-token prompt context (zeros after it, as umT5 pads), no text encoder."""
    from gvc_jax.codec.codec_model import CodecModel, unit_variance_error_fn
    from gvc_jax.codec.placement import Placement
    from gvc_jax.models.wan.velocity import WanVelocity, geometry

    rng = np.random.default_rng(seed + 7)
    ctx = np.zeros((dit_cfg.text_len, dit_cfg.text_dim), np.float32)
    ctx[:120] = 0.2 * rng.standard_normal((120, dit_cfg.text_dim))
    fp = hashlib.sha256(f"random-wan|{dit_cfg.name}|{seed}".encode()).hexdigest()
    return CodecModel(name=name, fingerprint=fp, module=WanVelocity(dit), encode=vae.encode,
                      decode=vae.decode_uint8, geometry=geometry(dit_cfg, vae.z_dim),
                      cond={"context": jnp.asarray(ctx, jnp_dtype(base_dtype(dtype)))},
                      text_conditioned=True, dtype=dtype, text_len=int(dit_cfg.text_len),
                      autoencoder=vae, error_fn=unit_variance_error_fn,
                      placement=Placement(offload=offload))


def synthetic_clip(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """uint8 [t, h, w, 3]: drifting colour gradients and a moving disc (deterministic)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((t, h, w, 3), np.uint8)
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, 3)
    for i in range(t):
        f = []
        for c in range(3):
            f.append(127 + 100 * np.sin(xx / (37 + 11 * c) + yy / (53 - 7 * c) + 0.15 * i
                                        + phase[c]))
        img = np.stack(f, -1)
        cx, cy = w * (0.3 + 0.4 * i / max(t, 1)), h * 0.5
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 < (0.15 * h) ** 2
        img[disc] = (240, 200, 40)
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def psnr(a, b) -> float:
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def rel_l2(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def chosen_indices(data: bytes, model) -> list[set]:
    """Per (GOP, SDE step, latent frame): the set of (codeword, sign) a top-M stream chose."""
    from gvc_jax.bitstream import indices
    from gvc_jax.codec import stream
    from gvc_jax.codec.codings.topm import m_per_frame

    header, params, _, by_tag = stream.read_stream(data)
    session, payloads = stream.open_stream(header, params, model, by_tag)
    coded = header["coded"]
    out = []
    for g in session.gops:
        n_lat = model.geometry.latent_shape(g.coded, coded["height"], coded["width"])[1]
        m = m_per_frame(params, n_lat)
        idx, sign = indices.unpack_indices(payloads[g.index], params.sde_steps, m, params.K)
        for s in range(idx.shape[0]):
            for f, mf in enumerate(m):
                out.append({(int(i), bool(b)) for i, b in zip(idx[s, f, :mf], sign[s, f, :mf])})
    return out


def index_agreement(a: list[set], b: list[set]) -> float:
    """Mean share of the chosen (codeword, sign) pairs two streams of one source have in
    common, over every GOP, SDE step and latent frame."""
    if len(a) != len(b) or not a:
        raise ValueError("streams of different shapes")
    return float(np.mean([len(x & y) / max(len(x), 1) for x, y in zip(a, b)]))
