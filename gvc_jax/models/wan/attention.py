"""Attention for the Wan DiT: self-attention with 3-D RoPE, and text(+image) cross-attention.

Reference: ``WanSelfAttention``, ``WanCrossAttention`` and the Wan 2.1 ``WanI2VCrossAttention``
of the official code. There is no mask: the text context is zero-padded to text_len and
attended in full, as in the reference (``context_lens=None``).

The kernel follows the platform the program is built for (:mod:`gvc_jax.target`; the local
backend unless ``target.building_for`` says otherwise), see :func:`choose_implementation`:
the Pallas splash kernel on TPU, cuDNN flash attention on GPU where cuDNN takes the call,
the memory-bounded online-softmax attention of :mod:`blocked_attention` on other GPUs and
shapes, and ``jax.nn.dot_product_attention``'s XLA path on CPU. Only the CPU path materialises
the [L, S] score matrix (docs/fit.md, "Kernels").

Sharding (docs/sharding.md): projections are named logically (``embed`` in, ``heads`` out) and
activations constrained by logical names. With active rules over more than one device the
kernel runs inside ``jax.shard_map``: queries split by ``act_attn_q`` (tokens) and
``act_attn_heads``, keys and values complete in length (gathered) and split by heads only, so
every device runs the unchanged single-device kernel on its block.
"""
from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
from flax import nnx

from gvc_jax import sharding, target
from gvc_jax.target import building_for  # noqa: F401  (re-exported: attention.building_for)
from gvc_jax.models.wan import fp8 as fp8_ops
from gvc_jax.models.wan.layers import Dense, RMSNorm
from gvc_jax.models.wan.rope import apply_rope

Q_NAMES = ("act_batch", "act_attn_q", "act_attn_heads", None)
KV_NAMES = ("act_batch", None, "act_attn_heads", None)


def attention(q_blnh: jax.Array, k_bsnh: jax.Array, v_bsnh: jax.Array,
              implementation: str | None = None) -> jax.Array:
    """softmax(q k^T / sqrt(H)) v on [B, L, N, H].

    ``implementation``: None picks by the target (:func:`choose_implementation`); or one of
    :data:`IMPLEMENTATIONS`: "xla", "cudnn", "blocked" (:mod:`blocked_attention`), "mgpu" (the
    Mosaic GPU kernel for Hopper, :mod:`hopper_attention`), "pallas" (the TPU splash kernel),
    "pallas_interpret" (the Pallas kernel interpreted, for CPU tests).
    Under active sharding rules the kernel runs per device block (:func:`_sharded_attention`).
    """
    act = sharding.current()
    if act is not None and act.mesh.size > 1:
        q_spec = act.spec(Q_NAMES)
        if any(e is not None for e in q_spec):
            return _sharded_attention(act.mesh, q_spec, act.spec(KV_NAMES), q_blnh, k_bsnh,
                                      v_bsnh, implementation)
    return _local_attention(q_blnh, k_bsnh, v_bsnh, implementation)


def _pad_axis(x: jax.Array, axis: int, multiple: int) -> jax.Array:
    n = x.shape[axis]
    extra = -n % multiple
    if not extra:
        return x
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, extra)
    return jnp.pad(x, pad)


def _sharded_attention(mesh, q_spec, kv_spec, q, k, v, implementation):
    """The kernel inside ``shard_map``: q split by (batch, tokens, heads), k/v by (batch, heads)
    with their full length. Query tokens and the batch are zero-padded to the split (padded
    query rows are dropped; padded batch rows attend to zero keys, finite, and are dropped)."""
    b, lq, n, _ = q.shape
    nb, nl, nh = (sharding.axis_size(mesh, e) for e in q_spec[:3])
    if n % nh:
        raise sharding.ShardingError(f"{n} attention heads do not divide over {nh} devices "
                                     f"({q_spec[2]!r})")
    q = _pad_axis(_pad_axis(q, 0, nb), 1, nl)
    k, v = _pad_axis(k, 0, nb), _pad_axis(v, 0, nb)
    fn = jax.shard_map(lambda q1, k1, v1: _local_attention(q1, k1, v1, implementation),
                       mesh=mesh, in_specs=(q_spec, kv_spec, kv_spec), out_specs=q_spec,
                       check_vma=False)
    return fn(q, k, v)[:b, :lq]


IMPLEMENTATIONS = ("xla", "cudnn", "blocked", "mgpu", "pallas", "pallas_interpret")
HALF = (jnp.bfloat16, jnp.float16)
CUDNN_MIN_CAPABILITY = 8.0     # cuDNN's fused flash attention: Ampere (sm80) and later


