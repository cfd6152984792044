"""Classical baselines through ffmpeg (gvc_jax/eval/baselines.py) on a tiny real clip."""
from __future__ import annotations

import dataclasses
import fractions
import os
import re
import subprocess
import tempfile

import numpy as np
import pytest

from gvc_jax.eval import baselines as B
from gvc_jax.io import ffmpeg as F
from gvc_jax.io import find_sample_clip, read_video
from gvc_jax.metrics import psnr

NAMES = ("x264", "x265", "vvc", "av1")


@pytest.fixture(scope="module")
def clip():
    v = read_video(find_sample_clip("carphone_pristine.mp4"), max_frames=9)
    return v.frames, v.fps


def _kbps(nbytes: int, frames: int, fps: fractions.Fraction) -> float:
    return 8.0 * nbytes / (frames / float(fps)) / 1000.0


@pytest.mark.parametrize("name", NAMES)
def test_ladder_point_round_trip(name, clip, tmp_path):
    x, fps = clip
    setting = B.default_ladder(name)[-1]
    r = B.run_baseline(name, x, fps, setting=setting, workdir=tmp_path)
    assert r.decoded.shape == x.shape and r.decoded.dtype == np.uint8
    stream = tmp_path / r.settings["stream_file"]
    assert r.bytes == os.path.getsize(stream) > 0
    assert r.bpp == pytest.approx(8 * r.bytes / x[..., 0].size)
    assert psnr(x, r.decoded).mean() > 28.0          # a real picture, not garbage
    s = r.settings
    assert s["encoder"] == B.BASELINES[name].encoder and s["preset"] == B.BASELINES[name].preset
    assert s["rate_mode"] == B.BASELINES[name].knob and s["passes"] == 1
    assert s["keyint"] == B.KEYINT and s["color_matrix"] == "bt709"
    assert s["ffmpeg_version"] == B.ffmpeg_version() != ""
    assert s["encode_args"][0][-1] == s["stream_file"] and "-preset" in s["encode_args"][0]
    assert r.encode_seconds > 0 and r.decode_seconds > 0


def test_private_workdir_removed(clip, tmp_path, monkeypatch):
    x, fps = clip
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    B.run_baseline("x264", x[:2], fps, setting={"crf": 40})
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(B.BaselineError):                        # x265 refuses 8x8 pictures
        B.run_baseline("x265", np.ascontiguousarray(x[:2, :8, :8]), fps, setting={"crf": 40})
    assert list(tmp_path.iterdir()) == []


def test_x265_quality_knob_orders_psnr_and_rate(clip):
    x, fps = clip
    lo = B.run_baseline("x265", x, fps, setting={"crf": 45})
    hi = B.run_baseline("x265", x, fps, setting={"crf": 27})
    assert psnr(x, hi.decoded).mean() > psnr(x, lo.decoded).mean() + 3.0
    assert hi.bytes > 2 * lo.bytes


def test_x264_lossless_round_trip_psnr(clip):
    x, fps = clip
    r = B.run_baseline("x264", x, fps, setting={"crf": 0})
    # only 4:2:0 chroma and 8-bit limited-range YCbCr are lost (measured 42.99 dB)
    assert psnr(x, r.decoded).mean() >= 40.0


def test_bt709_limited_range_in_the_stream(tmp_path):
    """Pure green codes to Y = 16 + 219 * 0.7152 = 173 under BT.709 (145 under BT.601)."""
    x = np.zeros((2, 16, 16, 3), np.uint8)
    x[..., 1] = 255
    r = B.run_baseline("x264", x, fractions.Fraction(25), setting={"crf": 0}, workdir=tmp_path)
    out = subprocess.run([F.ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", r.settings["stream_file"],
                          "-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:1"],
                         cwd=tmp_path, capture_output=True, check=True)
    y = np.frombuffer(out.stdout, np.uint8)[:16 * 16]
    assert set(y.tolist()) == {173}
    assert re.search(r"yuv420p\(tv, bt709", out.stderr.decode())
    assert np.abs(r.decoded.astype(int) - x).max() <= 2


