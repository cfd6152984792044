"""`gvc metrics`: a raw UVG-named .yuv against an x265-decoded 4:2:0 .y4m, measured on the planes
and checked against a direct NumPy computation in this file; the table, the notes and the exit
codes."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from gvc_jax import cli
from gvc_jax.io import find_sample_clip, read_video
from gvc_jax.io.ffmpeg import run_ffmpeg
from gvc_jax.io.yuv import rgb_to_yuv420

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T, H, W = 6, 96, 128
REF = f"Bunny_{W}x{H}_25fps_420_8bit_YUV.yuv"


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The raw reference and its x265 crf 35 encode decoded to y4m (4:2:0), both by ffmpeg."""
    d = tmp_path_factory.mktemp("metrics")
    rgb = read_video(find_sample_clip("bigbuckbunny.mp4"), max_frames=T).frames
    p = rgb_to_yuv420(rgb[:, 200:200 + H, 500:500 + W].copy())
    with open(d / REF, "wb") as f:
        for i in range(T):
            f.write(p.y[i].tobytes() + p.u[i].tobytes() + p.v[i].tobytes())
    run_ffmpeg(["-v", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{W}x{H}",
                "-r", "25", "-i", REF, "-c:v", "libx265", "-crf", "35", "-x265-params",
                "log-level=error", "-f", "hevc", "-y", "dist.265"], cwd=str(d), what="encode")
    run_ffmpeg(["-v", "error", "-i", "dist.265", "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe",
                "-y", "dist.y4m"], cwd=str(d), what="decode")
    return d


