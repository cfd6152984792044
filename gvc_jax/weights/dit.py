"""Wan 2.1 DiT checkpoint conversion: official and diffusers layouts -> WanDiT params.

Two explicit ordered tables map checkpoint keys to the flat NNX state of
:class:`gvc_jax.models.wan.dit.WanDiT` (``blocks/...@N`` writes layer N of the stacked blocks):

* ``OFFICIAL_RULES``: ``diffusion_pytorch_model*.safetensors`` of the Wan 2.1 repos
  (``blocks.N.self_attn.q``, ``time_embedding.0``, ``img_emb.proj.1`` ...).
* ``DIFFUSERS_RULES``: the ``transformer/`` folder of the ``*-Diffusers`` repos
  (``blocks.N.attn1.to_q``, ``condition_embedder.*``; its ``norm2`` is the official ``norm3``).

:func:`read` lists a checkpoint's tensors (memory-mapped, nothing read yet), :func:`conversion`
is the one conversion of this family (used by :func:`load` through the cache and by
``gvc-convert dit``): it streams tensor by tensor into one preallocated copy of the converted
params and returns them with the model fingerprint. Any unmapped, missing or mis-shaped tensor
raises :class:`~gvc_jax.weights.table.ConversionError` naming it.
"""
from __future__ import annotations

import json
import os
import re

import jax.numpy as jnp
import numpy as np

from gvc_jax.weights.sources import (Checkpoint, CheckpointError, iter_safetensors_folder,
                                     safetensors_files)
from gvc_jax.weights.table import (Conversion, ConversionError, Rule, abstract_targets,
                                   fingerprint, np_dtype)


def _patch(a: np.ndarray) -> np.ndarray:
    """Conv3d [O, I, pt, ph, pw] -> patch matmul kernel [pt*ph*pw*I, O]."""
    return a.transpose(2, 3, 4, 1, 0).reshape(-1, a.shape[0])


def _squeeze0(a: np.ndarray) -> np.ndarray:
    """[1, n, d] -> [n, d] (modulation tables, FLF2V position table)."""
    if a.ndim != 3 or a.shape[0] != 1:
        raise ConversionError(f"expected a [1, n, d] table, got shape {a.shape}")
    return a[0]


def _lin(src: str, dst: str) -> list[Rule]:
    """nn.Linear ``src.{weight,bias}`` -> Dense ``dst/{kernel,bias}`` (``src`` is a regex)."""
    return [Rule(src + r"\.weight", dst + "/kernel", "linear"), Rule(src + r"\.bias", dst + "/bias")]


def _ln(src: str, dst: str) -> list[Rule]:
    return [Rule(src + r"\.weight", dst + "/scale"), Rule(src + r"\.bias", dst + "/bias")]


_B = r"blocks\.(\d+)\."  # every block rule writes layer {0} of the stacked param


def _stacked(rules: list[Rule]) -> list[Rule]:
    """Appends ``@{0}`` (the block index) to the templates of block rules."""
    return [Rule(r.pattern, r.template + "@{0}", r.transform) if r.pattern.startswith(_B) else r
            for r in rules]


OFFICIAL_RULES: list[Rule] = _stacked([
    Rule(r"patch_embedding\.weight", "patch_embedding/kernel", _patch),
    Rule(r"patch_embedding\.bias", "patch_embedding/bias"),
    *_lin(r"text_embedding\.0", "text_embedding/fc1"),
    *_lin(r"text_embedding\.2", "text_embedding/fc2"),
    *_lin(r"time_embedding\.0", "time_embedding/fc1"),
    *_lin(r"time_embedding\.2", "time_embedding/fc2"),
    *_lin(r"time_projection\.1", "time_projection"),
    *[r for p in ("q", "k", "v", "o") for r in _lin(_B + r"self_attn\." + p, f"blocks/self_attn/{p}")],
    *[Rule(_B + rf"self_attn\.norm_{p}\.weight", f"blocks/self_attn/norm_{p}/scale")
      for p in ("q", "k")],
    *[r for p in ("q", "k", "v", "o", "k_img", "v_img")
      for r in _lin(_B + r"cross_attn\." + p, f"blocks/cross_attn/{p}")],
    *[Rule(_B + rf"cross_attn\.norm_{p}\.weight", f"blocks/cross_attn/norm_{p}/scale")
      for p in ("q", "k", "k_img")],
    *_ln(_B + r"norm3", "blocks/norm3"),
    *_lin(_B + r"ffn\.0", "blocks/ffn/fc1"),
    *_lin(_B + r"ffn\.2", "blocks/ffn/fc2"),
    Rule(_B + r"modulation", "blocks/modulation", _squeeze0),
    *_lin(r"head\.head", "head/head"),
    Rule(r"head\.modulation", "head/modulation", _squeeze0),
    *_ln(r"img_emb\.proj\.0", "img_emb/norm1"),
    *_lin(r"img_emb\.proj\.1", "img_emb/mlp/fc1"),
    *_lin(r"img_emb\.proj\.3", "img_emb/mlp/fc2"),
    *_ln(r"img_emb\.proj\.4", "img_emb/norm2"),
    Rule(r"img_emb\.emb_pos", "img_emb/emb_pos", _squeeze0),
])

