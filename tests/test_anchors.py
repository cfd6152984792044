"""Anchor image codecs (docs/anchors.md)."""
from __future__ import annotations

import numpy as np
import pytest

from gvc_jax.bitstream.errors import BitstreamError
from gvc_jax.codec import anchors as A
from gvc_jax.codec.errors import UsageError

AVAILABLE = A.available()
CODECS = [n for n in ("vvc", "jxl", "avif") if n in AVAILABLE]
GOOD = {"vvc": "vvc:22", "jxl": "jxl:0.5", "avif": "avif:90"}
POOR = {"vvc": "vvc:45", "jxl": "jxl:6", "avif": "avif:20"}


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients, a sinusoid texture and a little noise: an image-like test frame."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 90 * np.sin(x / 7.0) * np.cos(y / 11.0)
    g = 40 + 170 * x / max(w - 1, 1)
    b = 200 - 150 * y / max(h - 1, 1) + 30 * np.sin((x + y) / 3.0)
    img = np.stack([r, g, b], axis=-1) + rng.normal(0, 4, (h, w, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _psnr(a, b) -> float:
    m = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255 ** 2 / max(m, 1e-10))


# ------------------------------------------------------------------ specs
def test_names_default_available():
    assert set(A.NAMES) >= {"vvc", "jxl", "avif", "cheng2020"}
    assert str(A.parse_spec(A.DEFAULT)) == A.DEFAULT
    assert set(AVAILABLE) <= set(A.NAMES)
    assert A.DEFAULT.split(":")[0] in AVAILABLE


@pytest.mark.parametrize("spec,canon", [("vvc:32", "vvc:32"), ("VVC:0", "vvc:0"), ("vvc", "vvc:32"),
                                        ("jxl:1.5", "jxl:1.5"), ("jxl:2", "jxl:2"),
                                        (" avif:60 ", "avif:60"), ("avif", "avif:60"),
                                        ("jxl", "jxl:1")])
def test_parse_spec(spec, canon):
    s = A.parse_spec(spec)
    assert str(s) == canon and A.parse_spec(str(s)) == s
    assert isinstance(s, A.AnchorSpec)
    with pytest.raises(Exception):
        s.name = "x"   # frozen


@pytest.mark.parametrize("spec", ["", "foo", "foo:3", "vvc:64", "vvc:-1", "vvc:3.5", "vvc:",
                                  "vvc:abc", "jxl:0", "jxl:nan", "jxl:inf", "jxl:30", "avif:101",
                                  "avif:-5", "avif:50.5", 123, None])
def test_bad_spec_is_usage_error(spec):
    with pytest.raises(UsageError) as e:
        A.parse_spec(spec)
    msg = str(e.value)
    assert "\n" not in msg
    if isinstance(spec, str) and spec.split(":")[0] not in A.NAMES:
        assert all(n in msg for n in ("vvc", "jxl", "avif"))


@pytest.mark.skipif("cheng2020" in AVAILABLE, reason="compressai is installed")
def test_cheng2020_without_compressai():
    with pytest.raises(UsageError, match="compressai"):
        A.parse_spec("cheng2020:4")
    with pytest.raises(BitstreamError, match="compressai"):
        A.decode("cheng2020-attn-q4", b"\x00" * 64, 64, 64)


# ------------------------------------------------------------------ round trips
@pytest.mark.parametrize("name", CODECS)
@pytest.mark.parametrize("hw", [(32, 48), (64, 64), (16, 16)])
def test_round_trip(name, hw):
    img = _image(*hw)
    cid, data = A.encode(A.parse_spec(GOOD[name]), img)
    assert isinstance(cid, str) and cid.isascii() and len(cid) <= A.MAX_ID_CHARS
    assert isinstance(data, bytes) and data
    out = A.decode(cid, data, *hw)
    assert out.dtype == np.uint8 and out.shape == (*hw, 3)
    assert _psnr(img, out) > 30
    np.testing.assert_array_equal(A.decode(cid, data, *hw), out)   # deterministic


@pytest.mark.parametrize("name", CODECS)
def test_quality_follows_setting(name):
    img = _image(64, 64, seed=1)
    cg, good = A.encode(A.parse_spec(GOOD[name]), img)
    cp, poor = A.encode(A.parse_spec(POOR[name]), img)
    assert len(good) > len(poor)
    assert _psnr(img, A.decode(cg, good, 64, 64)) > _psnr(img, A.decode(cp, poor, 64, 64)) + 2


def test_vvc_colour_conversion_is_exact_integer():
    """The decoder's YUV -> RGB is integer-only; a flat grey round-trips without coding."""
    img = np.full((16, 32, 3), 117, np.uint8)
    raw = np.frombuffer(A._rgb_to_yuv420p10(img), "<u2")
    n = 16 * 32
    out = A._yuv420p10_to_rgb(raw[:n].reshape(16, 32), raw[n:n + n // 4].reshape(8, 16),
                              raw[n + n // 4:].reshape(8, 16))
    np.testing.assert_array_equal(out, img)
    smooth = _image(32, 32)
    raw = np.frombuffer(A._rgb_to_yuv420p10(smooth), "<u2")
    n = 32 * 32
    out = A._yuv420p10_to_rgb(raw[:n].reshape(32, 32), raw[n:n + n // 4].reshape(16, 16),
                              raw[n + n // 4:].reshape(16, 16))
    assert _psnr(smooth, out) > 35


# ------------------------------------------------------------------ bad data
@pytest.fixture(scope="module")
def coded():
    img = _image(32, 48, seed=2)
    return {n: A.encode(A.parse_spec(GOOD[n]), img) for n in CODECS}


@pytest.mark.parametrize("name", CODECS)
def test_truncated_and_garbage_data(name, coded):
    cid, data = coded[name]
    rng = np.random.default_rng(0)
    bad = [b"", data[:1], data[:10], data[: len(data) // 2], rng.bytes(len(data)),
           rng.bytes(7), b"\x00" * 64, b"\xff" * 200]
    for b in bad:
        try:
            out = A.decode(cid, b, 32, 48)
        except BitstreamError as e:
            assert "\n" not in str(e)
            continue
        assert out.shape == (32, 48, 3) and out.dtype == np.uint8   # decodable junk is allowed
    with pytest.raises(BitstreamError):
        A.decode(cid, b"", 32, 48)
    with pytest.raises(BitstreamError):
        A.decode(cid, data[:10], 32, 48)


@pytest.mark.parametrize("name", CODECS)
def test_bit_flips_never_escape_as_other_errors(name, coded):
    cid, data = coded[name]
    rng = np.random.default_rng(1)
    for _ in range(6 if name == "vvc" else 40):   # vvc runs ffmpeg per try
        b = bytearray(data)
        for _ in range(3):
            b[rng.integers(len(b))] ^= 1 << int(rng.integers(8))
        try:
            out = A.decode(cid, bytes(b), 32, 48)
        except BitstreamError:
            continue
        assert out.shape == (32, 48, 3)


@pytest.mark.parametrize("name", CODECS)
def test_wrong_size_is_bitstream_error(name, coded):
    cid, data = coded[name]
    for hw in [(48, 32), (32, 64), (64, 48), (16, 48)]:
        with pytest.raises(BitstreamError):
            A.decode(cid, data, *hw)


def test_bad_ids_and_sizes(coded):
    for cid in ["", "jpeg", "vvc2", "x" * 100, None, 5, "cheng2020-attn-q9"]:
        with pytest.raises(BitstreamError):
            A.decode(cid, b"\x00" * 32, 32, 48)
    for hw in [(0, 16), (15, 16), (16, 24), (4096, 16), (1920, 1920), (-16, 16), (16.0, 16)]:
        with pytest.raises(BitstreamError):
            A.decode("jxl", b"\xff\x0a" + b"\x00" * 30, *hw)
    with pytest.raises(BitstreamError):
        A.decode("jxl", "not bytes", 32, 48)


def test_vvc_decode_timeout_is_bitstream_error(coded, monkeypatch):
    if "vvc" not in CODECS:
        pytest.skip("no libvvenc")
    monkeypatch.setattr(A, "DECODE_TIMEOUT_S", 1e-4)
    with pytest.raises(BitstreamError, match="took more than"):
        A.decode(*coded["vvc"], 32, 48)


@pytest.mark.parametrize("bad", [np.zeros((32, 48, 3), np.float32), np.zeros((32, 48, 4), np.uint8),
                                 np.zeros((32, 40, 3), np.uint8), np.zeros((8, 8, 3), np.uint8),
                                 np.zeros((32, 48), np.uint8)])
def test_bad_encoder_input_is_usage_error(bad):
    with pytest.raises(UsageError):
        A.encode(A.parse_spec("jxl:1"), bad)


def test_no_temp_files(tmp_path, monkeypatch, coded):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    img = _image(32, 32)
    for n in CODECS:
        cid, data = A.encode(A.parse_spec(GOOD[n]), img)
        A.decode(cid, data, 32, 32)
    assert list(tmp_path.iterdir()) == []


def test_cheng2020_glue_with_a_fake_network(monkeypatch):
    """The packing, padding and cropping around CompressAI, with a stand-in network (the real
    one needs compressai and its weights, which are not installed here)."""
    pytest.importorskip("torch")
    store = {}

    class FakeNet:
        def compress(self, x):
            assert x.shape[-2] % 64 == 0 and x.shape[-1] % 64 == 0
            key = str(len(store)).encode()
            store[key] = x.clone()
            return {"strings": [[key], [b"z" * 5]], "shape": x.shape[-2:]}

        def decompress(self, strings, shape):
            assert strings[1][0] == b"z" * 5
            x = store[strings[0][0]]
            assert list(shape) == [x.shape[-2] // 64, x.shape[-1] // 64]
            return {"x_hat": x}

    monkeypatch.setattr(A, "_has_compressai", lambda: True)
    monkeypatch.setattr(A, "_cheng_net", lambda quality: FakeNet())
    img = _image(48, 80)
    cid, data = A.encode(A.parse_spec("cheng2020:4"), img)
    assert cid == "cheng2020-attn-q4"
    np.testing.assert_array_equal(A.decode(cid, data, 48, 80), img)
    with pytest.raises(BitstreamError):
        A.decode(cid, data[:3], 48, 80)
    with pytest.raises(BitstreamError):
        A.decode(cid, b"\x00\x00\x10\x00" + data[4:], 48, 80)
