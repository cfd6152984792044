"""The codec's programs for one GOP, with abstract arguments (docs/fit.md, "What is compiled").

Every program is the function the codec jits, traced with ``ShapeDtypeStruct`` arguments that
carry their shardings, so nothing is allocated and no weight is read:

* ``dit_encode``: :func:`gvc_jax.sampler.scan.encode_gop`, the GOP encoder scan (the velocity
  model at every step and the top-M codebook search of every SDE step) with the preset's
  :class:`~gvc_jax.sampler.scan.SamplerSpec`;
* ``dit_decode``: :func:`gvc_jax.sampler.scan.decode_gop` (the encoder runs it too, to
  reconstruct each GOP);
* ``vae_encode`` / ``vae_decode``: the Wan VAE's jitted streams over one GOP
  (:mod:`gvc_jax.models.wan.vae`), in float32 as the codec loads the VAE;
* ``umt5``: the prompt encoder (once per prompt; contexts are cached);
* ``clip``: the image encoder of the anchored modes (i2v, flf2v), once per GOP.

The DiT programs are placed by a sharding table over all chips of the target
(:func:`gvc_jax.sharding.abstract_state`), the others on the first chip, as the codec does.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec, SingleDeviceSharding

from gvc_jax import sharding
from gvc_jax.fit.targets import FitError


@dataclasses.dataclass
class Program:
    """One jittable program: ``fn(*args)`` with ``static`` argument numbers."""
    name: str
    fn: Callable
    args: tuple
    static: tuple[int, ...]
    kwargs: dict
    placement: str               # "1 chip" or "<table> over <n> chips"
    runs_per_gop_encode: int     # how often one GOP's encode runs it (0: once per stream)
    runs_per_gop_decode: int
    devices: int = 1
    weights_bytes_per_chip: int = 0


@dataclasses.dataclass(frozen=True)
class ModelConfigs:
    """The architectures of a Wan codec model (ml_collections configs)."""
    dit: Any
    vae: Any
    t5: Any
    clip: Any | None


def model_configs(model: str, *, weights: str | None = None, names: dict | None = None
                  ) -> ModelConfigs:
    """Configs of codec model ``model`` (a preset's model name): from a Wan folder's own files
    when ``weights`` is given, else the released architecture the preset names; ``names``
    overrides single parts by config name (``{"dit": "tiny-t2v", "vae": "tiny", ...}``)."""
    from configs import wan_clip, wan_dit, wan_text, wan_vae
    from gvc_jax.codec.codec_model import WAN

    if model not in WAN:
        raise FitError(f"the fit compiles Wan models; {model!r} is not one "
                       f"(known: {', '.join(sorted(WAN))})")
    kind, variant = WAN[model]
    names = dict(names or {})
    if weights:
        from gvc_jax.weights import folder as wf
        from gvc_jax.weights.sources import CheckpointError
        try:
            dit = wf.dit_config(weights)[0]
            vae = wf.vae_config(*wf.vae_source(weights))
            t5 = wf.t5_config(*wf.t5_source(weights))
            clip = wf.clip_config(*wf.clip_source(weights)) if kind != "t2v" else None
        except CheckpointError as e:
            raise FitError(str(e)) from None
    else:
        if variant is None and "dit" not in names:
            raise FitError(f"config {model!r} reads its architecture from a Wan folder: pass "
                           "weights")
        dit = wan_dit.get_config(names.pop("dit", variant))
        vae = wan_vae.get_config(names.pop("vae", "wan2.1"))
        t5 = wan_text.get_config(names.pop("t5", "umt5-xxl"))
        clip = wan_clip.get_config(names.pop("clip", "vit-h-14")) if kind != "t2v" else None
    if names:
        raise FitError(f"unknown model parts {sorted(names)} (dit, vae, t5, clip)")
    if dit.model_type != kind:
        raise FitError(f"the DiT is a {dit.model_type} model, config {model!r} needs {kind}")
    return ModelConfigs(dit, vae, t5, clip)


def _anchors(mode: str) -> int:
    """Anchor frames per GOP of ``mode`` (the mode's own declaration)."""
    from gvc_jax.codec.registry import mode as mode_class
    return int(mode_class(mode).anchors_per_gop)


def _abstract(factory):
    graphdef, state = nnx.split(nnx.eval_shape(factory))
    return graphdef, state


def _per_chip_bytes(tree) -> int:
    total = 0
    for x in jax.tree.leaves(tree):
        shape = x.sharding.shard_shape(x.shape) if x.sharding is not None else x.shape
        n = 1
        for d in shape:
            n *= int(d)
        total += n * jnp.dtype(x.dtype).itemsize
    return total


def _place(tree, where):
    return sharding.abstract_replicated(tree, where)


def _sds(shape, dtype):
    return jax.ShapeDtypeStruct(tuple(int(s) for s in shape), jnp.dtype(dtype))


def gop_latent_shape(cfgs: ModelConfigs, frames: int, height: int, width: int):
    """``(coded frames, (C, T', H', W'))`` of one GOP of ``frames`` frames at WxH (padded to
    the model's geometry as the codec pads)."""
    from gvc_jax.models.wan.velocity import geometry

    geom = geometry(cfgs.dit, int(cfgs.vae.z_dim))
    coded = geom.coded_length(frames)
    h, w = geom.padded_size(height, width)
    return coded, (h, w), geom.latent_shape(coded, h, w)


def dit_programs(cfgs: ModelConfigs, params, mode: str, latent_shape, devices, shard: str | None,
                 ) -> list[Program]:
    """``dit_encode`` and ``dit_decode`` of one GOP, placed by ``shard`` over ``devices``
    (one device: unsharded)."""
    from gvc_jax.models.wan.dit import WanDiT
    from gvc_jax.models.wan.velocity import WanVelocity
    from gvc_jax.sampler import scan

    cfg, dt = cfgs.dit, jnp.dtype(params.dtype)
    graphdef, state = _abstract(lambda: WanVelocity(WanDiT(cfg, rngs=nnx.Rngs(0), dtype=dt,
                                                      param_dtype=dt)))
    if shard and len(devices) > 1:
        try:
            mesh = sharding.make_mesh(shard, devices)
            state = sharding.abstract_state(state, mesh, shard, num_heads=int(cfg.num_heads))
        except sharding.ShardingError as e:
            raise FitError(f"sharding table {shard!r}: {e}") from None
        where = NamedSharding(mesh, PartitionSpec())
        label = f"{shard} over {len(devices)} chips (mesh {dict(mesh.shape)})"
    else:
        if len(devices) > 1:
            raise FitError(f"{len(devices)} chips need a sharding table (configs/sharding.py)")
        where = SingleDeviceSharding(devices[0])
        state = _place(state, where)
        label = "1 chip"
    c, f, h, w = latent_shape
    cond = {"context": _sds((cfg.text_len, cfg.text_dim), dt)}
    if params.guidance != 1.0:
        cond["negative"] = cond["context"]
        cond["guidance"] = _sds((), jnp.float32)
    anchors = _anchors(mode)
    if anchors:
        n_clip = cfgs.clip.tokens * anchors
        cond["clip"] = _sds((n_clip, cfg.clip_dim), dt)
        cond["y"] = _sds((4 + c, f, h, w), dt)
    cond = _place(cond, where)
    x = _place(_sds(latent_shape, jnp.float32), where)
    scalar = _place(_sds((), jnp.int32), where)
    from gvc_jax.codec.codings import topm

    spec = topm.spec(params, topm.m_per_frame(params, f))
    idx = _place(_sds((spec.sde_steps, f, spec.m_max), jnp.int32), where)
    sign = _place(_sds((spec.sde_steps, f, spec.m_max), jnp.bool_), where)
    weights = _per_chip_bytes(state)
    enc = Program("dit_encode", scan.encode_gop.__wrapped__,
                  (graphdef, state, cond, x, x, scalar, scalar), (0,), {"spec": spec}, label,
                  1, 0, len(devices), weights)
    dec = Program("dit_decode", scan.decode_gop.__wrapped__,
                  (graphdef, state, cond, x, idx, sign, scalar, scalar), (0,), {"spec": spec},
                  label, 1, 1, len(devices), weights)
    return [enc, dec]


def vae_programs(cfgs: ModelConfigs, mode: str, coded: int, hw, latent_shape, device
                 ) -> list[Program]:
    """``vae_encode`` of the GOP's frames and ``vae_decode`` of its latents, on one chip.
    The anchored modes encode a second clip of the GOP's length for the conditioning."""
    from gvc_jax.models.wan import vae

    graphdef, state = _abstract(lambda: vae.WanVAEModel(cfgs.vae, rngs=nnx.Rngs(0)))
    where = SingleDeviceSharding(device)
    state = _place(state, where)
    frames = _place(_sds((1, 3, coded, *hw), jnp.float32), where)
    lat = _place(_sds((1, *latent_shape), jnp.float32), where)
    enc_runs = 2 if _anchors(mode) else 1
    return [Program("vae_encode", vae._encode_impl, (graphdef, state, frames), (0,), {},
                    "1 chip", enc_runs, enc_runs - 1),
            Program("vae_decode", vae._decode_impl, (graphdef, state, lat), (0,), {},
                    "1 chip", 1, 1)]


def _umt5_apply(graphdef):
    """The prompt encoder as :func:`gvc_jax.models.wan.t5.make_apply` builds it (the graph
    closed over: its config is not hashable)."""
    from gvc_jax.models.wan.t5 import encode_context
    return lambda state, ids, mask: encode_context(nnx.merge(graphdef, state), ids, mask)


def _clip_apply(graphdef):
    """The image encoder as :func:`gvc_jax.models.wan.clip.make_apply` builds it."""
    return lambda state, x: nnx.merge(graphdef, state)(x)


def encoder_programs(cfgs: ModelConfigs, params, mode: str, device) -> list[Program]:
    """``umt5`` (once per prompt) and, for i2v/flf2v, ``clip`` (once per GOP), on one chip, in
    the codec's compute dtype."""
    from gvc_jax.models.wan.clip import CLIPVision
    from gvc_jax.models.wan.t5 import UMT5Encoder

    where = SingleDeviceSharding(device)
    out = []
    t5 = cfgs.t5.copy_and_resolve_references()
    t5.dtype = t5.param_dtype = params.dtype
    graphdef, state = _abstract(lambda: UMT5Encoder(t5, rngs=nnx.Rngs(0)))
    tok = _place(_sds((1, cfgs.dit.text_len), jnp.int32), where)
    out.append(Program("umt5", _umt5_apply(graphdef), (_place(state, where), tok, tok), (),
                       {}, "1 chip", 0, 0))
    n = _anchors(mode)
    if n:
        clip = cfgs.clip.copy_and_resolve_references()
        clip.dtype = clip.param_dtype = params.dtype
        graphdef, state = _abstract(lambda: CLIPVision(clip, rngs=nnx.Rngs(0)))
        img = _place(_sds((n, clip.image_size, clip.image_size, 3), jnp.float32), where)
        out.append(Program("clip", _clip_apply(graphdef), (_place(state, where), img), (), {},
                           "1 chip", 1, 1))
    return out
