"""Self-tests of the independent PyTorch GVC reference (gvc_jax/testing/torch_gvc.py); none of them runs
the JAX encoder. The NumPy codebook functions are used only as the definition to check against."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gvc_jax.codebook import combine_numpy, select_topm_numpy  # noqa: E402
from gvc_jax.testing.torch_gvc import (combine_rms_torch, from_fd, gvc_decode_torch,  # noqa: E402
                                 gvc_encode_torch, gvc_sample_torch, seeded_x_T,
                                 select_topm_torch, shifted_times_np, to_fd, wan_velocity)
from gvc_jax.codebook import atoms_numpy  # noqa: E402


def gaussian_velocity(x, t):
    """Exact velocity when x0 ~ N(0, I): with σ² = (1−t)² + t², E[x0|x_t] = (1−t)·x_t/σ² and
    E[ε|x_t] = t·x_t/σ², so u = E[ε|x_t] − E[x0|x_t] = (2t − 1)·x_t/σ²."""
    return (2.0 * t - 1.0) * x / ((1.0 - t) ** 2 + t ** 2)


def warped_velocity(x, t):
    """A nonlinear, frame- and channel-mixing stand-in for a network (for replay tests)."""
    return gaussian_velocity(x, t) + 0.3 * torch.tanh(x.roll(1, dims=0) - 0.5 * x.roll(1, dims=1)) * t


def rel_l2(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


SHAPE = (4, 3, 8, 8)     # C, F, H, W: D = 256 per latent frame
SEED, GOP = 7, 2


def _problem(seed=0):
    tgt = np.random.default_rng(seed).standard_normal(SHAPE).astype(np.float32)
    return seeded_x_T(SEED, GOP, SHAPE), tgt


def test_times_and_layout():
    t = shifted_times_np(20, 3.0)
    assert t.dtype == np.float32 and t[0] == 1.0 and t[-1] == 0.0 and np.all(np.diff(t) < 0)
    tau = np.linspace(1, 0, 21)
    np.testing.assert_array_equal(t, (3.0 * tau / (1 + 2.0 * tau)).astype(np.float32))
    x = torch.arange(np.prod(SHAPE), dtype=torch.float64).reshape(SHAPE)
    fd = to_fd(x)
    c, f, h, w = SHAPE
    np.testing.assert_array_equal(fd[1].numpy(), x[:, 1].reshape(-1).numpy())   # C-major frame 1
    np.testing.assert_array_equal(from_fd(fd, SHAPE).numpy(), x.numpy())
    np.testing.assert_array_equal(seeded_x_T(SEED, GOP, SHAPE),
                                  atoms_numpy(SEED, GOP, 2 ** 32 - 1, 2 ** 32 - 1, [0], SHAPE)[0])


def test_sde_without_bits_keeps_the_marginals():
    """(a) Gaussian data and its exact velocity: the SDE with i.i.d. noise stays on the marginals
    N(0, σ_t²), σ_t² = (1−t)² + t², and ends at unit variance (GVC defaults: N=20, 17 SDE, g=3)."""
    times = shifted_times_np(20, 1.0)
    gen = torch.Generator().manual_seed(0)
    x_T = torch.randn((16, 4, 32, 32), generator=gen, dtype=torch.float64)     # 65536 samples
    out = gvc_sample_torch(gaussian_velocity, x_T, times=times, sde_steps=17, g_scale=3.0,
                           generator=torch.Generator().manual_seed(1))
    t_s = float(times[17])
    assert out["x_sde"].var() == pytest.approx((1 - t_s) ** 2 + t_s ** 2, rel=0.03)
    assert out["x0"].var() == pytest.approx(1.0, rel=0.03)
    assert abs(out["x0"].mean()) < 0.02


def test_combination_matches_definition_and_numpy_codebook():
    """Unit RMS by definition, and within float32 rounding of the project's NumPy combine."""
    d, m = 256, 37
    rng = np.random.default_rng(3)
    idx = rng.choice(512, size=(2, m), replace=False).astype(np.int32)
    sign = rng.random((2, m)) < 0.5
    ref = combine_numpy(SEED, GOP, 5, idx, sign, [m, m - 5], d)
    for f, mf in enumerate([m, m - 5]):
        a = torch.from_numpy(atoms_numpy(SEED, GOP, 5, f, idx[f, :mf], d))
        z = combine_rms_torch(a, sign[f, :mf]).numpy()
        assert np.mean(z * z) == pytest.approx(1.0, rel=1e-12)
        np.testing.assert_allclose(z, ref[f], rtol=1e-6, atol=1e-6)
    assert not combine_rms_torch(torch.ones(2, 4), [True, False]).any()   # cancelling atoms -> 0


