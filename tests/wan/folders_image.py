"""Wan 2.1 I2V and FLF2V checkpoint folders with random weights, in both layouts.

* official (``Wan-AI/Wan2.1-I2V-14B-720P``, ``Wan2.1-FLF2V-14B-720P``): the T2V files of
  :mod:`tests.wan.folders` with an i2v/flf2v ``config.json`` (``"model_type": "i2v"``) and DiT,
  plus ``models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth`` (``torch.save`` of the
  official ``XLMRobertaCLIP`` state dict, text tower included);
* diffusers (``*-Diffusers``): ``WanImageToVideoPipeline.save_pretrained`` with
  ``image_encoder/`` (transformers ``CLIPVisionModel``) and ``image_processor/``.

The official ``WanModel`` of the ``wan22`` package has no Wan 2.1 image branch, so the DiT is
built as diffusers' ``WanTransformer3DModel`` and its state is written under the official key
names, found by running diffusers' own official->diffusers renaming on the official key list.
For one seed both layouts hold the same weights (the CLIP towers too).
"""
from __future__ import annotations

import json
import os

import pytest

from tests.wan import folders as base

CLIP_FILE = "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"
DIT = {"i2v": "tiny-i2v", "flf2v": "tiny-flf2v"}


def _dit_cfg(kind: str):
    from configs.wan_dit import get_config

    return get_config(DIT[kind])


def diffusers_transformer(seed: int, kind: str):
    from diffusers import WanTransformer3DModel

    from tests.wan.test_dit_refs import diffusers_kwargs, randomize_

    with base._torch_seed(base._sub_seed(seed, "dit")):
        model = WanTransformer3DModel(**diffusers_kwargs(_dit_cfg(kind))).eval()
    randomize_(model, base._sub_seed(seed, "dit") + 7)
    return model


def official_dit_state(model, kind: str) -> dict:
    """The diffusers transformer's tensors under the official ``WanModel`` key names."""
    import torch
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    cfg = _dit_cfg(kind)
    keys = list(base.official_dit(0).state_dict())          # the t2v keys of the same size
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


def official_clip(seed: int):
    """The official ``XLMRobertaCLIP`` at ``configs.wan_clip`` "tiny", randomised."""
    from configs.wan_clip import get_config
    from tests.wan.test_clip import _official_kwargs, _randomize_norms
    from tests.wan22_loader import load_wan22

    clip_mod = load_wan22("animate.clip")
    with base._torch_seed(1000 * seed + 5):
        model = clip_mod.XLMRobertaCLIP(**_official_kwargs(get_config("tiny"))).eval()
    _randomize_norms(model.visual, 1000 * seed + 6)
    return model


def hf_clip(seed: int):
    """transformers ``CLIPVisionModel`` holding the vision tower of :func:`official_clip`."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from configs.wan_clip import get_config

    cfg = get_config("tiny")
    c = CLIPVisionConfig(hidden_size=cfg.dim, intermediate_size=cfg.mlp,
                         num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads,
                         image_size=cfg.image_size, patch_size=cfg.patch, hidden_act="gelu",
                         layer_norm_eps=cfg.eps)
    m = CLIPVisionModel(c).eval()
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


def write_official_folder(root, *, kind: str, seed: int = 0) -> str:
    import torch
    from safetensors.torch import save_file

    root = os.fspath(root)
    base.write_official_folder(root, seed=seed)        # VAE, umT5, tokenizer (+ a t2v DiT)
    cfg = _dit_cfg(kind)
    save_file(official_dit_state(diffusers_transformer(seed, kind), kind),
              os.path.join(root, base.DIT_FILE))
    conf = {"_class_name": "WanModel", "_diffusers_version": "0.30.0", "model_type": kind,
            "dim": cfg.dim, "ffn_dim": cfg.ffn_dim, "freq_dim": cfg.freq_dim,
            "in_dim": cfg.in_dim, "num_heads": cfg.num_heads, "num_layers": cfg.num_layers,
            "out_dim": cfg.out_dim, "text_len": cfg.text_len, "eps": cfg.eps}
    with open(os.path.join(root, base.CONFIG_FILE), "w") as f:
        json.dump(conf, f, indent=2)
    torch.save(official_clip(seed).state_dict(), os.path.join(root, CLIP_FILE))
    return root


def write_diffusers_folder(root, *, kind: str, seed: int = 0) -> str:
    from diffusers import FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline
    from transformers import CLIPImageProcessor

    root = os.fspath(root)
    os.makedirs(root, exist_ok=True)
    tok = base.write_tokenizer(os.path.join(root, "tokenizer"))
    proc = CLIPImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    pipe = WanImageToVideoPipeline(
        tokenizer=tok, text_encoder=base.diffusers_text_encoder(seed), vae=base.diffusers_vae(seed),
        transformer=diffusers_transformer(seed, kind), image_encoder=hf_clip(seed),
        image_processor=proc, scheduler=FlowMatchEulerDiscreteScheduler(shift=5.0))
    pipe.save_pretrained(root)
    return root


def load_pipeline(root):
    """``WanImageToVideoPipeline.from_pretrained(root)`` in fp32
    (:func:`tests.wan.folders.load_pipeline`)."""
    from diffusers import WanImageToVideoPipeline

    return base.load_pipeline(root, WanImageToVideoPipeline)


@pytest.fixture(scope="session")
def wan_i2v_official(tmp_path_factory) -> str:
    return write_official_folder(tmp_path_factory.mktemp("wan_i2v_official"), kind="i2v")


@pytest.fixture(scope="session")
def wan_i2v_diffusers(tmp_path_factory) -> str:
    return write_diffusers_folder(tmp_path_factory.mktemp("wan_i2v_diffusers"), kind="i2v")


@pytest.fixture(scope="session")
def wan_flf2v_official(tmp_path_factory) -> str:
    return write_official_folder(tmp_path_factory.mktemp("wan_flf2v_official"), kind="flf2v")


@pytest.fixture(scope="session")
def wan_flf2v_diffusers(tmp_path_factory) -> str:
    return write_diffusers_folder(tmp_path_factory.mktemp("wan_flf2v_diffusers"), kind="flf2v")
