"""CLIP vision tower: parity with transformers and the official Wan code,
preprocessing parity, converter coverage."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
# Import before gvc_jax.testing.wan22 stubs torchvision (transformers caches its probe).
from transformers import CLIPVisionConfig, CLIPVisionModel

from configs.wan_clip import get_config
from gvc_jax.weights import clip as cclip
from gvc_jax.weights.table import ConversionError, abstract_targets, check_coverage, load_into
from gvc_jax.models.wan import clip as mclip
from gvc_jax.models.wan import clip_preprocess as pre
from gvc_jax.testing.refs import clip_official_kwargs, randomize_clip_norms_

CFG = get_config("tiny")


def _convert(path, cfg=CFG, layout="auto"):
    """``(arrays, fingerprint)`` with the parameters in ``cfg.param_dtype``."""
    return cclip.conversion(cclip.read(path, layout), cfg, dtype=cfg.param_dtype).run()


def _load(path, cfg=CFG):
    arrays, fp = _convert(path, cfg)
    return load_into(cclip.model_factory(cfg), arrays), fp


def rel_l2(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _sdpa_flash_attention(q, k, v, dropout_p=0.0, causal=False, version=None, **_):
    """[B, L, N, D] stand-in for Wan's flash_attention (scale 1/sqrt(D))."""
    o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                       is_causal=causal)
    return o.transpose(1, 2)


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    from gvc_jax.testing.wan22 import load_wan22
    clip_mod = load_wan22("animate.clip")
    mp = pytest.MonkeyPatch()
    mp.setattr(clip_mod, "flash_attention", _sdpa_flash_attention)
    torch.manual_seed(0)
    model = clip_mod.XLMRobertaCLIP(**clip_official_kwargs(CFG)).eval()
    randomize_clip_norms_(model.visual, 1)
    d = tmp_path_factory.mktemp("clip_official")
    torch.save(model.state_dict(), d / cclip.OFFICIAL_FILE)
    yield d, model
    mp.undo()


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    torch.manual_seed(0)
    c = CLIPVisionConfig(hidden_size=CFG.dim, intermediate_size=CFG.mlp, num_hidden_layers=CFG.layers,
                         num_attention_heads=CFG.heads, image_size=CFG.image_size, patch_size=CFG.patch,
                         hidden_act="gelu", layer_norm_eps=CFG.eps)
    m = CLIPVisionModel(c).eval()
    randomize_clip_norms_(m, 2)
    d = tmp_path_factory.mktemp("clip_diffusers")
    m.save_pretrained(d / "image_encoder")
    return d, m


def test_official_parity_with_wan_preprocessing(official):
    d, model = official
    ours, fp = _load(str(d))
    g = np.random.default_rng(0)
    frames = g.uniform(-1, 1, (2, 45, 70, 3)).astype(np.float32)  # non-square: squashed, no crop
    # CLIPModel.visual: bicubic resize of [-1, 1] frames, to [0, 1], CLIP normalisation.
    x = torch.from_numpy(frames).permute(0, 3, 1, 2)
    x = F.interpolate(x, size=(CFG.image_size,) * 2, mode="bicubic", align_corners=False)
    mean = torch.tensor(pre.CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(pre.CLIP_STD).view(1, 3, 1, 1)
    x = (x * 0.5 + 0.5 - mean) / std
    ours_in = pre.official(frames, CFG.image_size)
    assert rel_l2(ours_in, x.permute(0, 2, 3, 1).numpy()) <= 1e-6
    with torch.no_grad():
        ref = model.visual(x, use_31_block=True).numpy()
    out = np.asarray(ours(ours_in))
    assert out.shape == (2, CFG.tokens, CFG.dim)
    assert rel_l2(out, ref) <= 1e-5
    assert len(fp) == 64


def test_diffusers_parity_hidden_states_minus_2(hf_folder):
    from flax import nnx
    d, m = hf_folder
    ours, _ = _load(str(d))  # auto: finds image_encoder/
    x = np.random.default_rng(1).normal(size=(2, CFG.image_size, CFG.image_size, 3)).astype(np.float32)
    with torch.no_grad():
        ref = m(pixel_values=torch.from_numpy(x).permute(0, 3, 1, 2),
                output_hidden_states=True).hidden_states[-2].numpy()
    graphdef, state = nnx.split(ours)
    out = np.asarray(mclip.make_apply(graphdef)(state, x))
    assert rel_l2(out, ref) <= 1e-5


def test_bicubic_matches_torch_up_and_down():
    g = np.random.default_rng(2)
    for h, w in [(7, 300), (224, 224), (480, 832)]:
        x = g.normal(size=(1, h, w, 3)).astype(np.float32)
        ref = F.interpolate(torch.from_numpy(x).permute(0, 3, 1, 2), size=(224, 224), mode="bicubic",
                            align_corners=False).permute(0, 2, 3, 1).numpy()
        got = (pre.official(x) * pre.CLIP_STD + pre.CLIP_MEAN - 0.5) / 0.5
        assert rel_l2(got, ref) <= 1e-5, (h, w)


def test_diffusers_preprocess_matches_clip_image_processor():
    from PIL import Image
    from transformers import CLIPImageProcessor
    proc = CLIPImageProcessor()  # diffusers' Wan image_processor settings are the defaults
    g = np.random.default_rng(3)
    imgs = [g.integers(0, 256, (300, 500, 3), dtype=np.uint8), g.integers(0, 256, (401, 233, 3), dtype=np.uint8)]
    for img in imgs:
        ref = proc(images=Image.fromarray(img), return_tensors="np")["pixel_values"][0].transpose(1, 2, 0)
        got = pre.diffusers(img[None])[0]
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)
    # The two pipelines differ for non-square frames (squash vs center crop).
    a = pre.official_from_uint8(imgs[0][None])
    b = pre.diffusers(imgs[0][None])
    assert a.shape == b.shape == (1, 224, 224, 3) and rel_l2(a, b) > 0.1


