"""CLIP ViT-H/14 checkpoints -> :class:`gvc_jax.models.wan.clip.CLIPVision`.

Two layouts:

* ``official``: ``models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth``,
  the ``state_dict`` of Wan's whole ``XLMRobertaCLIP``; the vision tower sits
  under ``visual.``. The fused ``attn.to_qkv`` tensors are split into q/k/v
  views before the table (``[3*d, d]`` rows are q, then k, then v).
* ``diffusers``: the ``image_encoder/`` folder, transformers
  ``CLIPVisionModel`` keys (``vision_model.`` prefix optional).

Keys deliberately dropped (:func:`ignored`), each for a stated reason:

* ``textual.*``, ``log_scale``: the XLM-RoBERTa text tower and the logit
  scale, which Wan never runs (it only calls ``model.visual``);
* the last block, ``visual.post_norm.*``/``post_layernorm.*`` and
  ``visual.head``: Wan stops after block 31 of 32 and applies no post-norm
  or projection;
* ``embeddings.position_ids``: an index buffer of older transformers files.

:func:`read` lists a checkpoint's tensors, :func:`conversion` is the one conversion (used by
:func:`load` through the cache and by ``gvc-convert clip``).
"""
from __future__ import annotations

import re

from gvc_jax.weights.sources import (Checkpoint, TensorRef, iter_safetensors_folder,
                                     iter_torch_zip, resolve_checkpoint)
from gvc_jax.weights.table import Conversion, Rule, abstract_targets, dtype_name, np_dtype

OFFICIAL_FILE = "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"


def _t(cfg):
    d, n = cfg.dim, cfg.heads
    h = d // n
    return {
        "heads_in": lambda a: a.T.reshape(d, n, h),       # [n*h, d] -> [d, n, h]
        "heads_bias": lambda a: a.reshape(n, h),
        "heads_out": lambda a: a.T.reshape(n, h, d),      # [d, n*h] -> [n, h, d]
        "flat": lambda a: a.reshape(-1),                  # cls [1, 1, d] -> [d]
        "squeeze0": lambda a: a.reshape(a.shape[-2], a.shape[-1]),  # pos [1, T, d] -> [T, d]
    }


def rules(cfg, layout: str) -> list[Rule]:
    t = _t(cfg)
    if layout == "official":
        b = r"visual\.transformer\.(\d+)\."
        return [
            Rule(r"visual\.patch_embedding\.weight", "patch_embed", "conv2d"),
            Rule(r"visual\.cls_embedding", "cls", t["flat"]),
            Rule(r"visual\.pos_embedding", "pos", t["squeeze0"]),
            Rule(r"visual\.pre_norm\.weight", "pre_norm_scale"),
            Rule(r"visual\.pre_norm\.bias", "pre_norm_bias"),
            Rule(b + r"norm1\.weight", "blocks/norm1_scale@{0}"),
            Rule(b + r"norm1\.bias", "blocks/norm1_bias@{0}"),
            Rule(b + r"attn\.to_qkv\.(q|k|v)\.weight", "blocks/{1}@{0}", t["heads_in"]),
            Rule(b + r"attn\.to_qkv\.(q|k|v)\.bias", "blocks/{1}_bias@{0}", t["heads_bias"]),
            Rule(b + r"attn\.proj\.weight", "blocks/o@{0}", t["heads_out"]),
            Rule(b + r"attn\.proj\.bias", "blocks/o_bias@{0}"),
            Rule(b + r"norm2\.weight", "blocks/norm2_scale@{0}"),
            Rule(b + r"norm2\.bias", "blocks/norm2_bias@{0}"),
            Rule(b + r"mlp\.0\.weight", "blocks/fc1@{0}", "linear"),
            Rule(b + r"mlp\.0\.bias", "blocks/fc1_bias@{0}"),
            Rule(b + r"mlp\.2\.weight", "blocks/fc2@{0}", "linear"),
            Rule(b + r"mlp\.2\.bias", "blocks/fc2_bias@{0}"),
        ]
    if layout == "diffusers":
        v = r"(?:vision_model\.)?"
        b = v + r"encoder\.layers\.(\d+)\."
        return [
            Rule(v + r"embeddings\.patch_embedding\.weight", "patch_embed", "conv2d"),
            Rule(v + r"embeddings\.class_embedding", "cls"),
            Rule(v + r"embeddings\.position_embedding\.weight", "pos"),
            Rule(v + r"pre_layrnorm\.weight", "pre_norm_scale"),
            Rule(v + r"pre_layrnorm\.bias", "pre_norm_bias"),
            Rule(b + r"layer_norm1\.weight", "blocks/norm1_scale@{0}"),
            Rule(b + r"layer_norm1\.bias", "blocks/norm1_bias@{0}"),
            Rule(b + r"self_attn\.(q|k|v)_proj\.weight", "blocks/{1}@{0}", t["heads_in"]),
            Rule(b + r"self_attn\.(q|k|v)_proj\.bias", "blocks/{1}_bias@{0}", t["heads_bias"]),
            Rule(b + r"self_attn\.out_proj\.weight", "blocks/o@{0}", t["heads_out"]),
            Rule(b + r"self_attn\.out_proj\.bias", "blocks/o_bias@{0}"),
            Rule(b + r"layer_norm2\.weight", "blocks/norm2_scale@{0}"),
            Rule(b + r"layer_norm2\.bias", "blocks/norm2_bias@{0}"),
            Rule(b + r"mlp\.fc1\.weight", "blocks/fc1@{0}", "linear"),
            Rule(b + r"mlp\.fc1\.bias", "blocks/fc1_bias@{0}"),
            Rule(b + r"mlp\.fc2\.weight", "blocks/fc2@{0}", "linear"),
            Rule(b + r"mlp\.fc2\.bias", "blocks/fc2_bias@{0}"),
        ]
    raise ValueError(f"unknown CLIP layout {layout!r}")


