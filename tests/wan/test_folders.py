"""The random-weight Wan 2.1 T2V checkpoint folders of tests/wan/folders.py and
bench/write_random_wan.py: expected files, loadable by diffusers and by our converters."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os

import numpy as np
import pytest
# Import before tests.wan22_loader stubs torchvision (transformers caches its probe).
from transformers import T5Tokenizer  # noqa: F401

from configs.wan_dit import get_config as dit_config
from configs.wan_text import get_config as text_config
from configs.wan_vae import get_config as vae_config
from tests.wan import folders as F

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


# ------------------------------------------------------------------ bench writer
def _bench_module():
    path = os.path.join(os.path.dirname(__file__), "..", "..", "bench", "write_random_wan.py")
    spec = importlib.util.spec_from_file_location("write_random_wan", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_writer_tiny(tmp_path, wan_official_folder):
    bench = _bench_module()
    out = str(tmp_path / "stream")
    # A 0.2 MB shard limit splits the ~0.3 MB bf16 DiT into two shards plus an index.
    summary = bench.main([out, "--dit", "tiny-t2v", "--t5", "tiny", "--vae", "tiny",
                          "--device", "cpu", "--max-shard-gb", "0.0002", "--seed", "3"])
    assert summary["total_bytes"] > 0
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
    bench.main([ref, "--dit", "tiny-t2v", "--t5", "tiny", "--vae", "tiny", "--device", "cpu",
                "--seed", "3", "--pth-writer", "memory"])
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


def test_bench_value_scales():
    bench = _bench_module()
    assert bench.value_stats("dit", "blocks.0.modulation", (1, 6, 5120)) == (0.0, 5120 ** -0.5)
    assert bench.value_stats("dit", "blocks.0.norm3.weight", (5120,)) == (1.0, 0.1)
    assert bench.value_stats("dit", "blocks.0.ffn.0.weight", (13824, 5120)) == (0.0, 5120 ** -0.5)
    assert bench.value_stats("dit", "patch_embedding.weight", (5120, 16, 1, 2, 2)) == (0.0, 0.125)
    assert bench.value_stats("vae", "encoder.head.0.gamma", (384, 1, 1, 1)) == (1.0, 0.1)
    assert bench.value_stats("t5", "token_embedding.weight", (256384, 4096)) == (0.0, 1.0)
    # Greedy in order; a tensor over the limit gets a shard of its own.
    plan = bench.shard_plan([("a", (10,)), ("b", (10,)), ("c", (30,)), ("d", (5,))],
                            torch.float32, 80)
    assert [[n for n, _ in s] for s in plan] == [["a", "b"], ["c"], ["d"]]
