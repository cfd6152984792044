"""PSNR (RGB, BT.709 Y) against NumPy written here; MS-SSIM against pytorch_msssim (float32 and float64)."""
import sys

import numpy as np
import pytest
import torch
from pytorch_msssim import ms_ssim as torch_ms_ssim

from gvc_jax.io import find_sample_clip, read_video
from gvc_jax.metrics import (MetricUnavailable, ms_ssim, ms_ssim_supported, psnr, psnr_mean, psnr_sequence,
                             psnr_y, psnr_y_mean, psnr_y_sequence)
from gvc_jax.metrics.ms_ssim import _ms_ssim_batch

PSNR_TOL_DB = 1e-6
MSSSIM_TOL = 1e-4


def _rng(seed=0):
    return np.random.default_rng(seed)


def _noisy(x, amp, seed=1):
    n = _rng(seed).integers(-amp, amp + 1, x.shape)
    return np.clip(x.astype(np.int64) + n, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- PSNR, independent NumPy

def _np_psnr_frame(a_hwc, b_hwc, luma):
    a, b = a_hwc.astype(np.float64), b_hwc.astype(np.float64)
    if luma:
        a = 0.2126 * a[..., 0] + 0.7152 * a[..., 1] + 0.0722 * a[..., 2]
        b = 0.2126 * b[..., 0] + 0.7152 * b[..., 1] + 0.0722 * b[..., 2]
    mse = np.mean((a - b) ** 2)
    return 100.0 if mse == 0 else min(100.0, 10 * np.log10(255.0 ** 2 / mse)), mse


def _np_psnr(ref, dist, luma):
    rows = [_np_psnr_frame(r, d, luma) for r, d in zip(ref, dist)]
    per_frame = np.array([p for p, _ in rows])
    seq = 10 * np.log10(255.0 ** 2 / np.mean([m for _, m in rows]))
    return per_frame, seq


@pytest.fixture(scope="module")
def psnr_pair():
    ref = _rng(0).integers(0, 256, (4, 37, 53, 3), dtype=np.uint8)
    dist = np.stack([_noisy(ref[0], 2), _noisy(ref[1], 30), ref[2], _noisy(ref[3], 8)])
    return ref, dist


@pytest.mark.parametrize("luma", [False, True])
def test_psnr_matches_numpy(psnr_pair, luma):
    ref, dist = psnr_pair
    want, want_seq = _np_psnr(ref, dist, luma)
    got = (psnr_y if luma else psnr)(ref, dist)
    assert got.dtype == np.float64 and got.shape == (4,)
    np.testing.assert_allclose(got, want, rtol=0, atol=PSNR_TOL_DB)
    assert got[2] == 100.0                                   # identical frame: capped
    mean_fn, seq_fn = (psnr_y_mean, psnr_y_sequence) if luma else (psnr_mean, psnr_sequence)
    assert mean_fn(ref, dist) == pytest.approx(np.mean(want), abs=PSNR_TOL_DB)
    assert seq_fn(ref, dist) == pytest.approx(want_seq, abs=PSNR_TOL_DB)
    assert abs(mean_fn(ref, dist) - seq_fn(ref, dist)) > 1.0  # the two conventions really differ here


def test_psnr_y_is_bt709_luma():
    ref = _rng(2).integers(20, 236, (2, 16, 24, 3), dtype=np.uint8)
    dist = ref.copy()
    dist[..., 2] += 10                                       # error only in blue: Y error = 0.0722 * 10
    np.testing.assert_allclose(psnr_y(ref, dist), 20 * np.log10(255 / 0.722), atol=PSNR_TOL_DB)
    np.testing.assert_allclose(psnr(ref, dist), 10 * np.log10(255 ** 2 / (100 / 3)), atol=PSNR_TOL_DB)
    assert psnr_y_sequence(ref, ref) == 100.0 and psnr_sequence(ref, ref) == 100.0


def test_psnr_large_frames_chunked(monkeypatch):
    psnr_module = sys.modules["gvc_jax.metrics.psnr"]        # the package's `psnr` attribute is the function
    ref = _rng(3).integers(0, 256, (7, 20, 30, 3), dtype=np.uint8)
    dist = _noisy(ref, 12)
    whole = psnr_y(ref, dist), psnr(ref, dist)
    monkeypatch.setattr(psnr_module, "_CHUNK_BYTES", 3 * ref[0].size * 8)  # chunks of 3 frames: 3 + 3 + 1
    np.testing.assert_array_equal(psnr_y(ref, dist), whole[0])
    np.testing.assert_array_equal(psnr(ref, dist), whole[1])


# ---------------------------------------------------------------- MS-SSIM vs pytorch_msssim

def _torch_ms_ssim(ref, dist, dtype):
    x = torch.from_numpy(ref).permute(0, 3, 1, 2).to(dtype)
    y = torch.from_numpy(dist).permute(0, 3, 1, 2).to(dtype)
    return torch_ms_ssim(x, y, data_range=255, size_average=False).double().numpy()


def _check_ms_ssim(ref, dist):
    got = ms_ssim(ref, dist)
    assert got.dtype == np.float64 and got.shape == (ref.shape[0],)
    for dtype in (torch.float32, torch.float64):
        np.testing.assert_allclose(got, _torch_ms_ssim(ref, dist, dtype), rtol=0, atol=MSSSIM_TOL)
    return got


@pytest.mark.parametrize("shape", [(3, 192, 176), (2, 171, 203)])
def test_ms_ssim_random_pairs(shape):
    ref = _rng(4).integers(0, 256, shape + (3,), dtype=np.uint8)
    v = _check_ms_ssim(ref, _noisy(ref, 40))                 # correlated
    assert np.all((v > 0.5) & (v < 1.0))
    u = _check_ms_ssim(ref, _rng(5).integers(0, 256, ref.shape, dtype=np.uint8))  # independent
    assert np.all(u < 0.3)


def _box_blur(x_thwc, r):
    """Separable (2r+1)-tap box blur with edge replication, in uint8."""
    x = np.pad(x_thwc.astype(np.float64), ((0, 0), (r, r), (r, r), (0, 0)), mode="edge")
    k = 2 * r + 1
    x = sum(x[:, i:i + x.shape[1] - k + 1] for i in range(k)) / k
    x = sum(x[:, :, i:i + x.shape[2] - k + 1] for i in range(k)) / k
    return np.round(x).astype(np.uint8)


@pytest.fixture(scope="module")
def real_frames():
    v = read_video(find_sample_clip("bigbuckbunny.mp4"), max_frames=4).frames  # 1280x720
    return np.ascontiguousarray(v[:, ::2, ::2][:, 50:306, 100:420])           # 4 x 256 x 320


def test_ms_ssim_real_frames(real_frames):
    x = real_frames
    noisy = _check_ms_ssim(x, _noisy(x, 12))
    blurred = _check_ms_ssim(x, _box_blur(x, 2))
    shifted = _check_ms_ssim(x[:-1], x[1:])                    # next frame as the distorted one
    assert np.all(noisy < 1.0) and np.all(blurred < 1.0) and np.all(shifted < 1.0)
    # Odd sides: 255 -> 128 at the first pooling, 321 -> 161 -> 81 -> 41 -> 21 at every pooling.
    odd = np.ascontiguousarray(x[:2, :255, :321])
    _check_ms_ssim(odd, _box_blur(odd, 1))


def test_ms_ssim_negative_structure_is_clipped(real_frames):
    x = real_frames[:2]
    got = _check_ms_ssim(x, 255 - x)                          # anti-correlated: cs < 0 -> clipped to 0
    np.testing.assert_array_equal(got, 0.0)


def test_ms_ssim_identical_is_one(real_frames):
    np.testing.assert_allclose(ms_ssim(real_frames, real_frames), 1.0, rtol=0, atol=1e-6)


def test_ms_ssim_batching_keeps_order():
    ref = _rng(6).integers(0, 256, (5, 161, 170, 3), dtype=np.uint8)
    dist = np.stack([_noisy(r, a, seed=a) for r, a in zip(ref, (5, 20, 40, 80, 120))])
    whole = ms_ssim(ref, dist, batch=16)
    assert np.all(np.diff(whole) < 0)                         # more noise, lower score, in frame order
    np.testing.assert_allclose(ms_ssim(ref, dist, batch=2), whole, rtol=0, atol=1e-7)  # 2 + 2 + 1 (padded)
    vec = np.asarray(_ms_ssim_batch(ref, dist, 5), np.float64)  # the vectorized (accelerator) path
    np.testing.assert_allclose(vec, whole, rtol=0, atol=1e-6)


# ---------------------------------------------------------------- errors

def test_ms_ssim_size_limit():
    assert ms_ssim_supported(161, 161) and ms_ssim_supported(720, 1280)
    assert not ms_ssim_supported(160, 4000) and not ms_ssim_supported(4000, 144)
    small = np.zeros((1, 144, 176, 3), np.uint8)              # QCIF
    with pytest.raises(MetricUnavailable, match="161"):
        ms_ssim(small, small)
    assert issubclass(MetricUnavailable, ValueError)


@pytest.mark.parametrize("fn", [psnr, psnr_y, psnr_mean, psnr_sequence, psnr_y_sequence, ms_ssim])
def test_bad_input(fn):
    ok = np.zeros((2, 170, 170, 3), np.uint8)
    bad = {
        "shape mismatch": (ok, ok[:1]),
        "uint8": (ok, ok.astype(np.float32)),
        r"\[T,H,W,3\]": (ok[0], ok[0]),
        "empty": (ok[:0], ok[:0]),
    }
    for msg, (a, b) in bad.items():
        with pytest.raises(ValueError, match=msg):
            fn(a, b)
    gray = np.zeros((2, 170, 170, 1), np.uint8)
    with pytest.raises(ValueError, match=r"\[T,H,W,3\]"):
        fn(gray, gray)


def test_ms_ssim_bad_batch():
    ok = np.zeros((1, 170, 170, 3), np.uint8)
    for b in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="batch"):
            ms_ssim(ok, ok, batch=b)
