"""Wan 2.1 as a codec model, text-to-video and (with the image conditioning of
:mod:`gvc_jax.models.wan.i2v`) I2V and FLF2V (docs/wan.md).

:class:`WanT2V` is the velocity adapter the sampler runs: it adds the batch axis, gives the DiT
its time as ``t * 1000`` (Wan's timestep scale), passes the prompt context and, when the
conditioning carries a negative context, applies classifier-free guidance
``u = u_neg + g (u_cond - u_neg)`` in one batched forward.

:func:`load` builds everything from the folder a user downloads: the prompt contexts first
(through the on-disk context cache; the umT5 encoder is loaded only on a miss and released
before the DiT is loaded), then the VAE, the DiT and, for the image models, the CLIP encoder,
each through its family loader and the converted-weights cache.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Callable

import jax.numpy as jnp
import numpy as np
from flax import nnx

from gvc_jax.models.protocol import Geometry

GEOMETRY_VAE_STRIDE = 8


class WanT2V(nnx.Module):
    """``velocity(x [C,T,H,W], t in [0,1], cond) -> u`` over a :class:`WanDiT`.

    ``cond = {"context": [L, D]}``, plus ``"negative": [L, D]`` and ``"guidance": scalar`` for
    classifier-free guidance; for I2V/FLF2V also ``"clip": [N, D_clip]`` (CLIP tokens) and
    ``"y": [20, T, H, W]`` (mask and anchor latents, :mod:`gvc_jax.models.wan.i2v`), which both
    guidance branches share.
    """

    def __init__(self, dit):
        self.dit = dit

    def velocity(self, x_cthw, t, cond):
        t1000 = jnp.asarray(t, jnp.float32) * jnp.float32(1000.0)
        ctx, clip, y = cond["context"], cond.get("clip"), cond.get("y")
        if "negative" not in cond:
            return self.dit(x_cthw[None], t1000.reshape(1), ctx[None],
                            None if clip is None else clip[None],
                            None if y is None else y[None])[0]
        two = lambda a: None if a is None else jnp.stack([a, a])  # noqa: E731
        u = self.dit(two(x_cthw), two(t1000), jnp.stack([ctx, cond["negative"]]), two(clip),
                     two(y))
        g = jnp.asarray(cond["guidance"], jnp.float32)
        return u[1] + g * (u[0] - u[1])


def geometry(dit_cfg, z_dim: int) -> Geometry:
    patch = tuple(int(p) for p in dit_cfg.patch_size)
    if patch[0] != 1 or patch[1] != patch[2]:
        raise ValueError(f"unsupported DiT patch {patch}")
    return Geometry(frames_per_latent=4, causal=True,
                    spatial_multiple=GEOMETRY_VAE_STRIDE * patch[1],
                    spatial_stride=GEOMETRY_VAE_STRIDE, latent_channels=z_dim)


def tokenizer_fingerprint(files: list[str]) -> str:
    h = hashlib.sha256(b"umt5-tokenizer")
    for f in files:
        with open(f, "rb") as fh:
            h.update(f"{f.rsplit('/', 1)[-1]}|".encode())
            h.update(hashlib.sha256(fh.read()).digest())
    return h.hexdigest()


def combined_fingerprint(parts: dict[str, str], kind: str = "t2v") -> str:
    """The stream's model fingerprint: every input that changes the output."""
    blob = f"gvc-wan2.1-{kind}|" + "|".join(f"{k}={parts[k]}" for k in sorted(parts))
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclasses.dataclass
class Loaded:
    module: WanT2V
    vae: Any
    cond: dict
    fingerprint: str
    parts: dict
    geometry: Geometry
    dit_config: Any
    info: dict
    conditioner: Any = None       # I2V/FLF2V: gvc_jax.models.wan.i2v.ImageConditioner


def text_contexts(root: str, prompts: list[str], *, seq_len: int, dtype: str, cache_dir=None,
                  log=None, progress=False) -> tuple[list[np.ndarray], str, str, dict]:
    """Prompt contexts ``[seq_len, D]`` through the context cache; returns
    ``(contexts, t5 fingerprint, tokenizer fingerprint, how umT5 was loaded)``. umT5 is loaded only on a miss and
    dropped before returning."""
    from gvc_jax.models.wan.t5 import PromptEncoder
    from gvc_jax.models.wan.tokenizer import UMT5Tokenizer
    from gvc_jax.weights import cache as wcache, folder as wf, t5 as wt5

    tok_fp = tokenizer_fingerprint(wf.tokenizer_files(root))
    src, layout = wf.t5_source(root)
    t5_name = wf.t5_config(src, layout).name
    t5_fp = wcache.lookup("umt5", wf.t5_files(src), cache_dir, extra=t5_name)
    info = {"source": "context cache"}
    held: dict = {}

    def load_t5():
        if "model" in held:
            return held.pop("model")
        return wt5.load(root, dtype=dtype, cache_dir=cache_dir, log=log, progress=progress,
                        info=info)[0]

    if t5_fp is None:        # not converted yet: its fingerprint keys the contexts
        held["model"], t5_fp = wt5.load(root, dtype=dtype, cache_dir=cache_dir, log=log,
                                        progress=progress, info=info)
    key = hashlib.sha256(f"{t5_fp}|{tok_fp}|{dtype}|{seq_len}".encode()).hexdigest()
    encoder = PromptEncoder(load_t5, UMT5Tokenizer(root, seq_len=seq_len), key, cache_dir)
    ctxs = [encoder(p) for p in prompts]
    encoder.release()        # the text encoder leaves device memory here
    held.clear()
    info.pop("config", None)
    return ctxs, t5_fp, tok_fp, info


