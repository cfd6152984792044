"""A user's Wan 2.1 download folder, in either layout, and the architecture it declares
(docs/weights.md, "Folders").

* official (``Wan-AI/Wan2.1-T2V-1.3B``): ``config.json`` + ``diffusion_pytorch_model*.safetensors``
  (+ index), ``Wan2.1_VAE.pth``, ``models_t5_umt5-xxl-enc-bf16.pth``, ``google/umt5-xxl/``;
* diffusers (``*-Diffusers``): ``model_index.json``, ``transformer/``, ``vae/``,
  ``text_encoder/``, ``tokenizer/``, ``scheduler/``.

The DiT's architecture comes from its ``config.json``; the diffusers VAE and text encoder have
theirs too. The official VAE and umT5 files ship no config, so their sizes are read from the
tensor shapes (no tensor data is read for that).
"""
from __future__ import annotations

import json
import os
import re

import ml_collections

from gvc_jax.weights.sources import (CheckpointError, iter_safetensors_folder, iter_torch_any,
                                     safetensors_files, shapes)

VAE_FILE = "Wan2.1_VAE.pth"
T5_FILE = "models_t5_umt5-xxl-enc-bf16.pth"
CLIP_FILE = "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"


def _read_json(path: str) -> dict:
    try:
        with open(path) as f:
            d = json.load(f)
    except OSError as e:
        raise CheckpointError(f"{path}: unreadable ({e.strerror or e})") from None
    except (ValueError, RecursionError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({str(e)[:200] or type(e).__name__})") from None
    if not isinstance(d, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return d


def layout_of(root: str) -> str:
    """'official' or 'diffusers' for a download folder."""
    if not os.path.isdir(root):
        raise CheckpointError(f"{root}: no such folder")
    if os.path.isfile(os.path.join(root, "model_index.json")) or \
            os.path.isdir(os.path.join(root, "transformer")):
        return "diffusers"
    if os.path.isfile(os.path.join(root, "config.json")):
        return "official"
    raise CheckpointError(f"{root}: not a Wan 2.1 folder (no config.json, model_index.json or "
                          "transformer/)")


# ------------------------------------------------------------------ DiT
def _cfg_int(d: dict, key: str, where: str, default=None) -> int:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise CheckpointError(f"{where}: {key} must be a positive integer, got {v!r}")
    return v


def dit_config(root: str) -> tuple[ml_collections.ConfigDict, str, str]:
    """``(cfg, layout, folder)`` of the DiT in ``root`` (a download folder or the DiT folder)."""
    folder = os.path.join(root, "transformer") if os.path.isdir(
        os.path.join(root, "transformer")) else root
    path = os.path.join(folder, "config.json")
    if not os.path.isfile(path):
        raise CheckpointError(f"{folder}: missing config.json of the DiT")
    d = _read_json(path)
    cls = d.get("_class_name")
    try:
        return _dit_config(d, cls, path, folder)
    except (TypeError, ValueError, OverflowError) as e:  # e.g. "eps": "x", "patch_size": 3
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{path}: bad value in the DiT config ({str(e)[:200]})") from None


def _dit_config(d: dict, cls, path: str, folder: str):
    from configs.wan_dit import from_fields

    if cls == "WanModel":
        layout = "official"
        mt = d.get("model_type", "t2v")
        fields = dict(model_type=mt, dim=_cfg_int(d, "dim", path),
                      ffn_dim=_cfg_int(d, "ffn_dim", path), num_heads=_cfg_int(d, "num_heads", path),
                      num_layers=_cfg_int(d, "num_layers", path), in_dim=_cfg_int(d, "in_dim", path),
                      out_dim=_cfg_int(d, "out_dim", path, 16),
                      freq_dim=_cfg_int(d, "freq_dim", path, 256),
                      text_len=_cfg_int(d, "text_len", path, 512),
                      eps=float(d.get("eps", 1e-6)))
        # WanModel keeps text_dim and patch_size out of its config.json: read the shapes.
        shp = shapes(iter_safetensors_folder(folder))
        try:
            fields["text_dim"] = int(shp["text_embedding.0.weight"][1])
            fields["patch_size"] = tuple(int(v) for v in shp["patch_embedding.weight"][2:])
        except (KeyError, IndexError):
            raise CheckpointError(f"{folder}: the DiT weights lack text_embedding.0.weight or "
                                  "patch_embedding.weight") from None
        if mt in ("i2v", "flf2v"):   # the CLIP width and token count also live in the shapes
            try:
                fields["clip_dim"] = int(shp["img_emb.proj.0.weight"][0])
                if mt == "flf2v":
                    fields["clip_len"] = int(shp["img_emb.emb_pos"][-2]) // 2
            except (KeyError, IndexError):
                raise CheckpointError(f"{folder}: a {mt} DiT without img_emb weights") from None
    elif cls == "WanTransformer3DModel":
        layout = "diffusers"
        heads = _cfg_int(d, "num_attention_heads", path)
        image_dim = d.get("image_dim")
        pos = d.get("pos_embed_seq_len")
        mt = "t2v" if image_dim is None else ("flf2v" if pos else "i2v")
        fields = dict(model_type=mt, dim=heads * _cfg_int(d, "attention_head_dim", path),
                      ffn_dim=_cfg_int(d, "ffn_dim", path), num_heads=heads,
                      num_layers=_cfg_int(d, "num_layers", path),
                      in_dim=_cfg_int(d, "in_channels", path),
                      out_dim=_cfg_int(d, "out_channels", path, 16),
                      freq_dim=_cfg_int(d, "freq_dim", path, 256), text_len=512,
                      text_dim=_cfg_int(d, "text_dim", path, 4096),
                      eps=float(d.get("eps", 1e-6)),
                      patch_size=tuple(d.get("patch_size", (1, 2, 2))),
                      rope_max_len=_cfg_int(d, "rope_max_seq_len", path, 1024))
        if image_dim is not None:
            fields["clip_dim"] = _cfg_int(d, "image_dim", path)
            if pos:
                fields["clip_len"] = _cfg_int(d, "pos_embed_seq_len", path) // 2
    else:
        raise CheckpointError(f"{path}: not a Wan 2.1 DiT config (_class_name {cls!r})")
    try:
        cfg = from_fields(fields)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: {e}") from None
    safetensors_files(folder)  # a clear error when the weights are missing
    return cfg, layout, folder


def dit_files(folder: str) -> list[str]:
    files = safetensors_files(folder)
    extra = [os.path.join(folder, f) for f in os.listdir(folder)
             if f.endswith((".index.json", "config.json"))]
    return files + extra


# ------------------------------------------------------------------ VAE
def _component(root: str, official_file: str, subfolder: str, what: str, is_self) -> tuple[str, str]:
    """``(path, layout)`` of one component: a file given directly, the diffusers subfolder
    given directly (``is_self(config)``), or found in a download folder of either layout."""
    if os.path.isfile(root):
        return root, "official" if not root.endswith(".safetensors") else "diffusers"
    cfg = os.path.join(root, "config.json")
    if os.path.isfile(cfg) and is_self(_read_json(cfg)):
        return root, "diffusers"
    if layout_of(root) == "official":
        off = os.path.join(root, official_file)
        if not os.path.isfile(off):
            raise CheckpointError(f"{off}: missing (the {what} of the official layout)")
        return off, "official"
    sub = os.path.join(root, subfolder)
    if not os.path.isdir(sub):
        raise CheckpointError(f"{sub}: missing (the {what} of the diffusers layout)")
    return sub, "diffusers"


def vae_source(root: str) -> tuple[str, str]:
    """``(path, layout)`` of the VAE in a download folder (or the VAE file/folder itself)."""
    return _component(root, VAE_FILE, "vae", "VAE",
                      lambda d: d.get("_class_name") == "AutoencoderKLWan")


def vae_config(path: str, layout: str) -> ml_collections.ConfigDict:
    from configs.wan_vae import get_config

    cfg = get_config("wan2.1")
    if layout == "official":
        shp = shapes(iter_torch_any(path))
        need = ("encoder.conv1.weight", "conv2.weight")
        if any(k not in shp for k in need):
            raise CheckpointError(f"{path}: not a Wan 2.1 VAE state dict (no {need[0]})")
        base, z = shp["encoder.conv1.weight"][0], shp["conv2.weight"][0]
    else:
        d = _read_json(os.path.join(path, "config.json"))
        if d.get("_class_name") not in (None, "AutoencoderKLWan"):
            raise CheckpointError(f"{path}/config.json: not an AutoencoderKLWan config")
        base, z = _cfg_int(d, "base_dim", path, 96), _cfg_int(d, "z_dim", path, 16)
        cfg.dim_mult = tuple(d.get("dim_mult", cfg.dim_mult))
        cfg.num_res_blocks = _cfg_int(d, "num_res_blocks", path, 2)
        cfg.temperal_downsample = tuple(d.get("temperal_downsample", cfg.temperal_downsample))
        if d.get("latents_mean") is not None:
            cfg.latents_mean = tuple(float(v) for v in d["latents_mean"])
            cfg.latents_std = tuple(float(v) for v in d["latents_std"])
    cfg.base_dim, cfg.z_dim = int(base), int(z)
    cfg.name = {96: "wan2.1", 8: "tiny"}.get(cfg.base_dim, f"base{cfg.base_dim}")
    if len(cfg.latents_mean) != cfg.z_dim:
        raise CheckpointError(f"{path}: {cfg.z_dim} latent channels but {len(cfg.latents_mean)} "
                              "normalisation constants")
    return cfg


def vae_files(path: str) -> list[str]:
    if os.path.isfile(path):
        return [path]
    return [os.path.join(path, f) for f in sorted(os.listdir(path))
            if f.endswith((".safetensors", ".json"))]


# ------------------------------------------------------------------ umT5
def t5_source(root: str) -> tuple[str, str]:
    """``(path, layout)`` of umT5 in a download folder (or the checkpoint itself)."""
    return _component(root, T5_FILE, "text_encoder", "text encoder",
                      lambda d: d.get("model_type") in ("umt5", "t5"))


def t5_config(path: str, layout: str) -> ml_collections.ConfigDict:
    from configs.wan_text import get_config

    cfg = get_config("umt5-xxl")
    if layout == "official":
        shp = shapes(iter_torch_any(path))
        try:
            vocab, dim = shp["token_embedding.weight"]
            dim_attn = shp["blocks.0.attn.q.weight"][0]
            ffn = shp["blocks.0.ffn.fc1.weight"][0]
            buckets, heads = shp["blocks.0.pos_embedding.embedding.weight"]
        except (KeyError, ValueError):
            raise CheckpointError(f"{path}: not a umT5 encoder state dict") from None
        layers = 1 + max(int(m.group(1)) for k in shp if (m := re.match(r"blocks\.(\d+)\.", k)))
    else:
        d = _read_json(os.path.join(path, "config.json"))
        vocab, dim = _cfg_int(d, "vocab_size", path), _cfg_int(d, "d_model", path)
        heads = _cfg_int(d, "num_heads", path)
        dim_attn = heads * _cfg_int(d, "d_kv", path)
        ffn, layers = _cfg_int(d, "d_ff", path), _cfg_int(d, "num_layers", path)
        buckets = _cfg_int(d, "relative_attention_num_buckets", path, 32)
        cfg.max_distance = _cfg_int(d, "relative_attention_max_distance", path, 128)
    got = dict(vocab=vocab, dim=dim, dim_attn=dim_attn, ffn=ffn, heads=heads, layers=layers,
               buckets=buckets)
    if any(getattr(cfg, k) != v for k, v in got.items()):
        cfg.name = "umt5-custom"
        for k, v in got.items():
            setattr(cfg, k, int(v))
    if cfg.dim_attn % cfg.heads:
        raise CheckpointError(f"{path}: attention width {cfg.dim_attn} is not a multiple of "
                              f"{cfg.heads} heads")
    return cfg


def t5_files(path: str) -> list[str]:
    if os.path.isfile(path):
        return [path]
    return list(safetensors_files(path, prefix="model")) + [
        os.path.join(path, f) for f in os.listdir(path) if f.endswith(".json")]


def tokenizer_files(root: str) -> list[str]:
    from gvc_jax.weights.tokenizer import find_tokenizer_dir

    try:
        d = find_tokenizer_dir(root)
    except FileNotFoundError as e:
        raise CheckpointError(str(e)) from None
    return [os.path.join(d, f) for f in sorted(os.listdir(d))
            if os.path.isfile(os.path.join(d, f))]


# ------------------------------------------------------------------ CLIP (I2V, FLF2V)
def clip_source(root: str) -> tuple[str, str]:
    """``(path, layout)`` of the CLIP image encoder in an I2V/FLF2V download folder."""
    return _component(root, CLIP_FILE, "image_encoder", "CLIP image encoder",
                      lambda d: d.get("model_type") in ("clip_vision_model", "clip"))


def clip_config(path: str, layout: str) -> ml_collections.ConfigDict:
    """The vision tower's sizes: ViT-H/14 for the released folders, read from shapes (official)
    or the transformers config (diffusers) so tiny test folders work too."""
    from configs.wan_clip import get_config

    if layout == "official":
        # The official file records no head count: it must be a known size.
        shp = shapes(iter_torch_any(path))
        try:
            d, _, p, _ = shp["visual.patch_embedding.weight"]
            tokens = shp["visual.pos_embedding"][-2]
            mlp = shp["visual.transformer.0.mlp.0.weight"][0]
        except (KeyError, ValueError):
            raise CheckpointError(f"{path}: not a Wan CLIP state dict (no visual tower)") from None
        layers = 1 + max(int(m.group(1)) for k in shp
                         if (m := re.match(r"visual\.transformer\.(\d+)\.", k)))
        for name in ("vit-h-14", "tiny"):
            cfg = get_config(name)
            if (cfg.dim, cfg.patch, cfg.mlp, cfg.layers, cfg.tokens) == (d, p, mlp, layers,
                                                                        tokens):
                cfg.param_dtype = cfg.dtype = "float32"
                return cfg
        raise CheckpointError(f"{path}: a CLIP vision tower of width {d}, {layers} blocks is "
                              "not a known size (ViT-H/14)")
    cfg = get_config("vit-h-14")
    dd = _read_json(os.path.join(path, "config.json"))
    got = dict(dim=_cfg_int(dd, "hidden_size", path), patch=_cfg_int(dd, "patch_size", path),
               mlp=_cfg_int(dd, "intermediate_size", path),
               layers=_cfg_int(dd, "num_hidden_layers", path),
               heads=_cfg_int(dd, "num_attention_heads", path))
    got["image_size"] = _cfg_int(dd, "image_size", path)
    cfg.eps = float(dd.get("layer_norm_eps", cfg.eps))
    if got["dim"] % got["heads"] or got["layers"] < 2:
        raise CheckpointError(f"{path}: bad CLIP vision config")
    if any(getattr(cfg, k) != v for k, v in got.items()):
        cfg.name = "clip-custom"
        for k, v in got.items():
            setattr(cfg, k, int(v))
        cfg.used_layers = cfg.layers - 1
        cfg.tokens = (cfg.image_size // cfg.patch) ** 2 + 1
    cfg.param_dtype = cfg.dtype = "float32"
    return cfg


def clip_files(path: str) -> list[str]:
    if os.path.isfile(path):
        return [path]
    return list(safetensors_files(path, prefix="model")) + [
        os.path.join(path, f) for f in os.listdir(path) if f.endswith(".json")]
