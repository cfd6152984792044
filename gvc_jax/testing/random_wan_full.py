"""Full-size Wan 2.1 checkpoint folders (T2V, I2V, FLF2V) with random weights, in both layouts
(docs/testing.md). :mod:`gvc_jax.testing.random_wan` is the command line.

:func:`write_official_full` writes what a user downloads from ``Wan-AI/Wan2.1-*``::

    config.json                               WanModel's own config (save_config of the module)
    diffusion_pytorch_model.safetensors       DiT; over ``max_shard_gb`` (10 GB) it is sharded as
      or diffusion_pytorch_model-0000k-of-0000N.safetensors + ...safetensors.index.json
    Wan2.1_VAE.pth                            torch.save'd WanVAE_ state_dict, fp32
    models_t5_umt5-xxl-enc-bf16.pth           torch.save'd T5Encoder state_dict, bf16
    google/umt5-xxl/                          tokenizer (a small one trained on the fly, or a copy)
    models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth   I2V/FLF2V: the whole XLM-RoBERTa
                                              CLIP (both towers), fp16

:func:`write_diffusers_full` writes the ``*-Diffusers`` layout: ``model_index.json``,
``transformer/`` (DiT, sharded like the official one), ``vae/`` (fp32), ``text_encoder/``
(umT5, bf16, ``model*.safetensors``), ``tokenizer/``, ``scheduler/``, and for I2V/FLF2V
``image_encoder/`` (CLIP vision tower, fp16) and ``image_processor/``. Every ``config.json`` is
written by the diffusers or transformers class itself.

The I2V/FLF2V official DiT is the T2V skeleton with 36 input channels plus the image branch
(``img_emb.proj.*``, each block's ``cross_attn.{k,v}_img`` and ``norm_k_img``, and FLF2V's
``img_emb.emb_pos``), since the official ``wan22`` module has no Wan 2.1 image branch.

Parameter names and shapes come from the modules (official ``wan22``, diffusers, transformers)
built on the ``meta`` device, so nothing is allocated for the models themselves; the tensors are
streamed to disk by :mod:`gvc_jax.testing.stream_files` with values of a sane scale
(:func:`value_stats`). Peak host memory is about 1 GB whatever the model size.

Differences from the real downloads: the DiT is written in bf16 by default (the real files are
fp32; ``dit_dtype="fp32"`` writes that); the tokenizer vocabulary is tiny unless
``tokenizer_from`` points at a real ``google/umt5-xxl`` folder (the T5 embedding table keeps its
real 256384 rows either way). Values are deterministic for a given seed and device type (CPU and
CUDA generators give different streams). A DiT variant named ``tiny-*`` takes the tiny VAE, umT5
and CLIP too (for tests of this module).
"""
from __future__ import annotations

import json
import math
import os
import time

from gvc_jax.testing import random_wan_tiny as tiny
from gvc_jax.testing import stream_files as sf
from gvc_jax.testing.deps import require

_PARTS = {"dit": 1, "vae": 2, "t5": 3, "clip": 4}
VAE_BASE_DIM = {"wan2.1": 96, "tiny": 8}
DTYPES = {"bf16": "bfloat16", "fp32": "float32", "fp16": "float16"}


# ------------------------------------------------------------------ configs of a variant
def parts_of(dit: str) -> dict:
    """The DiT config name, kind and the umT5, VAE and CLIP sizes of a DiT variant."""
    from configs.wan_dit import get_config

    cfg = get_config(dit)
    small = cfg.name.startswith("tiny")
    kind = cfg.model_type
    if kind not in tiny.KINDS:
        raise ValueError(f"{dit}: a {kind} DiT has no Wan 2.1 folder layout")
    return {"dit": cfg.name, "kind": kind, "t5": "tiny" if small else "umt5-xxl",
            "vae": "tiny" if small else "wan2.1", "clip": "tiny" if small else "vit-h-14"}


def entries_of(module, drop=()) -> list[tuple[str, tuple[int, ...]]]:
    """``(name, shape)`` of every state_dict tensor, in state_dict order, less ``drop``."""
    return [(k, tuple(v.shape)) for k, v in module.state_dict().items() if k not in drop]


def _meta(build):
    import torch

    with torch.device("meta"):
        return build()