_DIFF_ATTN = (("to_q", "q"), ("to_k", "k"), ("to_v", "v"), (r"to_out\.0", "o"))
DIFFUSERS_RULES: list[Rule] = _stacked([
    Rule(r"patch_embedding\.weight", "patch_embedding/kernel", _patch),
    Rule(r"patch_embedding\.bias", "patch_embedding/bias"),
    *_lin(r"condition_embedder\.text_embedder\.linear_1", "text_embedding/fc1"),
    *_lin(r"condition_embedder\.text_embedder\.linear_2", "text_embedding/fc2"),
    *_lin(r"condition_embedder\.time_embedder\.linear_1", "time_embedding/fc1"),
    *_lin(r"condition_embedder\.time_embedder\.linear_2", "time_embedding/fc2"),
    *_lin(r"condition_embedder\.time_proj", "time_projection"),
    *[r for s, d in _DIFF_ATTN for r in _lin(_B + r"attn1\." + s, f"blocks/self_attn/{d}")],
    *[Rule(_B + rf"attn1\.norm_{p}\.weight", f"blocks/self_attn/norm_{p}/scale") for p in ("q", "k")],
    *[r for s, d in _DIFF_ATTN + (("add_k_proj", "k_img"), ("add_v_proj", "v_img"))
      for r in _lin(_B + r"attn2\." + s, f"blocks/cross_attn/{d}")],
    *[Rule(_B + rf"attn2\.{s}\.weight", f"blocks/cross_attn/{d}/scale")
      for s, d in (("norm_q", "norm_q"), ("norm_k", "norm_k"), ("norm_added_k", "norm_k_img"))],
    *_ln(_B + r"norm2", "blocks/norm3"),  # diffusers' affine norm2 == official norm3
    *_lin(_B + r"ffn\.net\.0\.proj", "blocks/ffn/fc1"),
    *_lin(_B + r"ffn\.net\.2", "blocks/ffn/fc2"),
    Rule(_B + r"scale_shift_table", "blocks/modulation", _squeeze0),
    *_lin(r"proj_out", "head/head"),
    Rule(r"scale_shift_table", "head/modulation", _squeeze0),
    *_ln(r"condition_embedder\.image_embedder\.norm1", "img_emb/norm1"),
    *_lin(r"condition_embedder\.image_embedder\.ff\.net\.0\.proj", "img_emb/mlp/fc1"),
    *_lin(r"condition_embedder\.image_embedder\.ff\.net\.2", "img_emb/mlp/fc2"),
    *_ln(r"condition_embedder\.image_embedder\.norm2", "img_emb/norm2"),
    Rule(r"condition_embedder\.image_embedder\.pos_embed", "img_emb/emb_pos", _squeeze0),
])
# Documented extra tensor diffusers itself drops on load (``_keys_to_ignore_on_load_unexpected``).
DIFFUSERS_IGNORE = (r"blocks\.\d+\.attn2\.norm_added_q\.weight",)

LAYOUTS = {"official": (OFFICIAL_RULES, ()), "diffusers": (DIFFUSERS_RULES, DIFFUSERS_IGNORE)}


