"""umT5 encoder (the Wan 2.1 text encoder) in Flax NNX.

Follows ``wan/modules/t5.py`` (``T5Encoder`` with ``shared_pos=False``) and
transformers' ``UMT5EncoderModel``:

* pre-norm blocks, T5 RMSNorm (variance in fp32, no mean, no bias);
* self-attention with **no** 1/sqrt(d) scaling and a learned relative-position
  bias **per layer** (umT5; T5 v1.1 shares one table);
* gated-GELU FFN ``fc2(fc1(x) * gelu_tanh(gate(x)))``;
* padded keys masked with the dtype's most negative value.

Wan then keeps the first ``seq_len`` output tokens of each prompt and pads
with zeros back to ``text_len`` (512); :func:`encode_context` does both at once.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def _dtype(name):
    return jnp.dtype(name)


def relative_buckets(lq: int, lk: int, num_buckets: int, max_distance: int,
                     bidirectional: bool = True) -> np.ndarray:
    """Bucket index ``[lq, lk]`` of each (query, key) offset ``k - q``.

    Computed in NumPy float32 with the same operation order as the PyTorch
    references so the rounding at bucket edges agrees.
    """
    rel = np.arange(lk, dtype=np.int64)[None, :] - np.arange(lq, dtype=np.int64)[:, None]
    if bidirectional:
        nb = num_buckets // 2
        out = (rel > 0).astype(np.int64) * nb
        rel = np.abs(rel)
    else:
        nb = num_buckets
        out = np.zeros_like(rel)
        rel = -np.minimum(rel, 0)
    max_exact = nb // 2
    with np.errstate(divide="ignore"):
        ratio = rel.astype(np.float32) / np.float32(max_exact)
        scaled = (np.log(ratio) / np.float32(math.log(max_distance / max_exact))
                  * np.float32(nb - max_exact)).astype(np.float32)
    large = max_exact + np.where(np.isfinite(scaled), scaled, 0).astype(np.int64)
    large = np.minimum(large, nb - 1)
    return out + np.where(rel < max_exact, rel, large)


def rms_norm(x, scale, eps):
    """T5 LayerNorm: ``x / rms(x)`` in fp32, cast to the scale's dtype."""
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + eps)
    return scale * y.astype(scale.dtype)


def gelu_tanh(x):
    """The tanh approximation of GELU (Wan's ``GELU``, HF ``gelu_new``)."""
    return jax.nn.gelu(x, approximate=True)


