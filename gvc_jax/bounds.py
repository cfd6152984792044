"""Rate-distortion reference bounds for independent Gaussian components (docs/design.md §10), NumPy only.

For x_i ~ N(0, var_i) and a total rate of R bits:

* :func:`shannon_distortion` -- D(R) by reverse water-filling,
  D = sum min(theta, var_i), R = sum max(0, 1/2 log2(var_i / theta)). Bound for any decoder.
* :func:`realism_distortion` -- the perfect-realism bound D_p(R) (output distributed as the
  source, shared randomness): per component D_i(R_i) = 2 var_i (1 - sqrt(1 - 2^(-2 R_i))),
  minimised over R_i >= 0 with sum R_i = R.

Variances can be given compactly as unique values with ``counts=`` (a 720p video has millions of
dimensions but only 768 distinct variances under the `gaussian` model). Distortions are totals
(sums over all dimensions) in the units of the variances.
"""
from __future__ import annotations

import math

import numpy as np

LN2 = math.log(2.0)


def _spectrum(variances, counts):
    v = np.asarray(variances, np.float64).ravel()
    n = np.ones_like(v) if counts is None else np.asarray(counts, np.float64).ravel()
    if n.shape != v.shape:
        raise ValueError(f"counts shape {n.shape} does not match variances {v.shape}")
    if not (np.all(np.isfinite(v)) and np.all(v >= 0)):
        raise ValueError("variances must be finite and >= 0")
    if not (np.all(np.isfinite(n)) and np.all(n >= 0)):
        raise ValueError("counts must be finite and >= 0")
    keep = (v > 0) & (n > 0)  # zero-variance dims cost no rate and add no distortion
    return v[keep], n[keep]


def _check_rate(total_bits):
    r = float(total_bits)
    if not (np.isfinite(r) and r >= 0):
        raise ValueError(f"total_bits must be finite and >= 0, got {total_bits}")
    return r


# ---- Shannon D(R) --------------------------------------------------------------------------
def water_level(variances, total_bits, counts=None) -> float:
    """Reverse water-filling level theta for a total rate (exact active-set solution).

    With the k largest variances active, log2 theta = (sum_active n log2 var - 2R) / N_active;
    the right k is the first whose theta is at least the next (inactive) variance.
    """
    v, n = _spectrum(variances, counts)
    r = _check_rate(total_bits)
    if v.size == 0:
        return 0.0
    order = np.argsort(-v, kind="stable")
    v, n = v[order], n[order]
    if r == 0:
        return float(v[0])
    log_theta = (np.cumsum(n * np.log2(v)) - 2.0 * r) / np.cumsum(n)
    nxt = np.append(v[1:], 0.0)
    with np.errstate(divide="ignore"):
        k = int(np.argmax(log_theta >= np.log2(nxt)))  # last entry always true (log2 0 = -inf)
    return float(2.0 ** log_theta[k])


def shannon_distortion(variances, total_bits, counts=None) -> float:
    """Total D(R) = sum min(theta, var_i) of independent Gaussians by reverse water-filling."""
    v, n = _spectrum(variances, counts)
    theta = water_level(v, total_bits, n)
    return float(np.sum(n * np.minimum(theta, v)))


def shannon_rate(variances, theta: float, counts=None) -> float:
    """Total R(theta) = sum max(0, 1/2 log2(var_i/theta)) bits for a water level theta > 0."""
    v, n = _spectrum(variances, counts)
    return float(np.sum(n * np.maximum(0.0, 0.5 * np.log2(v / theta))))


# ---- perfect realism D_p(R) ----------------------------------------------------------------
def _realism_components(lam: float, v):
    """Per-component optimum for multiplier lam: (rates R_i, 1 - rho_i).

    dD_i/dR_i = -2 ln2 var q / sqrt(1-q) with q = 2^(-2R_i); setting it to -lam gives
    q / sqrt(1-q) = a, a = lam / (2 ln2 var), so q = 2a / (a + sqrt(a^2+4)) and
    rho = sqrt(1-q) = q/a. The slope is -inf at R_i = 0, so every component gets some rate.
    """
    a = lam / (2.0 * LN2 * v)
    s = np.sqrt(a * a + 4.0)
    q = 2.0 * a / (a + s)
    # R_i = -1/2 log2 q; near q = 1 use log q = log1p(-(1-q)) with 1-q = q^2/a^2 (exact identity)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(q < 0.5, -0.5 * np.log2(q), -0.5 * np.log1p(-q * q / (a * a)) / LN2)
    # 1 - q/a = (a + s - 2)/(a + s), with s - 2 = a^2/(s + 2): no cancellation at high rate
    one_minus_rho = (a + a * a / (s + 2.0)) / (a + s)
    return rate, one_minus_rho