def cudnn_refusal(q_shape, k_shape, v_shape, dtype, tgt: target.Target | None = None
                  ) -> str | None:
    """Why cuDNN flash attention cannot take this call on GPU target ``tgt`` (default: the
    current target), or None when it can.

    Static rules first (what jax 0.10's ``jax.nn.dot_product_attention(implementation="cudnn")``
    checks, plus the capability it leaves to the cuDNN compile): bf16/fp16 inputs, compute
    capability 8.0 or later, head dim a multiple of 8 and at most 128 (256 from sm90), equal
    q/k/v head dims. On the local GPU the real entry point is then traced abstractly and any
    ``NotImplementedError``/``ValueError``/``RuntimeError`` it raises (its refusals; "cuDNN is
    not detected." where there is no cuDNN) is the reason."""
    tgt = tgt or target.current()
    if jnp.dtype(dtype) not in [jnp.dtype(d) for d in HALF]:
        return f"cuDNN flash attention takes bf16/fp16, got {jnp.dtype(dtype).name}"
    cap = tgt.gpu_capability
    if cap is not None and cap < CUDNN_MIN_CAPABILITY:
        return f"cuDNN flash attention needs compute capability >= 8.0, the target has {cap}"
    h = q_shape[-1]
    h_max = 256 if cap is not None and cap >= 9.0 else 128
    if h % 8 or h > h_max:
        return f"cuDNN flash attention takes head dims that are multiples of 8 up to {h_max}"
    if k_shape[-1] != h or v_shape[-1] != h:
        return "cuDNN flash attention here takes equal q/k/v head dims"
    if tgt.local and jax.default_backend() == "gpu":
        return _probe_cudnn(tuple(q_shape), tuple(k_shape), tuple(v_shape), jnp.dtype(dtype).name)
    return None


@functools.lru_cache(maxsize=64)
def _probe_cudnn(q_shape, k_shape, v_shape, dtype) -> str | None:
    sds = [jax.ShapeDtypeStruct(s, dtype) for s in (q_shape, k_shape, v_shape)]
    try:
        jax.eval_shape(functools.partial(jax.nn.dot_product_attention, implementation="cudnn"),
                       *sds)
    except (NotImplementedError, ValueError, RuntimeError) as e:
        return f"cuDNN refused: {e}"
    return None


ATTENTION_ENV = "GVC_ATTENTION"


def forced_implementation() -> str | None:
    """``$GVC_ATTENTION`` (one of :data:`IMPLEMENTATIONS`) when set: every attention call that
    names no kernel uses it, e.g. ``blocked`` to run a GPU as one without cuDNN flash attention
    would. ValueError if it names no kernel."""
    forced = os.environ.get(ATTENTION_ENV)
    if forced and forced not in IMPLEMENTATIONS:
        raise ValueError(f"${ATTENTION_ENV}={forced!r} is not one of {', '.join(IMPLEMENTATIONS)}")
    return forced or None


def choose_implementation(q_blnh, k_bsnh, v_bsnh, tgt: target.Target | None = None) -> str:
    """The kernel for these inputs on ``tgt`` (default :func:`gvc_jax.target.current`):
    ``$GVC_ATTENTION`` when set (:func:`forced_implementation`); else "pallas" on TPU; on GPU
    "cudnn" unless :func:`cudnn_refusal` gives a reason, then "blocked"; "xla" on CPU."""
    forced = forced_implementation()
    if forced:
        return forced
    tgt = tgt or target.current()
    if tgt.platform == "tpu":
        return "pallas"
    if tgt.platform == "gpu":
        why = cudnn_refusal(q_blnh.shape, k_bsnh.shape, v_bsnh.shape, q_blnh.dtype, tgt)
        return "cudnn" if why is None else "blocked"
    return "xla"


def _local_attention(q_blnh, k_bsnh, v_bsnh, implementation=None):
    if implementation is None:
        implementation = choose_implementation(q_blnh, k_bsnh, v_bsnh)
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"unknown attention implementation {implementation!r}; known: "
                         f"{', '.join(IMPLEMENTATIONS)}")
    if implementation == "mgpu":
        from gvc_jax.models.wan.hopper_attention import hopper_flash_attention
        return hopper_flash_attention(q_blnh, k_bsnh, v_bsnh)
    if implementation in ("pallas", "pallas_interpret"):
        from gvc_jax.models.wan.pallas_attention import tpu_flash_attention
        return tpu_flash_attention(q_blnh, k_bsnh, v_bsnh,
                                   interpret=implementation == "pallas_interpret")
    if implementation == "blocked":
        from gvc_jax.models.wan.blocked_attention import blocked_attention
        return blocked_attention(q_blnh, k_bsnh, v_bsnh)
    return jax.nn.dot_product_attention(q_blnh, k_bsnh, v_bsnh, implementation=implementation)


TOKEN_HEADS = ("act_batch", "act_tokens", "act_heads")
TOKEN_EMBED = ("act_batch", "act_tokens", "act_embed")
TEXT_HEADS = ("act_batch", "act_text", "act_heads")
constrain = sharding.constrain