# ------------------------------------------------------------------ layout / sources
def resolve(path: str) -> str:
    """A diffusers repo root resolves to its ``transformer/`` folder."""
    sub = os.path.join(path, "transformer")
    return sub if os.path.isdir(sub) else path


def detect_layout(path: str) -> str:
    """'official' or 'diffusers', from the tensor names (headers only are read)."""
    path = resolve(path)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "config.json")):
        with open(os.path.join(path, "config.json")) as f:
            if json.load(f).get("_class_name") == "WanTransformer3DModel":
                return "diffusers"
    for key, _ in iter_safetensors_folder(path):
        if key.startswith("condition_embedder.") or re.match(r"blocks\.\d+\.attn1\.", key):
            return "diffusers"
        if key.startswith(("time_embedding.", "text_embedding.")) or re.match(
                r"blocks\.\d+\.self_attn\.", key):
            return "official"
    raise CheckpointError(f"{path}: cannot tell the DiT checkpoint layout from its tensor names")


def read(path: str, layout: str = "auto") -> Checkpoint:
    """The tensors of a DiT checkpoint (file, folder, sharded folder or diffusers repo root),
    memory-mapped; ``layout`` 'auto' reads it from the tensor names."""
    path = resolve(path)
    safetensors_files(path)  # clear error if there is nothing to read
    if layout == "auto":
        layout = detect_layout(path)
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; use one of {sorted(LAYOUTS)}")
    return Checkpoint(path, layout, list(iter_safetensors_folder(path)))


def dit_factory(cfg, dtype=jnp.bfloat16, param_dtype=jnp.bfloat16, fp8: bool = False):
    from flax import nnx

    from gvc_jax.models.wan.dit import WanDiT
    return lambda: WanDiT(cfg, rngs=nnx.Rngs(0), dtype=dtype, param_dtype=param_dtype, fp8=fp8)


def check_coverage(key_shapes, cfg, layout: str) -> None:
    """Dry run of the ``layout`` table on ``{key: shape}`` against WanDiT(cfg), no allocation
    (see :func:`gvc_jax.weights.table.check_coverage`)."""
    from gvc_jax.weights import table

    rules, ignore = LAYOUTS[layout]
    table.check_coverage(list(key_shapes.items()), rules, abstract_targets(dit_factory(cfg)),
                         ignore=ignore)


def conversion(ckpt: Checkpoint, cfg, *, dtype=None) -> Conversion:
    """The conversion of ``ckpt`` into ``WanDiT(cfg)`` params stored in ``dtype`` (default: the
    checkpoint's own float dtype); ``.run()`` gives ``(arrays, fingerprint)``."""
    from gvc_jax.weights.progress import dominant_float_dtype

    if ckpt.layout not in LAYOUTS:
        raise ValueError(f"unknown layout {ckpt.layout!r}; use one of {sorted(LAYOUTS)}")
    rules, ignore = LAYOUTS[ckpt.layout]
    own = np_dtype(dominant_float_dtype(ckpt.tensors))
    dt = own if dtype is None else np_dtype(dtype)
    return Conversion(ckpt.tensors, rules, abstract_targets(dit_factory(cfg, param_dtype=dt)),
                      name=f"wan_dit:{cfg.name}", dtype=dt, source_dtype=own,
                      ignore=tuple(ignore), what="the DiT")


# ------------------------------------------------------------------ gvc-convert output
def load_dit_orbax(out_dir: str, cfg, dtype=jnp.bfloat16, param_dtype=jnp.bfloat16,
                   verify: bool = True):
    """Builds a :class:`WanDiT` from a ``gvc-convert dit`` output folder (sets ``.fingerprint``).

    With ``verify`` the fingerprint is recomputed and must equal the one in ``meta.json``.
    """
    from gvc_jax.weights.cache import load_arrays
    from gvc_jax.weights.table import load_into

    arrays = load_arrays(out_dir)
    fp = fingerprint(arrays, name=f"wan_dit:{cfg.name}")
    meta_path = os.path.join(out_dir, "meta.json")
    if verify and os.path.isfile(meta_path):
        with open(meta_path) as f:
            want = json.load(f).get("fingerprint")
        if want != fp:
            raise ConversionError(f"{out_dir}: params fingerprint {fp[:16]}... does not match "
                                  f"meta.json ({str(want)[:16]}...) or config {cfg.name!r}")
    model = load_into(dit_factory(cfg, dtype, param_dtype), arrays)
    model.fingerprint = fp
    return model