@pytest.mark.parametrize("name", NAMES)
def test_odd_size_is_padded_and_cropped(name, clip):
    x, fps = clip
    xo = np.ascontiguousarray(x[:3, :143, :175])
    r = B.run_baseline(name, xo, fps, setting=B.default_ladder(name)[-1])
    assert r.decoded.shape == xo.shape
    assert r.settings["coded_size"] == [144, 176] and r.settings["padded"] == [1, 1]
    assert psnr(xo, r.decoded).mean() > 28.0


@pytest.mark.parametrize("name", NAMES)
def test_target_bitrate(name, clip):
    x, fps = clip
    r = B.run_baseline(name, x, fps, setting={"kbps": 60.0})
    got = _kbps(r.bytes, len(x), fps)
    assert 0.5 * 60 <= got <= 2.0 * 60, got     # measured 47-75 kbps, docs/baselines.md
    spec = B.BASELINES[name]
    assert r.settings["rate_mode"] == ("two-pass ABR" if spec.two_pass else "one-pass VBR")
    assert r.settings["passes"] == (2 if spec.two_pass else 1)
    assert r.settings["rate_value"] == 60.0


def test_ladders_and_labels():
    for name in NAMES:
        ladder = B.default_ladder(name)
        spec = B.BASELINES[name]
        values = [s[spec.knob] for s in ladder]
        assert len(ladder) == 5 and values == sorted(values, reverse=True)
        assert all(spec.knob_range[0] <= v <= spec.knob_range[1] for v in values)
    assert B.default_ladder("vvc")[0] == {"qp": 63}
    assert B.setting_label({"crf": 28}) == "crf=28"
    assert B.setting_label({"crf": 28.0}) == "crf=28"
    assert B.setting_label({"crf": 28.5}) == "crf=28.5"
    assert B.setting_label({"qp": 37}) == "qp=37"
    assert B.setting_label({"kbps": 120}) == "kbps=120.0"
    assert B.setting_label({"kbps": 12.345}) == "kbps=12.345"
    assert re.fullmatch(r"n?\d+\.\d+.*", B.ffmpeg_version())


def test_bad_arguments(clip):
    x, fps = clip
    with pytest.raises(ValueError, match="known: x264, x265, vvc, av1"):
        B.run_baseline("mpeg2", x, fps, setting={"crf": 30})
    with pytest.raises(ValueError, match="known: x264, x265, vvc, av1"):
        B.default_ladder("h264")
    bad = [({"qp": 30}, "knob is 'crf'"), ({"crf": 52}, r"\[0, 51\]"), ({"crf": 30, "kbps": 5}, "one of"),
           ({"kbps": -1}, "positive"), ({"kbps": float("nan")}, "finite"), ({"crf": "30"}, "number"),
           ("crf=30", "one of")]
    for setting, msg in bad:
        with pytest.raises(ValueError, match=msg):
            B.run_baseline("x264", x, fps, setting=setting)
    with pytest.raises(ValueError, match="integer"):
        B.run_baseline("vvc", x, fps, setting={"qp": 30.5})
    with pytest.raises(ValueError, match=r"\[1, 63\]"):
        B.run_baseline("av1", x, fps, setting={"crf": 0})
    with pytest.raises(ValueError, match="uint8"):
        B.run_baseline("x264", x.astype(np.float32), fps, setting={"crf": 30})
    with pytest.raises(ValueError, match="uint8"):
        B.run_baseline("x264", x[..., :2], fps, setting={"crf": 30})
    for f in (0, -25, "abc"):
        with pytest.raises(ValueError, match="fps"):
            B.run_baseline("x264", x, f, setting={"crf": 30})
    with pytest.raises(ValueError, match="threads"):
        B.run_baseline("x264", x, fps, setting={"crf": 30}, threads=0)


def test_missing_encoder_and_ffmpeg_failure(clip, monkeypatch):
    x, fps = clip
    assert F.has_encoder("libx264") and not F.has_encoder("libnothere")
    fake = dataclasses.replace(B.BASELINES["x264"], name="fake", encoder="libnothere")
    monkeypatch.setitem(B.BASELINES, "fake", fake)
    with pytest.raises(B.BaselineError, match="has no encoder libnothere"):
        B.run_baseline("fake", x, fps, setting={"crf": 30})
    with pytest.raises(B.BaselineError) as e:
        B.run_baseline("x265", np.ascontiguousarray(x[:2, :8, :8]), fps, setting={"crf": 30})
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("x265 crf=30 encode: ffmpeg failed:")
    assert "too small" in msg