# ------------------------------------------------------------------ official skeletons
def dit_skeleton(name: str):
    """The official WanModel of ``configs.wan_dit`` config ``name`` (an image DiT: its t2v
    skeleton with 36 input channels), on the meta device."""
    from configs.wan_dit import get_config
    from gvc_jax.testing.refs import wan22_kwargs
    from gvc_jax.testing.wan22 import load_wan22

    cfg = get_config(name).copy_and_resolve_references()
    cfg.model_type = "t2v"
    mod = load_wan22("model")
    return _meta(lambda: mod.WanModel(**wan22_kwargs(cfg)))


def image_entries(name: str) -> list[tuple[str, tuple[int, ...]]]:
    """The Wan 2.1 image branch of an i2v/flf2v DiT (official names), appended to the blocks."""
    from configs.wan_dit import get_config

    cfg = get_config(name)
    if cfg.model_type == "t2v":
        return []
    d, c = cfg.dim, cfg.clip_dim
    out = []
    for i in range(cfg.num_layers):
        p = f"blocks.{i}.cross_attn."
        out += [(p + "k_img.weight", (d, d)), (p + "k_img.bias", (d,)),
                (p + "v_img.weight", (d, d)), (p + "v_img.bias", (d,)),
                (p + "norm_k_img.weight", (d,))]
    out += [("img_emb.proj.0.weight", (c,)), ("img_emb.proj.0.bias", (c,)),
            ("img_emb.proj.1.weight", (c, c)), ("img_emb.proj.1.bias", (c,)),
            ("img_emb.proj.3.weight", (d, c)), ("img_emb.proj.3.bias", (d,)),
            ("img_emb.proj.4.weight", (d,)), ("img_emb.proj.4.bias", (d,))]
    if cfg.model_type == "flf2v":
        out.append(("img_emb.emb_pos", (1, 2 * cfg.clip_len, c)))
    return out


def clip_skeleton(name: str):
    """The official XLMRobertaCLIP (both towers) of ``configs.wan_clip`` config ``name``."""
    from configs.wan_clip import get_config
    from gvc_jax.testing.refs import clip_official_kwargs
    from gvc_jax.testing.wan22 import load_wan22

    mod = load_wan22("animate.clip")
    kw = clip_official_kwargs(get_config(name), tiny=name == "tiny")
    return _meta(lambda: mod.XLMRobertaCLIP(**kw))


def vae_skeleton(name: str):
    from gvc_jax.testing.wan22 import load_wan22

    mod = load_wan22("vae2_1")
    kw = dict(tiny.VAE_KWARGS, dim=VAE_BASE_DIM[name])
    return _meta(lambda: mod.WanVAE_(**kw))


def t5_skeleton(name: str):
    from configs.wan_text import get_config
    from gvc_jax.testing.wan22 import load_wan22

    c = get_config(name)
    mod = load_wan22("t5")
    return _meta(lambda: mod.T5Encoder(vocab=c.vocab, dim=c.dim, dim_attn=c.dim_attn,
                                       dim_ffn=c.ffn, num_heads=c.heads, num_layers=c.layers,
                                       num_buckets=c.buckets, shared_pos=False, dropout=0.0))


# ------------------------------------------------------------------ random values
def value_stats(part: str, name: str, shape) -> tuple[float, float]:
    """(mean, std) of the random fill of one tensor (official or diffusers/transformers names).

    Matrices and convolutions: std 1/sqrt(fan_in) (unit-variance outputs); DiT modulation
    tables: 1/sqrt(dim); norm gains: 1 +- 0.1; biases and other vectors: 0.02; T5 embedding
    tables (tokens, relative positions): 1. The VAE decoder's last conv is scaled by 0.3 so
    decoded pixels mostly stay inside the [-1, 1] clamp.
    """
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "gamma" or ("norm" in name and leaf == "weight"):
        return 1.0, 0.1
    if "modulation" in name or "scale_shift_table" in name:
        return 0.0, 1.0 / math.sqrt(shape[-1])
    if leaf == "bias" or len(shape) < 2:
        return 0.0, 0.02
    if part == "t5" and ("embedding" in name or name == "shared.weight"
                         or "relative_attention_bias" in name):
        return 0.0, 1.0
    std = 1.0 / math.sqrt(math.prod(shape[1:]))
    if part == "vae" and name in ("decoder.head.2.weight", "decoder.conv_out.weight"):
        std *= 0.3
    return 0.0, std


