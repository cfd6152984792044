"""Tiny Wan 2.1 checkpoint folders (T2V, I2V, FLF2V) with random weights, laid out as a user
downloads them (docs/testing.md). :mod:`gvc_jax.testing.random_wan` is the command line.

* :func:`write_official_folder`: the ``Wan-AI/Wan2.1-*`` layout::

      config.json                            WanModel's config (``"model_type"``: t2v, i2v, flf2v)
      diffusion_pytorch_model.safetensors    official WanModel state, fp32
      Wan2.1_VAE.pth                         torch.save(WanVAE_.state_dict()), fp32
      models_t5_umt5-xxl-enc-bf16.pth        torch.save(T5Encoder.state_dict()), bf16
      google/umt5-xxl/                       tokenizer.json, tokenizer_config.json, spiece.model
      models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth
                                             i2v/flf2v: official XLMRobertaCLIP state (both towers)

* :func:`write_diffusers_folder`: the ``*-Diffusers`` layout, written by
  ``WanPipeline.save_pretrained`` (t2v) or ``WanImageToVideoPipeline.save_pretrained``
  (i2v/flf2v: also ``image_encoder/`` and ``image_processor/``), all fp32.

Sizes are tiny (DiT ``configs.wan_dit`` "tiny-t2v"/"tiny-i2v"/"tiny-flf2v", VAE
``configs.wan_vae`` "tiny", umT5 ``configs.wan_text`` "tiny", CLIP ``configs.wan_clip`` "tiny",
a 96-piece sentencepiece vocabulary trained on the fly), so a folder is written in about a second
on one CPU core and needs no network.

Weights are a deterministic function of ``seed`` and differ between seeds. For one seed and kind
the two layouts hold the *same* weights: the diffusers tensors are the official ones renamed
(diffusers' own single-file renaming for the DiT and VAE, the transformers umT5 names for the text
encoder, whose values are the bf16 official ones widened to fp32, the transformers CLIP names for
the vision tower). Converted to gvc-jax params, both layouts give the same arrays and
fingerprints. The official ``WanModel`` of ``wan22`` has no Wan 2.1 image branch, so the i2v and
flf2v DiT is built as diffusers' ``WanTransformer3DModel`` and written under the official key
names, found by running diffusers' official->diffusers renaming on the official key list.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil

from gvc_jax.testing.deps import require

KINDS = ("t2v", "i2v", "flf2v")
DIT_CONFIGS = {"t2v": "tiny-t2v", "i2v": "tiny-i2v", "flf2v": "tiny-flf2v"}
DIT_CONFIG = DIT_CONFIGS["t2v"]
VAE_CONFIG = "tiny"
T5_CONFIG = "tiny"
CLIP_CONFIG = "tiny"
TOKENIZER_VOCAB = 96

CONFIG_FILE = "config.json"
DIT_FILE = "diffusion_pytorch_model.safetensors"
VAE_FILE = "Wan2.1_VAE.pth"
T5_FILE = "models_t5_umt5-xxl-enc-bf16.pth"
CLIP_FILE = "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"
TOKENIZER_SUBDIR = os.path.join("google", "umt5-xxl")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "spiece.model")
OFFICIAL_FILES = (CONFIG_FILE, DIT_FILE, VAE_FILE, T5_FILE,
                  *(os.path.join(TOKENIZER_SUBDIR, f) for f in TOKENIZER_FILES))
DIFFUSERS_SUBFOLDERS = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")
DIFFUSERS_FILES = ("model_index.json",
                   "transformer/config.json", "transformer/diffusion_pytorch_model.safetensors",
                   "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
                   "text_encoder/config.json", "text_encoder/model.safetensors",
                   "tokenizer/tokenizer.json", "tokenizer/tokenizer_config.json",
                   "tokenizer/spiece.model", "scheduler/scheduler_config.json")

# The official WanVAE_ arguments of the tiny VAE (configs.wan_vae "tiny": base dim 8).
VAE_KWARGS = dict(dim=8, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                  temperal_downsample=[False, True, True], dropout=0.0)

# Prompts the tokenizer is trained on (made up).
_CORPUS = (
    "a red fox runs across a snowy field at dawn",
    "two people walk along the beach while waves roll in",
    "close-up of rain drops falling on a window, soft light",
    "a drone shot over green hills and a winding river",
    "the city at night: cars, neon signs and busy streets!",
    "an old man plays the violin in a quiet room (slow motion)",
    "Zebras, llamas & ducks 123 over the hills; 4K, 60 fps.",
    "A cat jumps onto the kitchen table and knocks over a cup.",
    "timelapse of clouds moving quickly over a mountain peak",
    "children playing football in a park, sunny afternoon",
)

# Sub-seeds: one stream per component, distinct for every (seed, component).
_PARTS = {"dit": 1, "vae": 2, "t5": 3}
NEED = "random Wan folders need"


def _sub_seed(seed: int, part: str) -> int:
    return 1000 * int(seed) + _PARTS[part]


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")


@contextlib.contextmanager
def _torch_seed(seed: int):
    """Seeds torch's global CPU generator (module init draws from it) and restores it after."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# ------------------------------------------------------------------ tokenizer