class T5Block(nnx.Module):
    """One umT5 encoder layer: attention with its own relative bias, then FFN."""

    def __init__(self, cfg, *, rngs: nnx.Rngs):
        d, n, f = cfg.dim, cfg.heads, cfg.ffn
        h = cfg.dim_attn // n
        pd = _dtype(cfg.param_dtype)
        nrm = nnx.initializers.normal

        def p(key, shape, std, names):
            # ``names``: logical axes (documentation only; sharding is applied by
            # gvc_jax.sharding from these names, not baked into the params).
            return nnx.Param(nrm(std)(key, shape, pd))

        self.attn_norm = nnx.Param(jnp.ones((d,), pd))
        self.q = p(rngs.params(), (d, n, h), (d * cfg.dim_attn) ** -0.5, ("embed", "heads", "kv"))
        self.k = p(rngs.params(), (d, n, h), d ** -0.5, ("embed", "heads", "kv"))
        self.v = p(rngs.params(), (d, n, h), d ** -0.5, ("embed", "heads", "kv"))
        self.o = p(rngs.params(), (n, h, d), cfg.dim_attn ** -0.5, ("heads", "kv", "embed"))
        self.rel_bias = p(rngs.params(), (cfg.buckets, n), (2 * cfg.buckets * n) ** -0.5,
                          (None, "heads"))
        self.ffn_norm = nnx.Param(jnp.ones((d,), pd))
        self.gate = p(rngs.params(), (d, f), d ** -0.5, ("embed", "mlp"))
        self.fc1 = p(rngs.params(), (d, f), d ** -0.5, ("embed", "mlp"))
        self.fc2 = p(rngs.params(), (f, d), f ** -0.5, ("mlp", "embed"))
        self.eps = cfg.eps
        self.dtype = _dtype(cfg.dtype)

    def __call__(self, x_btd, buckets_qk, keymask_bk):
        cd = self.dtype
        y = rms_norm(x_btd, self.attn_norm[...], self.eps).astype(cd)
        q = jnp.einsum("btd,dnh->btnh", y, self.q[...].astype(cd))
        k = jnp.einsum("btd,dnh->btnh", y, self.k[...].astype(cd))
        v = jnp.einsum("btd,dnh->btnh", y, self.v[...].astype(cd))
        bias_nqk = jnp.transpose(self.rel_bias[...][buckets_qk], (2, 0, 1)).astype(jnp.float32)
        logits = jnp.einsum("bqnh,bknh->bnqk", q, k).astype(jnp.float32) + bias_nqk[None]
        neg = jnp.finfo(jnp.float32).min
        logits = jnp.where(keymask_bk[:, None, None, :], logits, neg)
        w = jax.nn.softmax(logits, axis=-1).astype(cd)
        a = jnp.einsum("bnqk,bknh->bqnh", w, v)
        x_btd = x_btd + jnp.einsum("bqnh,nhd->bqd", a, self.o[...].astype(cd)).astype(x_btd.dtype)
        y = rms_norm(x_btd, self.ffn_norm[...], self.eps).astype(cd)
        hid = (jnp.einsum("btd,df->btf", y, self.fc1[...].astype(cd))
               * gelu_tanh(jnp.einsum("btd,df->btf", y, self.gate[...].astype(cd))))
        return x_btd + jnp.einsum("btf,fd->btd", hid, self.fc2[...].astype(cd)).astype(x_btd.dtype)


class UMT5Encoder(nnx.Module):
    """Token ids ``[B, L]`` + mask ``[B, L]`` -> hidden states ``[B, L, dim]``."""

    def __init__(self, cfg, *, rngs: nnx.Rngs):
        pd = _dtype(cfg.param_dtype)
        self.cfg = cfg
        self.embed = nnx.Param(nnx.initializers.normal(1.0)(rngs.params(), (cfg.vocab, cfg.dim), pd))

        @nnx.split_rngs(splits=cfg.layers)
        @nnx.vmap(in_axes=(0,), out_axes=0)
        def make(r):
            return T5Block(cfg, rngs=r)

        self.blocks = make(rngs)
        self.final_norm = nnx.Param(jnp.ones((cfg.dim,), pd))

    def __call__(self, ids_bl, mask_bl):
        cfg = self.cfg
        l = ids_bl.shape[1]
        buckets = jnp.asarray(relative_buckets(l, l, cfg.buckets, cfg.max_distance))
        keymask = mask_bl > 0
        # Residual stream in the compute dtype, as the reference (bf16 model) does.
        x = jnp.take(self.embed[...], ids_bl, axis=0).astype(_dtype(cfg.dtype))

        @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
        def run(x, block):
            return block(x, buckets, keymask)

        x = run(x, self.blocks)
        return rms_norm(x, self.final_norm[...], cfg.eps)


def encode_context(model: UMT5Encoder, ids_bl, mask_bl):
    """Wan's prompt context: encoder output with positions past each prompt's
    length zeroed (= ``u[:seq_len]`` then zero-padded to ``text_len``)."""
    out = model(ids_bl, mask_bl)
    return jnp.where((mask_bl > 0)[..., None], out, jnp.zeros((), out.dtype))


def make_apply(graphdef):
    """Plain ``jax.jit`` over ``(state, ids, mask)`` for a split model."""

    @jax.jit
    def apply(state, ids_bl, mask_bl):
        return encode_context(nnx.merge(graphdef, state), ids_bl, mask_bl)

    return apply