def _fill(part: str, seed: int, device: str) -> sf.RandomFill:
    return sf.RandomFill(lambda n, s: value_stats(part, n, s), 1000 * seed + _PARTS[part], device)


def _device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _torch_dtype(name: str):
    import torch

    return getattr(torch, DTYPES[name])


def _tokenizer(folder: str, src: str | None) -> tuple[object, str]:
    if src:
        src = find_tokenizer(src)
        tiny.copy_tokenizer(src, folder)
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(folder), f"copied from {src}"
    tok = tiny.write_tokenizer(folder)
    return tok, f"trained on the fly, vocab {len(tok)}"


def find_tokenizer(src: str) -> str:
    """``src`` or its ``google/umt5-xxl/``, whichever holds a tokenizer."""
    for cand in (src, os.path.join(src, tiny.TOKENIZER_SUBDIR)):
        if os.path.isfile(os.path.join(cand, "tokenizer.json")) or \
                os.path.isfile(os.path.join(cand, "spiece.model")):
            return cand
    raise ValueError(f"{src}: no tokenizer.json or spiece.model there or in "
                     f"{tiny.TOKENIZER_SUBDIR}/")


class _Run:
    """Timing, logging and the byte counts of one folder."""

    def __init__(self, log):
        self.t0, self.log, self.bytes = time.time(), log or (lambda s: None), {}

    def part(self, name: str, write):
        t = time.time()
        self.bytes[name] = write()
        self.log(f"{name}: {self.bytes[name] / 1e9:.2f} GB in {time.time() - t:.1f} s")


# ------------------------------------------------------------------ official layout
def write_official_full(root: str, *, dit: str, seed: int = 0, dit_dtype: str = "bf16",
                        max_shard_gb: float = 10.0, device: str = "auto",
                        tokenizer_from: str | None = None, pth_writer: str = "stream",
                        fsync: bool = False, log=None) -> dict:
    """Writes the official layout of DiT variant ``dit`` into the existing folder ``root``;
    returns the bytes per component. ``pth_writer="memory"`` uses plain ``torch.save``
    (the reference of the streamed ``.pth`` writer)."""
    require(tiny.NEED)
    import torch

    p, dev, run = parts_of(dit), _device(device), _Run(log)
    skel = dit_skeleton(p["dit"])
    skel.save_config(root)        # config.json exactly as WanModel.save_pretrained writes it
    if p["kind"] != "t2v":        # the official image models' config.json says which they are
        path = os.path.join(root, tiny.CONFIG_FILE)
        with open(path) as f:
            conf = json.load(f)
        conf["model_type"] = p["kind"]
        with open(path, "w") as f:
            json.dump(conf, f, indent=2)
    entries = entries_of(skel) + image_entries(p["dit"])
    run.part("dit", lambda: sf.write_sharded(
        root, "diffusion_pytorch_model", entries, _torch_dtype(dit_dtype), _fill("dit", seed, dev),
        int(max_shard_gb * 1e9), fsync, run.log))

    def pth(path, entries, dtype, fill):
        if pth_writer == "memory":
            return sf.write_pth_in_memory(path, entries, dtype, fill)
        return sf.write_pth(path, entries, dtype, fill, fsync=fsync)

    run.part("vae", lambda: pth(os.path.join(root, tiny.VAE_FILE), entries_of(vae_skeleton(
        p["vae"])), torch.float32, _fill("vae", seed, dev)))
    run.part("t5", lambda: pth(os.path.join(root, tiny.T5_FILE), entries_of(t5_skeleton(
        p["t5"])), torch.bfloat16, _fill("t5", seed, dev)))
    if p["kind"] != "t2v":
        run.part("clip", lambda: pth(os.path.join(root, tiny.CLIP_FILE), entries_of(clip_skeleton(
            p["clip"])), torch.float16, _fill("clip", seed, dev)))
    _, how = _tokenizer(os.path.join(root, tiny.TOKENIZER_SUBDIR), tokenizer_from)
    run.log(f"tokenizer: {how}")
    return run.bytes


