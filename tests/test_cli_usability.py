"""What a new user meets: sized defaults, stated cost, progress display, consistent errors.

In-process through ``gvc_jax.cli.main`` (fast); the real-signal Ctrl-C test is in
tests/test_interrupt.py.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from gvc_jax import cli


def _gvc(capsys, *args):
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("usab")
    rng = np.random.default_rng(0)
    np.save(d / "rgb.npy", rng.integers(0, 256, (5, 16, 24, 3), dtype=np.uint8))
    np.save(d / "gray.npy", rng.integers(0, 256, (5, 16, 24), dtype=np.uint8))
    return d


def test_cpu_default_preset_states_cost_and_shows_progress(clip, capsys, tmp_path):
    rc, out, err = _gvc(capsys, "compress", clip / "rgb.npy", "-o", tmp_path / "a.gvc", "--json",
                        "--steps", "4", "--sde-steps", "3", "--M", "4")
    assert rc == 0, err
    rep = json.loads(out)
    assert rep["codec"]["K"] == 256 and rep["config"] == "gaussian-fast"   # on a CPU
    assert "G atom samples of codebook search" in err and "on this CPU" in err
    assert rep["cost_estimate"]["atom_samples"] == 3 * 2 * 256 * 768 * 2 * 3
    assert "gvc: GOP 1/1 encode" in err                        # piped: one line per phase
    rc, _, err = _gvc(capsys, "compress", clip / "rgb.npy", "-o", tmp_path / "b.gvc",
                      "--steps", "4", "--sde-steps", "3", "--progress", "--M", "4")
    # a bar per phase with the step total (tqdm may skip intermediate redraws)
    assert rc == 0 and "GOP 1/1 encode" in err and "/4 [" in err and "step/s" in err
    rc, out, err = _gvc(capsys, "decompress", tmp_path / "b.gvc", "-o", tmp_path / "b.npy",
                        "--quiet")
    assert rc == 0 and err == "" and out == ""


def test_grayscale_npy_is_coded_like_grayscale_png(clip, capsys, tmp_path):
    rc, _, err = _gvc(capsys, "compress", clip / "gray.npy", "-o", tmp_path / "g.gvc", "--recon",
                      tmp_path / "g.npy", "--steps", "2", "--sde-steps", "1", "--quiet",
                      "--scale", "1")
    assert rc == 0, err
    assert np.load(tmp_path / "g.npy").shape == (5, 16, 24, 3)


@pytest.mark.parametrize("args, code, needle", [
    (["-o", "{t}/x.avi"], 2, "must end in .gvc"),
    (["-o", "{t}/x.gvc", "--max-frames", "0"], 2, "--max-frames must be >= 1"),
    (["-o", "{t}/x.gvc", "--weights", "{t}/notes.txt"], 3, "takes a Wan 2.1 folder or a"),
    (["-o", "{t}/x.gvc", "--config", "gaussian", "--weights", "{t}/notes.txt"], 3,
     "not a usable gaussian prior stats file (not an .npz archive)"),
])
def test_compress_errors(clip, capsys, tmp_path, args, code, needle):
    (tmp_path / "notes.txt").write_text("just some text\n")
    args = [a.format(t=tmp_path) for a in args]
    rc, _, err = _gvc(capsys, "compress", clip / "rgb.npy", *args)
    assert rc == code and needle in err, err
    assert err.startswith("gvc: error:") and err.count("\n") == 1
    assert "pickle" not in err
    assert not (tmp_path / "x.avi").exists() and not (tmp_path / "x.gvc").exists()


def test_bad_codebook_method_is_a_usage_error(clip, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("GVC_CODEBOOK_METHOD", "cuda")
    rc, _, err = _gvc(capsys, "compress", clip / "rgb.npy", "-o", tmp_path / "x.gvc")
    assert rc == 2 and "$GVC_CODEBOOK_METHOD='cuda' is not one of" in err, err
    assert err.startswith("gvc: error:") and err.count("\n") == 1
    assert not (tmp_path / "x.gvc").exists()


def test_truncated_stream_error_names_the_file(clip, capsys, tmp_path):
    rc, _, err = _gvc(capsys, "compress", clip / "rgb.npy", "-o", tmp_path / "a.gvc",
                      "--steps", "2", "--sde-steps", "1", "--quiet")
    assert rc == 0, err
    data = (tmp_path / "a.gvc").read_bytes()
    (tmp_path / "cut.gvc").write_bytes(data[:-9])
    for cmd in (["decompress", tmp_path / "cut.gvc", "-o", tmp_path / "o.npy"],
                ["info", tmp_path / "cut.gvc"]):
        rc, _, err = _gvc(capsys, *cmd)
        assert rc == 3 and str(tmp_path / "cut.gvc") in err, err
    assert not (tmp_path / "o.npy").exists()
    rc, _, err = _gvc(capsys, "decompress", tmp_path / "a.gvc", "-o", tmp_path / "o.avi")
    assert rc == 2 and "must end in .mp4, .y4m or .npy" in err


def test_api_takes_a_plain_uint8_array(tmp_path):
    from gvc_jax.codec import api

    frames = np.random.default_rng(5).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    rep = api.compress_file(frames, str(tmp_path / "a.gvc"), config="gaussian-fast",
                            overrides={"steps": 2, "sde_steps": 1})
    assert rep["frames"] == 4 and rep["fps"] == 25.0
    out = api.decompress_file(str(tmp_path / "a.gvc"), str(tmp_path / "a.npy"))
    assert out.shape == frames.shape
