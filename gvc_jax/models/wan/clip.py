"""CLIP ViT-H/14 vision tower as Wan 2.1 I2V/FLF2V uses it, in Flax NNX.

Follows ``VisionTransformer`` in ``wan/modules/clip.py`` (open-clip
XLM-RoBERTa-large ViT-H/14, vision half) and transformers'
``CLIPVisionModel``:

* patch embedding without bias, class token, learned positions, a pre-norm
  LayerNorm (``pre_layrnorm`` in transformers);
* pre-norm blocks: LayerNorm (fp32, eps 1e-5) -> MHA (scaled by 1/sqrt(h),
  with biases) -> LayerNorm -> MLP with exact (erf) GELU;
* Wan reads the hidden states after block 31 of 32, with no post-norm
  (``use_31_block=True``; diffusers: ``hidden_states[-2]``), so only
  ``cfg.used_layers`` blocks exist here: ``[B, 257, 1280]`` for 224^2 input.

Input is the normalised image ``x_bhwc`` (see :mod:`clip_preprocess`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


def layer_norm(x, scale, bias, eps):
    """LayerNorm in fp32, cast back to the input dtype (Wan's ``LayerNorm``)."""
    x32 = x.astype(jnp.float32)
    mu = jnp.mean(x32, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x32 - mu), axis=-1, keepdims=True)
    y = (x32 - mu) * jax.lax.rsqrt(var + eps) * scale.astype(jnp.float32) + bias.astype(jnp.float32)
    return y.astype(x.dtype)


class CLIPBlock(nnx.Module):
    """One pre-norm ViT block."""

    def __init__(self, cfg, *, rngs: nnx.Rngs):
        d, n, m = cfg.dim, cfg.heads, cfg.mlp
        h = d // n
        pd = jnp.dtype(cfg.param_dtype)
        nrm = nnx.initializers.normal(d ** -0.5)

        def w(shape):
            return nnx.Param(nrm(rngs.params(), shape, pd))

        def zeros(shape):
            return nnx.Param(jnp.zeros(shape, pd))

        self.norm1_scale, self.norm1_bias = nnx.Param(jnp.ones((d,), pd)), zeros((d,))
        self.q, self.q_bias = w((d, n, h)), zeros((n, h))
        self.k, self.k_bias = w((d, n, h)), zeros((n, h))
        self.v, self.v_bias = w((d, n, h)), zeros((n, h))
        self.o, self.o_bias = w((n, h, d)), zeros((d,))
        self.norm2_scale, self.norm2_bias = nnx.Param(jnp.ones((d,), pd)), zeros((d,))
        self.fc1, self.fc1_bias = w((d, m)), zeros((m,))
        self.fc2, self.fc2_bias = w((m, d)), zeros((d,))
        self.eps = cfg.eps
        self.dtype = jnp.dtype(cfg.dtype)

    def __call__(self, x_btd):
        cd = self.dtype
        c = lambda p: p[...].astype(cd)  # noqa: E731
        y = layer_norm(x_btd, self.norm1_scale[...], self.norm1_bias[...], self.eps).astype(cd)
        q = jnp.einsum("btd,dnh->btnh", y, c(self.q)) + c(self.q_bias)
        k = jnp.einsum("btd,dnh->btnh", y, c(self.k)) + c(self.k_bias)
        v = jnp.einsum("btd,dnh->btnh", y, c(self.v)) + c(self.v_bias)
        logits = jnp.einsum("bqnh,bknh->bnqk", q, k).astype(jnp.float32) * (q.shape[-1] ** -0.5)
        w = jax.nn.softmax(logits, axis=-1).astype(cd)
        a = jnp.einsum("bnqk,bknh->bqnh", w, v)
        x_btd = x_btd + (jnp.einsum("bqnh,nhd->bqd", a, c(self.o)) + c(self.o_bias)).astype(x_btd.dtype)
        y = layer_norm(x_btd, self.norm2_scale[...], self.norm2_bias[...], self.eps).astype(cd)
        hid = jax.nn.gelu(jnp.einsum("btd,dm->btm", y, c(self.fc1)) + c(self.fc1_bias), approximate=False)
        out = jnp.einsum("btm,md->btd", hid, c(self.fc2)) + c(self.fc2_bias)
        return x_btd + out.astype(x_btd.dtype)


class CLIPVision(nnx.Module):
    """Normalised images ``[B, H, W, 3]`` -> tokens ``[B, 1 + (H/p)(W/p), dim]``."""

    def __init__(self, cfg, *, rngs: nnx.Rngs):
        d, p = cfg.dim, cfg.patch
        pd = jnp.dtype(cfg.param_dtype)
        self.cfg = cfg
        nrm = nnx.initializers.normal(d ** -0.5)
        self.patch_embed = nnx.Param(nrm(rngs.params(), (p, p, 3, d), pd))  # conv kernel [kh, kw, c, d]
        self.cls = nnx.Param(nrm(rngs.params(), (d,), pd))
        self.pos = nnx.Param(nrm(rngs.params(), (cfg.tokens, d), pd))
        self.pre_norm_scale = nnx.Param(jnp.ones((d,), pd))
        self.pre_norm_bias = nnx.Param(jnp.zeros((d,), pd))

        @nnx.split_rngs(splits=cfg.used_layers)
        @nnx.vmap(in_axes=(0,), out_axes=0)
        def make(r):
            return CLIPBlock(cfg, rngs=r)

        self.blocks = make(rngs)

    def __call__(self, x_bhwc):
        cfg = self.cfg
        cd = jnp.dtype(cfg.dtype)
        p = cfg.patch
        b, hh, ww, _ = x_bhwc.shape
        gh, gw = hh // p, ww // p
        patches = x_bhwc.astype(cd).reshape(b, gh, p, gw, p, 3).transpose(0, 1, 3, 2, 4, 5)
        patches = patches.reshape(b, gh * gw, p * p * 3)
        x = jnp.einsum("bpk,kd->bpd", patches, self.patch_embed[...].reshape(p * p * 3, cfg.dim).astype(cd))
        cls = jnp.broadcast_to(self.cls[...].astype(cd), (b, 1, cfg.dim))
        x = jnp.concatenate([cls, x], axis=1) + self.pos[...].astype(cd)[None]
        x = layer_norm(x, self.pre_norm_scale[...], self.pre_norm_bias[...], cfg.eps)

        @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
        def run(x, block):
            return block(x)

        return run(x, self.blocks)


def make_apply(graphdef):
    """Plain ``jax.jit`` over ``(state, x_bhwc)`` for a split model."""

    @jax.jit
    def apply(state, x_bhwc):
        return nnx.merge(graphdef, state)(x_bhwc)

    return apply
