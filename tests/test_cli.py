"""The gvc CLI end to end, as a user runs it (subprocess, a real clip)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from gvc_jax.io import find_sample_clip, read_video

# Small and fast: 10 frames (GOP 8 + a 2-frame GOP padded to 4), 38x45 (not a
# multiple of the 8x8 block), a tiny codebook.
FAST = ["--K", "64", "--M", "4", "--gop-frames", "8"]


def gvc(*args, cwd=None):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "gvc_jax.cli", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    frames = read_video(find_sample_clip("carphone_pristine.mp4"), max_frames=10).frames
    src = frames[:, 50:88, 60:105].copy()
    np.save(d / "src.npy", src)
    r = gvc("compress", d / "src.npy", "-o", d / "a.gvc", "--recon", d / "recon.npy", "--json",
            *FAST)
    assert r.returncode == 0, r.stderr
    return d, src, json.loads(r.stdout)


def test_compress_report_and_rate(run):
    d, src, rep = run
    size = os.path.getsize(d / "a.gvc")
    t, h, w, _ = src.shape
    assert (rep["frames"], rep["height"], rep["width"]) == (t, h, w)
    assert rep["bytes_file"] == size and rep["bits_total"] == 8 * size
    assert rep["bpp"] == pytest.approx(8 * size / (t * h * w), rel=1e-12)
    assert rep["kbps"] == pytest.approx(8 * size / (t / 25.0) / 1000, rel=1e-12)
    assert sum(rep["breakdown"].values()) == size
    assert rep["breakdown"]["indices"] > 0 and rep["gops"] == 2
    for k in ("psnr", "psnr_shannon", "psnr_realism", "encode_seconds", "fps"):
        assert np.isfinite(rep[k]), k
    assert 5 < rep["psnr"] < 60


def test_decompress_roundtrips_geometry_bit_exact(run, tmp_path):
    d, src, rep = run
    r = gvc("decompress", d / "a.gvc", "-o", tmp_path / "out.npy")
    assert r.returncode == 0, r.stderr
    out = np.load(tmp_path / "out.npy")
    assert out.shape == src.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.load(d / "recon.npy"))
    # the report's PSNR is the PSNR of what the decoder returns
    mse = np.mean((out.astype(float) - src) ** 2, axis=(1, 2, 3))
    assert rep["psnr"] == pytest.approx(np.mean(10 * np.log10(255 ** 2 / mse)), abs=1e-9)


def test_info(run):
    d, src, _ = run
    r = gvc("info", d / "a.gvc")
    assert r.returncode == 0, r.stderr
    h = json.loads(r.stdout)
    assert h["source"]["frames"] == 10 and h["source"]["height"] == 38
    assert h["source"]["width"] == 45 and h["source"]["fps"] == [25, 1]
    assert h["codec"]["K"] == 64 and h["model"]["config"] == "gaussian"
    assert [g["frames"] for g in h["gops"]] == [8, 2]


def _one_error_line(r, code):
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if not ln.startswith("gvc: GOP")]
    assert len(lines) == 1 and lines[0].startswith("gvc: error:"), r.stderr
    assert "Traceback" not in r.stderr


def test_corrupt_bitstream_exit_3_no_output(run, tmp_path):
    d, _, _ = run
    data = bytearray((d / "a.gvc").read_bytes())
    data[len(data) // 2] ^= 0x10
    bad = tmp_path / "bad.gvc"
    bad.write_bytes(bytes(data))
    r = gvc("decompress", bad, "-o", tmp_path / "out.npy")
    _one_error_line(r, 3)
    assert not (tmp_path / "out.npy").exists()
    assert os.listdir(tmp_path) == ["bad.gvc"]  # no temp files left either


def test_wrong_model_fingerprint_exit_3(run, tmp_path):
    from gvc_jax.models.gaussian import DATA_FILE
    d, _, _ = run
    stats = dict(np.load(DATA_FILE))
    stats["var"] = stats["var"] * 1.01
    np.savez(tmp_path / "other.npz", **stats)
    r = gvc("decompress", d / "a.gvc", "-o", tmp_path / "out.npy", "--weights",
            tmp_path / "other.npz")
    _one_error_line(r, 3)
    assert "fingerprint" in r.stderr
    assert not (tmp_path / "out.npy").exists()


def test_usage_and_input_errors(tmp_path):
    _one_error_line(gvc("compress"), 2)
    _one_error_line(gvc("compress", tmp_path / "x.npy", "-o", tmp_path / "y.gvc",
                        "--config", "nope"), 2)
    _one_error_line(gvc("compress", tmp_path / "missing.mp4", "-o", tmp_path / "y.gvc"), 3)
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    _one_error_line(gvc("compress", tmp_path / "junk.mp4", "-o", tmp_path / "y.gvc"), 3)
    # an output folder that does not exist is refused before any work
    _one_error_line(gvc("compress", tmp_path / "junk.mp4", "-o", tmp_path / "no" / "y.gvc"), 2)
    np.save(tmp_path / "f.npy", np.zeros((4, 8, 8), np.float32))
    _one_error_line(gvc("compress", tmp_path / "f.npy", "-o", tmp_path / "y.gvc"), 3)
    assert not (tmp_path / "y.gvc").exists()
