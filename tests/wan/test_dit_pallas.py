"""The TPU Pallas attention path, run in Pallas interpret mode on CPU (not on a TPU)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs.wan_dit import get_config
from gvc_jax.models.wan.attention import attention
from gvc_jax.models.wan.dit import WanDiT
from gvc_jax.testing.refs import rel_l2


@pytest.mark.parametrize("lq,lk", [(48, 48), (48, 512), (300, 5)])
def test_splash_matches_xla(lq, lk):
    ks = jax.random.split(jax.random.key(lq + lk), 3)
    q = jax.random.normal(ks[0], (2, lq, 2, 32))
    k = jax.random.normal(ks[1], (2, lk, 2, 32))
    v = jax.random.normal(ks[2], (2, lk, 2, 32))
    got = attention(q, k, v, "pallas_interpret")
    want = attention(q, k, v, "xla")
    assert got.shape == want.shape
    assert rel_l2(got, want) < 1e-5


def test_model_forward_with_pallas_attention():
    cfg = get_config("tiny-i2v")
    model = WanDiT(cfg, rngs=nnx.Rngs(0), dtype=jnp.float32, param_dtype=jnp.float32)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((1, 16, 2, 4, 6)), jnp.float32)
    y = jnp.asarray(rng.standard_normal((1, 20, 2, 4, 6)), jnp.float32)
    ctx = jnp.asarray(rng.standard_normal((1, cfg.text_len, cfg.text_dim)), jnp.float32)
    clip = jnp.asarray(rng.standard_normal((1, cfg.clip_len, cfg.clip_dim)), jnp.float32)
    t = jnp.asarray([321.0])
    got = model(x, t, ctx, clip, y, implementation="pallas_interpret")
    want = model(x, t, ctx, clip, y, implementation="xla")
    assert rel_l2(got, want) < 1e-5
