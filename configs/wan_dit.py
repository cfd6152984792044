"""Wan 2.1 DiT configurations (docs/design.md §6), one per released checkpoint plus tiny test variants.

Example::

    gvc-convert dit /ckpt/Wan2.1-T2V-1.3B /tmp/wan_t2v_1p3b_orbax --config t2v-1.3b

or, in Python, ``configs.wan_dit.get_config("tiny-i2v")``. A ``wan2.1-`` prefix on the name is
accepted (the codec's config names, docs/design.md §5).
"""
from __future__ import annotations

import ml_collections

_BASE = dict(
    model_type="t2v",  # 't2v' | 'i2v' | 'flf2v'
    patch_size=(1, 2, 2),
    text_len=512,
    text_dim=4096,
    in_dim=16,
    out_dim=16,
    freq_dim=256,
    eps=1e-6,
    clip_dim=1280,  # CLIP ViT-H/14 token width (i2v/flf2v only)
    clip_len=257,  # CLIP tokens per conditioning image
    rope_max_len=1024,
    rope_theta=10000.0,
)

_14B = dict(dim=5120, ffn_dim=13824, num_heads=40, num_layers=40)

_VARIANTS = {
    "t2v-1.3b": dict(dim=1536, ffn_dim=8960, num_heads=12, num_layers=30),
    "t2v-14b": dict(_14B),
    "i2v-14b-480p": dict(_14B, model_type="i2v", in_dim=36),
    "i2v-14b-720p": dict(_14B, model_type="i2v", in_dim=36),
    "flf2v-14b-720p": dict(_14B, model_type="flf2v", in_dim=36),
}

# Tiny variants: head_dim 32 keeps the RoPE split valid (12/10/10). text_len stays 512 because
# diffusers hard-codes 512 text tokens when it splits image and text context.
_TINY = dict(dim=64, ffn_dim=128, num_heads=2, num_layers=2, text_dim=32, freq_dim=32,
             clip_dim=32, clip_len=5)   # configs.wan_clip "tiny": width 32, 5 tokens
_VARIANTS.update({
    "tiny-t2v": dict(_TINY),
    "tiny-t2v-wan22": dict(_TINY, text_len=16),  # short text, official code only
    "tiny-i2v": dict(_TINY, model_type="i2v", in_dim=36),
    "tiny-flf2v": dict(_TINY, model_type="flf2v", in_dim=36),
    "tiny-i2v-noclip": dict(_TINY, model_type="i2v-noclip", in_dim=36, text_len=16),
})

NAMES = tuple(_VARIANTS)


def get_config(arg: str = "t2v-1.3b") -> ml_collections.ConfigDict:
    """Returns the DiT config named ``arg`` (see :data:`NAMES`)."""
    name = arg[len("wan2.1-"):] if arg.startswith("wan2.1-") else arg
    if name not in _VARIANTS:
        raise ValueError(f"unknown Wan DiT config {arg!r}; known: {', '.join(NAMES)}")
    cfg = ml_collections.ConfigDict(dict(_BASE, **_VARIANTS[name], name=name))
    assert cfg.dim % cfg.num_heads == 0 and (cfg.dim // cfg.num_heads) % 2 == 0
    return cfg


def from_fields(fields: dict) -> ml_collections.ConfigDict:
    """The config a checkpoint's own ``config.json`` declares (see gvc_jax.weights.folder).

    It takes the name of the released (or tiny) variant it equals, else ``custom``."""
    cfg = dict(_BASE, **fields)
    cfg["patch_size"] = tuple(int(p) for p in cfg["patch_size"])
    if cfg["dim"] % cfg["num_heads"] or (cfg["dim"] // cfg["num_heads"]) % 2:
        raise ValueError(f"dim {cfg['dim']} does not split into {cfg['num_heads']} even heads")
    name = "custom"
    for n, v in _VARIANTS.items():
        ref = dict(_BASE, **v)
        skip = ("patch_size",) + (("clip_dim", "clip_len") if cfg["model_type"] == "t2v" else ())
        if all(ref.get(k) == cfg[k] for k in cfg if k not in skip) and \
                tuple(ref["patch_size"]) == cfg["patch_size"]:
            name = n
            break
    return ml_collections.ConfigDict(dict(cfg, name=name))
