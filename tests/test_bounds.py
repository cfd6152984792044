"""Reference bounds (gvc_jax.bounds): reverse water-filling D(R) and the perfect-realism D_p(R)."""
import math

import numpy as np
import pytest

from gvc_jax import bounds as B


def _db(a, b):
    return 10.0 * math.log10(a / b)


def _spectrum(seed, n=40):
    rng = np.random.default_rng(seed)
    return np.exp(rng.uniform(-8, 4, n))


@pytest.mark.parametrize("n,var,rate", [(1, 1.0, 0.3), (5, 2.5, 1.0), (64, 0.01, 100.0), (3, 7.0, 0.0)])
def test_equal_variances_closed_form(n, var, rate):
    v = np.full(n, var)
    assert B.shannon_distortion(v, rate) == pytest.approx(n * var * 2 ** (-2 * rate / n), rel=1e-12)
    # equal variances: by symmetry and convexity the realism optimum splits the rate equally
    dp = n * 2 * var * (1 - math.sqrt(1 - 2 ** (-2 * rate / n)))
    assert B.realism_distortion(v, rate) == pytest.approx(dp, rel=1e-10)


def test_water_filling_inactive_components():
    v = np.array([4.0, 1.0, 0.01])
    rate = 2.0  # two active components: theta = 2^((log2 4 + log2 1 - 2R)/2) = 0.5 > 0.01
    theta = 2 ** ((2.0 - 2 * rate) / 2)
    assert theta == 0.5
    assert B.water_level(v, rate) == pytest.approx(theta, rel=1e-12)
    assert B.shannon_distortion(v, rate) == pytest.approx(2 * theta + 0.01, rel=1e-12)
    assert B.shannon_rate(v, theta) == pytest.approx(rate, rel=1e-12)
    # below the smallest variance everything is active
    assert B.shannon_distortion(v, 20.0) == pytest.approx(3 * 2 ** ((math.log2(0.04) - 40) / 3), rel=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_water_level_solves_the_rate_equation(seed):
    v = _spectrum(seed)
    for rate in [0.01, 0.7, 5.0, 60.0, 400.0]:
        theta = B.water_level(v, rate)
        assert B.shannon_rate(v, theta) == pytest.approx(rate, rel=1e-11)


def test_realism_limits():
    v = _spectrum(3)
    # R -> 0: D_p -> 2 sum var, 3 dB above D(0) = sum var
    assert B.realism_distortion(v, 0.0) == pytest.approx(2 * v.sum(), rel=1e-15)
    assert B.shannon_distortion(v, 0.0) == pytest.approx(v.sum(), rel=1e-15)
    assert B.realism_distortion(v, 1e-12) == pytest.approx(2 * v.sum(), rel=1e-4)
    assert B.realism_distortion(v, 1e-12) < 2 * v.sum()
    # one component at R = 0.5: 2(1 - sqrt(1/2)) against 1/2, a 0.69 dB gap
    gap = _db(B.realism_distortion([1.0], 0.5), B.shannon_distortion([1.0], 0.5))
    assert gap == pytest.approx(10 * math.log10(4 * (1 - math.sqrt(0.5))), rel=1e-9)
    assert round(gap, 2) == 0.69
    # high rate: the gap vanishes
    gaps = [_db(B.realism_distortion(v, r), B.shannon_distortion(v, r)) for r in (40, 400, 4000)]
    assert gaps[0] > gaps[1] > gaps[2] > 0 and gaps[2] < 1e-6


@pytest.mark.parametrize("seed", [0, 4])
def test_realism_above_shannon_and_monotone(seed):
    v = _spectrum(seed)
    rates = np.concatenate([[0.0], np.geomspace(1e-3, 500, 30)])
    d = np.array([B.shannon_distortion(v, r) for r in rates])
    dp = np.array([B.realism_distortion(v, r) for r in rates])
    assert np.all(dp >= d)
    assert np.all(np.diff(d) < 0) and np.all(np.diff(dp) < 0)
    # realism bound at most 2x (3 dB) above Shannon: rho = sqrt(1 - q) >= 1 - q
    assert np.all(dp <= 2 * d * (1 + 1e-12))


@pytest.mark.parametrize("seed", [0, 5])
def test_realism_allocation_is_optimal(seed):
    v = _spectrum(seed, 12)
    rate = 6.0
    _, r_i = B.realism_allocation(v, rate)
    assert r_i.sum() == pytest.approx(rate, rel=1e-12) and np.all(r_i > 0)
    comp = np.vectorize(B.realism_distortion_component)
    best = comp(v, r_i).sum()
    assert best == pytest.approx(B.realism_distortion(v, rate), rel=1e-10)
    # moving rate between any two components (keeping the total) never helps
    for i in range(len(v)):
        for j in range(len(v)):
            if i == j:
                continue
            for delta in (1e-3, 1e-1):
                r2 = r_i.copy()
                step = min(delta, r2[j])
                r2[i] += step
                r2[j] -= step
                assert comp(v, r2).sum() >= best * (1 - 1e-12)
    # and beats the equal split and the water-filling split
    assert best < comp(v, np.full(len(v), rate / len(v))).sum()
    theta = B.water_level(v, rate)
    assert best < comp(v, np.maximum(0, 0.5 * np.log2(v / theta))).sum()


def test_counts_equivalent_to_expanded():
    vals = np.array([3.0, 0.5, 1e-3, 0.0])
    counts = np.array([7, 1, 100, 5])
    full = np.repeat(vals, counts)
    for rate in [0.0, 0.4, 12.0, 300.0]:
        assert B.shannon_distortion(vals, rate, counts=counts) == pytest.approx(
            B.shannon_distortion(full, rate), rel=1e-11)
        assert B.realism_distortion(vals, rate, counts=counts) == pytest.approx(
            B.realism_distortion(full, rate), rel=1e-10)


def test_bad_inputs():
    with pytest.raises(ValueError):
        B.shannon_distortion([1.0], -1.0)
    with pytest.raises(ValueError):
        B.realism_distortion([-1.0], 1.0)
    with pytest.raises(ValueError):
        B.shannon_distortion([1.0, 2.0], 1.0, counts=[1])


def test_psnr_helpers():
    assert B.psnr_from_mse(255.0**2) == pytest.approx(0.0, abs=1e-12)
    assert B.psnr_from_mse(1.0) == pytest.approx(20 * math.log10(255), rel=1e-12)
    assert B.psnr_from_mse(0.0) == math.inf
    # latent error e per dim maps to 255 e / scale in pixels
    assert B.latent_to_pixel_psnr(10 * 0.04, 10, scale=2.0) == pytest.approx(
        B.psnr_from_mse((0.2 * 255 / 2.0) ** 2), rel=1e-12)