def _realism_at(lam: float, v, n):
    """(total rate, total distortion) of the per-component optimum for multiplier lam."""
    rate, one_minus_rho = _realism_components(lam, v)
    return float(np.sum(n * rate)), float(np.sum(n * 2.0 * v * one_minus_rho))


def realism_allocation(variances, total_bits, counts=None, rtol: float = 1e-13):
    """Optimal (multiplier, per-component rates R_i) for :func:`realism_distortion`."""
    v, n = _spectrum(variances, counts)
    r = _check_rate(total_bits)
    if v.size == 0 or r == 0:
        return math.inf, np.zeros_like(v)
    # R(lam) decreases from +inf (lam -> 0) to 0 (lam -> inf): bracket, then bisect in log lam
    lo, hi = 0.0, 0.0
    while _realism_at(math.exp(lo), v, n)[0] < r:
        lo -= 8.0
    while _realism_at(math.exp(hi), v, n)[0] > r:
        hi += 8.0
    mid = 0.5 * (lo + hi)
    for _ in range(400):
        mid = 0.5 * (lo + hi)
        rm = _realism_at(math.exp(mid), v, n)[0]
        if abs(rm - r) <= rtol * r:
            break
        if rm > r:
            lo = mid
        else:
            hi = mid
    lam = math.exp(mid)
    return lam, _realism_components(lam, v)[0]


def realism_distortion(variances, total_bits, counts=None) -> float:
    """Total perfect-realism distortion D_p(R) = min sum 2 var_i (1 - sqrt(1 - 2^(-2R_i)))."""
    v, n = _spectrum(variances, counts)
    r = _check_rate(total_bits)
    if v.size == 0:
        return 0.0
    if r == 0:
        return float(np.sum(n * 2.0 * v))
    lam, _ = realism_allocation(v, r, n)
    return _realism_at(lam, v, n)[1]


def realism_distortion_component(var: float, rate_bits: float) -> float:
    """D_i(R_i) = 2 var (1 - sqrt(1 - 2^(-2R_i))) for one component at a given rate."""
    return 2.0 * var * (1.0 - math.sqrt(-math.expm1(-2.0 * rate_bits * LN2)))


# ---- pixel-domain helpers --------------------------------------------------------------------
def psnr_from_mse(mse, peak: float = 255.0):
    """PSNR in dB of a mean squared error (inf for mse == 0)."""
    mse = np.asarray(mse, np.float64)
    with np.errstate(divide="ignore"):
        out = 10.0 * np.log10(peak * peak / mse)
    return float(out) if out.ndim == 0 else out


def latent_to_pixel_psnr(latent_distortion_total, n_dims: int, scale: float, peak: float = 255.0):
    """PSNR of a total latent squared error for an orthonormal transform of ``x/255`` times ``scale``.

    For the `gaussian` model a latent error e maps to 255 e / scale in pixels, and the latent has as
    many dims as the video has samples (n_dims = T*H*W*3), so pixel MSE = D/n_dims * (255/scale)^2.
    """
    mse = np.asarray(latent_distortion_total, np.float64) / n_dims * (255.0 / scale) ** 2
    return psnr_from_mse(mse, peak)


def gaussian_model_bounds(model, t: int, h: int, w: int, total_bits: float) -> dict:
    """Shannon and perfect-realism PSNR bounds of a video of T x H x W under a GaussianPrior-like model.

    ``model`` needs ``latent_shape``, ``variance_spectrum`` and ``scale`` (duck-typed, no JAX here).
    Returns totals in latent units, the pixel PSNRs, and the rate in bits per pixel (per frame pixel).
    """
    _, tq, hq, wq = model.latent_shape(t, h, w)
    v, n = model.variance_spectrum(tq, hq, wq)
    n_dims = int(np.sum(n))
    d = shannon_distortion(v, total_bits, n)
    dp = realism_distortion(v, total_bits, n)
    return {
        "total_bits": float(total_bits), "bpp": float(total_bits) / (t * h * w), "n_dims": n_dims,
        "d_shannon": d, "d_realism": dp,
        "psnr_shannon": latent_to_pixel_psnr(d, n_dims, model.scale),
        "psnr_realism": latent_to_pixel_psnr(dp, n_dims, model.scale),
    }
