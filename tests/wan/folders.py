"""Wan 2.1 T2V checkpoint folders with random weights, laid out as a user downloads them.

* :func:`write_official_folder`: the ``Wan-AI/Wan2.1-T2V-*`` layout::

      config.json                            WanModel.save_pretrained (the real keys)
      diffusion_pytorch_model.safetensors    official WanModel state, fp32
      Wan2.1_VAE.pth                         torch.save(WanVAE_.state_dict()), fp32
      models_t5_umt5-xxl-enc-bf16.pth        torch.save(T5Encoder.state_dict()), bf16
      google/umt5-xxl/                       tokenizer.json, tokenizer_config.json, spiece.model

* :func:`write_diffusers_folder`: the ``*-Diffusers`` layout, written by
  ``WanPipeline.save_pretrained`` (``model_index.json``, ``transformer/``, ``vae/``,
  ``text_encoder/``, ``tokenizer/``, ``scheduler/``), all fp32.

Sizes are tiny (DiT ``configs.wan_dit`` "tiny-t2v", VAE ``configs.wan_vae`` "tiny",
umT5 ``configs.wan_text`` "tiny", a 96-piece sentencepiece vocabulary trained on the fly),
so a folder is written in about a second on one CPU core and needs no network.

Weights are a deterministic function of ``seed`` and differ between seeds. For one seed the
two layouts hold the *same* weights: the diffusers tensors are the official ones renamed
(diffusers' own single-file renaming for the DiT and VAE, the transformers umT5 names for
the text encoder, whose values are the bf16 official ones widened to fp32). Converted to
gvc-jax params, both layouts therefore give the same arrays and fingerprints.

The pytest fixtures at the bottom are session-scoped; import them into a test module
(``from tests.wan.folders import wan_official_folder``) to use them.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil

import pytest

DIT_CONFIG = "tiny-t2v"
VAE_CONFIG = "tiny"
T5_CONFIG = "tiny"
TOKENIZER_VOCAB = 96

CONFIG_FILE = "config.json"
DIT_FILE = "diffusion_pytorch_model.safetensors"
VAE_FILE = "Wan2.1_VAE.pth"
T5_FILE = "models_t5_umt5-xxl-enc-bf16.pth"
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

# Prompts the tokenizer is trained on (made up for these tests).
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


def _sub_seed(seed: int, part: str) -> int:
    return 1000 * int(seed) + _PARTS[part]


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


# ------------------------------------------------------------------ models (official)
def official_dit(seed: int = 0, dit: str = DIT_CONFIG):
    """The official ``WanModel`` of ``configs.wan_dit.get_config(dit)``, randomised."""
    from configs.wan_dit import get_config
    from tests.wan.test_dit_refs import randomize_, wan22_kwargs
    from tests.wan22_loader import load_wan22

    mod = load_wan22("model")
    with _torch_seed(_sub_seed(seed, "dit")):
        model = mod.WanModel(**wan22_kwargs(get_config(dit))).eval()
    randomize_(model, _sub_seed(seed, "dit"))
    return model


def randomize_vae_(module, seed: int) -> None:
    """As tests/wan/test_vae_parity.py: gains ~1, small biases, attention projections random,
    and the decoder's last conv scaled by 0.3 so few outputs hit the [-1, 1] clamp."""
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
    from tests.wan22_loader import load_wan22

    mod = load_wan22("vae2_1")
    with _torch_seed(_sub_seed(seed, "vae")):
        model = mod.WanVAE_(**VAE_KWARGS).eval()
    randomize_vae_(model, _sub_seed(seed, "vae"))
    return model


def official_t5(seed: int = 0):
    """The official ``T5Encoder`` at ``configs.wan_text`` "tiny", randomised as
    tests/wan/test_t5.py does (init draws + random norm gains), rounded to bf16 values."""
    import torch

    from configs.wan_text import get_config
    from tests.wan22_loader import load_wan22

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


# ------------------------------------------------------------------ official folder
def write_official_folder(root, *, seed: int = 0, dit: str = DIT_CONFIG) -> str:
    """Writes the official Wan2.1-T2V layout under ``root`` (created) and returns it.

    ``dit`` names a t2v config of ``configs.wan_dit`` (tiny ones only make sense here).
    """
    import torch

    root = os.fspath(root)
    os.makedirs(root, exist_ok=True)
    official_dit(seed, dit).save_pretrained(root)  # config.json + diffusion_pytorch_model.safetensors
    torch.save(official_vae(seed).state_dict(), os.path.join(root, VAE_FILE))
    sd = {k: v.to(torch.bfloat16) for k, v in official_t5(seed).state_dict().items()}
    torch.save(sd, os.path.join(root, T5_FILE))
    write_tokenizer(os.path.join(root, TOKENIZER_SUBDIR))
    return root