def _raw_planes(path):
    """Y, U, V [T, ...] of a headerless 8-bit 4:2:0 file, read here without the library."""
    data = np.fromfile(path, np.uint8).reshape(T, -1)
    y = data[:, :H * W].reshape(T, H, W)
    u = data[:, H * W:H * W * 5 // 4].reshape(T, H // 2, W // 2)
    v = data[:, H * W * 5 // 4:].reshape(T, H // 2, W // 2)
    return y, u, v


def _y4m_planes(path):
    """Y, U, V of an 8-bit 4:2:0 y4m: a header line, then 'FRAME...\\n' and the planes."""
    raw = open(path, "rb").read()
    header, rest = raw.split(b"\n", 1)
    assert b"C420" in header and f"W{W} H{H}".encode() in header
    ys, us, vs = [], [], []
    n = H * W * 3 // 2
    while rest:
        tag, rest = rest.split(b"\n", 1)
        assert tag.startswith(b"FRAME")
        f = np.frombuffer(rest[:n], np.uint8)
        rest = rest[n:]
        ys.append(f[:H * W].reshape(H, W))
        us.append(f[H * W:H * W * 5 // 4].reshape(H // 2, W // 2))
        vs.append(f[H * W * 5 // 4:].reshape(H // 2, W // 2))
    return np.stack(ys), np.stack(us), np.stack(vs)


def _expected(ref, dist):
    """PSNR-Y/U/V and both weighted PSNR-YUV: mean of frames and from the mean MSE."""
    mse = [np.mean((a.astype(float) - b.astype(float)) ** 2, axis=(1, 2))
           for a, b in zip(ref, dist)]
    per = [10 * np.log10(255.0 ** 2 / m) for m in mse]
    seq = [10 * np.log10(255.0 ** 2 / np.mean(m)) for m in mse]
    out = {}
    for i, k in enumerate("yuv"):
        out[f"psnr_{k}"], out[f"psnr_{k}_seq"] = float(np.mean(per[i])), float(seq[i])
    for key, wy in (("psnr_yuv_611", 6), ("psnr_yuv_411", 4)):
        out[key] = float(np.mean((wy * per[0] + per[1] + per[2]) / (wy + 2)))
        out[key + "_seq"] = float((wy * seq[0] + seq[1] + seq[2]) / (wy + 2))
    return out


def test_yuv_against_x265_y4m_matches_numpy(pair, capsys):
    rc = cli.main(["metrics", str(pair / REF), str(pair / "dist.y4m"), "--json", "--no-lpips",
                   "--no-dists"])
    out = capsys.readouterr().out
    assert rc == 0
    got = json.loads(out)
    want = _expected(_raw_planes(pair / REF), _y4m_planes(pair / "dist.y4m"))
    assert 28 < want["psnr_y"] < 45                     # a real, lossy decode
    for k, v in want.items():
        assert got[k] == pytest.approx(v, abs=0.01), k
    assert (got["frames"], got["width"], got["height"]) == (T, W, H)
    assert got["yuv_source"] == "4:2:0 planes of both inputs"
    for k in ("psnr_rgb", "psnr_rgb_seq", "ms_ssim", "lpips", "dists"):
        assert k in got
    assert got["lpips"] is None and "--no-lpips" in got["notes"]["lpips"]
    assert got["dists"] is None and "--no-dists" in got["notes"]["dists"]
    assert got["ms_ssim"] is None and "161 px" in got["notes"]["ms_ssim"]   # 96 px high


def test_table_and_rgb_input(pair, capsys, monkeypatch, tmp_path):
    """The readable table; an RGB .npy against the raw planes; missing weights are notes."""
    for var, sub in (("TORCH_HOME", "t"), ("XDG_CACHE_HOME", "x"), ("HOME", "h")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    y, u, v = _y4m_planes(pair / "dist.y4m")
    from gvc_jax.io.yuv import YuvPlanes, yuv420_to_rgb

    np.save(pair / "dist.npy", yuv420_to_rgb(YuvPlanes(y, u, v)))
    rc = cli.main(["metrics", str(pair / REF), str(pair / "dist.npy")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "PSNR YUV (6Y+U+V)/8" in out and "mean of frames" in out
    assert "(RGB)" in out.splitlines()[1] and "converted from RGB" in out
    assert "LPIPS column left empty" in out and "DISTS column left empty" in out


@pytest.mark.parametrize("args, code, msg", [
    (["--frames", "7"], 3, "has 6 frames, --frames asks for 7"),
    (["--size", "12by3"], 2, "WIDTHxHEIGHT"),
    (["--pix-fmt", "rgb24"], 2, "invalid choice"),
    (["--frames", "0"], 2, "--frames must be >= 1"),
    (["--fps", "0"], 2, "--fps must be positive"),
])
def test_errors(pair, capsys, args, code, msg):
    rc = cli.main(["metrics", str(pair / REF), str(pair / "dist.y4m"), "--no-lpips",
                   "--no-dists", *args])
    err = capsys.readouterr().err
    assert rc == code and msg in err and err.startswith("gvc: error:") and err.count("\n") == 1


def test_mismatch_and_unnamed_raw(pair, capsys):
    np.save(pair / "short.npy", np.zeros((T - 1, H, W, 3), np.uint8))
    rc = cli.main(["metrics", str(pair / REF), str(pair / "short.npy"), "--no-lpips",
                   "--no-dists"])
    err = capsys.readouterr().err
    assert rc == 3 and f"6 frames of {W}x{H}, short.npy 5 frames" in err and err.count("\n") == 1
    os.link(pair / REF, pair / "plain.yuv")
    rc = cli.main(["metrics", str(pair / "plain.yuv"), str(pair / "dist.y4m"), "--no-lpips",
                   "--no-dists"])
    err = capsys.readouterr().err
    assert rc == 3 and "needs --size WxH and --pix-fmt yuv420p" in err
    rc = cli.main(["metrics", str(pair / "plain.yuv"), str(pair / "dist.y4m"), "--no-lpips",
                   "--no-dists", "--size", f"{W}x{H}", "--pix-fmt", "yuv420p", "--json"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["psnr_y"] > 28


def test_parser_imports_no_jax():
    code = ("import sys; from gvc_jax.cli import main; "
            "rc = main(['metrics', 'a.yuv', 'b.y4m', '--bogus']); print(rc, 'jax' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": ROOT})
    assert r.stdout.split() == ["2", "False"], r.stderr
