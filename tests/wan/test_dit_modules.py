"""Per-module parity of the DiT with the official code (wan22), fp32, so a failure points at a
module: time sinusoid, RoPE, time embedding, one block, head, unpatchify."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs.wan_dit import get_config
from gvc_jax.weights.dit import conversion
from gvc_jax.weights.sources import Checkpoint, in_memory
from gvc_jax.weights.table import load_into
from gvc_jax.models.wan.dit import WanDiT
from gvc_jax.models.wan.rope import apply_rope, rope_split, rope_tables, sinusoid
from gvc_jax.testing.refs import randomize_, rel_l2, wan22_kwargs

torch = pytest.importorskip("torch")
GRID = (3, 2, 5)


@pytest.fixture(scope="module")
def pair(wan22_model_module):
    """(official tiny t2v WanModel, the same weights in WanDiT fp32)."""
    cfg = get_config("tiny-t2v-wan22")
    torch.manual_seed(0)
    ref = wan22_model_module.WanModel(**wan22_kwargs(cfg)).eval()
    randomize_(ref, seed=5)
    sd = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    arrays, _ = conversion(Checkpoint("state dict", "official", in_memory(sd)), cfg,
                           dtype=jnp.float32).run()
    model = load_into(lambda: WanDiT(cfg, rngs=nnx.Rngs(0), dtype=jnp.float32,
                                     param_dtype=jnp.float32), arrays)
    return ref, model, cfg


def test_time_sinusoid_matches_float64(wan22_model_module):
    rng = np.random.default_rng(0)
    t = np.concatenate([np.arange(0, 1001, 37), rng.uniform(0, 1000, 200),
                        [999.0, 0.5, 1e-3]]).astype(np.float32)
    want = wan22_model_module.sinusoidal_embedding_1d(256, torch.from_numpy(t)).numpy()
    got = np.asarray(sinusoid(jnp.asarray(t), 256))
    # float64 reference rounded to fp32 is within 6e-8; cos/sin of the reduced fp32 angle add
    # about one fp32 ulp of pi. A plain fp32 t*freq product is off by ~6e-5 here.
    assert np.abs(got - want).max() < 5e-7


def test_rope_split_and_tables(wan22_model_module):
    assert rope_split(128) == (44, 42, 42)
    assert rope_split(32) == (12, 10, 10)
    d, n = 32, 2
    freqs = torch.cat([wan22_model_module.rope_params(1024, w) for w in rope_split(d)], dim=1)
    f, h, w = GRID
    x = torch.randn(1, f * h * w, n, d, generator=torch.Generator().manual_seed(0))
    want = wan22_model_module.rope_apply(x, torch.tensor([GRID]), freqs).numpy()
    cos, sin = rope_tables(GRID, d)
    got = np.asarray(apply_rope(jnp.asarray(x.numpy()), cos, sin))
    assert rel_l2(got, want) < 1e-6


def test_time_embedding(pair, wan22_model_module):
    ref, model, cfg = pair
    t = torch.tensor([999.0, 250.5])
    with torch.no_grad():
        e = ref.time_embedding(wan22_model_module.sinusoidal_embedding_1d(cfg.freq_dim, t).float())
        e0 = ref.time_projection(e).unflatten(1, (6, cfg.dim))
    ge, ge0 = model.time_embed(jnp.asarray(t.numpy()))
    assert rel_l2(ge, e.numpy()) < 1e-6
    assert rel_l2(ge0, e0.numpy()) < 1e-6


def _layer(model, i):
    graphdef, state = nnx.split(model.blocks)
    return nnx.merge(graphdef, jax.tree.map(lambda a: a[i], state))


def test_one_block(pair, wan22_model_module):
    ref, model, cfg = pair
    g = torch.Generator().manual_seed(1)
    f, h, w = GRID
    L = f * h * w
    x = torch.randn(2, L, cfg.dim, generator=g)
    e0 = 0.3 * torch.randn(2, 6, cfg.dim, generator=g)
    ctx = torch.randn(2, cfg.text_len, cfg.dim, generator=g)
    d = cfg.dim // cfg.num_heads
    freqs = torch.cat([wan22_model_module.rope_params(1024, w_) for w_ in rope_split(d)], dim=1)
    with torch.no_grad():
        want = ref.blocks[1](x, e0[:, None].expand(2, L, 6, cfg.dim).contiguous(),
                             torch.tensor([L, L]), torch.tensor([GRID, GRID]), freqs, ctx, None)
    cos, sin = rope_tables(GRID, d)
    block = _layer(model, 1)
    got = nnx.jit(lambda b, *a: b(*a))(block, jnp.asarray(x.numpy()), jnp.asarray(e0.numpy()),
                                       jnp.asarray(ctx.numpy()), None, cos, sin)
    assert rel_l2(got, want.numpy()) < 1e-6


def test_head_and_unpatchify(pair):
    ref, model, cfg = pair
    g = torch.Generator().manual_seed(2)
    f, h, w = GRID
    x = torch.randn(1, f * h * w, cfg.dim, generator=g)
    e = torch.randn(1, cfg.dim, generator=g)
    with torch.no_grad():
        want = ref.head(x, e[:, None].expand(1, f * h * w, cfg.dim))
        vid = ref.unpatchify(want, torch.tensor([GRID]))[0]
    got = model.head(jnp.asarray(x.numpy()), jnp.asarray(e.numpy()))
    assert rel_l2(got, want.numpy()) < 1e-6
    got_vid = np.asarray(model.unpatchify(got, GRID))[0]
    assert rel_l2(got_vid, vid.numpy()) < 1e-6
    tok, grid = model.patchify(jnp.asarray(got_vid)[None])  # the inverse, back to tokens
    assert grid == GRID
    np.testing.assert_array_equal(np.asarray(tok), np.asarray(got))
