"""Exact rate control (gvc_jax/codec/ratecontrol.py): a --kbps/--bpp target is met from above
and closely, impossible targets are refused before any work, and under I2V the anchors and the
per-GOP residual steps are chosen so the whole file fits."""
from __future__ import annotations

import json

import numpy as np
import pytest

from gvc_jax import cli
from fractions import Fraction

from gvc_jax.codec import api, ratecontrol, stream
from gvc_jax.codec.errors import UsageError
from gvc_jax.codec.codec_model import load_model
from gvc_jax.codec.prompt import Prompt


def _clip(t=32, h=32, w=48, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (1, h // 8, w // 8, 3)).repeat(8, 1).repeat(8, 2)
    return np.clip(base + rng.integers(-10, 10, (t, h, w, 3)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("kbps", [12.0, 20.0, 28.0])
def test_target_met_from_above_and_closely(kbps):
    clip = _clip()
    enc, rep = api.compress_video(clip, config="gaussian-fast", kbps=kbps)
    t = rep["target"]
    assert t["met"] and rep["bytes_file"] <= t["bytes"] == int(kbps * 1000 * 32 / 25 // 8)
    # the next M up would not fit: the plan used the budget
    nxt = api.params_for("gaussian-fast")[2].replace(M=t["chosen"]["M"] + 1)
    over = stream.size_with_placeholders(stream.plan(clip, Fraction(25), load_model("gaussian"),
                                                     nxt, "t2v"))
    assert over > t["bytes"]
    frames, _, _ = api.decode_bytes(enc.data)
    np.testing.assert_array_equal(frames, enc.recon)


def test_bpp_target_and_refusals(tmp_path, capsys):
    clip = _clip()
    _, rep = api.compress_video(clip, config="gaussian-fast", bpp=0.15)
    assert rep["bpp"] <= 0.15 and rep["target"]["bytes"] == int(0.15 * 32 * 32 * 48 // 8)
    with pytest.raises(UsageError, match="below what this clip needs"):
        api.compress_video(clip, config="gaussian-fast", kbps=0.5)
    np.save(tmp_path / "c.npy", clip)
    for extra in (["--kbps", "0.5"], ["--kbps", "-3"], ["--kbps", "5", "--bpp", "0.1"]):
        rc = cli.main(["compress", str(tmp_path / "c.npy"), "-o", str(tmp_path / "o.gvc"),
                       "--config", "gaussian-fast", *extra])
        err = capsys.readouterr().err
        assert rc == 2 and err.strip().splitlines()[-1].startswith("gvc: error:"), err
        assert not (tmp_path / "o.gvc").exists()
    rc = cli.main(["compress", str(tmp_path / "c.npy"), "-o", str(tmp_path / "o.gvc"),
                   "--config", "gaussian-fast", "--kbps", "15", "--json"])
    rep = json.loads(capsys.readouterr().out)
    assert rc == 0 and rep["target"]["met"] and rep["bytes_file"] <= rep["target"]["bytes"]


def test_i2v_anchor_and_residual_fit_the_target(wan_i2v_official, tmp_path):
    over = {"K": 64, "M": 2, "M_tail": 4, "steps": 2, "sde_steps": 1, "gop_frames": 5,
            "anchor_codec": "jxl:0.5"}
    _, _, params = api.params_for("wan2.1-i2v", over)
    model = load_model("wan2.1-i2v", wan_i2v_official, Prompt(), params,
                       cache_dir=str(tmp_path / "cache"))
    clip = _clip(9, 32, 32)
    free, rep0 = api.compress_video(clip, config="wan2.1-i2v", overrides=over, model=model)
    target_kbps = 0.85 * rep0["kbps"]         # below the unconstrained file: settings must give
    enc, rep = api.compress_video(clip, config="wan2.1-i2v", overrides=over, model=model,
                                  kbps=target_kbps)
    t = rep["target"]
    assert t["met"] and rep["bytes_file"] <= t["bytes"]
    assert rep["breakdown"]["anchors"] <= ratecontrol.SIDE_SHARE * t["bytes"]
    assert rep["breakdown"]["residuals"] > 0
    assert rep["bytes_file"] < rep0["bytes_file"]
    frames, _, _ = api.decode_bytes(enc.data, models={model.name: model})
    np.testing.assert_array_equal(frames, enc.recon)