def sentencepiece_model(vocab_size: int = TOKENIZER_VOCAB) -> bytes:
    """A unigram sentencepiece model trained on :data:`_CORPUS` (pad 0, eos 1, unk 2, no bos),
    the id layout of umT5. Deterministic (single thread)."""
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_CORPUS * 10), model_writer=buf, vocab_size=vocab_size,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0,
        num_threads=1, minloglevel=2)
    return buf.getvalue()


def write_tokenizer(folder: str, vocab_size: int = TOKENIZER_VOCAB):
    """Writes a HF T5 tokenizer folder (``tokenizer.json``, ``tokenizer_config.json``,
    ``spiece.model``) and returns the loaded tokenizer."""
    from transformers import T5Tokenizer

    os.makedirs(folder, exist_ok=True)
    sp = os.path.join(folder, "spiece.model")
    with open(sp, "wb") as f:
        f.write(sentencepiece_model(vocab_size))
    tok = T5Tokenizer.from_pretrained(folder, extra_ids=0)
    tok.save_pretrained(folder)
    return tok


def copy_tokenizer(src: str, dst: str) -> None:
    """Copies the files of a tokenizer folder (e.g. a real ``google/umt5-xxl``)."""
    os.makedirs(dst, exist_ok=True)
    for name in sorted(os.listdir(src)):
        if os.path.isfile(os.path.join(src, name)):
            shutil.copy(os.path.join(src, name), os.path.join(dst, name))


# ------------------------------------------------------------------ official models
def official_dit(seed: int = 0, dit: str = DIT_CONFIG):
    """The official ``WanModel`` of ``configs.wan_dit.get_config(dit)`` (t2v), randomised."""
    from configs.wan_dit import get_config
    from gvc_jax.testing.refs import randomize_, wan22_kwargs
    from gvc_jax.testing.wan22 import load_wan22

    mod = load_wan22("model")
    with _torch_seed(_sub_seed(seed, "dit")):
        model = mod.WanModel(**wan22_kwargs(get_config(dit))).eval()
    randomize_(model, _sub_seed(seed, "dit"))
    return model


