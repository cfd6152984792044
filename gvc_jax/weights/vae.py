"""Wan 2.1 VAE converter: official ``Wan2.1_VAE.pth`` and diffusers ``vae/`` -> ``WanVAEModel``.

Layouts:
* ``official``: the plain state_dict of the reference ``WanVAE_``
  (``encoder.downsamples.{k}.residual.{0,2,3,6}``, ``decoder.upsamples.{k}``, ...),
  read with the code-free unpickler :func:`iter_torch_zip`;
* ``diffusers``: ``AutoencoderKLWan`` safetensors (``down_blocks``, ``up_blocks.{i}.resnets.{j}``);
* ``converted``: a ``.safetensors`` file written by ``gvc-convert vae`` (our flat paths).

The tables are explicit and ordered; the decoder rules of the official layout
are listed per flat index, generated from the config (the reference numbers
decoder blocks in one flat list, our model nests them per level).

:func:`read` lists a checkpoint's tensors, :func:`conversion` is the one conversion (used by
:func:`load` through the cache and by ``gvc-convert vae``). :func:`random_model` draws a
randomly initialised model for tests and benchmarks.
"""
from __future__ import annotations

import os

import numpy as np

from gvc_jax.weights.sources import (Checkpoint, CheckpointError, iter_safetensors,
                                     iter_safetensors_folder, iter_torch_zip)
from gvc_jax.weights.table import (Conversion, ConversionError, Rule, abstract_targets,
                                   load_into, np_dtype)

LAYOUTS = ("official", "diffusers", "converted")


def _flat(a: np.ndarray) -> np.ndarray:  # RMS gamma [C,1,1(,1)] -> [C]
    return a.reshape(-1)


def _pointwise2d(a: np.ndarray) -> np.ndarray:  # torch Conv2d 1x1 [O,I,1,1] -> [I,O]
    if a.ndim != 4 or a.shape[2:] != (1, 1):
        raise ConversionError(f"expected a 1x1 conv weight, got shape {a.shape}")
    return a[:, :, 0, 0].T


def _conv(src: str, dst: str, kind: str = "conv3d") -> list[Rule]:
    return [Rule(src + r"\.weight", dst + "/kernel", kind), Rule(src + r"\.bias", dst + "/bias")]


def _res(src: str, dst: str, names: tuple[str, str, str, str, str]) -> list[Rule]:
    """Residual block; ``names`` = (norm1, conv1, norm2, conv2, shortcut) in the source."""
    n1, c1, n2, c2, sc = names
    return ([Rule(rf"{src}\.{n1}\.gamma", dst + "/norm1/gamma", _flat)]
            + _conv(rf"{src}\.{c1}", dst + "/conv1")
            + [Rule(rf"{src}\.{n2}\.gamma", dst + "/norm2/gamma", _flat)]
            + _conv(rf"{src}\.{c2}", dst + "/conv2")
            + _conv(rf"{src}\.{sc}", dst + "/shortcut"))


def _attn(src: str, dst: str) -> list[Rule]:
    return [Rule(rf"{src}\.norm\.gamma", dst + "/norm/gamma", _flat),
            Rule(rf"{src}\.to_qkv\.weight", dst + "/qkv_kernel", _pointwise2d),
            Rule(rf"{src}\.to_qkv\.bias", dst + "/qkv_bias"),
            Rule(rf"{src}\.proj\.weight", dst + "/proj_kernel", _pointwise2d),
            Rule(rf"{src}\.proj\.bias", dst + "/proj_bias")]


def _resample(src: str, dst: str) -> list[Rule]:
    return _conv(rf"{src}\.resample\.1", dst, "conv2d") + _conv(rf"{src}\.time_conv", dst + "/time_conv")


_OFF_RES = ("residual.0", "residual.2", "residual.3", "residual.6", "shortcut")
_DIF_RES = ("norm1", "conv1", "norm2", "conv2", "conv_shortcut")


