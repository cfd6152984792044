"""YUV 4:2:0 metrics: the RGB <-> 4:2:0 conversions (gvc_jax.io.yuv), the raw .yuv and y4m plane
readers, PSNR on planes (gvc_jax.metrics.yuv), and the two-video comparison and its reader
(gvc_jax.eval.compare)."""
import fractions
import json

import numpy as np
import pytest

from gvc_jax.eval import compare as compare_mod
from gvc_jax.eval.compare import SCALAR_KEYS, compare, read_for_metrics
from gvc_jax.io import Video, VideoIOError, write_video
from gvc_jax.io.y4m import read_y4m, read_y4m_planes
from gvc_jax.io.yuv import YuvPlanes, parse_pix_fmt, read_yuv_planes, rgb_to_yuv420, yuv420_to_rgb
from gvc_jax.metrics import psnr as rgb_psnr
from gvc_jax.metrics.errors import MetricUnavailable
from gvc_jax.metrics.yuv import psnr_yuv, psnr_yuv_mean, psnr_yuv_sequence


def _clip(t=3, h=12, w=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def _noisy(frames, sigma, seed=1):
    rng = np.random.default_rng(seed)
    return np.clip(frames + rng.normal(0, sigma, frames.shape), 0, 255).round().astype(np.uint8)


# ------------------------------------------------------------------ RGB -> 4:2:0
@pytest.mark.parametrize("rgb,ycbcr", [
    ((255, 255, 255), (235, 128, 128)), ((0, 0, 0), (16, 128, 128)),
    ((255, 0, 0), (63, 102, 240)), ((0, 255, 0), (173, 42, 26)), ((0, 0, 255), (32, 240, 118)),
])
def test_bt709_limited_primaries(rgb, ycbcr):
    """The published 8-bit BT.709 studio-range values of white, black and the primaries."""
    p = rgb_to_yuv420(np.full((1, 2, 2, 3), rgb, np.uint8))
    assert (p.y.ravel().tolist(), p.u.item(), p.v.item()) == ([ycbcr[0]] * 4, *ycbcr[1:])
    assert p.bits == 8 and p.matrix == "bt709" and not p.full_range


def test_full_range_10_bit_and_bt601():
    white = np.full((1, 2, 2, 3), 255, np.uint8)
    p = rgb_to_yuv420(white, bits=10)
    assert (p.y.dtype, p.y[0, 0, 0], p.u.item(), p.v.item()) == (np.uint16, 940, 512, 512)
    p = rgb_to_yuv420(white, full_range=True)
    assert (p.y[0, 0, 0], p.u.item(), p.v.item()) == (255, 128, 128)
    red = np.full((1, 2, 2, 3), (255, 0, 0), np.uint8)
    p = rgb_to_yuv420(red, matrix="bt601")  # BT.601 studio red: 81, 90, 240
    assert (p.y[0, 0, 0], p.u.item(), p.v.item()) == (81, 90, 240)


def _chroma_float(rgb):
    """Per-pixel BT.709 limited Cb, Cr in float (written out with the published coefficients)."""
    x = rgb.astype(np.float64) / 255
    yp = 0.2126 * x[..., 0] + 0.7152 * x[..., 1] + 0.0722 * x[..., 2]
    return 128 + 224 * (x[..., 2] - yp) / 1.8556, 128 + 224 * (x[..., 0] - yp) / 1.5748


@pytest.mark.parametrize("h,w", [(4, 6), (5, 7)])
def test_chroma_is_the_2x2_mean_rounded_once(h, w):
    rgb = _clip(2, h, w, seed=h)
    p = rgb_to_yuv420(rgb)
    cb, cr = _chroma_float(rgb)
    assert p.u.shape == (2, (h + 1) // 2, (w + 1) // 2)
    for plane, c in ((p.u, cb), (p.v, cr)):
        for t in range(2):
            for i in range(plane.shape[1]):
                for j in range(plane.shape[2]):
                    block = c[t, 2 * i:2 * i + 2, 2 * j:2 * j + 2]  # inside the frame only
                    assert plane[t, i, j] == np.floor(block.mean() + 0.5)


def test_planes_to_rgb_inverts_the_conversion():
    # chroma constant over each 2x2 block, so 4:2:0 loses nothing but rounding
    small = _clip(2, 4, 5, seed=3)
    rgb = np.repeat(np.repeat(small, 2, 1), 2, 2)
    # bound: rounding Y and C (half a level each) through the inverse matrix (B: 1 + 1.8556)
    for kw, tol in (({}, 2), ({"full_range": True}, 2), ({"bits": 10}, 1), ({"matrix": "bt601"}, 2)):
        back = yuv420_to_rgb(rgb_to_yuv420(rgb, **kw))
        assert back.dtype == np.uint8 and back.shape == rgb.shape
        assert np.abs(back.astype(int) - rgb).max() <= tol, kw
    gray = np.broadcast_to(np.arange(256, dtype=np.uint8)[None, None, :, None],
                           (1, 2, 256, 3)).copy()
    assert np.abs(yuv420_to_rgb(rgb_to_yuv420(gray)).astype(int) - gray).max() <= 1


def test_planes_container_checks():
    y = np.zeros((2, 5, 7), np.uint8)
    c = np.zeros((2, 3, 4), np.uint8)
    p = YuvPlanes(y, c, c)
    assert p.shape == (2, 5, 7) and p.peak == 255
    with pytest.raises(ValueError, match="plane u has shape"):
        YuvPlanes(y, c[:, :2], c)
    with pytest.raises(ValueError, match="uint16"):
        YuvPlanes(y, c, c, bits=10)
    with pytest.raises(ValueError, match="matrix"):
        YuvPlanes(y, c, c, matrix="bt2020")
    with pytest.raises(ValueError, match="rgb must be uint8"):
        YuvPlanes(y, c, c, rgb=np.zeros((2, 5, 6, 3), np.uint8))
    assert parse_pix_fmt("yuv420p") == 8 and parse_pix_fmt("YUV420P10LE") == 10
    with pytest.raises(VideoIOError, match="not supported"):
        parse_pix_fmt("yuv422p")


# ------------------------------------------------------------------ PSNR on planes
def _psnr_ref(a, b, peak):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return min(10 * np.log10(peak * peak / mse), 100.0) if mse else 100.0


def test_psnr_on_planes_per_frame_mean_and_sequence():
    ref = rgb_to_yuv420(_clip(4, 8, 10))
    dist = rgb_to_yuv420(_noisy(ref.rgb, 8))
    # frame 3: identical luma, distorted chroma; frame 2: identical everywhere
    dist.y[3], dist.u[2], dist.v[2], dist.y[2] = ref.y[3], ref.u[2], ref.v[2], ref.y[2]
    got = psnr_yuv(ref, dist)
    for t in range(4):
        py, pu, pv = (_psnr_ref(getattr(ref, k)[t], getattr(dist, k)[t], 255) for k in "yuv")
        assert got["psnr_y"][t] == pytest.approx(py, abs=1e-9)
        assert got["psnr_u"][t] == pytest.approx(pu, abs=1e-9)
        assert got["psnr_v"][t] == pytest.approx(pv, abs=1e-9)
        # DCVC: the PSNRs (dB) are weighted, not the MSEs
        assert got["psnr_yuv_611"][t] == pytest.approx((6 * py + pu + pv) / 8, abs=1e-9)
        assert got["psnr_yuv_411"][t] == pytest.approx((4 * py + pu + pv) / 6, abs=1e-9)
    assert got["psnr_y"][2] == 100.0 and got["psnr_yuv_611"][2] == 100.0
    mean = psnr_yuv_mean(ref, dist)
    assert mean["psnr_yuv_611"] == pytest.approx(np.mean(got["psnr_yuv_611"]))
    seq = psnr_yuv_sequence(ref, dist)
    seq_y = _psnr_ref(ref.y, dist.y, 255)  # the MSE over all frames at once (equal-size frames)
    seq_u, seq_v = _psnr_ref(ref.u, dist.u, 255), _psnr_ref(ref.v, dist.v, 255)
    assert seq["psnr_y"] == pytest.approx(seq_y, abs=1e-9)
    assert seq["psnr_yuv_411"] == pytest.approx((4 * seq_y + seq_u + seq_v) / 6, abs=1e-9)
    assert seq["psnr_y"] < mean["psnr_y"]  # the 100 dB frames lift only the mean
    # tuples of arrays work too, and 10-bit peaks are 1023
    hi = psnr_yuv(tuple(a.astype(np.uint16) * 4 for a in ref.planes),
                  tuple(a.astype(np.uint16) * 4 for a in dist.planes), peak=1023)
    assert hi["psnr_u"][0] == pytest.approx(_psnr_ref(ref.u[0] * 4.0, dist.u[0] * 4.0, 1023))
    with pytest.raises(ValueError, match="plane u shape mismatch"):
        psnr_yuv(ref, (dist.y, dist.u[:, :-1], dist.v))


# ------------------------------------------------------------------ readers
def _write_raw(path, planes_list, dtype=np.uint8):
    with open(path, "wb") as f:
        for y, u, v in planes_list:
            for a in (y, u, v):
                f.write(a.astype(np.dtype(dtype).newbyteorder("<")).tobytes())


def test_raw_yuv_reader_8_and_10_bit(tmp_path):
    p = rgb_to_yuv420(_clip(3, 6, 8))
    path = tmp_path / "Clip_8x6_30fps_420_8bit_YUV.yuv"
    _write_raw(path, zip(p.y, p.u, p.v))
    got = read_yuv_planes(str(path), 8, 6)
    for a, b in zip(got.planes, p.planes):
        np.testing.assert_array_equal(a, b)
    assert read_yuv_planes(str(path), 8, 6, max_frames=2).shape == (2, 6, 8)
    with pytest.raises(VideoIOError, match="not a whole number of 8x4"):
        read_yuv_planes(str(path), 8, 4)
    ten = tmp_path / "ten.yuv"
    _write_raw(ten, [(y.astype(np.uint16) * 4 + 3, u.astype(np.uint16) * 4, v.astype(np.uint16))
                     for y, u, v in zip(p.y, p.u, p.v)], np.uint16)
    got10 = read_yuv_planes(str(ten), 8, 6, bits=10)
    assert got10.y.dtype == np.uint16 and got10.peak == 1023
    np.testing.assert_array_equal(got10.y, p.y.astype(np.uint16) * 4 + 3)
    with pytest.raises(VideoIOError, match="samples above 511"):
        read_yuv_planes(str(ten), 8, 6, bits=9)


def _write_y4m_420(path, planes, tag=b""):
    t, h, w = planes.shape
    with open(path, "wb") as f:
        f.write(b"YUV4MPEG2 W%d H%d F25:1 Ip A1:1 C420jpeg%s\n" % (w, h, tag))
        for i in range(t):
            f.write(b"FRAME\n" + planes.y[i].tobytes() + planes.u[i].tobytes()
                    + planes.v[i].tobytes())


def test_y4m_planes_as_stored_and_rgb_unchanged(tmp_path):
    p = rgb_to_yuv420(_clip(2, 7, 9))  # odd sides: chroma 4x5
    path = tmp_path / "a.y4m"
    _write_y4m_420(path, p)
    got = read_y4m_planes(str(path))
    for a, b in zip(got.planes, p.planes):
        np.testing.assert_array_equal(a, b)
    assert got.matrix == "bt601" and not got.full_range and got.fps == 25
    # read_y4m (read_video's path) still replicates chroma and decodes BT.601 limited range
    rgb, fps = read_y4m(str(path))
    assert rgb.shape == (2, 7, 9, 3) and fps == 25
    # (io.color computes in float32, yuv420_to_rgb in float64: a rounding tie may differ by 1)
    assert np.abs(rgb.astype(int) - yuv420_to_rgb(got)).max() <= 1
    _write_y4m_420(tmp_path / "f.y4m", p, b" XCOLORRANGE=FULL")
    assert read_y4m_planes(str(tmp_path / "f.y4m"), max_frames=1).full_range
    write_video(tmp_path / "c444.y4m", p.rgb, 25)
    with pytest.raises(VideoIOError, match="C444 is not 4:2:0"):
        read_y4m_planes(str(tmp_path / "c444.y4m"))


def test_read_for_metrics_kinds_and_errors(tmp_path):
    p = rgb_to_yuv420(_clip(2, 6, 8))
    uvg = tmp_path / "Clip_8x6_50fps_420_8bit_YUV.yuv"
    _write_raw(uvg, zip(p.y, p.u, p.v))
    got = read_for_metrics(uvg)
    assert isinstance(got, YuvPlanes) and got.shape == (2, 6, 8)
    assert got.fps == 50 and got.matrix == "bt709" and not got.full_range
    assert read_for_metrics(uvg, max_frames=1).shape == (1, 6, 8)
    plain = tmp_path / "clip.yuv"
    plain.write_bytes(uvg.read_bytes())
    assert read_for_metrics(plain, size="8x6", pix_fmt="yuv420p").shape == (2, 6, 8)
    assert read_for_metrics(plain, size=(8, 6), pix_fmt="yuv420p", fps=fractions.Fraction(24)
                            ).fps == 24
    for kw, flag in (({}, "needs --size WxH and --pix-fmt yuv420p"),
                     ({"pix_fmt": "yuv420p"}, "needs --size WxH"),
                     ({"size": "8x6"}, "needs --pix-fmt yuv420p")):
        with pytest.raises(VideoIOError) as e:
            read_for_metrics(plain, **kw)
        assert str(e.value).endswith(flag) and "\n" not in str(e.value)
    with pytest.raises(VideoIOError, match="bad size"):
        read_for_metrics(plain, size="8by6", pix_fmt="yuv420p")
    with pytest.raises(VideoIOError, match="4:2:0 raw video only"):
        read_for_metrics(tmp_path / "Clip_8x6_50fps_444_8bit_YUV.yuv")
    _write_y4m_420(tmp_path / "a.y4m", p)
    assert isinstance(read_for_metrics(tmp_path / "a.y4m"), YuvPlanes)
    write_video(tmp_path / "b.y4m", p.rgb, 25)  # C444: decoded to RGB
    assert isinstance(read_for_metrics(tmp_path / "b.y4m"), Video)
    write_video(tmp_path / "c.npy", p.rgb, 25)
    v = read_for_metrics(tmp_path / "c.npy")
    assert isinstance(v, Video)
    np.testing.assert_array_equal(v.frames, p.rgb)


# ------------------------------------------------------------------ compare
def test_compare_rgb_pair():
    ref = _clip(3, 10, 12)
    dist = _noisy(ref, 6)
    calls = []

    def fake_lpips(r, d):
        calls.append((r.shape, d.shape))
        return np.array([0.1, 0.2, 0.3])

    def no_dists(r, d):
        raise MetricUnavailable("DISTS needs the VGG16 trunk weights; not found")

    out = compare(ref, Video(dist, fractions.Fraction(25)), lpips=fake_lpips, dists=no_dists)
    json.dumps(out)  # JSON-ready
    for k in SCALAR_KEYS:
        assert k in out
    for k in ("psnr_rgb", "psnr_y", "psnr_u", "psnr_v", "psnr_yuv_611", "psnr_yuv_411"):
        assert k + "_seq" in out and len(out["per_frame"][k]) == 3
    assert out["psnr_rgb"] == pytest.approx(np.mean(rgb_psnr(ref, dist)))
    yuv = psnr_yuv(rgb_to_yuv420(ref), rgb_to_yuv420(dist))
    assert out["psnr_yuv_611"] == pytest.approx(np.mean(yuv["psnr_yuv_611"]))
    assert out["per_frame"]["psnr_v"] == pytest.approx(list(yuv["psnr_v"]))
    assert out["lpips"] == pytest.approx(0.2) and calls == [((3, 10, 12, 3),) * 2]
    assert out["dists"] is None and "VGG16" in out["notes"]["dists"]
    assert out["ms_ssim"] is None and "161 px" in out["notes"]["ms_ssim"]
    assert (out["frames"], out["height"], out["width"]) == (3, 10, 12)
    assert "BT.709 limited" in out["yuv_source"]
    bare = compare(ref, dist)
    assert bare["lpips"] is None and "not computed" in bare["notes"]["lpips"]


def test_compare_planes_against_rgb_uses_the_planes_conventions():
    rgb = _clip(2, 8, 10, seed=5)
    ref = rgb_to_yuv420(rgb, full_range=True)  # planes; rgb kept on them
    dist = _noisy(rgb, 4)
    out = compare(ref, dist)
    want = psnr_yuv(ref, rgb_to_yuv420(dist, full_range=True))
    assert out["psnr_y"] == pytest.approx(np.mean(want["psnr_y"]))
    assert out["psnr_rgb"] == pytest.approx(np.mean(rgb_psnr(rgb, dist)))  # ref.rgb used
    assert "planes of the ref" in out["yuv_source"]
    # planes without rgb: their RGB view is the conversion
    bare = YuvPlanes(ref.y, ref.u, ref.v, full_range=True)
    out2 = compare(dist, bare)
    assert out2["psnr_rgb"] == pytest.approx(np.mean(rgb_psnr(dist, yuv420_to_rgb(bare))))
    with pytest.raises(ValueError, match="cannot be compared"):
        compare(ref, rgb_to_yuv420(dist))
    with pytest.raises(ValueError, match="dist 1 frames of 10x8"):
        compare(ref, dist[:1])
    with pytest.raises(ValueError, match="dist must be YUV planes or non-empty uint8"):
        compare(ref, dist.astype(np.float32))


def test_compare_ms_ssim_on_rgb_when_large_enough(monkeypatch):
    """MS-SSIM itself is checked in test_metrics.py; here: it gets the RGB views, from 161 px."""
    seen = []

    def fake(r, d):
        seen.append((r, d))
        return np.full(r.shape[0], 0.9)

    monkeypatch.setattr(compare_mod, "ms_ssim_frames", fake)
    ref = _clip(2, 161, 170, seed=2)
    dist = _noisy(ref, 10)
    out = compare(rgb_to_yuv420(ref), rgb_to_yuv420(dist))
    assert out["ms_ssim"] == pytest.approx(0.9) and out["per_frame"]["ms_ssim"] == [0.9, 0.9]
    np.testing.assert_array_equal(seen[0][0], ref)
    np.testing.assert_array_equal(seen[0][1], dist)
    assert "both inputs" in out["yuv_source"]
    assert compare(ref, dist, ms_ssim=False)["ms_ssim"] is None
