"""What a new user trips on, each guarded: the embedded prior's default and its bound, resizing,
the frame rate of bare arrays, padding, preset names in reports, messages, ``--version`` and a
``--help`` that answers without JAX (docs/cli.md)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from gvc_jax import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = ["--steps", "3", "--sde-steps", "2"]


def _gvc(capsys, *args):
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def _error(err: str) -> str:
    lines = err.strip().splitlines()
    assert lines[-1].startswith("gvc: error:") and "Traceback" not in err, err
    return lines[-1]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """Smooth content (a ramp and a disc that moves): the prior's bound rises as it shrinks."""
    d = tmp_path_factory.mktemp("newcomer")
    t, h, w = 8, 64, 96
    yy, xx = np.mgrid[0:h, 0:w]
    frames = np.empty((t, h, w, 3), np.uint8)
    for i in range(t):
        disc = ((yy - 32) ** 2 + (xx - 30 - 3 * i) ** 2) < 200
        frames[i, ..., 0] = np.clip(xx * 2 + 40 * disc, 0, 255)
        frames[i, ..., 1] = np.clip(yy * 3, 0, 255)
        frames[i, ..., 2] = 120 + 100 * disc
    np.save(d / "smooth.npy", frames)
    return d


def test_default_targets_a_quality_the_prior_can_reach(clip, capsys, tmp_path):
    """No size, rate, K or M given: the embedded prior picks the scale and M that bring its own
    D_p bound to 30 dB, says so in one line, and the stream holds the coded size."""
    from gvc_jax.codec import api

    rc, out, err = _gvc(capsys, "compress", clip / "smooth.npy", "-o", tmp_path / "a.gvc",
                        "--json", *FAST, "--gop-frames", "8")
    assert rc == 0, err
    rep = json.loads(out)
    auto = rep["auto_quality"]
    assert auto["from"] == [96, 64] and auto["bound_db"][0] < api.AUTO_TARGET_DB
    assert auto["bound_db"][1] >= api.AUTO_TARGET_DB
    w, h = auto["to"]
    note = [ln for ln in err.splitlines() if "reaches at most" in ln]
    assert len(note) == 1 and f"{auto['bound_db'][0]:.1f} dB" in note[0]
    assert "--scale" in note[0] and "--weights" in note[0] and f"M={rep['M']}" in note[0]
    assert (rep["width"], rep["height"]) == (w, h) and rep["M"] > 4
    rc, _, err = _gvc(capsys, "decompress", tmp_path / "a.gvc", "-o", tmp_path / "a.npy",
                      "--quiet")
    assert rc == 0 and np.load(tmp_path / "a.npy").shape == (8, h, w, 3)
    # the user's own choice stands, with a warning when the bound says it cannot work
    rc, out, err = _gvc(capsys, "compress", clip / "smooth.npy", "-o", tmp_path / "b.gvc",
                        "--json", "--scale", "1", "--K", "64", "--M", "1", *FAST)
    assert rc == 0, err
    rep = json.loads(out)
    assert "auto_quality" not in rep and (rep["width"], rep["height"]) == (96, 64)
    assert "warning:" in err and "unrecognisable" in err and "--scale" in err


def test_size_and_scale_resize_before_coding(clip, capsys, tmp_path):
    rc, out, err = _gvc(capsys, "compress", clip / "smooth.npy", "-o", tmp_path / "s.gvc",
                        "--json", "--size", "40x24", "--K", "64", "--M", "4", *FAST)
    assert rc == 0, err
    rep = json.loads(out)
    assert (rep["width"], rep["height"]) == (40, 24)
    assert rep["bpp"] == pytest.approx(8 * rep["bytes_file"] / (8 * 40 * 24))
    rc, out, err = _gvc(capsys, "compress", clip / "smooth.npy", "-o", tmp_path / "h.gvc",
                        "--json", "--scale", "0.5", "--K", "64", "--M", "4", *FAST)
    assert rc == 0 and (json.loads(out)["width"], json.loads(out)["height"]) == (48, 32)
    for bad, needle in ((["--size", "40by24"], "expected WIDTHxHEIGHT"),
                        (["--scale", "0"], "--scale must lie in"),
                        (["--size", "40x24", "--scale", "2"], "not allowed with")):
        rc, _, err = _gvc(capsys, "compress", clip / "smooth.npy", "-o", tmp_path / "x.gvc",
                          *bad)
        assert rc == 2 and needle in _error(err)
        assert not (tmp_path / "x.gvc").exists()


