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
"""
from __future__ import annotations

import os

import numpy as np

from gvc_jax.weights.sources import CheckpointError, iter_safetensors, iter_safetensors_folder, \
    iter_torch_zip
from gvc_jax.weights.table import ConversionError, Rule, abstract_targets, convert, fingerprint, \
    load_into

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
def _cfg(config):
    from configs.wan_vae import get_config
    return get_config(config) if isinstance(config, str) or config is None else config


def vae_factory(cfg):
    from flax import nnx

    from gvc_jax.models.wan.vae import WanVAEModel
    return lambda: WanVAEModel(cfg, rngs=nnx.Rngs(0))


def _is_converted_file(path: str) -> bool:
    return any("/" in k for k, _ in iter_safetensors(path))


def detect_layout(path: str) -> str:
    if os.path.isdir(path):
        return "diffusers"
    if path.endswith((".pth", ".pt", ".ckpt", ".bin")):
        return "official"
    if path.endswith(".safetensors"):
        return "converted" if _is_converted_file(path) else "diffusers"
    raise CheckpointError(f"{path}: cannot tell the checkpoint layout (use --layout)")


def _source(path: str, layout: str):
    if layout == "official":
        return iter_torch_zip(path)
    if layout == "diffusers":
        if os.path.isdir(path) and os.path.isdir(os.path.join(path, "vae")) and not any(
                f.endswith(".safetensors") for f in os.listdir(path)):
            path = os.path.join(path, "vae")  # a diffusers repo root
        return iter_safetensors_folder(path)
    if layout == "converted":
        return iter_safetensors(path)
    raise ValueError(f"unknown layout {layout!r} (one of {LAYOUTS})")


RULES = {"official": official_rules, "diffusers": diffusers_rules, "converted": converted_rules}


def convert_vae(path: str, layout: str = "auto", config="wan2.1", progress=None):
    """Reads a checkpoint and returns ``(arrays, fingerprint)`` for ``WanVAEModel``."""
    cfg = _cfg(config)
    layout = detect_layout(path) if layout == "auto" else layout
    targets = abstract_targets(vae_factory(cfg))
    arrays = convert(_source(path, layout), RULES[layout](cfg), targets, progress=progress)
    return arrays, fingerprint(arrays, name=f"wan_vae:{cfg.name}")


def load_vae(path: str, config="wan2.1", layout: str = "auto"):
    """Converts a checkpoint into a ready ``WanVAE`` (with ``.fingerprint`` set)."""
    from gvc_jax.models.wan.vae import WanVAE

    cfg = _cfg(config)
    arrays, fp = convert_vae(path, layout, cfg)
    vae = WanVAE(cfg, load_into(vae_factory(cfg), arrays))
    vae.fingerprint = fp
    return vae


# ------------------------------------------------------------------ the family loader
def load(path: str, *, dtype: str = "float32", cache_dir=None, log=None, progress: bool = False,
         info: dict | None = None):
    """``(WanVAE, fingerprint)`` from a download folder (``Wan2.1_VAE.pth`` or ``vae/``) or the
    VAE file/folder itself. The official file has no config: its size comes from the shapes."""
    from gvc_jax.models.wan.vae import WanVAE
    from gvc_jax.weights import folder as wf
    from gvc_jax.weights.cache import cached_convert
    from gvc_jax.weights.progress import bar

    src, layout = wf.vae_source(path)
    cfg = wf.vae_config(src, layout)
    if dtype == "bfloat16":
        cfg.dtype = "bfloat16"

    def conv():
        items = list(_source(src, layout))
        with bar(len(items), "converting the VAE", progress) as tick:
            arrays = convert(items, RULES[layout](cfg), abstract_targets(vae_factory(cfg)),
                             progress=tick)
        return arrays, fingerprint(arrays, name=f"wan_vae:{cfg.name}")

    arrays, fp, how = cached_convert("wan_vae", wf.vae_files(src), conv, cache_dir=cache_dir,
                                     extra=cfg.name, log=log, label=src)
    vae = WanVAE(cfg, load_into(vae_factory(cfg), arrays))
    vae.fingerprint = fp
    if info is not None:
        info.update(how, config=cfg)
    return vae, fp
