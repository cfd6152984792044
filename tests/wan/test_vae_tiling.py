"""Spatial tiling of the Wan VAE (tiny random weights, CPU).

Bound: with the middle attention made local (zero output projection, so the
block adds a constant) and ``margin >= receptive_radius``, every kept pixel of
every tile is computed from exactly the inputs the untiled pass uses, and the
blend is a convex combination of equal values; the only difference left is
fp32 rounding (different conv shapes), so we test rel. L2 <= 1e-5, the parity
tolerance. With margin 0 the same check must fail, which shows the test can.
With the (global) attention on, tiling is approximate: that error is measured
and reported (docs/wan_vae.md), not asserted.
"""
import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

from gvc_jax.models.wan import tiling  # noqa: E402

TOL = 1e-5


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def local_vae():
    from configs.wan_vae import get_config
    from gvc_jax.models.wan.vae import WanVAE
    from gvc_jax.weights.vae import random_model
    cfg = get_config("tiny")
    model = random_model(cfg, seed=3)
    for attn in (model.encoder.mid_attn, model.decoder.mid_attn):
        attn.proj_kernel[...] = jnp.zeros_like(attn.proj_kernel[...])
    return WanVAE(cfg, model)


def test_plan_covers_and_overlaps():
    plan = tiling.plan_axis(44, 34, 15, 2)
    assert plan[0][1] == 0 and plan[-1][2] == 44
    for (s0, lo0, hi0), (s1, lo1, hi1) in zip(plan, plan[1:]):
        assert hi0 - lo1 >= 2 and lo1 - s1 == 15 and s0 + 34 - hi0 == 15
    ws = tiling.axis_weights(plan, 8, 44 * 8)
    np.testing.assert_allclose(np.sum(ws, axis=0), 1.0, rtol=1e-12)
    with pytest.raises(ValueError):
        tiling.plan_axis(44, 20, 10, 2)


def test_radius_values():
    from configs.wan_vae import get_config
    from gvc_jax.models.wan.vae import receptive_radius
    cfg = get_config("wan2.1")
    assert receptive_radius(cfg, "decode") == 18  # 17.25 rounded up
    assert receptive_radius(cfg, "encode") == 15  # 14.375 rounded up


def test_tiled_decode_exact_when_local(local_vae):
    from gvc_jax.models.wan.vae import receptive_radius
    vae = local_vae
    m = receptive_radius(vae.cfg, "decode")
    z = jax.random.normal(jax.random.key(0), (1, 16, 2, 8, 48))  # tiles along W
    full = vae.decode_bcthw(z)
    tiled = vae.decode_bcthw(z, tile=(8, 44), margin=m, blend=2)
    assert tiled.shape == full.shape == (1, 3, 5, 64, 384)
    assert _rel(tiled, full) <= TOL
    naive = vae.decode_bcthw(z, tile=(8, 44), margin=0, blend=2)
    assert _rel(naive, full) > 100 * TOL


def test_tiled_encode_exact_when_local(local_vae):
    from gvc_jax.models.wan.vae import receptive_radius
    vae = local_vae
    m = receptive_radius(vae.cfg, "encode")
    x = jax.random.uniform(jax.random.key(1), (1, 3, 5, 352, 64), minval=-1, maxval=1)  # along H
    full = vae.encode_bcthw(x)
    tiled = vae.encode_bcthw(x, tile=(40, 8), margin=m, blend=2)
    assert tiled.shape == full.shape == (1, 16, 2, 44, 8)
    assert _rel(tiled, full) <= TOL
    naive = vae.encode_bcthw(x, tile=(40, 8), margin=0, blend=2)
    assert _rel(naive, full) > 100 * TOL