def randomize_vae_(module, seed: int) -> None:
    """Gains ~1, small biases, attention projections random, and the decoder's last conv scaled
    by 0.3 so few outputs hit the [-1, 1] clamp."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("gamma"):
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("proj.weight"):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            if name in ("decoder.conv_out.weight", "decoder.head.2.weight"):
                p.mul_(0.3)


def official_vae(seed: int = 0):
    """The official ``WanVAE_`` at the tiny size, randomised."""
    from gvc_jax.testing.wan22 import load_wan22

    mod = load_wan22("vae2_1")
    with _torch_seed(_sub_seed(seed, "vae")):
        model = mod.WanVAE_(**VAE_KWARGS).eval()
    randomize_vae_(model, _sub_seed(seed, "vae"))
    return model


def official_t5(seed: int = 0):
    """The official ``T5Encoder`` at ``configs.wan_text`` "tiny", randomised (init draws +
    random norm gains), rounded to bf16 values."""
    import torch

    from configs.wan_text import get_config
    from gvc_jax.testing.wan22 import load_wan22

    cfg = get_config(T5_CONFIG)
    mod = load_wan22("t5")
    with _torch_seed(_sub_seed(seed, "t5")):
        enc = mod.T5Encoder(vocab=cfg.vocab, dim=cfg.dim, dim_attn=cfg.dim_attn, dim_ffn=cfg.ffn,
                            num_heads=cfg.heads, num_layers=cfg.layers, num_buckets=cfg.buckets,
                            shared_pos=False, dropout=0.0).eval()
    g = torch.Generator().manual_seed(_sub_seed(seed, "t5"))
    with torch.no_grad():
        for name, p in enc.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))
            p.copy_(p.to(torch.bfloat16).float())  # what the bf16 file holds
    return enc


def official_clip(seed: int):
    """The official ``XLMRobertaCLIP`` at ``configs.wan_clip`` "tiny", randomised."""
    from configs.wan_clip import get_config
    from gvc_jax.testing.refs import clip_official_kwargs, randomize_clip_norms_
    from gvc_jax.testing.wan22 import load_wan22

    clip_mod = load_wan22("animate.clip")
    with _torch_seed(1000 * seed + 5):
        model = clip_mod.XLMRobertaCLIP(**clip_official_kwargs(get_config(CLIP_CONFIG))).eval()
    randomize_clip_norms_(model.visual, 1000 * seed + 6)
    return model


# ------------------------------------------------------------------ diffusers models
_T5_HF_NAMES = {
    "norm1.weight": "layer.0.layer_norm.weight",
    "attn.q.weight": "layer.0.SelfAttention.q.weight",
    "attn.k.weight": "layer.0.SelfAttention.k.weight",
    "attn.v.weight": "layer.0.SelfAttention.v.weight",
    "attn.o.weight": "layer.0.SelfAttention.o.weight",
    "pos_embedding.embedding.weight": "layer.0.SelfAttention.relative_attention_bias.weight",
    "norm2.weight": "layer.1.layer_norm.weight",
    "ffn.gate.0.weight": "layer.1.DenseReluDense.wi_0.weight",  # gelu branch
    "ffn.fc1.weight": "layer.1.DenseReluDense.wi_1.weight",
    "ffn.fc2.weight": "layer.1.DenseReluDense.wo.weight",
}


def diffusers_vae_kwargs(base_dim: int) -> dict:
    """``AutoencoderKLWan`` arguments of the Wan 2.1 VAE with base width ``base_dim``."""
    kw = {k: v for k, v in VAE_KWARGS.items() if k not in ("dim", "attn_scales", "dropout")}
    return dict(base_dim=base_dim, **kw)


def hf_t5_config(name: str):
    """transformers ``UMT5Config`` of the encoder ``configs.wan_text.get_config(name)``."""
    from transformers import UMT5Config

    from configs.wan_text import get_config

    cfg = get_config(name)
    return UMT5Config(vocab_size=cfg.vocab, d_model=cfg.dim, d_kv=cfg.dim_attn // cfg.heads,
                      d_ff=cfg.ffn, num_layers=cfg.layers, num_heads=cfg.heads,
                      relative_attention_num_buckets=cfg.buckets,
                      relative_attention_max_distance=cfg.max_distance,
                      feed_forward_proj="gated-gelu", dropout_rate=0.0)


def hf_clip_config(name: str):
    """transformers ``CLIPVisionConfig`` of the tower ``configs.wan_clip.get_config(name)``."""
    from transformers import CLIPVisionConfig

    from configs.wan_clip import get_config

    cfg = get_config(name)
    return CLIPVisionConfig(hidden_size=cfg.dim, intermediate_size=cfg.mlp,
                            num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads,
                            image_size=cfg.image_size, patch_size=cfg.patch, hidden_act="gelu",
                            layer_norm_eps=cfg.eps)


def t5_official_to_hf(sd: dict) -> dict:
    """Official ``T5Encoder`` state -> transformers ``UMT5EncoderModel`` state."""
    out = {}
    for k, v in sd.items():
        if k == "token_embedding.weight":
            out["shared.weight"] = v
            out["encoder.embed_tokens.weight"] = v
        elif k == "norm.weight":
            out["encoder.final_layer_norm.weight"] = v
        else:
            _, i, rest = k.split(".", 2)
            out[f"encoder.block.{i}.{_T5_HF_NAMES[rest]}"] = v
    return out


def diffusers_transformer(seed: int = 0, kind: str = "t2v"):
    """``WanTransformer3DModel`` of the tiny ``kind``: for t2v it holds the weights of
    :func:`official_dit` (same seed); for i2v/flf2v it is randomised itself."""
    from diffusers import WanTransformer3DModel

    from configs.wan_dit import get_config
    from gvc_jax.testing.refs import diffusers_kwargs, randomize_

    cfg = get_config(DIT_CONFIGS[kind])
    if kind == "t2v":
        from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

        sd = convert_wan_transformer_to_diffusers(dict(official_dit(seed).state_dict()))
        model = WanTransformer3DModel(**diffusers_kwargs(cfg)).eval()
        model.load_state_dict(sd, strict=True)
        return model
    with _torch_seed(_sub_seed(seed, "dit")):
        model = WanTransformer3DModel(**diffusers_kwargs(cfg)).eval()
    randomize_(model, _sub_seed(seed, "dit") + 7)
    return model


def official_dit_state(model, kind: str) -> dict:
    """An i2v/flf2v diffusers transformer's tensors under the official ``WanModel`` key names."""
    import torch
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    from configs.wan_dit import get_config

    cfg = get_config(DIT_CONFIGS[kind])
    keys = list(official_dit(0).state_dict())          # the t2v keys of the same size
    for i in range(cfg.num_layers):
        p = f"blocks.{i}.cross_attn."
        keys += [p + "k_img.weight", p + "k_img.bias", p + "v_img.weight", p + "v_img.bias",
                 p + "norm_k_img.weight"]
    for j in (0, 1, 3, 4):
        keys += [f"img_emb.proj.{j}.weight", f"img_emb.proj.{j}.bias"]
    if kind == "flf2v":
        keys.append("img_emb.emb_pos")
    tagged = {k: torch.tensor([float(n)]) for n, k in enumerate(keys)}
    renamed = convert_wan_transformer_to_diffusers(dict(tagged))
    if "img_emb.emb_pos" in renamed:        # diffusers' renaming leaves this one out
        renamed["condition_embedder.image_embedder.pos_embed"] = renamed.pop("img_emb.emb_pos")
    to_official = {new: keys[int(v.item())] for new, v in renamed.items()}
    sd = model.state_dict()
    if set(to_official) != set(sd):
        raise AssertionError(f"key mismatch: {sorted(set(to_official) ^ set(sd))[:6]}")
    return {to_official[k]: v.detach().clone().contiguous() for k, v in sd.items()}


