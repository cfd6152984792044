"""The random-weight Wan 2.1 checkpoint folders of gvc_jax.testing: the tiny ones
(random_wan_tiny) and the streamed full-size writer (random_wan_full) run at tiny sizes:
expected files, loadable by diffusers and by our converters, the same tensors as the tiny ones."""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
# Import before gvc_jax.testing.wan22 stubs torchvision (transformers caches its probe).
from transformers import T5Tokenizer  # noqa: F401

from configs.wan_dit import get_config as dit_config
from configs.wan_text import get_config as text_config
from configs.wan_vae import get_config as vae_config
from gvc_jax.testing import random_wan_full as full, random_wan_tiny as F, stream_files

torch = pytest.importorskip("torch")

from gvc_jax.weights import dit as wdit, t5 as wt5, vae as wvae  # noqa: E402

CONFIG_KEYS = {"_class_name", "_diffusers_version", "dim", "eps", "ffn_dim", "freq_dim", "in_dim",
               "model_type", "num_heads", "num_layers", "out_dim", "text_len"}


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, fs in os.walk(root) for f in fs)


def _digests(root):
    out = {}
    for rel in _files(root):
        with open(os.path.join(root, rel), "rb") as f:
            out[rel] = hashlib.sha256(f.read()).hexdigest()
    return out


def _dit(root, cfg=F.DIT_CONFIG):
    return wdit.conversion(wdit.read(root), dit_config(cfg)).run()


def _vae(src, cfg=F.VAE_CONFIG):
    return wvae.conversion(wvae.read(src), vae_config(cfg)).run()


def _t5(root, cfg=F.T5_CONFIG):
    c = text_config(cfg)    # the preset's parameter dtype for both layouts
    return wt5.conversion(wt5.read(root), c, dtype=c.param_dtype).run()


def _convert_all(root, layout="auto"):
    """Fingerprints of the DiT, VAE and T5 of a folder (either layout) through our converters."""
    _, fp_dit = _dit(root)
    vae_src = os.path.join(root, F.VAE_FILE) if layout == "official" else root
    _, fp_vae = _vae(vae_src)
    _, fp_t5 = _t5(root)
    return fp_dit, fp_vae, fp_t5