def test_fps_of_bare_arrays_and_padding_are_stated(clip, capsys, tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "tiny.npy", rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8))
    rc, out, err = _gvc(capsys, "compress", tmp_path / "tiny.npy", "-o", tmp_path / "t.gvc",
                        "--json", "--K", "16", "--M", "1", *FAST)
    assert rc == 0, err
    assert "frame rate taken as 25 fps" in err and "--fps" in err
    assert "8x8 is coded as 8x8" not in err            # the prior's multiple is 8: no padding
    rc, out, err = _gvc(capsys, "compress", tmp_path / "tiny.npy", "-o", tmp_path / "t.gvc",
                        "--json", "--K", "16", "--M", "1", *FAST, "--fps", "30",
                        "--size", "12x10")
    assert rc == 0, err
    rep = json.loads(out)
    assert rep["fps_rational"] == [30, 1] and "frame rate taken" not in err
    assert rep["kbps"] == pytest.approx(8 * rep["bytes_file"] / (4 / 30) / 1000)
    pad = [ln for ln in err.splitlines() if "12x10 is coded as 16x16" in ln]
    assert len(pad) == 1 and "53% of the coded pixels are padding" in pad[0]


def test_reports_name_the_preset(clip, capsys, tmp_path):
    rc, out, err = _gvc(capsys, "compress", clip / "smooth.npy", "-o", tmp_path / "p.gvc",
                        "--json", "--config", "gaussian-fast", "--scale", "0.25")
    assert rc == 0, err
    rep = json.loads(out)
    assert rep["config"] == "gaussian-fast" and rep["model"] == "gaussian"
    rc, out, _ = _gvc(capsys, "info", tmp_path / "p.gvc")
    info = json.loads(out)
    assert info["preset"] == "gaussian-fast" and info["model"]["config"] == "gaussian"
    rc, out, _ = _gvc(capsys, "compress", clip / "smooth.npy", "-o", tmp_path / "q.gvc",
                      "--json", "--config", "gaussian-fast", "--scale", "0.25", "--M", "5")
    rc, out, _ = _gvc(capsys, "info", tmp_path / "q.gvc")
    assert json.loads(out)["preset"] is None                # M changed: no preset's stream
    np.save(tmp_path / "in.npy", np.load(clip / "smooth.npy")[:, :16, :16])
    rc, out, err = _gvc(capsys, "batch", tmp_path / "in.npy", "-o", tmp_path / "b",
                        "--config", "gaussian-fast", "--json", "--verify", *FAST)
    assert rc == 0, err
    assert json.loads(out)["config"] == "gaussian-fast"
    rc, out, err = _gvc(capsys, "batch", tmp_path / "in.npy", "-o", tmp_path / "b",
                        "--config", "gaussian-fast", "--verify", *FAST)
    assert rc == 0 and "in.gvc: decodes (8 frames of 16x16)" in out, out


def test_phase_lines_once_per_gop(clip, capsys, tmp_path):
    rc, _, err = _gvc(capsys, "compress", clip / "smooth.npy", "-o", tmp_path / "g.gvc",
                      "--scale", "0.25", "--K", "16", "--M", "1", *FAST, "--gop-frames", "4")
    assert rc == 0, err
    lines = [ln for ln in err.splitlines() if ln.startswith("gvc: GOP ")]
    assert lines == ["gvc: GOP 1/2 encode", "gvc: GOP 1/2 decode", "gvc: GOP 2/2 encode",
                     "gvc: GOP 2/2 decode"]