@pytest.mark.parametrize("kind", ["random", "zero", "onehot"])
def test_selection_matches_numpy_reference(kind):
    """(d) Same indices and signs as select_topm_numpy, including tie breaking (smaller k)."""
    f, d, K, m = 3, 200, 1024, 50
    if kind == "random":
        r = np.random.default_rng(5).standard_normal((f, d)).astype(np.float32)
    elif kind == "zero":                   # every score 0: indices 0..m-1, all signs True
        r = np.zeros((f, d), np.float32)
    else:                                  # scores are raw table values: many exact ties
        r = np.zeros((f, d), np.float32)
        r[0, 3], r[1, 17], r[2, 199] = 1.0, -1.0, 0.5
    idx, sign = select_topm_torch(SEED, GOP, 4, r, K, m)
    ref_idx, ref_sign = select_topm_numpy(SEED, GOP, 4, r, K, m)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(sign, ref_sign)
    if kind == "zero":
        np.testing.assert_array_equal(idx, np.broadcast_to(np.arange(m), (f, m)))
        assert sign.all()


def test_encode_outputs_and_decode_replays_exactly():
    """(b) decode(encode) reproduces the encoder's latents bit for bit; idx layout and order."""
    x_T, tgt = _problem()
    times = shifted_times_np(8, 2.0)
    ms = [8, 3, 16]
    kw = dict(times=times, sde_steps=6, g_scale=3.0, seed=SEED, gop=GOP, m_per_frame=ms)
    enc = gvc_encode_torch(warped_velocity, x_T, tgt, K=256, **kw)
    idx, sign = enc["idx"], enc["sign"]
    assert idx.shape == (6, 3, 16) and idx.dtype == np.int32 and sign.dtype == bool
    for f, m in enumerate(ms):
        assert (idx[:, f, m:] == -1).all() and not sign[:, f, m:].any()
        assert (idx[:, f, :m] >= 0).all() and (idx[:, f, :m] < 256).all()
        assert all(len(set(row)) == m for row in idx[:, f, :m].tolist())
    # the order is by |score| descending: re-score step 0 from its residual
    u0 = warped_velocity(torch.from_numpy(x_T).double(), float(times[0]))
    r0 = to_fd(torch.from_numpy(tgt).double() - (torch.from_numpy(x_T).double() - u0)).numpy()
    for f, m in enumerate(ms):
        s = atoms_numpy(SEED, GOP, 0, f, idx[0, f, :m], r0.shape[1]).astype(np.float64) @ r0[f]
        assert np.all(np.diff(np.abs(s)) <= 0) and np.array_equal(s >= 0, sign[0, f, :m])

    dec = gvc_decode_torch(warped_velocity, x_T, idx, sign, **kw)
    np.testing.assert_array_equal(dec["x0"], enc["x0"])
    np.testing.assert_array_equal(dec["x_sde"], enc["x_sde"])
    # teacher forcing with the encoder's own choices changes nothing
    tf = gvc_encode_torch(warped_velocity, x_T, tgt, K=256, teacher=(idx, sign), **kw)
    np.testing.assert_array_equal(tf["x0"], enc["x0"])
    np.testing.assert_array_equal(tf["idx"], idx)
    # a different teacher steers the trajectory, the returned selection is still the encoder's
    other = (np.where(idx >= 0, (idx + 1) % 256, -1), sign)
    tf2 = gvc_encode_torch(warped_velocity, x_T, tgt, K=256, teacher=other, **kw)
    dec2 = gvc_decode_torch(warped_velocity, x_T, *other, **kw)
    np.testing.assert_array_equal(tf2["x0"], dec2["x0"])
    assert not np.array_equal(tf2["x0"], enc["x0"])
    np.testing.assert_array_equal(tf2["idx"][0], idx[0])     # step 0 sees the same residual


