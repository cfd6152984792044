"""Exact bands of the Wan VAE's high-resolution layers (gvc_jax/models/wan/vae_bands.py), on CPU.

Unlike tiling (test_vae_tiling.py), bands keep the global middle attention whole, so banded
equals unbanded up to float32 rounding (different conv shapes) with real attention: rel. L2
<= 1e-5, the VAE's parity tolerance. With no halo the same check fails by far, which shows it
can; and built for anything but a TPU the VAE takes no bands, so CPU and GPU outputs are
unchanged. The encoder's check takes ~2 min on 2 loaded cores: it is a slow test.
"""
from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

from gvc_jax import target  # noqa: E402
from gvc_jax.models.wan import vae as wvae, vae_bands  # noqa: E402

TOL = 1e-5


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def vae():
    from configs.wan_vae import get_config
    cfg = get_config("tiny")
    from gvc_jax.weights.vae import random_model
    return wvae.WanVAE(cfg, random_model(cfg, seed=5))


def _banded_decode(vae, z, bands):
    from flax import nnx

    def f(state, z):
        model = nnx.merge(vae.graphdef, state)
        mean = jnp.asarray(model.mean, jnp.float32)
        std = jnp.asarray(model.std, jnp.float32)
        x = model.post_quant(jnp.transpose(z, (0, 2, 3, 4, 1)) * std + mean)[0]
        out = vae_bands.decode_banded(vae.graphdef, state, x, bands, vae_bands.arch(model))
        return jnp.transpose(jnp.clip(out, -1.0, 1.0), (0, 4, 1, 2, 3))
    return jax.jit(f)(vae.state, z)


def _banded_encode(vae, x, bands):
    from flax import nnx

    def f(state, x):
        model = nnx.merge(vae.graphdef, state)
        y = vae_bands.encode_banded(vae.graphdef, state, jnp.transpose(x, (0, 2, 3, 4, 1)),
                                    bands, vae_bands.arch(model))
        return wvae._latent_mean(model, y)
    return jax.jit(f)(vae.state, x)


def test_halos_and_plan():
    from configs.wan_vae import get_config
    cfg = get_config("wan2.1")
    assert vae_bands.halo(cfg, "decode") == 14 and vae_bands.halo(cfg, "encode") == 24
    plan = vae_bands.plan(90, 2, 14)
    assert plan == [(0, 59, 0, 45), (31, 90, 45, 90)]
    plan = vae_bands.plan(720, 3, 24, align=4)
    assert [k for _, _, k, _ in plan] == [0, 240, 480] and all(k % 4 == 0 for *_, k in plan)
    assert plan[-1][1] == plan[-1][3] == 720


def test_bands_only_when_building_for_a_tpu():
    assert vae_bands.auto_bands(720, 1280) == 1
    with target.building_for("tpu"):
        assert vae_bands.auto_bands(480, 832) == 1
        assert vae_bands.auto_bands(720, 1280) == 2
        assert vae_bands.auto_bands(1080, 1920) == 4
    with target.building_for("gpu", 9.0):
        assert vae_bands.auto_bands(1080, 1920) == 1


def test_banded_decode_equals_whole_frames(vae, monkeypatch):
    rng = np.random.default_rng(0)
    z = jnp.asarray(rng.standard_normal((1, 16, 2, 36, 3)), jnp.float32)   # 2x grid: 72 rows
    want = vae.decode_bcthw(z)
    got = _banded_decode(vae, z, 3)          # keeps 24 rows each, computes up to 52
    assert got.shape == want.shape == (1, 3, 5, 288, 24)
    assert _rel(got, want) <= TOL
    monkeypatch.setattr(vae_bands, "halo", lambda cfg, which: 0)
    assert _rel(_banded_decode(vae, z, 3), want) > 100 * TOL


@pytest.mark.slow
def test_banded_encode_equals_whole_frames(vae, monkeypatch):
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.uniform(-1, 1, (1, 3, 5, 192, 24)), jnp.float32)
    want = vae.encode_bcthw(x)
    got = _banded_encode(vae, x, 3)          # keeps 64 rows each, computes up to 112
    assert got.shape == want.shape == (1, 16, 2, 24, 3)
    assert _rel(got, want) <= TOL
    monkeypatch.setattr(vae_bands, "halo", lambda cfg, which: 0)
    assert _rel(_banded_encode(vae, x, 3), want) > 100 * TOL
