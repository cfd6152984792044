"""A Wan 2.1 download folder (official or diffusers layout; T2V, I2V or FLF2V) as the codec
loads it (docs/wan.md, "Loading").

* :func:`load` builds everything the codec needs: the prompt contexts first (through the
  on-disk context cache; the umT5 encoder is loaded only on a miss and released before the
  DiT is loaded), then the VAE, the DiT and, for the image models, the CLIP encoder, each
  through its family loader and the converted-weights cache. It returns a :class:`Loaded`
  whose ``module`` is the :class:`~gvc_jax.models.wan.velocity.WanVelocity` the sampler runs.
* :func:`fingerprint` gives the model fingerprint :func:`load` would return, converting and
  writing nothing: from the cache index where a component is converted already, else by a
  read-only pass over its checkpoint.
* :func:`architecture` checks the DiT's declared model type and size (``config.json`` and
  tensor headers only).
"""
from __future__ import annotations

import dataclasses
import hashlib
import time
from typing import Any, Callable

import numpy as np

from gvc_jax.models.protocol import Geometry
from gvc_jax.models.wan.velocity import WanVelocity, geometry
from gvc_jax.weights import cache as wcache, clip as wclip, dit as wdit, folder as wf
from gvc_jax.weights import t5 as wt5, vae as wvae
from gvc_jax.weights.sources import CheckpointError


def tokenizer_fingerprint(files: list[str]) -> str:
    """SHA-256 over the tokenizer files' names and contents."""
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
    module: WanVelocity
    vae: Any
    cond: dict
    fingerprint: str
    parts: dict
    geometry: Geometry
    dit_config: Any
    info: dict
    conditioner: Any = None       # I2V/FLF2V: gvc_jax.models.wan.i2v.ImageConditioner


# ------------------------------------------------------------------ architecture
def same_architecture(cfg, variant: str) -> bool:
    """The folder's DiT is the released ``variant`` (the 480p and 720p I2V models share one
    architecture, so the config's own name cannot tell them apart)."""
    from configs.wan_dit import get_config

    ref = get_config(variant)
    return all(ref[k] == cfg[k] for k in ref if k != "name")


def architecture(root: str, *, kind: str | None = None, expect: str | None = None):
    """The DiT config of the folder ``root``, checked: a ``kind`` (t2v, i2v, flf2v) model and,
    with ``expect``, the architecture of that ``configs.wan_dit`` preset. Reads the config
    files and tensor headers only; raises :class:`CheckpointError` on a mismatch."""
    wf.layout_of(root)
    cfg, _, _ = wf.dit_config(root)
    if kind is not None and cfg.model_type != kind:
        raise CheckpointError(f"{root}: the DiT is a {cfg.model_type} model, not {kind}")
    if expect is not None and not same_architecture(cfg, expect):
        raise CheckpointError(f"{root}: the DiT's config.json describes {cfg.name!r} "
                              f"(dim {cfg.dim}, {cfg.num_layers} layers), not {expect!r}")
    return cfg


# ------------------------------------------------------------------ fingerprint
def fingerprint(root: str, *, cache_dir=None, log: Callable[[str], None] | None = None,
                progress: bool = False, parts: dict | None = None) -> str:
    """The model fingerprint :func:`load` returns for the folder ``root`` (its kind read from
    the DiT's config), converting nothing and writing nothing: each converted component's
    fingerprint comes from the cache index, any other's from a read-only pass over its
    checkpoint (:func:`gvc_jax.weights.cache.fingerprint`). ``parts``, when given, receives the
    per-component fingerprints."""
    kind = architecture(root).model_type
    entries = {"umt5": wt5.cache_entry(root), "vae": wvae.cache_entry(root),
               "dit": wdit.cache_entry(root)}
    if kind != "t2v":
        entries["clip"] = wclip.cache_entry(root)
    got = {"tokenizer": tokenizer_fingerprint(wf.tokenizer_files(root))}
    for name, entry in entries.items():
        got[name] = wcache.fingerprint(entry, cache_dir=cache_dir, log=log, progress=progress)
    if parts is not None:
        parts.update(got)
    return combined_fingerprint(got, kind)


# ------------------------------------------------------------------ prompts
def text_contexts(root: str, prompts: list[str], *, seq_len: int, dtype: str, cache_dir=None,
                  log=None, progress=False) -> tuple[list[np.ndarray], str, str, dict]:
    """Prompt contexts ``[seq_len, D]`` through the context cache; returns
    ``(contexts, t5 fingerprint, tokenizer fingerprint, how umT5 was loaded)``. umT5 is loaded
    only on a miss and dropped before returning."""
    from gvc_jax.weights.prompt import PromptEncoder
    from gvc_jax.weights.tokenizer import UMT5Tokenizer

    tok_fp = tokenizer_fingerprint(wf.tokenizer_files(root))
    entry = wt5.cache_entry(root)
    t5_fp = wcache.lookup(entry.family, entry.files, cache_dir, extra=entry.extra)
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


# ------------------------------------------------------------------ the loader
def load(root: str, *, prompt: str = "", negative: str = "", guidance: float = 1.0,
         dtype: str = "float32", cache_dir=None, expect: str | None = None,
         log: Callable[[str], None] | None = None, progress: bool = False,
         kind: str = "t2v", text_len: int | None = None) -> Loaded:
    """Everything the codec needs from a Wan 2.1 folder (either layout) of model type ``kind``
    (t2v, i2v or flf2v; the image modes also load the CLIP image encoder). ``expect`` names
    the ``configs.wan_dit`` preset the DiT must match (see :func:`architecture`). ``text_len``:
    the prompt contexts' length (default the DiT config's, 512 for Wan 2.1; GVCC's T2V
    wrapper uses 226). ``dtype="fp8"`` quantises the DiT's blocks (docs/fp8.md); the text
    and image encoders and the contexts then run in bfloat16."""
    import jax.numpy as jnp

    from gvc_jax.weights.progress import base_dtype, jnp_dtype

    dit_dtype, dtype = dtype, base_dtype(dtype)
    cfg = architecture(root, kind=kind, expect=expect)
    info = {}
    t0 = time.perf_counter()
    prompts = [prompt] + ([negative] if guidance != 1.0 else [])
    ctxs, t5_fp, tok_fp, info["umt5"] = text_contexts(
        root, prompts, seq_len=text_len or cfg.text_len, dtype=dtype, cache_dir=cache_dir,
        log=log, progress=progress)
    info["text_seconds"] = time.perf_counter() - t0
    info["vae"], info["dit"] = {}, {}
    vae, vae_fp = wvae.load(root, dtype="float32", cache_dir=cache_dir, log=log,
                            progress=progress, info=info["vae"])
    dit, dit_fp = wdit.load(root, dtype=dit_dtype, cache_dir=cache_dir, log=log, progress=progress,
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
    return Loaded(WanVelocity(dit), vae, cond, combined_fingerprint(parts, kind), parts,
                  geometry(cfg, vae.z_dim), cfg, info, conditioner)
