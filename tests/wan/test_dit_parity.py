"""End-to-end parity of WanDiT (fp32) with PyTorch references on tiny random models:
diffusers ``WanTransformer3DModel`` (t2v, i2v, flf2v; diffusers layout, one case sharded) and
the official ``WanModel`` of wan22 (t2v, i2v without CLIP; official layout)."""
from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np
import pytest

from configs.wan_dit import get_config
from gvc_jax.testing.refs import diffusers_kwargs, randomize_, rel_l2, wan22_kwargs
from gvc_jax.weights.dit import conversion, detect_layout, dit_factory, read
from gvc_jax.weights.table import load_into

torch = pytest.importorskip("torch")
TOL = 1e-5
T_FHW = (3, 4, 6)  # latent frames, height, width: 3*2*3 = 18 tokens


def _inputs(cfg, b, seed, n_text=7):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, 16, *T_FHW)).astype(np.float32)
    ctx = np.zeros((b, cfg.text_len, cfg.text_dim), np.float32)
    ctx[:, :n_text] = rng.standard_normal((b, n_text, cfg.text_dim))
    y = (rng.standard_normal((b, cfg.in_dim - 16, *T_FHW)).astype(np.float32)
         if cfg.in_dim > 16 else None)
    n_img = {"i2v": 1, "flf2v": 2}.get(cfg.model_type, 0)
    clip = (rng.standard_normal((b, n_img * cfg.clip_len, cfg.clip_dim)).astype(np.float32)
            if n_img else None)
    t = np.array([999.0, 437.25][:b], np.float32)
    return x, t, ctx, clip, y


def _jax_forward(path, cfg, x, t, ctx, clip, y):
    arrays, fp = conversion(read(path), cfg, dtype=jnp.float32).run()
    model = load_into(dit_factory(cfg, jnp.float32, jnp.float32), arrays)
    u = model(jnp.asarray(x), jnp.asarray(t), jnp.asarray(ctx),
              None if clip is None else jnp.asarray(clip), None if y is None else jnp.asarray(y))
    return np.asarray(u), fp


@pytest.mark.parametrize("name,shard", [("tiny-t2v", False), ("tiny-i2v", True),
                                        ("tiny-flf2v", False)])
def test_diffusers_parity(tmp_path, name, shard):
    from diffusers import WanTransformer3DModel

    cfg = get_config(name)
    torch.manual_seed(0)
    ref = WanTransformer3DModel(**diffusers_kwargs(cfg)).eval()
    randomize_(ref, seed=1)
    root = tmp_path / "repo"
    ref.save_pretrained(root / "transformer", max_shard_size="40KB" if shard else "10GB")
    if shard:
        assert any(f.endswith(".index.json") for f in os.listdir(root / "transformer"))
    assert detect_layout(str(root)) == "diffusers"

    x, t, ctx, clip, y = _inputs(cfg, 2, seed=2)
    hs = np.concatenate([x, y], 1) if y is not None else x
    img = None
    if clip is not None:  # diffusers takes FLF2V's two images stacked on the batch axis
        img = torch.from_numpy(clip.reshape(-1, cfg.clip_len, cfg.clip_dim))
    with torch.no_grad():
        want = ref(hidden_states=torch.from_numpy(hs), timestep=torch.from_numpy(t),
                   encoder_hidden_states=torch.from_numpy(ctx),
                   encoder_hidden_states_image=img, return_dict=False)[0].numpy()
    got, fp = _jax_forward(str(root), cfg, x, t, ctx, clip, y)
    assert got.shape == want.shape == (2, 16, *T_FHW)
    assert len(fp) == 64
    err = rel_l2(got, want)
    print(name, "rel_l2", err, "norm", np.linalg.norm(want))
    assert err <= TOL, f"{name}: rel L2 {err:.2e}"


@pytest.mark.parametrize("name", ["tiny-t2v-wan22", "tiny-i2v-noclip"])
def test_official_parity(tmp_path, wan22_model_module, name):
    from safetensors.torch import save_file

    cfg = get_config(name)
    torch.manual_seed(0)
    ref = wan22_model_module.WanModel(**wan22_kwargs(cfg)).eval()
    randomize_(ref, seed=3)
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()},
              str(tmp_path / "diffusion_pytorch_model.safetensors"))
    assert detect_layout(str(tmp_path)) == "official"

    x, t, ctx, clip, y = _inputs(cfg, 2, seed=4)
    seq_len = int(np.prod(T_FHW)) // 4
    n_text = 7
    with torch.no_grad():
        out = ref([torch.from_numpy(u) for u in x],
                  t=torch.from_numpy(t)[:, None].expand(2, seq_len),
                  context=[torch.from_numpy(c[:n_text]) for c in ctx], seq_len=seq_len,
                  y=None if y is None else [torch.from_numpy(u) for u in y])
    want = torch.stack(out).numpy()
    got, _ = _jax_forward(str(tmp_path), cfg, x, t, ctx, clip, y)
    err = rel_l2(got, want)
    print(name, "rel_l2", err, "norm", np.linalg.norm(want))
    assert err <= TOL, f"{name}: rel L2 {err:.2e}"
