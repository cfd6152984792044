"""Golden streams: every mode x coding, with rate control, a prompt and CFG, gives the committed
bytes, and the committed streams decode to the committed frames.

The streams in ``tests/golden/`` were written by this test (``GVC_WRITE_GOLDEN=1``) and guard
refactors: a change to the codec loop, the header, the modes or the codings that alters one
byte of a stream, or one decoded pixel, fails here. ``tests/golden/legacy/`` holds rcc streams
whose headers also carried top-M's K, M and sampler fields; they must still decode to the same
frames, and today's streams must equal them but for those header keys. Everything goes through the ``gvc``
command line, the interface users script against. Wan cases run on the tiny random folders
(fp32, CPU); the Gaussian cases on the embedded prior.
"""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest

from gvc_jax import cli

GOLDEN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "golden")
WRITE = os.environ.get("GVC_WRITE_GOLDEN") == "1"

FAST_TOPM = ["--K", "64", "--M", "2", "--steps", "3", "--sde-steps", "2"]
FAST_RCC = ["--coding", "rcc", "--rcc-bits", "32", "--rcc-choice-bits", "8",
            "--rcc-candidates", "shift", "--rcc-group", "2", "--rcc-parts", "2",
            "--rcc-tail-steps", "4", "--rcc-tail-solver", "dpm2m"]
PROMPT = ["--prompt", "a red fox runs across a snowy field", "--guidance", "3",
          "--negative-prompt", "rain"]
IMAGE = ["--gop-frames", "5", "--anchor-codec", "jxl:1"]

# name -> (model folder fixture or None, clip (t, h, w), flags)
CASES = {
    "gaussian-t2v-topm": (None, (8, 24, 40), ["--config", "gaussian", *FAST_TOPM,
                                              "--gop-frames", "4"]),
    "gaussian-t2v-kbps": (None, (8, 24, 40), ["--config", "gaussian", "--K", "4096", "--steps",
                                              "3", "--sde-steps", "2", "--gop-frames", "4",
                                              "--kbps", "20"]),
    "gaussian-t2v-rcc": (None, (8, 24, 40), ["--config", "gaussian", "--gop-frames", "4",
                                             "--coding", "rcc", "--rcc-bits", "256",
                                             "--rcc-choice-bits", "8", "--rcc-candidates",
                                             "shift", "--rcc-group", "2"]),
    "wan-t2v-topm-prompt-cfg": ("wan_official_folder", (5, 16, 32), [*FAST_TOPM, *PROMPT]),
    "wan-t2v-kbps": ("wan_official_folder", (5, 16, 32), ["--K", "1024", *FAST_TOPM[4:],
                                                          "--prompt", "city at night",
                                                          "--kbps", "40"]),
    "wan-t2v-rcc": ("wan_official_folder", (5, 16, 32), FAST_RCC),
    "wan-i2v-topm-prompt-cfg": ("wan_i2v_official", (9, 16, 32),
                                [*FAST_TOPM, "--M-tail", "4", *IMAGE, *PROMPT]),
    "wan-i2v-kbps": ("wan_i2v_official", (9, 16, 32),
                     ["--K", "1024", *FAST_TOPM[4:], "--M-tail", "4", *IMAGE, "--kbps", "60"]),
    "wan-i2v-rcc": ("wan_i2v_official", (9, 16, 32), [*FAST_RCC, *IMAGE]),
    "wan-flf2v-topm": ("wan_flf2v_official", (9, 16, 32), [*FAST_TOPM, *IMAGE]),
    "wan-flf2v-kbps": ("wan_flf2v_official", (9, 16, 32), ["--K", "1024", *FAST_TOPM[4:], *IMAGE,
                                                           "--kbps", "60"]),
    "wan-flf2v-rcc": ("wan_flf2v_official", (9, 16, 32), [*FAST_RCC, *IMAGE]),
}