def official_rules(cfg) -> list[Rule]:
    """Table for the reference ``WanVAE_`` state_dict."""
    r = _conv(r"encoder\.conv1", "encoder/conv_in")
    r += _res(r"encoder\.downsamples\.(\d+)", "encoder/down/{0}", _OFF_RES)
    r += _resample(r"encoder\.downsamples\.(\d+)", "encoder/down/{0}")
    r += _res(r"encoder\.middle\.0", "encoder/mid_res0", _OFF_RES)
    r += _attn(r"encoder\.middle\.1", "encoder/mid_attn")
    r += _res(r"encoder\.middle\.2", "encoder/mid_res1", _OFF_RES)
    r += [Rule(r"encoder\.head\.0\.gamma", "encoder/norm_out/gamma", _flat)]
    r += _conv(r"encoder\.head\.2", "encoder/conv_out")
    r += _conv(r"conv1", "quant") + _conv(r"conv2", "post_quant")
    r += _conv(r"decoder\.conv1", "decoder/conv_in")
    r += _res(r"decoder\.middle\.0", "decoder/mid_res0", _OFF_RES)
    r += _attn(r"decoder\.middle\.1", "decoder/mid_attn")
    r += _res(r"decoder\.middle\.2", "decoder/mid_res1", _OFF_RES)
    k = 0
    n_levels = len(cfg.dim_mult)
    for i in range(n_levels):  # flat index k -> (level i, block j) in the reference order
        for j in range(cfg.num_res_blocks + 1):
            r += _res(rf"decoder\.upsamples\.{k}", f"decoder/up/{i}/res/{j}", _OFF_RES)
            k += 1
        if i != n_levels - 1:
            r += _resample(rf"decoder\.upsamples\.{k}", f"decoder/up/{i}/resample")
            k += 1
    r += [Rule(r"decoder\.head\.0\.gamma", "decoder/norm_out/gamma", _flat)]
    r += _conv(r"decoder\.head\.2", "decoder/conv_out")
    return r