# ------------------------------------------------------------------ diffusers layout
def _hf_part(model, folder: str, dtype: str, fill, max_bytes: int, fsync: bool, log) -> int:
    """A transformers model: its config.json (as save_pretrained writes it) and
    ``model*.safetensors`` without the tied copies."""
    os.makedirs(folder, exist_ok=True)
    cfg = model.config
    cfg.architectures = [type(model).__name__]
    cfg.dtype = DTYPES[dtype]
    cfg.save_pretrained(folder)
    tied = getattr(model, "_tied_weights_keys", None) or ()
    return sf.write_sharded(folder, "model", entries_of(model, drop=set(tied)),
                            _torch_dtype(dtype), fill, max_bytes, fsync, log)


def _diffusers_part(model, folder: str, dtype: str, fill, max_bytes: int, fsync: bool,
                    log) -> int:
    """A diffusers model: its config.json and ``diffusion_pytorch_model*.safetensors``."""
    os.makedirs(folder, exist_ok=True)
    model.save_config(folder)
    return sf.write_sharded(folder, "diffusion_pytorch_model", entries_of(model),
                            _torch_dtype(dtype), fill, max_bytes, fsync, log)


def write_diffusers_full(root: str, *, dit: str, seed: int = 0, dit_dtype: str = "bf16",
                         max_shard_gb: float = 10.0, device: str = "auto",
                         tokenizer_from: str | None = None, fsync: bool = False,
                         log=None) -> dict:
    """Writes the diffusers layout of DiT variant ``dit`` into the existing folder ``root``;
    returns the bytes per component."""
    require(tiny.NEED)
    import diffusers
    from transformers import CLIPImageProcessor, CLIPVisionModel, UMT5EncoderModel

    from configs.wan_clip import get_config as clip_config
    from configs.wan_dit import get_config
    from gvc_jax.testing.refs import diffusers_kwargs

    p, dev, run = parts_of(dit), _device(device), _Run(log)
    mb = int(max_shard_gb * 1e9)
    tr = _meta(lambda: diffusers.WanTransformer3DModel(**diffusers_kwargs(get_config(p["dit"]))))
    vae = _meta(lambda: diffusers.AutoencoderKLWan(
        **tiny.diffusers_vae_kwargs(VAE_BASE_DIM[p["vae"]])))
    te = _meta(lambda: UMT5EncoderModel(tiny.hf_t5_config(p["t5"])))
    run.part("dit", lambda: _diffusers_part(tr, os.path.join(root, "transformer"), dit_dtype,
                                            _fill("dit", seed, dev), mb, fsync, run.log))
    run.part("vae", lambda: _diffusers_part(vae, os.path.join(root, "vae"), "fp32",
                                            _fill("vae", seed, dev), mb, fsync, run.log))
    run.part("t5", lambda: _hf_part(te, os.path.join(root, "text_encoder"), "bf16",
                                    _fill("t5", seed, dev), mb, fsync, run.log))
    tok, how = _tokenizer(os.path.join(root, "tokenizer"), tokenizer_from)
    run.log(f"tokenizer: {how}")
    parts = dict(tokenizer=tok, text_encoder=te, vae=vae, transformer=tr)
    if p["kind"] == "t2v":
        sched = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
        pipe = diffusers.WanPipeline(scheduler=sched, **parts)
    else:
        enc = _meta(lambda: CLIPVisionModel(tiny.hf_clip_config(p["clip"])))
        run.part("clip", lambda: _hf_part(enc, os.path.join(root, "image_encoder"), "fp16",
                                          _fill("clip", seed, dev), mb, fsync, run.log))
        size = clip_config(p["clip"]).image_size
        proc = CLIPImageProcessor(size={"shortest_edge": size},
                                  crop_size={"height": size, "width": size})
        proc.save_pretrained(os.path.join(root, "image_processor"))
        sched = diffusers.FlowMatchEulerDiscreteScheduler(shift=5.0)
        pipe = diffusers.WanImageToVideoPipeline(image_encoder=enc, image_processor=proc,
                                                 scheduler=sched, **parts)
    sched.save_pretrained(os.path.join(root, "scheduler"))
    pipe.save_config(root)        # model_index.json: the class of every component
    return run.bytes