# ------------------------------------------------------------------ official layout
def test_official_folder_files(wan_official_folder):
    root = wan_official_folder
    assert _files(root) == sorted(F.OFFICIAL_FILES)
    with open(os.path.join(root, F.CONFIG_FILE)) as f:
        cfg = json.load(f)
    assert set(cfg) == CONFIG_KEYS and cfg["_class_name"] == "WanModel"
    want = dit_config(F.DIT_CONFIG)
    assert {k: cfg[k] for k in ("dim", "ffn_dim", "num_heads", "num_layers", "text_len")} == \
        {k: want[k] for k in ("dim", "ffn_dim", "num_heads", "num_layers", "text_len")}
    from safetensors import safe_open
    with safe_open(os.path.join(root, F.DIT_FILE), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F32"}
    vae = torch.load(os.path.join(root, F.VAE_FILE), weights_only=True)
    t5 = torch.load(os.path.join(root, F.T5_FILE), weights_only=True)
    assert {v.dtype for v in vae.values()} == {torch.float32}
    assert {v.dtype for v in t5.values()} == {torch.bfloat16}
    assert t5["token_embedding.weight"].shape == (text_config(F.T5_CONFIG).vocab, 32)


def test_official_folder_converts(wan_official_folder):
    root = wan_official_folder
    assert wdit.detect_layout(root) == "official"
    arrays, fp = _dit(root)
    assert arrays["blocks/modulation"].shape == (2, 6, 64) and len(fp) == 64
    arrays, _ = _vae(os.path.join(root, F.VAE_FILE))
    assert arrays["decoder/conv_out/kernel"].shape[-1] == 3
    t5, _ = _t5(root)
    assert t5["embed"].shape == (96, 32)
    assert all(np.isfinite(a.astype(np.float32)).all() for a in t5.values())


def test_official_tokenizer(wan_official_folder, wan_diffusers_folder):
    from gvc_jax.weights.tokenizer import UMT5Tokenizer

    prompts = ["", "a red fox runs across a snowy field", "A cat, 4K & slow motion!"]
    tok = UMT5Tokenizer(wan_official_folder, seq_len=16)
    ids, mask = tok(prompts)
    assert ids.shape == mask.shape == (3, 16)
    assert mask[0].sum() == 1 and ids[0, 0] == 1  # the empty prompt is just </s>
    assert ids.max() < F.TOKENIZER_VOCAB and (ids[mask == 0] == 0).all()
    ref = T5Tokenizer.from_pretrained(os.path.join(wan_diffusers_folder, "tokenizer"))
    for i, p in enumerate(prompts):
        assert ref(p, max_length=16, truncation=True).input_ids == ids[i, :mask[i].sum()].tolist()
    sp = UMT5Tokenizer(wan_official_folder, seq_len=16, backend="sentencepiece")
    np.testing.assert_array_equal(sp(prompts)[0], ids)


# ------------------------------------------------------------------ diffusers layout
def test_diffusers_folder_files(wan_diffusers_folder):
    assert _files(wan_diffusers_folder) == sorted(F.DIFFUSERS_FILES)
    with open(os.path.join(wan_diffusers_folder, "model_index.json")) as f:
        index = json.load(f)
    assert index["_class_name"] == "WanPipeline"
    assert index["transformer"] == ["diffusers", "WanTransformer3DModel"]
    assert index["vae"] == ["diffusers", "AutoencoderKLWan"]
    assert index["text_encoder"] == ["transformers", "UMT5EncoderModel"]


def test_diffusers_folder_runs_in_wan_pipeline(wan_diffusers_folder):
    pipe = F.load_pipeline(wan_diffusers_folder)
    assert pipe.transformer.dtype == pipe.vae.dtype == pipe.text_encoder.dtype == torch.float32
    kw = dict(num_frames=5, height=32, width=32, num_inference_steps=2,
              generator=torch.Generator().manual_seed(0))
    lat = pipe(prompt="", guidance_scale=1.0, output_type="latent", **kw).frames
    assert lat.shape == (1, 16, 2, 4, 4) and torch.isfinite(lat).all()
    kw["generator"] = torch.Generator().manual_seed(0)
    vid = pipe(prompt="a red fox", negative_prompt="blurry", guidance_scale=5.0,
               output_type="np", **kw).frames
    assert vid.shape == (1, 5, 32, 32, 3) and np.isfinite(vid).all()
    assert 0.0 <= vid.min() and vid.max() <= 1.0


def test_layouts_hold_the_same_weights(wan_official_folder, wan_diffusers_folder,
                                       wan_official_folder_other):
    official = _convert_all(wan_official_folder, "official")
    assert _convert_all(wan_diffusers_folder, "diffusers") == official
    other = _convert_all(wan_official_folder_other, "official")
    assert all(a != b for a, b in zip(other, official))  # another seed: every model differs


def test_writers_are_deterministic(wan_official_folder, wan_diffusers_folder, tmp_path):
    again = F.write_official_folder(tmp_path / "official", seed=0)
    assert _digests(again) == _digests(wan_official_folder)
    again = F.write_diffusers_folder(tmp_path / "diffusers", seed=0)
    assert _digests(again) == _digests(wan_diffusers_folder)


# ------------------------------------------------------------------ streamed (full-size) writer
def test_streamed_writer_tiny(tmp_path, wan_official_folder):
    out = str(tmp_path / "stream")
    os.makedirs(out)
    # A 0.2 MB shard limit splits the ~0.3 MB bf16 DiT into two shards plus an index.
    sizes = full.write_official_full(out, dit="tiny-t2v", device="cpu", max_shard_gb=0.0002,
                                     seed=3)
    assert set(sizes) == {"dit", "vae", "t5"} and min(sizes.values()) > 0
    shards = [f"diffusion_pytorch_model-0000{i}-of-00002.safetensors" for i in (1, 2)]
    assert _files(out) == sorted([F.CONFIG_FILE, F.VAE_FILE, F.T5_FILE, *shards,
                                  "diffusion_pytorch_model.safetensors.index.json",
                                  *(os.path.join(F.TOKENIZER_SUBDIR, f) for f in F.TOKENIZER_FILES)])
    with open(os.path.join(out, F.CONFIG_FILE)) as f, \
            open(os.path.join(wan_official_folder, F.CONFIG_FILE)) as g:
        assert json.load(f) == json.load(g)  # the same config.json as WanModel.save_pretrained
    with open(os.path.join(out, "diffusion_pytorch_model.safetensors.index.json")) as f:
        index = json.load(f)
    assert set(index["weight_map"].values()) == set(shards)

    # Through the converters (zipfile checks the patched CRC-32s of the .pth files).
    arrays, _ = _dit(out, "tiny-t2v")
    assert str(arrays["blocks/ffn/fc1/kernel"].dtype) == "bfloat16"
    assert all(np.isfinite(a.astype(np.float32)).all() for a in arrays.values())
    _vae(os.path.join(out, F.VAE_FILE), "tiny")
    t5, _ = _t5(out, "tiny")
    from gvc_jax.weights.tokenizer import UMT5Tokenizer
    ids, _ = UMT5Tokenizer(out, seq_len=8)(["a fox"])
    assert ids.max() < t5["embed"].shape[0]

    # The streamed .pth files hold what a plain torch.save of the same tensors holds.
    ref = str(tmp_path / "memory")
    os.makedirs(ref)
    full.write_official_full(ref, dit="tiny-t2v", device="cpu", seed=3, pth_writer="memory")
    for name in (F.VAE_FILE, F.T5_FILE):
        a = torch.load(os.path.join(out, name), weights_only=True)
        b = torch.load(os.path.join(ref, name), weights_only=True, mmap=True)
        assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
        assert {v.dtype for v in a.values()} == ({torch.float32} if name == F.VAE_FILE
                                                  else {torch.bfloat16})
    from safetensors.torch import load_file
    a = {}
    for s in shards:
        a.update(load_file(os.path.join(out, s)))
    b = load_file(os.path.join(ref, "diffusion_pytorch_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _shapes(root):
    from gvc_jax.weights.sources import iter_safetensors, iter_torch_any, shapes

    return {rel: shapes(iter_safetensors(os.path.join(root, rel)) if rel.endswith(".safetensors")
                        else iter_torch_any(os.path.join(root, rel)))
            for rel in _files(root) if rel.endswith((".safetensors", ".pth"))}


def _configs(root):
    out = {}
    for rel in _files(root):
        if rel.endswith(".json") and not rel.startswith(("tokenizer", "google")):
            with open(os.path.join(root, rel)) as f:
                d = json.load(f)
            out[rel] = {k: v for k, v in d.items() if k not in ("dtype", "_diffusers_version")}
    return out


@pytest.mark.parametrize("layout,kind", [("official", "flf2v"), ("diffusers", "t2v"),
                                         ("diffusers", "i2v")])
def test_streamed_writer_matches_the_tiny_folders(layout, kind, request, tmp_path):
    """At the tiny sizes the streamed writer lays out the files, tensor names and shapes, and
    configs of the tiny folders (written by the modules' own save_pretrained), so at full size
    it writes what the released folders hold."""
    name = {"t2v": "wan_diffusers_folder"}.get(kind, f"wan_{kind}_{layout}")
    ref = request.getfixturevalue(name)
    out = str(tmp_path / "stream")
    os.makedirs(out)
    write = full.write_official_full if layout == "official" else full.write_diffusers_full
    write(out, dit=F.DIT_CONFIGS[kind], device="cpu")
    assert _files(out) == _files(ref)
    assert _shapes(out) == _shapes(ref)
    assert _configs(out) == _configs(ref)


def test_streamed_value_scales():
    assert full.value_stats("dit", "blocks.0.modulation", (1, 6, 5120)) == (0.0, 5120 ** -0.5)
    assert full.value_stats("dit", "blocks.0.scale_shift_table", (1, 6, 5120)) == \
        (0.0, 5120 ** -0.5)
    assert full.value_stats("dit", "blocks.0.norm3.weight", (5120,)) == (1.0, 0.1)
    assert full.value_stats("dit", "blocks.0.ffn.0.weight", (13824, 5120)) == (0.0, 5120 ** -0.5)
    assert full.value_stats("dit", "patch_embedding.weight", (5120, 16, 1, 2, 2)) == (0.0, 0.125)
    assert full.value_stats("vae", "encoder.head.0.gamma", (384, 1, 1, 1)) == (1.0, 0.1)
    assert full.value_stats("vae", "decoder.conv_out.weight", (3, 96, 3, 3, 3))[1] == \
        pytest.approx(0.3 / (96 * 27) ** 0.5)
    assert full.value_stats("t5", "token_embedding.weight", (256384, 4096)) == (0.0, 1.0)
    assert full.value_stats("t5", "shared.weight", (256384, 4096)) == (0.0, 1.0)
    # Greedy in order; a tensor over the limit gets a shard of its own.
    plan = stream_files.shard_plan([("a", (10,)), ("b", (10,)), ("c", (30,)), ("d", (5,))],
                                   torch.float32, 80)
    assert [[n for n, _ in s] for s in plan] == [["a", "b"], ["c"], ["d"]]