def _unused_blocks(cfg) -> str:
    return "|".join(str(i) for i in range(cfg.used_layers, cfg.layers)) or "(?!)"


def ignored(cfg, layout: str) -> list[str]:
    """Regexes of source keys dropped on purpose (see the module docstring)."""
    if layout == "official":
        return [r"textual\..*", r"log_scale",
                rf"visual\.transformer\.(?:{_unused_blocks(cfg)})\..*",
                r"visual\.post_norm\.(?:weight|bias)", r"visual\.head"]
    v = r"(?:vision_model\.)?"
    return [v + rf"encoder\.layers\.(?:{_unused_blocks(cfg)})\..*",
            v + r"post_layernorm\.(?:weight|bias)", v + r"embeddings\.position_ids"]


_QKV = re.compile(r"(.*\.attn)\.to_qkv\.(weight|bias)")


def split_qkv(items, ignore=()):
    """Replaces each fused ``attn.to_qkv`` tensor by lazy q/k/v thirds."""
    ign = [re.compile(p) for p in ignore]
    for key, load in items:
        m = _QKV.fullmatch(key)
        if m is None or any(r.fullmatch(key) for r in ign):
            yield key, load
            continue
        shape = getattr(load, "shape", None)
        for i, part in enumerate("qkv"):
            def third(load=load, i=i):
                a = load()
                n = a.shape[0] // 3
                return a[i * n:(i + 1) * n]
            if shape is not None:
                third = TensorRef((shape[0] // 3, *shape[1:]), load.dtype, third)
            yield f"{m.group(1)}.to_qkv.{part}.{m.group(2)}", third


def resolve(path: str, layout: str = "auto") -> tuple[str, str]:
    """Finds the checkpoint under ``path`` and its layout."""
    return resolve_checkpoint(path, layout, OFFICIAL_FILE, "image_encoder", "CLIP")


def read(path: str, layout: str = "auto") -> Checkpoint:
    """The tensors of a CLIP checkpoint (the official ``.pth``, an ``image_encoder/`` folder or
    a download folder holding either), read lazily."""
    path, layout = resolve(path, layout)
    if layout == "official":
        return Checkpoint(path, layout, list(iter_torch_zip(path)))
    return Checkpoint(path, layout, list(iter_safetensors_folder(path, prefix="model")))


def model_factory(cfg):
    from flax import nnx

    from gvc_jax.models.wan.clip import CLIPVision
    return lambda: CLIPVision(cfg, rngs=nnx.Rngs(0))


def conversion(ckpt: Checkpoint, cfg, *, dtype=None) -> Conversion:
    """The conversion of ``ckpt`` into ``CLIPVision(cfg)`` params stored in ``dtype`` (default:
    the checkpoint's own float dtype); the official fused q/k/v tensors are split first.
    ``.run()`` gives ``(arrays, fingerprint)``."""
    from gvc_jax.weights.progress import dominant_float_dtype

    own = np_dtype(dominant_float_dtype(ckpt.tensors))
    dt = own if dtype is None else np_dtype(dtype)
    c = cfg.copy_and_resolve_references()
    c.param_dtype = dtype_name(dt)
    ignore = ignored(c, ckpt.layout)
    items = ckpt.tensors
    if ckpt.layout == "official":
        items = list(split_qkv(items, ignore))
    return Conversion(items, rules(c, ckpt.layout), abstract_targets(model_factory(c)),
                      name=f"clip:{cfg.name}", dtype=dt, source_dtype=own,
                      ignore=tuple(ignore), what="the CLIP image encoder")


# ------------------------------------------------------------------ the family loader
def cache_entry(path: str):
    """What :func:`load` reads from ``path`` (an I2V/FLF2V download folder or the checkpoint),
    as a :class:`gvc_jax.weights.cache.Entry`: bfloat16 weights stay bfloat16, others become
    float32."""
    from gvc_jax.weights import folder as wf
    from gvc_jax.weights.cache import Entry
    from gvc_jax.weights.progress import bf16_or_f32

    src, layout = wf.clip_source(path)
    cfg = wf.clip_config(src, layout)

    def conv():
        ckpt = read(src, layout)
        return conversion(ckpt, cfg, dtype=bf16_or_f32(ckpt.tensors))

    return Entry("clip", wf.clip_files(src), cfg.name, src, cfg, conv)


def load(path: str, *, dtype: str = "float32", cache_dir=None, log=None, progress: bool = False,
         info: dict | None = None):
    """``(CLIPVision, fingerprint)`` from an I2V/FLF2V download folder
    (``models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth`` or ``image_encoder/``) or the
    checkpoint itself. ``dtype`` is the compute and parameter dtype."""
    from gvc_jax.weights import cache
    from gvc_jax.weights.table import load_into

    entry = cache_entry(path)
    arrays, fp, how = cache.load(entry, cache_dir=cache_dir, log=log, progress=progress)
    cfg = entry.cfg
    cfg.dtype = cfg.param_dtype = dtype
    model = load_into(model_factory(cfg), arrays)
    if info is not None:
        info.update(how, config=cfg)
    return model, fp
