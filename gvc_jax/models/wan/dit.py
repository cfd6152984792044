"""The Wan 2.1 diffusion transformer (DiT) in Flax NNX.

Reference: ``WanModel``/``WanAttentionBlock``/``Head`` of the official ``wan/modules/model.py``
(t2v; the Wan 2.1 i2v/flf2v image branch: ``MLPProj`` + ``WanI2VCrossAttention``), and
diffusers' ``WanTransformer3DModel``. Numerics follow the official code under bf16 autocast:
matmuls and attention in ``dtype`` (bf16 by default), while the residual stream, the time
embedding, the modulation, the norms, RoPE and the output head run in fp32.

The ``num_layers`` blocks are one stacked module (built with ``nnx.vmap``) run by ``nnx.scan``.

Sharding (docs/sharding.md): every parameter axis has a logical name (the stacked axis is
``layers``) and the residual stream, projections and FFN hidden are constrained by logical
names; a rules table maps them to mesh axes. Without active rules nothing changes.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from gvc_jax import sharding
from gvc_jax.models.wan.attention import TOKEN_EMBED, CrossAttention, SelfAttention
from gvc_jax.models.wan.fp8 import Fp8Dense
from gvc_jax.models.wan.layers import (MLP, Dense, ImageEmbedding, LayerNorm, layer_norm,
                                       named_param)
from gvc_jax.models.wan.rope import rope_tables, sinusoid

F32 = jnp.float32
LAYERS = {nnx.PARTITION_NAME: "layers"}  # the stacked blocks' leading axis, logically named
constrain = sharding.constrain
TEXT_EMBED = ("act_batch", "act_text", "act_embed")


def _modulation(rngs: nnx.Rngs, n: int, dim: int) -> nnx.Param:
    return named_param(jax.random.normal(rngs.params(), (n, dim), F32) / math.sqrt(dim),
                       ("mod", "embed"))


def has_clip(model_type: str) -> bool:
    return model_type in ("i2v", "flf2v")


class Block(nnx.Module):
    """One transformer block: modulated self-attn, (affine-normed) cross-attn, modulated FFN.

    ``fp8``: the attention projections and the FFN in e4m3, self-attention in fp8 where cuDNN
    allows (:mod:`gvc_jax.models.wan.fp8`, docs/fp8.md)."""

    def __init__(self, cfg, *, rngs: nnx.Rngs, dtype=jnp.bfloat16, param_dtype=jnp.bfloat16,
                 fp8: bool = False):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.eps = cfg.eps
        self.self_attn = SelfAttention(cfg.dim, cfg.num_heads, cfg.eps, fp8=fp8, **kw)
        self.norm3 = LayerNorm(cfg.dim, cfg.eps, rngs=rngs, name="embed")
        self.cross_attn = CrossAttention(cfg.dim, cfg.num_heads, cfg.eps,
                                         has_clip(cfg.model_type), fp8=fp8, **kw)
        self.ffn = MLP(cfg.dim, cfg.ffn_dim, cfg.dim, "gelu_tanh", names=("embed", "mlp", "embed"),
                       hidden_act=("act_batch", "act_tokens", "act_mlp"),
                       dense=Fp8Dense if fp8 else None, **kw)
        self.modulation = _modulation(rngs, 6, cfg.dim)
        self.dtype = dtype

    def __call__(self, x_bld, e_b6d, ctx_bsd, img_bsd, cos_lk, sin_lk, implementation=None):
        x_bld = constrain(x_bld, TOKEN_EMBED)
        m = self.modulation[...][None] + e_b6d  # [B, 6, D] fp32
        shift_a, scale_a, gate_a, shift_f, scale_f, gate_f = (m[:, i, None, :] for i in range(6))
        h = layer_norm(x_bld, self.eps) * (1 + scale_a) + shift_a
        y = self.self_attn(h.astype(self.dtype), cos_lk, sin_lk, implementation)
        x = x_bld + y.astype(F32) * gate_a
        y = self.cross_attn(self.norm3(x).astype(self.dtype), ctx_bsd, img_bsd, implementation)
        x = x + y.astype(F32)
        h = layer_norm(x, self.eps) * (1 + scale_f) + shift_f
        y = self.ffn(h.astype(self.dtype))
        return constrain(x + y.astype(F32) * gate_f, TOKEN_EMBED)


class Head(nnx.Module):
    """Final modulated LayerNorm + Linear to out_dim * prod(patch), in fp32 as the reference."""

    def __init__(self, dim: int, d_out: int, eps: float, *, rngs: nnx.Rngs,
                 param_dtype=jnp.bfloat16):
        self.eps = eps
        self.head = Dense(dim, d_out, rngs=rngs, dtype=F32, param_dtype=param_dtype,
                          names=("embed", "patch_out"))
        self.modulation = _modulation(rngs, 2, dim)

    def __call__(self, x_bld, e_bd):
        m = self.modulation[...][None] + e_bd[:, None, :]  # [B, 2, D]
        shift, scale = m[:, 0, None, :], m[:, 1, None, :]
        return self.head(layer_norm(x_bld, self.eps) * (1 + scale) + shift)


class WanDiT(nnx.Module):
    """Wan 2.1 DiT: ``u = model(x, t, context, clip, y)`` (velocity, fp32).

    ``fp8``: the blocks' linear layers hold e4m3 kernels with per-output-channel scales and
    compute in fp8 (:class:`~gvc_jax.models.wan.fp8.Fp8Dense`); ``dtype`` stays the compute
    dtype of everything else (bf16 in the codec's fp8 mode)."""

    def __init__(self, cfg, *, rngs: nnx.Rngs, dtype=jnp.bfloat16, param_dtype=jnp.bfloat16,
                 fp8: bool = False):
        self.model_type = cfg.model_type
        self.fp8 = fp8
        self.patch = tuple(int(p) for p in cfg.patch_size)
        self.dim, self.out_dim, self.num_heads = cfg.dim, cfg.out_dim, cfg.num_heads
        self.in_dim, self.freq_dim, self.theta = cfg.in_dim, cfg.freq_dim, float(cfg.rope_theta)
        self.dtype = dtype
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.patch_embedding = Dense(math.prod(self.patch) * cfg.in_dim, cfg.dim,
                                     names=("patch_in", "embed"), **kw)
        self.text_embedding = MLP(cfg.text_dim, cfg.dim, cfg.dim, "gelu_tanh",
                                  names=("text_embed", "mlp", "embed"),
                                  hidden_act=("act_batch", "act_text", "act_mlp"), **kw)
        self.time_embedding = MLP(cfg.freq_dim, cfg.dim, cfg.dim, "silu", rngs=rngs,
                                  dtype=F32, param_dtype=F32, names=("freq", "mlp", "embed"))
        self.time_projection = Dense(cfg.dim, 6 * cfg.dim, rngs=rngs, dtype=F32, param_dtype=F32,
                                     names=("embed", "time_mod"))
        if has_clip(cfg.model_type):
            n_pos = 2 * cfg.clip_len if cfg.model_type == "flf2v" else None
            self.img_emb = ImageEmbedding(cfg.clip_dim, cfg.dim, n_pos, **kw)
        else:
            self.img_emb = None

        @nnx.split_rngs(splits=cfg.num_layers)
        @nnx.vmap(in_axes=(0,), out_axes=0, transform_metadata=LAYERS)
        def make_blocks(r):
            return Block(cfg, rngs=r, dtype=dtype, param_dtype=param_dtype, fp8=fp8)

        self.blocks = make_blocks(rngs)
        self.head = Head(cfg.dim, math.prod(self.patch) * cfg.out_dim, cfg.eps, rngs=rngs,
                         param_dtype=param_dtype)

    # ------------------------------------------------------------------ pieces
    def patchify(self, x_bcthw: jax.Array) -> tuple[jax.Array, tuple[int, int, int]]:
        """[B, C, T, H, W] -> tokens [B, T'H'W', pt*ph*pw*C] in (f, h, w) order."""
        b, c, t, h, w = x_bcthw.shape
        pt, ph, pw = self.patch
        g = (t // pt, h // ph, w // pw)
        x = x_bcthw.reshape(b, c, g[0], pt, g[1], ph, g[2], pw)
        x = jnp.einsum("bcfphqwr->bfhwpqrc", x)
        return x.reshape(b, g[0] * g[1] * g[2], pt * ph * pw * c), g

    def unpatchify(self, x_blk: jax.Array, g: tuple[int, int, int]) -> jax.Array:
        b = x_blk.shape[0]
        pt, ph, pw = self.patch
        x = x_blk.reshape(b, *g, pt, ph, pw, self.out_dim)
        x = jnp.einsum("bfhwpqrc->bcfphqwr", x)
        return x.reshape(b, self.out_dim, g[0] * pt, g[1] * ph, g[2] * pw)

    def time_embed(self, t_b: jax.Array) -> tuple[jax.Array, jax.Array]:
        """e [B, D] and the 6 block modulation vectors e0 [B, 6, D], fp32."""
        e = self.time_embedding(sinusoid(t_b, self.freq_dim))
        e0 = self.time_projection(jax.nn.silu(e))
        return e, e0.reshape(e0.shape[0], 6, self.dim)

    # ------------------------------------------------------------------ forward
    def __call__(self, x_bcthw: jax.Array, t_b: jax.Array, context_bld: jax.Array,
                 clip_bld: jax.Array | None = None, y_bcthw: jax.Array | None = None,
                 *, implementation: str | None = None) -> jax.Array:
        """Velocity for latents ``x`` at times ``t`` (0..1000).

        Args:
          x_bcthw: noisy latents [B, 16, T, H, W].
          t_b: timesteps [B] (or a scalar).
          context_bld: umT5 features [B, text_len, text_dim], zero-padded.
          clip_bld: i2v: CLIP tokens [B, 257, 1280]; flf2v: [B, 514, 1280] = first-frame tokens
            then last-frame tokens.
          y_bcthw: i2v/flf2v conditioning (mask 4 + image latent 16), concatenated on channels.
        Returns: u [B, out_dim, T, H, W] in fp32.

        Sharding rules are active while this runs when they are (``gvc_jax.sharding.activate``)
        or when the params carry them (a state placed by ``gvc_jax.sharding.shard_model``).
        """
        with sharding.model_rules(self):
            return self._forward(x_bcthw, t_b, context_bld, clip_bld, y_bcthw, implementation)

    def _forward(self, x_bcthw, t_b, context_bld, clip_bld, y_bcthw, implementation):
        if y_bcthw is not None:
            x_bcthw = jnp.concatenate([x_bcthw, y_bcthw.astype(x_bcthw.dtype)], axis=1)
        if x_bcthw.shape[1] != self.in_dim:
            raise ValueError(f"input has {x_bcthw.shape[1]} channels, model expects {self.in_dim}")
        b = x_bcthw.shape[0]
        t_b = jnp.broadcast_to(jnp.asarray(t_b, F32).reshape(-1), (b,))
        tok, g = self.patchify(x_bcthw)
        x = constrain(self.patch_embedding(tok).astype(F32), TOKEN_EMBED)
        cos, sin = rope_tables(g, self.dim // self.num_heads, self.theta)
        cos, sin = (constrain(a, ("act_tokens", None)) for a in (cos, sin))
        e, e0 = self.time_embed(t_b)
        ctx = constrain(self.text_embedding(context_bld), TEXT_EMBED)
        img = None
        if self.img_emb is not None:
            if clip_bld is None:
                raise ValueError(f"{self.model_type} model needs clip_bld")
            img = constrain(self.img_emb(clip_bld).astype(self.dtype), TEXT_EMBED)

        @nnx.scan(in_axes=(nnx.Carry, 0, None, None, None, None, None), out_axes=nnx.Carry,
                  transform_metadata=LAYERS)
        def run(x, block, e0, ctx, img, cos, sin):
            return block(x, e0, ctx, img, cos, sin, implementation)

        x = run(x, self.blocks, e0, ctx, img, cos, sin)
        return self.unpatchify(self.head(x, e), g).astype(F32)


def make_forward():
    """A plain ``jax.jit`` forward over ``(graphdef, state, ...)``."""

    @jax.jit
    def forward(graphdef, state, x_bcthw, t_b, context_bld, clip_bld=None, y_bcthw=None):
        model = nnx.merge(graphdef, state)
        return model(x_bcthw, t_b, context_bld, clip_bld, y_bcthw)

    return forward