def diffusers_vae(seed: int = 0):
    """``AutoencoderKLWan`` holding the weights of :func:`official_vae` (same seed)."""
    from diffusers import AutoencoderKLWan
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    model = AutoencoderKLWan(**diffusers_vae_kwargs(VAE_KWARGS["dim"])).eval()
    model.load_state_dict(convert_wan_vae_to_diffusers(dict(official_vae(seed).state_dict())),
                          strict=True)
    return model


def diffusers_text_encoder(seed: int = 0):
    """``UMT5EncoderModel`` holding the (bf16-valued) weights of :func:`official_t5`."""
    from transformers import UMT5EncoderModel

    model = UMT5EncoderModel(hf_t5_config(T5_CONFIG)).eval()
    model.load_state_dict(t5_official_to_hf(official_t5(seed).state_dict()), strict=True)
    return model


def hf_clip(seed: int):
    """transformers ``CLIPVisionModel`` holding the vision tower of :func:`official_clip`."""
    from transformers import CLIPVisionModel

    from configs.wan_clip import get_config

    cfg = get_config(CLIP_CONFIG)
    m = CLIPVisionModel(hf_clip_config(CLIP_CONFIG)).eval()
    v = official_clip(seed).visual.state_dict()
    sd = {"vision_model.embeddings.patch_embedding.weight": v["patch_embedding.weight"],
          "vision_model.embeddings.class_embedding": v["cls_embedding"].reshape(-1),
          "vision_model.embeddings.position_embedding.weight": v["pos_embedding"][0],
          "vision_model.pre_layrnorm.weight": v["pre_norm.weight"],
          "vision_model.pre_layrnorm.bias": v["pre_norm.bias"],
          "vision_model.post_layernorm.weight": v["post_norm.weight"],
          "vision_model.post_layernorm.bias": v["post_norm.bias"]}
    for i in range(cfg.layers):
        o, h = f"transformer.{i}.", f"vision_model.encoder.layers.{i}."
        qkv_w, qkv_b = v[o + "attn.to_qkv.weight"], v[o + "attn.to_qkv.bias"]
        for j, n in enumerate("qkv"):
            sd[h + f"self_attn.{n}_proj.weight"] = qkv_w[j * cfg.dim:(j + 1) * cfg.dim]
            sd[h + f"self_attn.{n}_proj.bias"] = qkv_b[j * cfg.dim:(j + 1) * cfg.dim]
        sd[h + "self_attn.out_proj.weight"] = v[o + "attn.proj.weight"]
        sd[h + "self_attn.out_proj.bias"] = v[o + "attn.proj.bias"]
        for a, b in (("norm1", "layer_norm1"), ("norm2", "layer_norm2")):
            sd[h + f"{b}.weight"], sd[h + f"{b}.bias"] = v[o + f"{a}.weight"], v[o + f"{a}.bias"]
        sd[h + "mlp.fc1.weight"], sd[h + "mlp.fc1.bias"] = v[o + "mlp.0.weight"], v[o + "mlp.0.bias"]
        sd[h + "mlp.fc2.weight"], sd[h + "mlp.fc2.bias"] = v[o + "mlp.2.weight"], v[o + "mlp.2.bias"]
    pre = "" if any(k.startswith("vision_model.") for k in m.state_dict()) else "vision_model."
    sd = {k[len(pre):] if pre and k.startswith(pre) else k: t.clone() for k, t in sd.items()}
    missing, unexpected = m.load_state_dict(sd, strict=False)
    if unexpected or [k for k in missing if "position_ids" not in k]:
        raise AssertionError(f"CLIP transfer: missing {missing}, unexpected {unexpected}")
    return m


