"""Sharding rules tables for the Wan DiT: logical axis names -> mesh axes (docs/sharding.md).

The model names every parameter axis and the main activation axes with *logical* names (below);
it never names a mesh axis. A rules table maps each logical name to a mesh axis, a tuple of
mesh axes, or ``None`` (replicated), and every table maps *every* logical name (a table that
misses one is rejected by :func:`gvc_jax.sharding.validate`). Mesh axes are
``("data", "fsdp", "context", "tensor")``; a config's ``mesh_shape`` gives their sizes, ``-1``
for "all remaining devices".

Example::

    from configs.sharding import get_config
    cfg = get_config("wan-seq")            # cfg.rules, cfg.mesh_shape, cfg.mesh_axes

Tables:

* ``wan-1gpu``: everything replicated (one device; the unsharded numerics).
* ``wan-data``: the DiT's batch axis over ``data`` (a batched forward, CFG's two halves).
* ``wan-fsdp``: parameters sharded over ``fsdp`` on their model-width axis (ZeRO-3 style, one
  layer gathered at a time inside the layer scan); the video tokens are split over the same
  axis, so each device computes its share of one GOP.
* ``wan-seq``: sequence (context) parallel: parameters replicated, video tokens over
  ``context``; self-attention all-gathers K and V (queries stay split).
* ``wan-ulysses``: video tokens over ``context`` outside attention; inside attention the heads
  are split instead (all-to-all), so each device attends over the full sequence with
  heads / n heads.
* ``wan-fsdp-seq``: both: parameters over ``fsdp``, tokens over ``fsdp`` x ``context``.
* ``wan-tp``: tensor (Megatron) parallel: heads and FFN hidden over ``tensor``.
"""
from __future__ import annotations

import ml_collections

MESH_AXES = ("data", "fsdp", "context", "tensor")

# Logical names of parameter axes (the WanDiT's nnx.Param ``out_sharding`` metadata).
PARAM_NAMES = (
    "layers",       # the stacked-block axis (nnx.vmap / nnx.scan over layers)
    "embed",        # model width D
    "heads",        # q/k/v output = o input: num_heads x head_dim, fused (whole heads per shard)
    "mlp",          # MLP hidden width (block FFN, text/time/CLIP MLPs)
    "mod",          # the 6 (block) / 2 (head) modulation rows
    "time_mod",     # time_projection output, 6 x D
    "freq",         # time sinusoid width
    "text_embed",   # umT5 feature width
    "clip_embed",   # CLIP token width
    "clip_tokens",  # FLF2V's learned position table rows
    "patch_in",     # patchified input width (patch volume x in_dim)
    "patch_out",    # head output width (patch volume x out_dim)
)

# Logical names of activation axes (``gvc_jax.sharding.constrain`` inside the DiT).
ACTIVATION_NAMES = (
    "act_batch",       # the DiT's batch axis
    "act_tokens",      # video tokens (the sequence) in the residual stream, FFN, projections
    "act_embed",       # model width of activations
    "act_heads",       # fused heads x head_dim of q/k/v projection outputs
    "act_mlp",         # FFN hidden activations
    "act_text",        # context tokens (text, CLIP) of cross-attention
    "act_attn_q",      # query tokens inside the attention kernel (keys are never split)
    "act_attn_heads",  # heads inside the attention kernel
)

LOGICAL_NAMES = PARAM_NAMES + ACTIVATION_NAMES

# Logical names whose mesh size must divide the number of heads (whole heads per shard).
HEAD_NAMES = ("heads", "act_heads", "act_attn_heads")

_REPLICATED = {n: None for n in LOGICAL_NAMES}

_TABLES = {
    "wan-1gpu": dict(mesh_shape=(1, 1, 1, 1), rules={}),
    "wan-data": dict(mesh_shape=(-1, 1, 1, 1), rules={"act_batch": "data"}),
    "wan-fsdp": dict(mesh_shape=(1, -1, 1, 1),
                     rules={"embed": "fsdp", "act_tokens": "fsdp", "act_attn_q": "fsdp"}),
    "wan-seq": dict(mesh_shape=(1, 1, -1, 1),
                    rules={"act_tokens": "context", "act_attn_q": "context"}),
    "wan-ulysses": dict(mesh_shape=(1, 1, -1, 1),
                        rules={"act_tokens": "context", "act_attn_heads": "context"}),
    "wan-fsdp-seq": dict(mesh_shape=(1, 2, -1, 1),
                         rules={"embed": "fsdp", "act_tokens": ("fsdp", "context"),
                                "act_attn_q": ("fsdp", "context")}),
    "wan-tp": dict(mesh_shape=(1, 1, 1, -1),
                   rules={"heads": "tensor", "mlp": "tensor", "act_heads": "tensor",
                          "act_mlp": "tensor", "act_attn_heads": "tensor"}),
}

NAMES = tuple(_TABLES)


def get_config(arg: str = "wan-1gpu") -> ml_collections.ConfigDict:
    """The sharding config named ``arg``: ``name``, ``mesh_axes``, ``mesh_shape`` and ``rules``
    (a tuple of ``(logical name, mesh axis | tuple of mesh axes | None)`` pairs covering every
    logical name)."""
    if arg not in _TABLES:
        raise ValueError(f"unknown sharding config {arg!r}; known: {', '.join(NAMES)}")
    t = _TABLES[arg]
    rules = dict(_REPLICATED, **t["rules"])
    return ml_collections.ConfigDict(dict(
        name=arg, mesh_axes=MESH_AXES, mesh_shape=tuple(t["mesh_shape"]),
        rules=tuple((k, rules[k]) for k in LOGICAL_NAMES)))