def test_more_atoms_lower_the_error():
    """(c) Raising M moves the decoded sample toward the target (target drawn from the prior)."""
    x_T, tgt = _problem(seed=1)
    times = shifted_times_np(10, 1.0)
    errs = []
    for m in (1, 4, 16, 64):
        enc = gvc_encode_torch(gaussian_velocity, x_T, tgt, times=times, sde_steps=8, g_scale=3.0,
                               K=512, m_per_frame=[m] * 3, seed=SEED, gop=GOP)
        errs.append(float(np.mean((enc["x0"] - tgt) ** 2)))
    assert all(b < a for a, b in zip(errs, errs[1:])), errs
    assert errs[-1] < 0.1 * errs[0], errs


def test_float32_loop_tracks_float64_loop():
    """The loop dtype only moves the result by rounding (teacher-forced to the same indices)."""
    x_T, tgt = _problem(seed=2)
    kw = dict(times=shifted_times_np(10, 3.0), sde_steps=8, g_scale=3.0, K=256,
              m_per_frame=[16, 16, 16], seed=SEED, gop=GOP)
    e64 = gvc_encode_torch(warped_velocity, x_T, tgt, **kw)
    e32 = gvc_encode_torch(warped_velocity, x_T, tgt, teacher=(e64["idx"], e64["sign"]),
                           dtype=torch.float32, **kw)
    assert e32["x0"].dtype == np.float32 and e64["x0"].dtype == np.float64
    assert rel_l2(e32["x0"], e64["x0"]) < 1e-6
    assert np.mean(e32["idx"] == e64["idx"]) > 0.99


def _tiny_wan():
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    model = diffusers.WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=4,
        out_channels=4, text_dim=16, freq_dim=32, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=32).eval()
    with torch.no_grad():                  # scale_shift tables etc. start at zero: fill them
        g = torch.Generator().manual_seed(1)
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


def test_wan_velocity_with_diffusers_transformer():
    model = _tiny_wan()
    rng = np.random.default_rng(4)
    ctx = rng.standard_normal((5, 16)).astype(np.float32)
    neg = rng.standard_normal((5, 16)).astype(np.float32)
    x = torch.from_numpy(rng.standard_normal(SHAPE)).double()
    t = float(np.float32(0.6180339))

    v1 = wan_velocity(model, ctx)
    u = v1(x, t)
    assert u.shape == x.shape and u.dtype == torch.float64
    with torch.no_grad():
        ref = model(hidden_states=x.float()[None], timestep=torch.tensor([t], dtype=torch.float32) * 1000,
                    encoder_hidden_states=torch.from_numpy(ctx)[None], return_dict=False)[0][0]
    np.testing.assert_array_equal(u.numpy(), ref.double().numpy())

    vg = wan_velocity(model, ctx, neg, guidance=5.0)
    u_neg = wan_velocity(model, neg)(x, t)
    np.testing.assert_allclose(vg(x, t).numpy(), (u_neg + 5.0 * (u - u_neg)).numpy(), rtol=1e-12,
                               atol=1e-12)

    v64 = wan_velocity(model, ctx, dtype=torch.float64)
    assert next(model.parameters()).dtype == torch.float32          # the given module is untouched
    assert rel_l2(v64(x, t).numpy(), u.numpy()) < 1e-5

    # the whole loop on the transformer: encode, then decode replays it exactly
    x_T, tgt = _problem(seed=3)
    kw = dict(times=shifted_times_np(4, 3.0), sde_steps=3, g_scale=3.0, m_per_frame=[4, 2, 4],
              seed=SEED, gop=GOP)
    enc = gvc_encode_torch(v1, x_T, tgt, K=128, **kw)
    dec = gvc_decode_torch(v1, x_T, enc["idx"], enc["sign"], **kw)
    np.testing.assert_array_equal(dec["x0"], enc["x0"])
    assert np.isfinite(enc["x0"]).all()
