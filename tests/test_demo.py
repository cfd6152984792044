"""`gvc demo` writes every promised file, atomically, with a consistent report; the preview's
panes are labelled in the video; the report says what the embedded prior can and cannot show
and how lossy decoded.mp4 is; `gvc demo --weights DIR` runs the same demo with a Wan folder."""
import json
import os
import re

import numpy as np
import pytest

from gvc_jax import demo

FILES = ["decoded.mp4", "decoded.npy", "demo.gvc", "preview.mp4", "report.json", "report.md"]


def _check_labels(path, pane_h, pane_w, zoom):
    """The band above the panes, read back from the mp4, shows SOURCE over the left pane and
    DECODED over the right one (white 5x7 glyphs on a dark band)."""
    from gvc_jax.io import read_video

    frames = read_video(path).frames
    band = demo.label_band(pane_w * zoom, 2 * zoom)
    assert frames.shape[1:] == (band.shape[0] + pane_h * zoom, band.shape[1], 3)
    want = band[..., 0] > 128
    for f in (frames[0], frames[-1]):
        got = f[: band.shape[0], :, :].mean(axis=2) > 128
        assert (got == want).mean() > 0.97
        assert want.sum() > 100 and (got & want).sum() > 0.9 * want.sum()
    # the two labels differ: each is where its own text is, not the other's
    half = band.shape[1] // 2
    left = demo.text_mask("SOURCE", demo.label_scale(pane_w * zoom))
    right = demo.text_mask("DECODED", demo.label_scale(pane_w * zoom))
    assert want[:, :half].sum() == left.sum() and want[:, half:].sum() == right.sum()


def _check_report(out, rep, frames, h, w):
    assert sorted(os.listdir(out)) == FILES
    disk = json.loads((out / "report.json").read_text())
    assert disk["bytes_file"] == os.path.getsize(out / "demo.gvc") == rep["bytes_file"]
    dec = np.load(out / "decoded.npy")
    assert dec.shape == (frames, h, w, 3)
    assert disk["decode_bit_exact"] is True
    md = (out / "report.md").read_text()
    for key in ("bpp", "kbps", "PSNR", "encode", "decode"):
        assert key in md
    # decoded.mp4 is lossy, and the report gives the measured PSNR against decoded.npy
    from gvc_jax.io import read_video
    from gvc_jax.metrics import psnr_sequence
    mp4 = read_video(out / "decoded.mp4").frames
    measured = psnr_sequence(dec, mp4)
    assert 20 < measured < 80 and disk["psnr_mp4_vs_npy"] == pytest.approx(measured, abs=1e-6)
    assert "`decoded.mp4` is lossy" in md and "H.264" in md
    assert re.search(rf"{disk['psnr_mp4_vs_npy']:.2f} dB PSNR against `decoded.npy`", md)
    _check_labels(out / "preview.mp4", h, w, disk["preview_zoom"])
    return disk, md


def test_demo_outputs(tmp_path, monkeypatch):
    # the real demo codes 32 frames with K=2048, M=64 (about a minute); the
    # same code path with a small codebook keeps the default run fast
    monkeypatch.setattr(demo, "DEMO_OVERRIDES", {"K": 64, "M": 4, "gop_frames": 8})
    out = tmp_path / "demo"
    (tmp_path / "demo").mkdir()
    (out / "stale.txt").write_text("replaced only once the new demo is complete")
    rep = demo.run(str(out), frames=8)
    assert [n for n in os.listdir(tmp_path) if n.startswith(".gvc-demo-")] == []
    disk, md = _check_report(out, rep, 8, 36, 44)
    assert "D_p(R)" in md
    assert np.isfinite(disk["psnr"]) and np.isfinite(disk["psnr_realism"])
    assert disk["psnr_shannon"] > disk["psnr_realism"]     # D(R) <= D_p(R)
    # what the embedded prior can and cannot show, said plainly
    assert "i.i.d. Gaussian over block-DCT coefficients" in md
    assert "proves the codec machinery" in md and "cannot show compression quality" in md
    assert "gvc demo --weights DIR" in md


def test_font_covers_the_labels():
    for text in demo.LABELS:
        m = demo.text_mask(text)
        assert m.shape == (7, 6 * len(text) - 1) and m.any(axis=0).sum() >= 4 * len(text)
    assert demo.text_mask("source").tolist() == demo.text_mask("SOURCE").tolist()
    assert not np.array_equal(demo.text_mask("O"), demo.text_mask("Q"))


def test_demo_with_wan_weights_through_the_cli(tmp_path, capsys):
    """`gvc demo --weights DIR` on a tiny random Wan 2.1 T2V folder: the preset follows the
    folder, CPU-sized defaults (5 frames = 2 latent frames, 44x36 coded at 48x48, K=256,
    M=4), the same files, a bit-exact decode and a report that says what it shows."""
    pytest.importorskip("torch")
    import jax

    from gvc_jax import cli
    from gvc_jax.testing.random_wan_tiny import write_official_folder

    if jax.default_backend() != "cpu":
        pytest.skip("checks the CPU-sized defaults")
    weights = write_official_folder(tmp_path / "wan", seed=0)
    out = tmp_path / "demo"
    rc = cli.main(["demo", "--weights", weights, "--out", str(out), "--cache-dir",
                   str(tmp_path / "cache"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 0, err
    rep = json.loads((out / "report.json").read_text())
    disk, md = _check_report(out, rep, 5, 36, 44)
    assert disk["config"] == "wan2.1-t2v" and disk["cpu_sized"] is True
    assert disk["codec"]["K"] == 256 and disk["M"] == 4
    assert disk["codec"]["steps"] == 20                      # the preset's own sampler
    assert disk["weights"] == os.path.abspath(weights)
    assert "psnr_shannon" not in disk and "Wan 2.1 T2V checkpoint" in md
    assert "random weights" in md and "sized down" in md
    # usage errors come before any work, as one line
    rc = cli.main(["demo", "--weights", weights, "--out", str(tmp_path / "x"), "--frames", "0"])
    assert rc == 2 and "--frames" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