def _clip(t, h, w, seed=0):
    """Blocky content with drift and noise: the anchors, residuals and rates all see detail."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (1, -(-h // 8), -(-w // 8), 3)).repeat(8, 1).repeat(8, 2)
    drift = np.arange(t)[:, None, None, None] * 3
    return np.clip(base[:, :h, :w] + drift + rng.integers(-12, 12, (t, h, w, 3)), 0,
                   255).astype(np.uint8)


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("gvc_cache_golden"))


@pytest.fixture(scope="module")
def manifest():
    path = os.path.join(GOLDEN, "manifest.json")
    got = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            got = json.load(f)
    yield got
    if WRITE:
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(got, f, indent=1, sort_keys=True)
            f.write("\n")


def _gvc(capsys, *args):
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_golden_stream(name, cache, manifest, tmp_path, capsys, request):
    fixture, (t, h, w), flags = CASES[name]
    weights = ["--weights", request.getfixturevalue(fixture)] if fixture else []
    src = tmp_path / "src.npy"
    np.save(src, _clip(t, h, w))
    out = tmp_path / "a.gvc"
    _gvc(capsys, "compress", src, "-o", out, *weights, "--cache-dir", cache, "--recon",
         tmp_path / "recon.npy", "--quiet", *flags)
    data = out.read_bytes()
    recon = np.load(tmp_path / "recon.npy")
    golden = os.path.join(GOLDEN, f"{name}.gvc")
    if WRITE:
        os.makedirs(GOLDEN, exist_ok=True)
        with open(golden, "wb") as f:
            f.write(data)
        manifest[name] = {"bytes": len(data), "stream_sha256": hashlib.sha256(data).hexdigest(),
                          "decoded_sha256": _sha(recon), "decoded_shape": list(recon.shape)}
    want = manifest[name]
    with open(golden, "rb") as f:
        assert f.read() == data, f"{name}: the stream differs from tests/golden/{name}.gvc"
    assert hashlib.sha256(data).hexdigest() == want["stream_sha256"]
    assert _sha(recon) == want["decoded_sha256"], f"{name}: the reconstruction differs"
    # the committed stream decodes to the committed frames
    _gvc(capsys, "decompress", golden, "-o", tmp_path / "dec.npy", *weights, "--cache-dir",
         cache, "--quiet")
    dec = np.load(tmp_path / "dec.npy")
    assert list(dec.shape) == want["decoded_shape"]
    assert _sha(dec) == want["decoded_sha256"], f"{name}: the decoded frames differ"


TOPM_ONLY = ("K", "M", "M_tail", "steps", "sde_steps", "g_scale", "shift", "schedule")


@pytest.mark.parametrize("name", [n for n in CASES if n.endswith("-rcc")])
def test_legacy_rcc_streams(name, cache, manifest, tmp_path, capsys, request):
    """rcc headers no longer carry top-M's fields; nothing else changed: the same chunks, the
    same header otherwise, and the older stream decodes to the same frames."""
    from gvc_jax.bitstream import container

    fixture = CASES[name][0]
    weights = ["--weights", request.getfixturevalue(fixture)] if fixture else []
    with open(os.path.join(GOLDEN, "legacy", f"{name}.gvc"), "rb") as f:
        old = f.read()
    with open(os.path.join(GOLDEN, f"{name}.gvc"), "rb") as f:
        new = f.read()
    (h_old, c_old), (h_new, c_new) = container.read_gvc(old), container.read_gvc(new)
    assert c_old == c_new
    assert set(h_old["codec"]) - set(h_new["codec"]) <= set(TOPM_ONLY)
    assert set(h_new["codec"]) <= set(h_old["codec"])
    assert {k: v for k, v in h_old["codec"].items() if k not in TOPM_ONLY} == h_new["codec"]
    assert {**h_old, "codec": None} == {**h_new, "codec": None}
    _gvc(capsys, "decompress", os.path.join(GOLDEN, "legacy", f"{name}.gvc"), "-o",
         tmp_path / "dec.npy", *weights, "--cache-dir", cache, "--quiet")
    assert _sha(np.load(tmp_path / "dec.npy")) == manifest[name]["decoded_sha256"]