def _same_architecture(cfg, variant: str) -> bool:
    """The folder's DiT is the released ``variant`` (the 480p and 720p I2V models share one
    architecture, so the config's own name cannot tell them apart)."""
    from configs.wan_dit import get_config

    ref = get_config(variant)
    return all(ref[k] == cfg[k] for k in ref if k != "name")


def load(root: str, *, prompt: str = "", negative: str = "", guidance: float = 1.0,
         dtype: str = "float32", cache_dir=None, expect: str | None = None,
         log: Callable[[str], None] | None = None, progress: bool = False,
         kind: str = "t2v") -> Loaded:
    """Everything the codec needs from a Wan 2.1 folder (either layout) of model type ``kind``
    (t2v, i2v or flf2v; the image modes also load the CLIP image encoder)."""
    import time

    from gvc_jax.weights import dit as wdit, folder as wf, vae as wvae
    from gvc_jax.weights.progress import jnp_dtype
    from gvc_jax.weights.sources import CheckpointError

    wf.layout_of(root)
    cfg, _, _ = wf.dit_config(root)
    if cfg.model_type != kind:
        raise CheckpointError(f"{root}: the DiT is a {cfg.model_type} model, not {kind}")
    if expect is not None and not _same_architecture(cfg, expect):
        raise CheckpointError(f"{root}: the DiT's config.json describes {cfg.name!r} "
                              f"(dim {cfg.dim}, {cfg.num_layers} layers), not {expect!r}")
    info = {}
    t0 = time.perf_counter()
    prompts = [prompt] + ([negative] if guidance != 1.0 else [])
    ctxs, t5_fp, tok_fp, info["umt5"] = text_contexts(root, prompts, seq_len=cfg.text_len, dtype=dtype,
                                        cache_dir=cache_dir, log=log, progress=progress)
    info["text_seconds"] = time.perf_counter() - t0
    info["vae"], info["dit"] = {}, {}
    vae, vae_fp = wvae.load(root, dtype="float32", cache_dir=cache_dir, log=log,
                            progress=progress, info=info["vae"])
    dit, dit_fp = wdit.load(root, dtype=dtype, cache_dir=cache_dir, log=log, progress=progress,
                            info=info["dit"])
    for k in ("vae", "dit"):
        info[k].pop("config")
    if int(cfg.text_dim) != int(ctxs[0].shape[-1]):
        raise CheckpointError(f"{root}: the text encoder gives width {ctxs[0].shape[-1]}, the "
                              f"DiT expects {cfg.text_dim}")
    extra = 0 if kind == "t2v" else 4 + vae.z_dim     # I2V/FLF2V: mask + anchor latents
    if int(cfg.in_dim) != vae.z_dim + extra:
        raise CheckpointError(f"{root}: the VAE has {vae.z_dim} latent channels, the DiT takes "
                              f"{cfg.in_dim} input channels")
    jd = jnp_dtype(dtype)
    cond = {"context": jnp.asarray(ctxs[0], jd)}
    if guidance != 1.0:
        cond["negative"] = jnp.asarray(ctxs[1], jd)
        cond["guidance"] = jnp.asarray(guidance, jnp.float32)
    parts = {"dit": dit_fp, "vae": vae_fp, "umt5": t5_fp, "tokenizer": tok_fp}
    conditioner = None
    if kind != "t2v":
        from gvc_jax.models.wan.i2v import ImageConditioner
        from gvc_jax.weights import clip as wclip

        info["clip"] = {}
        clip, parts["clip"] = wclip.load(root, dtype=dtype, cache_dir=cache_dir, log=log,
                                         progress=progress, info=info["clip"])
        ccfg = info["clip"].pop("config")
        if int(ccfg.dim) != int(cfg.clip_dim):
            raise CheckpointError(f"{root}: the CLIP encoder gives width {ccfg.dim}, the DiT "
                                  f"expects {cfg.clip_dim}")
        if kind == "flf2v" and int(ccfg.tokens) != int(cfg.clip_len):
            raise CheckpointError(f"{root}: the CLIP encoder gives {ccfg.tokens} tokens, the "
                                  f"DiT's position table holds {cfg.clip_len}")
        conditioner = ImageConditioner(clip, vae, jd, flf=kind == "flf2v")
    return Loaded(WanT2V(dit), vae, cond, combined_fingerprint(parts, kind), parts,
                  geometry(cfg, vae.z_dim), cfg, info, conditioner)
