"""I2V and FLF2V end to end on tiny random folders (fp32, CPU).

* Through the ``gvc`` command line, both layouts: the decoder's output equals ``--recon`` bit
  for bit; anchors and residuals are in the file and in the report's breakdown.
* Clip lengths 1, 2, 33, 34, 65 and 66 in each mode (33-frame GOPs sharing boundary frames):
  the GOP table, the frame count, decoder == encoder, anchors at the right places.
* Corrupt ``ANCH`` and ``RESD`` chunks (CRC repaired, so the payload parsers see them) and a
  missing ``RESD`` chunk are refused with exit 3 and no output.
"""
from __future__ import annotations

import json
import os
import struct
import zlib

import jax
import numpy as np
import pytest

from gvc_jax.bitstream import container
from gvc_jax.codec import anchors as image_anchors, api, core
from gvc_jax.codec.errors import UsageError
from gvc_jax.codec.codec_model import load_model
from gvc_jax.codec.prompt import Prompt
from gvc_jax.codec.placement import Placement
from tests.wan.test_wan_cli import _gvc

FAST = ["--K", "64", "--M", "2", "--M-tail", "4", "--steps", "3", "--sde-steps", "2"]


def _clip(t, h, w, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (1, -(-h // 8), -(-w // 8), 3)).repeat(8, 1).repeat(8, 2)
    drift = np.arange(t)[:, None, None, None] * 2
    return np.clip(base[:, :h, :w] + drift + rng.integers(-12, 12, (t, h, w, 3)), 0,
                   255).astype(np.uint8)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("gvc_cache_image"))


@pytest.mark.parametrize("kind,layout", [("i2v", "official"), ("i2v", "diffusers"),
                                         ("flf2v", "official"), ("flf2v", "diffusers")])
def test_cli_round_trip(kind, layout, cache, tmp_path, capsys, request):
    folder = request.getfixturevalue(f"wan_{kind}_{layout}")
    src = tmp_path / "src.npy"
    np.save(src, _clip(10, 20, 36))                  # 2 GOPs of 5 frames + 1 odd size
    park = ["--offload", "always"] if layout == "official" else []   # auto: never on a CPU
    rc, out, err = _gvc(capsys, "compress", src, "-o", tmp_path / "a.gvc", "--weights", folder,
                        "--cache-dir", cache, "--recon", tmp_path / "recon.npy", "--json",
                        "--gop-frames", "5", "--anchor-codec", "jxl:1", *FAST, *park)
    assert rc == 0, err
    rep = json.loads(out)
    assert rep["weights_parked"] == bool(park)
    assert rep["config"] == f"wan2.1-{kind}" and rep["mode"] == kind
    assert rep["codec"]["shift"] == 3.0                      # at or below 480p
    assert rep["breakdown"]["anchors"] > 0
    assert (rep["breakdown"]["residuals"] > 0) == (kind == "i2v")
    assert rep["bytes_file"] == os.path.getsize(tmp_path / "a.gvc")
    assert sum(rep["breakdown"].values()) == rep["bytes_file"]
    rc, _, err = _gvc(capsys, "decompress", tmp_path / "a.gvc", "-o", tmp_path / "out.npy",
                      "--weights", folder, "--cache-dir", cache, *park)
    assert rc == 0, err
    out_frames, recon = np.load(tmp_path / "out.npy"), np.load(tmp_path / "recon.npy")
    assert out_frames.shape == (10, 20, 36, 3)
    np.testing.assert_array_equal(out_frames, recon)


# ------------------------------------------------------------------ clip lengths
@pytest.fixture(scope="module", params=["i2v", "flf2v"])
def model(request, cache):
    kind = request.param
    folder = request.getfixturevalue(f"wan_{kind}_official")
    _, _, params = api.params_for(f"wan2.1-{kind}", _overrides())
    return kind, load_model(f"wan2.1-{kind}", folder, Prompt(), params, cache_dir=cache)


def _overrides():
    return {"K": 32, "M": 1, "M_tail": 2, "steps": 2, "sde_steps": 1, "anchor_codec": "jxl:1"}


@pytest.mark.parametrize("n", [1, 2, 33, 34, 65, 66])
def test_clip_lengths(model, n):
    kind, m = model
    clip = _clip(n, 16, 16, seed=n)
    enc, rep = api.compress_video(clip, config=f"wan2.1-{kind}", overrides=_overrides(), model=m)
    starts = [g["start"] for g in enc.header["gops"]]
    assert starts == list(range(0, max(n - 1, 1), 32)), starts   # GOP g starts at 32 g
    assert enc.recon.shape == clip.shape
    frames, _, _ = api.decode_bytes(enc.data, models={m.name: m})
    np.testing.assert_array_equal(frames, enc.recon)
    anchors = [p for t, p in container.read_gvc(enc.data)[1] if t == "ANCH"]
    n_gops = len(starts)
    if kind == "i2v":
        assert len(anchors) == 1
        resd = [p for t, p in container.read_gvc(enc.data)[1] if t == "RESD"]
        assert len(resd) == n_gops
    else:   # every GOP's first frame and the clip's last frame, each once
        assert len(anchors) == len(set(starts + [n - 1]))
    # the output at each anchor position is the decoded anchor (I2V: frame 0 only)
    coded = enc.header["coded"]
    positions = [0] if kind == "i2v" else sorted(set(starts + [n - 1]))
    for payload in anchors:
        k, cid, data = container.parse_anchor(payload)
        img = image_anchors.decode(cid, data, coded["height"], coded["width"])
        np.testing.assert_array_equal(frames[positions[k]], img[:16, :16])


# ------------------------------------------------------------------ corrupt chunks
def _chunks(data: bytes):
    """``[(tag, start, end)]`` of the payload of every chunk."""
    out, pos = [], len(container.MAGIC) + 2
    while pos < len(data):
        tag = data[pos:pos + 4].decode("ascii")
        n = struct.unpack(">I", data[pos + 4:pos + 8])[0]
        out.append((tag, pos + 8, pos + 8 + n))
        pos += 12 + n
    return out


def _with_payload(data: bytes, tag: str, fn) -> bytes:
    """``data`` with the first ``tag`` chunk's payload replaced by ``fn(payload)`` (length and
    CRC rewritten, so only the payload's own parser can object)."""
    for t, a, b in _chunks(data):
        if t == tag:
            new = fn(data[a:b])
            head = tag.encode("ascii") + struct.pack(">I", len(new))
            frame = head + new + struct.pack(">I", zlib.crc32(new, zlib.crc32(head)))
            return data[:a - 8] + frame + data[b + 4:]
    raise AssertionError(f"no {tag} chunk")


def _without(data: bytes, tag: str) -> bytes:
    for t, a, b in _chunks(data):
        if t == tag:
            return data[:a - 8] + data[b + 4:]
    raise AssertionError(f"no {tag} chunk")


def test_corrupt_anchor_and_residual_exit_3(wan_i2v_official, cache, tmp_path, capsys):
    src = tmp_path / "src.npy"
    np.save(src, _clip(5, 16, 16))
    rc, _, err = _gvc(capsys, "compress", src, "-o", tmp_path / "a.gvc", "--weights",
                      wan_i2v_official, "--cache-dir", cache, "--gop-frames", "5",
                      "--anchor-codec", "jxl:1", *FAST)
    assert rc == 0, err
    good = (tmp_path / "a.gvc").read_bytes()

    def flip(p):          # keep the anchor number and codec id, damage the image bytes
        b = bytearray(p)
        for i in range(len(b) // 2, len(b)):
            b[i] ^= 0x5A
        return bytes(b)

    bad = {"anch": _with_payload(good, "ANCH", flip),
           "anch_short": _with_payload(good, "ANCH", lambda p: p[:12]),
           "resd": _with_payload(good, "RESD", lambda p: p[:4] + bytes(len(p) - 4)[:3]),
           "resd_missing": _without(good, "RESD"),
           "anch_missing": _without(good, "ANCH")}
    for name, data in bad.items():
        path = tmp_path / f"{name}.gvc"
        path.write_bytes(data)
        out = tmp_path / f"{name}.npy"
        rc, _, err = _gvc(capsys, "decompress", path, "-o", out, "--weights", wan_i2v_official,
                          "--cache-dir", cache)
        assert rc == 3, (name, err)
        assert err.strip().splitlines()[-1].startswith("gvc: error:"), err
        assert "Traceback" not in err
        assert not out.exists() and not [f for f in os.listdir(tmp_path) if ".tmp" in f]


# ------------------------------------------------------------------ weight offload
def test_offload_parks_weights_and_keeps_the_stream(wan_i2v_official, cache):
    """``offload="always"`` moves the DiT's weights to pinned host memory whenever the VAE or
    CLIP runs and back for each sampling scan: the stream and the reconstruction are the same
    bytes as without it, the device buffers are really freed while parked, and decoding with
    it gives the encoder's frames."""
    _, _, params = api.params_for("wan2.1-i2v", _overrides())
    frames = _clip(9, 16, 32)                         # 2 GOPs of 5 frames: two parks per GOP
    params = params.replace(gop_frames=5)
    plain = load_model("wan2.1-i2v", wan_i2v_official, Prompt(), params, cache_dir=cache,
                       placement=Placement(offload="never"))
    parked = load_model("wan2.1-i2v", wan_i2v_official, Prompt(), params, cache_dir=cache,
                        placement=Placement(offload="always"))
    assert not plain.offloading and parked.offloading and parked.module is None
    first = jax.tree.leaves(parked.dit_state())
    a = core.compress(frames, 25, plain, params, mode="i2v")
    b = core.compress(frames, 25, parked, params, mode="i2v")
    assert a.data == b.data
    np.testing.assert_array_equal(a.recon, b.recon)
    # parked before GOP 0's source is encoded, then after each GOP's sampling (its decode):
    # one host-to-device copy per GOP
    assert parked._parker.parks == 1 + len(b.gops) == 3
    assert all(x.is_deleted() for x in first)         # the original buffers were freed
    frames_out, _, _ = api.decode_bytes(b.data, models={parked.name: parked})
    np.testing.assert_array_equal(frames_out, b.recon)


def test_placement_is_checked():
    with pytest.raises(UsageError, match="offload must be one of"):
        Placement(offload="sometimes")
    with pytest.raises(UsageError, match="unknown sharding table 'wan-nope'"):
        Placement(shard="wan-nope")