@pytest.mark.parametrize("layout", ["official", "diffusers"])
def test_full_size_table_coverage(layout):
    """ViT-H/14: every checkpoint key is mapped or explicitly ignored, every param filled."""
    cfg = get_config("vit-h-14")
    targets = abstract_targets(cclip.model_factory(cfg))
    assert targets["blocks/q"][0] == (31, 1280, 16, 80) and targets["pos"][0] == (257, 1280)
    if layout == "official":
        from gvc_jax.testing.wan22 import load_wan22
        clip_mod = load_wan22("animate.clip")
        with torch.device("meta"):
            m = clip_mod.XLMRobertaCLIP(**clip_official_kwargs(cfg, tiny=False))
        keys = [(k, tuple(v.shape)) for k, v in m.state_dict().items()]
        # The same q/k/v split the converter applies to the fused tensors.
        split = []
        for k, s in keys:
            mm = cclip._QKV.fullmatch(k)
            if mm and not any(__import__("re").fullmatch(p, k) for p in cclip.ignored(cfg, layout)):
                split += [(f"{mm.group(1)}.to_qkv.{p}.{mm.group(2)}", (s[0] // 3,) + s[1:]) for p in "qkv"]
            else:
                split.append((k, s))
        keys = split
        assert any(k.startswith("textual.") for k, _ in keys)
    else:
        c = CLIPVisionConfig(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                             num_attention_heads=16, image_size=224, patch_size=14, hidden_act="gelu")
        with torch.device("meta"):
            m = CLIPVisionModel(c)
        keys = [(k, tuple(v.shape)) for k, v in m.state_dict().items()]
        keys.append(("vision_model.embeddings.position_ids", (1, 257)))  # older transformers files
    check_coverage(keys, cclip.rules(cfg, layout), targets, ignore=cclip.ignored(cfg, layout))
    # Each ignore rule is needed: without it the dropped keys are errors, nothing is skipped silently.
    ign = cclip.ignored(cfg, layout)
    for i in range(len(ign)):
        with pytest.raises(ConversionError, match="match no rule|out of range"):
            check_coverage(keys, cclip.rules(cfg, layout), targets, ignore=ign[:i] + ign[i + 1:])
    with pytest.raises(ConversionError, match="missing"):
        check_coverage([kv for kv in keys if ".7." not in kv[0]], cclip.rules(cfg, layout), targets,
                       ignore=cclip.ignored(cfg, layout))


def test_official_converter_on_real_keys_drops_text_tower(official):
    d, model = official
    arrays, _ = _convert(str(d))
    sd = model.state_dict()
    qkv = sd["visual.transformer.1.attn.to_qkv.weight"].numpy()
    np.testing.assert_array_equal(arrays["blocks/v"][1], qkv[2 * CFG.dim:].T.reshape(CFG.dim, CFG.heads, -1))
    assert arrays["blocks/q"].shape[0] == CFG.used_layers


def test_cli_convert(official, tmp_path):
    from safetensors import safe_open
    from convert_weights.cli import main
    out = tmp_path / "clip.safetensors"
    assert main(["clip", str(official[0]), str(out), "--config", "tiny"]) == 0
    with safe_open(str(out), "np") as f:
        assert f.metadata()["fingerprint"] == _load(str(official[0]))[1]
        assert f.get_tensor("blocks/q").shape == (CFG.used_layers, CFG.dim, CFG.heads, CFG.dim // CFG.heads)
    assert main(["clip", str(tmp_path / "nope"), str(out), "--config", "tiny"]) == 3