# ------------------------------------------------------------------ folders
def write_official_folder(root, *, kind: str = "t2v", seed: int = 0) -> str:
    """Writes the official Wan2.1 layout of a tiny ``kind`` model under ``root`` (created) and
    returns it."""
    _check_kind(kind)
    require(NEED)
    import torch
    from safetensors.torch import save_file

    from configs.wan_dit import get_config

    root = os.fspath(root)
    os.makedirs(root, exist_ok=True)
    if kind == "t2v":   # config.json + diffusion_pytorch_model.safetensors
        official_dit(seed).save_pretrained(root)
    else:
        cfg = get_config(DIT_CONFIGS[kind])
        save_file(official_dit_state(diffusers_transformer(seed, kind), kind),
                  os.path.join(root, DIT_FILE))
        conf = {"_class_name": "WanModel", "_diffusers_version": "0.30.0", "model_type": kind,
                "dim": cfg.dim, "ffn_dim": cfg.ffn_dim, "freq_dim": cfg.freq_dim,
                "in_dim": cfg.in_dim, "num_heads": cfg.num_heads, "num_layers": cfg.num_layers,
                "out_dim": cfg.out_dim, "text_len": cfg.text_len, "eps": cfg.eps}
        with open(os.path.join(root, CONFIG_FILE), "w") as f:
            json.dump(conf, f, indent=2)
        torch.save(official_clip(seed).state_dict(), os.path.join(root, CLIP_FILE))
    torch.save(official_vae(seed).state_dict(), os.path.join(root, VAE_FILE))
    sd = {k: v.to(torch.bfloat16) for k, v in official_t5(seed).state_dict().items()}
    torch.save(sd, os.path.join(root, T5_FILE))
    write_tokenizer(os.path.join(root, TOKENIZER_SUBDIR))
    return root