def diffusers_rules(cfg=None) -> list[Rule]:
    """Table for diffusers ``AutoencoderKLWan`` (Wan 2.1, non-residual variant)."""
    r = _conv(r"encoder\.conv_in", "encoder/conv_in")
    r += _res(r"encoder\.down_blocks\.(\d+)", "encoder/down/{0}", _DIF_RES)
    r += _resample(r"encoder\.down_blocks\.(\d+)", "encoder/down/{0}")
    for side in ("encoder", "decoder"):
        r += _res(rf"{side}\.mid_block\.resnets\.0", f"{side}/mid_res0", _DIF_RES)
        r += _attn(rf"{side}\.mid_block\.attentions\.0", f"{side}/mid_attn")
        r += _res(rf"{side}\.mid_block\.resnets\.1", f"{side}/mid_res1", _DIF_RES)
    r += [Rule(r"encoder\.norm_out\.gamma", "encoder/norm_out/gamma", _flat)]
    r += _conv(r"encoder\.conv_out", "encoder/conv_out")
    r += _conv(r"quant_conv", "quant") + _conv(r"post_quant_conv", "post_quant")
    r += _conv(r"decoder\.conv_in", "decoder/conv_in")
    r += _res(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)", "decoder/up/{0}/res/{1}", _DIF_RES)
    r += _resample(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0", "decoder/up/{0}/resample")
    r += [Rule(r"decoder\.norm_out\.gamma", "decoder/norm_out/gamma", _flat)]
    r += _conv(r"decoder\.conv_out", "decoder/conv_out")
    return r


def converted_rules(cfg=None) -> list[Rule]:
    return [Rule(r"([a-z_0-9]+(?:/[a-z_0-9]+)+)", "{0}")]


# ------------------------------------------------------------------ API
def vae_factory(cfg):
    from flax import nnx

    from gvc_jax.models.wan.vae import WanVAEModel
    return lambda: WanVAEModel(cfg, rngs=nnx.Rngs(0))


def random_model(cfg, seed: int = 0):
    """A randomly initialised :class:`~gvc_jax.models.wan.vae.WanVAEModel`, drawn on the host
    with NumPy (fast, no per-op compiles).

    Kernels ~ N(0, 1/fan_in), gains 1 + N(0, 0.1^2), biases N(0, 0.02^2)."""
    factory = vae_factory(cfg)
    rng = np.random.default_rng(seed)
    arrays = {}
    for path, (shape, _) in sorted(abstract_targets(factory).items()):
        if path.endswith("gamma"):
            a = 1.0 + 0.1 * rng.standard_normal(shape)
        elif path.endswith("bias"):
            a = 0.02 * rng.standard_normal(shape)
        else:
            a = rng.standard_normal(shape) / np.sqrt(np.prod(shape[:-1]))
        arrays[path] = a.astype(np.float32)
    return load_into(factory, arrays)


def is_converted_file(path: str) -> bool:
    """Whether a ``.safetensors`` file holds our flat paths (a ``gvc-convert vae`` output)."""
    return any("/" in k for k, _ in iter_safetensors(path))


def detect_layout(path: str) -> str:
    if os.path.isdir(path):
        return "diffusers"
    if path.endswith((".pth", ".pt", ".ckpt", ".bin")):
        return "official"
    if path.endswith(".safetensors"):
        return "converted" if is_converted_file(path) else "diffusers"
    raise CheckpointError(f"{path}: cannot tell the checkpoint layout (use --layout)")


def read(path: str, layout: str = "auto") -> Checkpoint:
    """The tensors of a VAE checkpoint (``Wan2.1_VAE.pth``, a diffusers ``vae/`` folder or repo
    root, a diffusers or converted ``.safetensors``), read lazily."""
    layout = detect_layout(path) if layout == "auto" else layout
    if layout == "official":
        items = iter_torch_zip(path)
    elif layout == "diffusers":
        if os.path.isdir(path) and os.path.isdir(os.path.join(path, "vae")) and not any(
                f.endswith(".safetensors") for f in os.listdir(path)):
            path = os.path.join(path, "vae")  # a diffusers repo root
        items = iter_safetensors_folder(path)
    elif layout == "converted":
        items = iter_safetensors(path)
    else:
        raise ValueError(f"unknown layout {layout!r} (one of {LAYOUTS})")
    return Checkpoint(path, layout, list(items))


RULES = {"official": official_rules, "diffusers": diffusers_rules, "converted": converted_rules}


def conversion(ckpt: Checkpoint, cfg, *, dtype=None) -> Conversion:
    """The conversion of ``ckpt`` into ``WanVAEModel(cfg)`` params (float32), stored in
    ``dtype`` (default: the checkpoint's own float dtype); ``.run()`` gives
    ``(arrays, fingerprint)``."""
    from gvc_jax.weights.progress import dominant_float_dtype

    own = np_dtype(dominant_float_dtype(ckpt.tensors))
    return Conversion(ckpt.tensors, RULES[ckpt.layout](cfg), abstract_targets(vae_factory(cfg)),
                      name=f"wan_vae:{cfg.name}", dtype=own if dtype is None else np_dtype(dtype),
                      source_dtype=own, cast=True, what="the VAE")


# ------------------------------------------------------------------ the family loader
def cache_entry(path: str):
    """What :func:`load` reads from ``path`` (a download folder or the VAE file/folder), as a
    :class:`gvc_jax.weights.cache.Entry`: the weights are kept in float32, the VAE's
    parameter dtype."""
    from gvc_jax.weights import folder as wf
    from gvc_jax.weights.cache import Entry

    src, layout = wf.vae_source(path)
    cfg = wf.vae_config(src, layout)
    return Entry("wan_vae", wf.vae_files(src), cfg.name, src, cfg,
                 lambda: conversion(read(src, layout), cfg, dtype="float32"))


def load(path: str, *, dtype: str = "float32", cache_dir=None, log=None, progress: bool = False,
         info: dict | None = None):
    """``(WanVAE, fingerprint)`` from a download folder (``Wan2.1_VAE.pth`` or ``vae/``) or the
    VAE file/folder itself. The official file has no config: its size comes from the shapes.
    ``dtype`` is the compute dtype (the parameters stay float32)."""
    from gvc_jax.models.wan.vae import WanVAE
    from gvc_jax.weights import cache

    entry = cache_entry(path)
    cfg = entry.cfg
    if dtype == "bfloat16":
        cfg.dtype = "bfloat16"
    arrays, fp, how = cache.load(entry, cache_dir=cache_dir, log=log, progress=progress)
    vae = WanVAE(cfg, load_into(vae_factory(cfg), arrays))
    vae.fingerprint = fp
    if info is not None:
        info.update(how, config=cfg)
    return vae, fp