# ------------------------------------------------------------------ diffusers folder
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


def diffusers_transformer(seed: int = 0):
    """``WanTransformer3DModel`` holding the weights of :func:`official_dit` (same seed)."""
    from diffusers import WanTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    from configs.wan_dit import get_config
    from tests.wan.test_dit_refs import diffusers_kwargs

    sd = convert_wan_transformer_to_diffusers(dict(official_dit(seed).state_dict()))
    model = WanTransformer3DModel(**diffusers_kwargs(get_config(DIT_CONFIG))).eval()
    model.load_state_dict(sd, strict=True)
    return model


def diffusers_vae(seed: int = 0):
    """``AutoencoderKLWan`` holding the weights of :func:`official_vae` (same seed)."""
    from diffusers import AutoencoderKLWan
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    kw = {k: v for k, v in VAE_KWARGS.items() if k not in ("dim", "attn_scales", "dropout")}
    model = AutoencoderKLWan(base_dim=VAE_KWARGS["dim"], **kw).eval()
    model.load_state_dict(convert_wan_vae_to_diffusers(dict(official_vae(seed).state_dict())),
                          strict=True)
    return model


def diffusers_text_encoder(seed: int = 0):
    """``UMT5EncoderModel`` holding the (bf16-valued) weights of :func:`official_t5`."""
    from transformers import UMT5Config, UMT5EncoderModel

    from configs.wan_text import get_config

    cfg = get_config(T5_CONFIG)
    c = UMT5Config(vocab_size=cfg.vocab, d_model=cfg.dim, d_kv=cfg.dim_attn // cfg.heads,
                   d_ff=cfg.ffn, num_layers=cfg.layers, num_heads=cfg.heads,
                   relative_attention_num_buckets=cfg.buckets,
                   relative_attention_max_distance=cfg.max_distance,
                   feed_forward_proj="gated-gelu", dropout_rate=0.0)
    model = UMT5EncoderModel(c).eval()
    model.load_state_dict(t5_official_to_hf(official_t5(seed).state_dict()), strict=True)
    return model


def write_diffusers_folder(root, *, seed: int = 0) -> str:
    """Writes the ``Wan2.1-T2V-*-Diffusers`` layout under ``root`` through
    ``WanPipeline.save_pretrained`` and returns it."""
    from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline

    root = os.fspath(root)
    os.makedirs(root, exist_ok=True)
    tok_dir = os.path.join(root, "tokenizer")
    tok = write_tokenizer(tok_dir)
    pipe = WanPipeline(tokenizer=tok, text_encoder=diffusers_text_encoder(seed),
                       vae=diffusers_vae(seed), transformer=diffusers_transformer(seed),
                       scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0))
    pipe.save_pretrained(root)  # rewrites tokenizer/ (json files); spiece.model stays
    return root


def load_pipeline(root, pipeline=None):
    """``pipeline.from_pretrained(root)`` (default ``WanPipeline``), fp32 on the CPU. Without
    ``accelerate``, diffusers 0.42 refuses to load ``WanTransformer3DModel`` (it has
    ``_keep_in_fp32_modules`` and then insists on ``low_cpu_mem_usage``), so the transformer is
    then loaded by hand from the same folder and handed in."""
    import torch
    from diffusers import WanPipeline, WanTransformer3DModel
    from diffusers.utils import is_accelerate_available

    pipeline = pipeline or WanPipeline

    kw = {}
    if not is_accelerate_available():
        from safetensors.torch import load_file

        sub = os.path.join(root, "transformer")
        tr = WanTransformer3DModel.from_config(WanTransformer3DModel.load_config(sub))
        tr.load_state_dict(load_file(os.path.join(sub, "diffusion_pytorch_model.safetensors")),
                           strict=True)
        kw["transformer"] = tr.eval()
    return pipeline.from_pretrained(root, dtype=torch.float32, **kw)


# ------------------------------------------------------------------ pytest fixtures
OTHER_SEED = 1


@pytest.fixture(scope="session")
def wan_official_folder(tmp_path_factory) -> str:
    return write_official_folder(tmp_path_factory.mktemp("wan_official"), seed=0)


@pytest.fixture(scope="session")
def wan_diffusers_folder(tmp_path_factory) -> str:
    return write_diffusers_folder(tmp_path_factory.mktemp("wan_diffusers"), seed=0)


@pytest.fixture(scope="session")
def wan_official_folder_other(tmp_path_factory) -> str:
    return write_official_folder(tmp_path_factory.mktemp("wan_official_other"), seed=OTHER_SEED)


@pytest.fixture(scope="session")
def wan_diffusers_folder_other(tmp_path_factory) -> str:
    return write_diffusers_folder(tmp_path_factory.mktemp("wan_diffusers_other"), seed=OTHER_SEED)