def write_diffusers_folder(root, *, kind: str = "t2v", seed: int = 0) -> str:
    """Writes the ``Wan2.1-*-Diffusers`` layout of a tiny ``kind`` model under ``root`` through
    the pipeline's ``save_pretrained`` and returns it."""
    _check_kind(kind)
    require(NEED)
    from diffusers import FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline, WanPipeline

    root = os.fspath(root)
    os.makedirs(root, exist_ok=True)
    tok = write_tokenizer(os.path.join(root, "tokenizer"))
    parts = dict(tokenizer=tok, text_encoder=diffusers_text_encoder(seed),
                 vae=diffusers_vae(seed), transformer=diffusers_transformer(seed, kind))
    if kind == "t2v":
        pipe = WanPipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), **parts)
    else:
        from transformers import CLIPImageProcessor

        proc = CLIPImageProcessor(size={"shortest_edge": 28},
                                  crop_size={"height": 28, "width": 28})
        pipe = WanImageToVideoPipeline(
            image_encoder=hf_clip(seed), image_processor=proc,
            scheduler=FlowMatchEulerDiscreteScheduler(shift=5.0), **parts)
    pipe.save_pretrained(root)  # rewrites tokenizer/ (json files); spiece.model stays
    return root


def load_pipeline(root, pipeline=None):
    """``pipeline.from_pretrained(root)``, fp32 on the CPU; the pipeline class defaults to the
    one ``model_index.json`` names (``WanPipeline``, ``WanImageToVideoPipeline``). Without
    ``accelerate``, diffusers 0.42 refuses to load ``WanTransformer3DModel`` (it has
    ``_keep_in_fp32_modules`` and then insists on ``low_cpu_mem_usage``), so the transformer is
    then loaded by hand from the same folder and handed in."""
    require(NEED)
    import diffusers
    import torch
    from diffusers import WanTransformer3DModel
    from diffusers.utils import is_accelerate_available

    root = os.fspath(root)
    if pipeline is None:
        with open(os.path.join(root, "model_index.json")) as f:
            pipeline = getattr(diffusers, json.load(f)["_class_name"])
    kw = {}
    if not is_accelerate_available():
        from safetensors.torch import load_file

        sub = os.path.join(root, "transformer")
        tr = WanTransformer3DModel.from_config(WanTransformer3DModel.load_config(sub))
        tr.load_state_dict(load_file(os.path.join(sub, DIT_FILE)), strict=True)
        kw["transformer"] = tr.eval()
    return pipeline.from_pretrained(root, dtype=torch.float32, **kw)
