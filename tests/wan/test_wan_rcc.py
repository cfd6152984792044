"""``--coding rcc`` with a Wan model (docs/rcc.md, "As a stream coding"): a tiny random T2V
folder plans rcc on the unit-variance curve, codes shifted choices for groups of frames split
into parts, and the decoder replays the encoder's frames bit for bit from exactly the planned
payload bits."""
from __future__ import annotations

import json

import numpy as np
import pytest

from gvc_jax import cli
from gvc_jax.codec.codec_model import unit_variance_error_fn


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("gvc_cache"))


def _gvc(capsys, *args):
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_unit_variance_curve():
    err = unit_variance_error_fn((16, 3, 2, 4))
    assert err(1.0) == pytest.approx(128.0) and err(0.0) == 0.0
    assert err(0.5) == pytest.approx(64.0)                 # t^2 / ((1-t)^2 + t^2) = 1/2


def test_wan_rcc_round_trip(wan_official_folder, cache, tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "s.npy", rng.integers(0, 256, (5, 16, 16, 3)).astype(np.uint8))
    rc, out, err = _gvc(capsys, "compress", tmp_path / "s.npy", "-o", tmp_path / "a.gvc",
                        "--weights", wan_official_folder, "--cache-dir", cache, "--recon",
                        tmp_path / "recon.npy", "--json", "--coding", "rcc", "--rcc-bits", "32",
                        "--rcc-choice-bits", "8", "--rcc-candidates", "shift", "--rcc-group", "2",
                        "--rcc-parts", "2", "--rcc-tail-solver", "dpm2m")
    assert rc == 0, err
    rep = json.loads(out)
    # 5 frames -> 2 latent frames, one group in 2 parts: 2 rows x (32 * 2 // 16 = 4 steps) x 8
    assert rep["index_bits_per_gop"] == [64]
    rc, out, _ = _gvc(capsys, "info", tmp_path / "a.gvc")
    codec = json.loads(out)["codec"]
    assert (codec["coding"], codec["rcc_candidates"], codec["rcc_group"], codec["rcc_parts"],
            codec["rcc_tail_solver"]) == ("rcc", "shift", 2, 2, "dpm2m")
    rc, _, err = _gvc(capsys, "decompress", tmp_path / "a.gvc", "-o", tmp_path / "dec.npy",
                      "--weights", wan_official_folder, "--cache-dir", cache)
    assert rc == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "dec.npy"), np.load(tmp_path / "recon.npy"))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["i2v", "flf2v"])
def test_wan_image_modes_rcc_round_trip(kind, cache, tmp_path, capsys, request):
    """I2V (anchor, GOP chain, tail residual) and FLF2V under rcc: decoder == --recon."""
    folder = request.getfixturevalue(f"wan_{kind}_official")
    rng = np.random.default_rng(0)
    np.save(tmp_path / "s.npy", rng.integers(0, 256, (10, 16, 16, 3)).astype(np.uint8))
    rc, _, err = _gvc(capsys, "compress", tmp_path / "s.npy", "-o", tmp_path / "a.gvc",
                      "--weights", folder, "--cache-dir", cache, "--recon", tmp_path / "r.npy",
                      "--gop-frames", "5", "--anchor-codec", "jxl:1", "--coding", "rcc",
                      "--rcc-bits", "16", "--rcc-choice-bits", "8")
    assert rc == 0, err
    rc, _, err = _gvc(capsys, "decompress", tmp_path / "a.gvc", "-o", tmp_path / "d.npy",
                      "--weights", folder, "--cache-dir", cache)
    assert rc == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "d.npy"), np.load(tmp_path / "r.npy"))
