"""Helpers around the PyTorch references of the Wan models (diffusers, official ``wan22``): their
constructor arguments for a gvc-jax config, random weights of a sensible scale, a CPU stand-in
for the official ``flash_attention``, and the relative L2 error the parity tests report
(docs/testing.md). Nothing here imports torch at module level.
"""
from __future__ import annotations

import math

import numpy as np

from gvc_jax.models.wan.dit import has_clip


def sdpa_flash_attention(q, k, v, q_lens=None, k_lens=None, dropout_p=0.0, softmax_scale=None,
                         q_scale=None, causal=False, window_size=(-1, -1), deterministic=False,
                         dtype=None, version=None):
    """The official ``flash_attention`` on [B, L, N, H] tensors, in fp32 with torch SDPA.

    Queries past ``q_lens`` come out as zeros, keys past ``k_lens`` are masked (its varlen
    semantics); no dropout, no window, as in inference.
    """
    import torch
    import torch.nn.functional as F

    assert dropout_p == 0.0 and not causal and tuple(window_size) == (-1, -1)
    out_dtype = q.dtype
    b, lq, lk = q.shape[0], q.shape[1], k.shape[1]
    if q_scale is not None:
        q = q * q_scale
    mask = None
    if k_lens is not None:
        mask = (torch.arange(lk)[None, :] < k_lens[:, None])[:, None, None, :]
    o = F.scaled_dot_product_attention(q.float().transpose(1, 2), k.float().transpose(1, 2),
                                       v.float().transpose(1, 2), attn_mask=mask,
                                       scale=softmax_scale)
    o = o.transpose(1, 2)
    if q_lens is not None:
        o = o * (torch.arange(lq)[None, :] < q_lens[:, None])[:, :, None, None]
    return o.to(out_dtype)


def randomize_(module, seed: int = 0) -> None:
    """Fills every parameter with random values of a sensible scale (no zero heads/tables)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            r = torch.randn(p.shape, generator=g, dtype=torch.float32)
            leaf = name.rsplit(".", 1)[-1]
            if "modulation" in name or "scale_shift_table" in name:
                p.copy_(r / math.sqrt(p.shape[-1]))
            elif "pos_embed" in name or "emb_pos" in name:
                p.copy_(0.5 * r)
            elif p.ndim >= 2:
                p.copy_(r / math.sqrt(math.prod(p.shape[1:])))
            elif leaf == "weight" and "norm" in name:
                p.copy_(1.0 + 0.2 * r)
            else:
                p.copy_(0.1 * r)


def diffusers_kwargs(cfg) -> dict:
    """``WanTransformer3DModel`` config equivalent to a gvc-jax DiT config."""
    kw = dict(patch_size=tuple(cfg.patch_size), num_attention_heads=cfg.num_heads,
              attention_head_dim=cfg.dim // cfg.num_heads, in_channels=cfg.in_dim,
              out_channels=cfg.out_dim, text_dim=cfg.text_dim, freq_dim=cfg.freq_dim,
              ffn_dim=cfg.ffn_dim, num_layers=cfg.num_layers, cross_attn_norm=True,
              qk_norm="rms_norm_across_heads", eps=cfg.eps, rope_max_seq_len=cfg.rope_max_len)
    if has_clip(cfg.model_type):
        kw.update(image_dim=cfg.clip_dim, added_kv_proj_dim=cfg.dim)
    if cfg.model_type == "flf2v":
        kw["pos_embed_seq_len"] = 2 * cfg.clip_len
    return kw


def wan22_kwargs(cfg) -> dict:
    """Official ``WanModel`` kwargs (t2v, or i2v without CLIP as in wan22)."""
    assert cfg.model_type in ("t2v", "i2v-noclip")
    return dict(model_type="t2v" if cfg.model_type == "t2v" else "i2v",
                patch_size=tuple(cfg.patch_size), text_len=cfg.text_len, in_dim=cfg.in_dim,
                dim=cfg.dim, ffn_dim=cfg.ffn_dim, freq_dim=cfg.freq_dim, text_dim=cfg.text_dim,
                out_dim=cfg.out_dim, num_heads=cfg.num_heads, num_layers=cfg.num_layers,
                qk_norm=True, cross_attn_norm=True, eps=cfg.eps)


def rel_l2(a, b) -> float:
    """||a - b|| / ||b|| in float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def clip_official_kwargs(cfg, tiny: bool = True) -> dict:
    """Official ``XLMRobertaCLIP`` kwargs for a ``configs.wan_clip`` config; ``tiny`` also shrinks
    the text tower (never used by Wan, present in the official file)."""
    kw = dict(image_size=cfg.image_size, patch_size=cfg.patch, vision_dim=cfg.dim,
              vision_mlp_ratio=cfg.mlp // cfg.dim, vision_heads=cfg.heads, vision_layers=cfg.layers,
              vision_pool="token", activation="gelu")
    if tiny:
        kw.update(embed_dim=16, vocab_size=50, max_text_len=20, text_dim=16, text_heads=2,
                  text_layers=1)
    return kw


def randomize_clip_norms_(module, seed: int) -> None:
    """Adds N(0, 0.3²) to every norm parameter and draws every bias from N(0, 0.1²), so that the
    default init (gains 1, biases 0) does not hide a mix-up of those tensors."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name:
                p.add_(0.3 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