def test_messages(capsys, tmp_path):
    rc, _, err = _gvc(capsys, "info", tmp_path / "missing.gvc")
    assert rc == 3 and _error(err) == f"gvc: error: {tmp_path / 'missing.gvc'}: no such file"
    np.save(tmp_path / "s.npy", np.zeros((4, 8, 8, 3), np.uint8))
    rc, _, err = _gvc(capsys, "compress", tmp_path / "s.npy", "-o", tmp_path / "o.gvc",
                      "--weights", tmp_path / "nowhere")
    assert rc == 3 and "nowhere: does not exist" in _error(err)
    rc, out, err = _gvc(capsys, "--version")
    from gvc_jax import __version__
    assert rc == 0 and out.strip() == f"gvc {__version__}"
    rc, out, err = _gvc(capsys, "compress", "--help")
    assert rc == 0
    anchor = out[out.index("  --anchor-codec"):].split("\n  --")[0]
    assert anchor.count("default") == 1, anchor


def test_help_answers_without_jax():
    """The parser imports no JAX: --help and argument errors answer at once."""
    code = ("import sys, time; t = time.perf_counter(); from gvc_jax.cli import main; "
            "rc = main(['compress', 'x.npy', '-o', 'x.gvc', '--bogus']); "
            "print(rc, 'jax' in sys.modules, time.perf_counter() - t)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": ROOT})
    rc, has_jax, seconds = r.stdout.split()
    assert rc == "2" and "unrecognized arguments: --bogus" in r.stderr
    assert has_jax == "False", r.stderr
    assert float(seconds) < 1.0, seconds
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "gvc_jax", "--help"], capture_output=True,
                       text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
    assert r.returncode == 0 and "compress" in r.stdout
    assert time.perf_counter() - t0 < 3.0        # interpreter start included


def test_truncated_checkpoint_says_incomplete_download(tmp_path, capsys):
    """A half-downloaded VAE .pth: one line that says what is wrong and what to do."""
    pytest.importorskip("torch")
    from gvc_jax.testing import random_wan_tiny as F

    root = F.write_official_folder(tmp_path / "wan", seed=0)
    vae = os.path.join(root, F.VAE_FILE)
    with open(vae, "rb") as f:
        data = f.read()
    with open(vae, "wb") as f:
        f.write(data[: len(data) // 2])
    np.save(tmp_path / "s.npy", np.zeros((5, 16, 16, 3), np.uint8))
    rc, _, err = _gvc(capsys, "compress", tmp_path / "s.npy", "-o", tmp_path / "o.gvc",
                      "--weights", root, "--cache-dir", tmp_path / "cache", "--K", "16",
                      "--M", "1", *FAST)
    line = _error(err)
    assert rc == 3 and "Wan2.1_VAE.pth" in line and "incomplete download" in line, line
    assert line.endswith("Download the file again")
    assert not (tmp_path / "o.gvc").exists()


def test_rd_plot_tick_labels_do_not_overlap(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gvc_jax.eval.report import _log_bpp_axis

    for lo, hi in ((0.006, 0.03), (0.002, 0.9), (0.0451, 0.0619)):
        fig, ax = plt.subplots(figsize=(5.2, 4.0))
        ax.plot([lo, hi], [20, 30])
        _log_bpp_axis(ax)
        fig.canvas.draw()
        r = fig.canvas.get_renderer()
        boxes = [t.get_window_extent(r) for t in ax.get_xticklabels()
                 if t.get_text() and t.get_visible()]
        assert len(boxes) >= 2, (lo, hi)
        for a, b in zip(boxes, boxes[1:]):
            assert not a.overlaps(b), (lo, hi, a, b)
        plt.close(fig)