# ------------------------------------------------------------------ fp8
FP8_RULE = "fp8e4m3-v1"   # names the quantisation in the cache; docs/fp8.md


def fp8_kernels(cfg) -> list[str]:
    """The kernel paths the fp8 WanDiT(cfg) holds in e4m3 (the blocks' attention projections
    and FFN), read from its abstract state."""
    from gvc_jax.models.wan.fp8 import E4M3

    targets = abstract_targets(dit_factory(cfg, fp8=True))
    return sorted(p for p, (_, dt) in targets.items() if np_dtype(dt) == E4M3)


def quantize_fp8(arrays: dict, cfg) -> dict:
    """The params of the fp8 ``WanDiT(cfg, fp8=True)`` from converted ones: every kernel of
    :func:`fp8_kernels` becomes e4m3 ``kernel`` plus float32 per-output-channel ``scale``
    (:func:`gvc_jax.models.wan.fp8.quantize_kernel`, in NumPy, one layer at a time); the other
    arrays are kept as they are. Consumes ``arrays`` (each source kernel is dropped once
    quantised). Deterministic: the same converted weights give the same bytes anywhere."""
    from gvc_jax.models.wan.fp8 import E4M3, quantize_kernel

    out = {}
    for path in fp8_kernels(cfg):
        w = arrays.pop(path)
        q = np.empty(w.shape, E4M3)
        s = np.empty(w.shape[:-2] + w.shape[-1:], np.float32)
        for i in np.ndindex(*w.shape[:-2]):     # the stacked layers, one at a time
            q[i], s[i] = quantize_kernel(w[i])
        del w
        out[path], out[path[:-len("kernel")] + "scale"] = q, s
    out.update(arrays)
    arrays.clear()
    return out


# ------------------------------------------------------------------ the family loader
def cache_entry(path: str):
    """What :func:`load` reads from ``path`` (a download folder or the DiT folder), as a
    :class:`gvc_jax.weights.cache.Entry`: the weights keep the checkpoint's own dtype."""
    from gvc_jax.weights import folder as wf
    from gvc_jax.weights.cache import Entry

    cfg, layout, where = wf.dit_config(path)
    return Entry("wan_dit", wf.dit_files(where), cfg.name, where, cfg,
                 lambda: conversion(read(where, layout), cfg))


def load(path: str, *, dtype: str = "float32", cache_dir=None, log=None, progress: bool = False,
         info: dict | None = None):
    """``(WanDiT, fingerprint)`` from a download folder (official or diffusers layout) or the
    DiT folder itself; the architecture comes from its ``config.json`` (also in
    ``info["config"]``: ``info`` receives where the weights came from).

    ``dtype`` is the compute and parameter dtype; the fingerprint is that of the weights in the
    checkpoint's own dtype, which the cache keeps (see :mod:`gvc_jax.weights.cache`).
    ``dtype="fp8"``: the blocks' linear layers in e4m3 (:func:`quantize_fp8`, cached as an
    entry of its own keyed by that fingerprint and :data:`FP8_RULE`), the rest in bfloat16;
    the fingerprint stays that of the unquantised weights (docs/fp8.md)."""
    from gvc_jax.weights import cache
    from gvc_jax.weights.progress import base_dtype, jnp_dtype
    from gvc_jax.weights.table import load_into

    entry = cache_entry(path)
    if dtype == "fp8":
        arrays, fp, how = cache.load_derived(entry, FP8_RULE,
                                             lambda a: quantize_fp8(a, entry.cfg),
                                             cache_dir=cache_dir, log=log, progress=progress)
    else:
        arrays, fp, how = cache.load(entry, cache_dir=cache_dir, log=log, progress=progress)
    jd = jnp_dtype(base_dtype(dtype))
    model = load_into(dit_factory(entry.cfg, jd, jd, fp8=dtype == "fp8"), arrays)
    if info is not None:
        info.update(how, config=entry.cfg)
    return model, fp