def _heads(x_bld: jax.Array, n: int) -> jax.Array:
    b, l, d = x_bld.shape
    return x_bld.reshape(b, l, n, d // n)


def _multi_device() -> bool:
    act = sharding.current()
    return act is not None and act.mesh.size > 1


class SelfAttention(nnx.Module):
    """q/k/v/o projections, RMSNorm on q and k across all heads, RoPE, attention.

    ``fp8``: e4m3 projections and, where cuDNN allows, fp8 attention
    (:mod:`gvc_jax.models.wan.fp8`)."""

    def __init__(self, dim: int, num_heads: int, eps: float, *, rngs: nnx.Rngs,
                 dtype=jnp.bfloat16, param_dtype=jnp.bfloat16, fp8: bool = False):
        self.num_heads, self.dtype, self.fp8 = num_heads, dtype, fp8
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        dense = fp8_ops.Fp8Dense if fp8 else Dense
        self.q, self.k, self.v = (dense(dim, dim, names=("embed", "heads"), **kw)
                                  for _ in range(3))
        self.o = dense(dim, dim, names=("heads", "embed"), **kw)
        self.norm_q = RMSNorm(dim, eps, rngs=rngs, name="heads")
        self.norm_k = RMSNorm(dim, eps, rngs=rngs, name="heads")

    def __call__(self, x_bld, cos_lk, sin_lk, implementation=None):
        n = self.num_heads
        proj = lambda f: constrain(f(x_bld), TOKEN_HEADS)  # noqa: E731
        q = apply_rope(_heads(self.norm_q(proj(self.q)), n), cos_lk, sin_lk)
        k = apply_rope(_heads(self.norm_k(proj(self.k)), n), cos_lk, sin_lk)
        v = _heads(proj(self.v), n)
        q, k, v = (a.astype(self.dtype) for a in (q, k, v))
        o = (fp8_ops.fp8_attention(q, k, v, lambda: attention(q, k, v, implementation),
                                   implementation, _multi_device()) if self.fp8
             else attention(q, k, v, implementation))
        b, l = x_bld.shape[:2]
        o = constrain(o.reshape(b, l, -1), TOKEN_HEADS)
        return constrain(self.o(o), TOKEN_EMBED)


class CrossAttention(nnx.Module):
    """Attention of video tokens to the text context; with ``image`` also to CLIP tokens
    through separate k_img/v_img (+ norm_k_img), the two results summed before ``o``.

    ``fp8``: e4m3 projections (:mod:`gvc_jax.models.wan.fp8`); the attention kernel itself
    stays the bf16 one (512 text and 257 image keys: a small share of the cost)."""

    def __init__(self, dim: int, num_heads: int, eps: float, image: bool, *, rngs: nnx.Rngs,
                 dtype=jnp.bfloat16, param_dtype=jnp.bfloat16, fp8: bool = False):
        self.num_heads, self.dtype = num_heads, dtype
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        dense = fp8_ops.Fp8Dense if fp8 else Dense
        self.q, self.k, self.v = (dense(dim, dim, names=("embed", "heads"), **kw)
                                  for _ in range(3))
        self.o = dense(dim, dim, names=("heads", "embed"), **kw)
        self.norm_q = RMSNorm(dim, eps, rngs=rngs, name="heads")
        self.norm_k = RMSNorm(dim, eps, rngs=rngs, name="heads")
        if image:
            self.k_img = dense(dim, dim, names=("embed", "heads"), **kw)
            self.v_img = dense(dim, dim, names=("embed", "heads"), **kw)
            self.norm_k_img = RMSNorm(dim, eps, rngs=rngs, name="heads")
        else:
            self.k_img = self.v_img = self.norm_k_img = None

    def __call__(self, x_bld, ctx_bsd, img_bsd=None, implementation=None):
        n, dt = self.num_heads, self.dtype
        q = _heads(self.norm_q(constrain(self.q(x_bld), TOKEN_HEADS)), n).astype(dt)
        k = _heads(self.norm_k(constrain(self.k(ctx_bsd), TEXT_HEADS)), n).astype(dt)
        v = _heads(constrain(self.v(ctx_bsd), TEXT_HEADS), n).astype(dt)
        o = attention(q, k, v, implementation)
        if self.k_img is not None:
            if img_bsd is None:
                raise ValueError("this model needs CLIP image tokens (clip_bld)")
            ki = _heads(self.norm_k_img(constrain(self.k_img(img_bsd), TEXT_HEADS)), n).astype(dt)
            vi = _heads(constrain(self.v_img(img_bsd), TEXT_HEADS), n).astype(dt)
            o = o + attention(q, ki, vi, implementation)
        b, l = x_bld.shape[:2]
        o = constrain(o.reshape(b, l, -1), TOKEN_HEADS)
        return constrain(self.o(o), TOKEN_EMBED)
