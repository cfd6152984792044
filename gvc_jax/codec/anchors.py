"""Anchor image codecs: one RGB frame coded by a real image codec, every byte counted
(docs/anchors.md; docs/design.md §11 "Planned anchor and residual coding").

``encode(parse_spec("vvc:32"), rgb_hwc) -> (codec_id, data)`` and
``decode(codec_id, data, height, width) -> rgb_hwc``. The codec id names everything the decoder
needs; encoder settings are not needed to decode. Decoding failures of any kind are
:class:`BitstreamError`; bad specs or inputs are :class:`UsageError`.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math

import numpy as np

from gvc_jax.bitstream.errors import BitstreamError
from gvc_jax.codec.errors import UsageError
from gvc_jax.io.ffmpeg import FFmpegError, has_encoder, run_ffmpeg

__all__ = ["AnchorSpec", "AnchorCodecError", "DEFAULT", "NAMES", "MAX_HEIGHT", "MAX_WIDTH",
           "available", "decode", "encode", "parse_spec"]

NAMES = ("vvc", "jxl", "avif", "cheng2020")
DEFAULT = "vvc:32"
MAX_HEIGHT, MAX_WIDTH = 1920, 1920      # each side; and at most _MAX_PIXELS pixels
_MAX_PIXELS = 1920 * 1088
MAX_ID_CHARS = 64
ENCODE_TIMEOUT_S = 600.0
DECODE_TIMEOUT_S = 60.0

VVC_PRESET = "medium"      # libvvenc preset (docs/anchors.md: "faster" costs ~7% more bytes)
VVC_SMALL_CODED = (24, 24)  # libvvenc refuses pictures under 512 pixels: 16x16 is coded
                            # edge-padded at 24x24 (a size no other anchor has)
JXL_EFFORT = 7             # libjxl's default effort
AVIF_SPEED = 6             # libaom speed; the libavif default (0) takes ~30 s per 720p frame
AVIF_YUV420 = False        # 4:4:4 (docs/anchors.md compares 4:2:0)


class AnchorCodecError(RuntimeError):
    """An anchor encoder failed or is missing (an internal error, not bad input)."""


@dataclasses.dataclass(frozen=True)
class AnchorSpec:
    """An anchor codec and its one rate setting; ``str()`` is the canonical ``name:setting``."""

    name: str
    setting: float

    def __str__(self) -> str:
        return f"{self.name}:{_fmt(self.setting)}"


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


# name -> (meaning of the setting, low, high, integer?, default)
_SETTINGS = {
    "vvc": ("QP, integer 0..63, lower = better", 0, 63, True, 32),
    "jxl": ("butteraugli distance 0.05..25, lower = better", 0.05, 25.0, False, 1.0),
    "avif": ("quality, integer 0..100, higher = better", 0, 100, True, 60),
    "cheng2020": ("CompressAI cheng2020-attn quality, integer 1..6, higher = better",
                  1, 6, True, 4),
}


def _valid_list() -> str:
    return "; ".join(f"{n}:SETTING ({_SETTINGS[n][0]})" for n in NAMES)


def _has_compressai() -> bool:
    return importlib.util.find_spec("compressai") is not None


def _has_ffmpeg_vvc() -> bool:
    try:
        return has_encoder("libvvenc")
    except FFmpegError:
        return False


def _has_imagecodecs(kind: str) -> bool:
    try:
        import imagecodecs
    except ImportError:
        return False
    return bool(getattr(getattr(imagecodecs, kind, None), "available", False))


def available() -> list[str]:
    """Names whose encoder and decoder can run here."""
    checks = {"vvc": _has_ffmpeg_vvc, "jxl": lambda: _has_imagecodecs("JPEGXL"),
              "avif": lambda: _has_imagecodecs("AVIF"), "cheng2020": _has_compressai}
    return [n for n in NAMES if checks[n]()]


def parse_spec(spec: str) -> AnchorSpec:
    """``"NAME:SETTING"`` or ``"NAME"`` (default setting) -> AnchorSpec; else UsageError."""
    if not isinstance(spec, str):
        raise UsageError(f"anchor spec must be a string, got {type(spec).__name__}")
    name, sep, text = spec.strip().partition(":")
    name = name.strip().lower()
    if name not in _SETTINGS:
        raise UsageError(f"unknown anchor codec {name!r} in {spec!r}; valid: {_valid_list()}")
    meaning, lo, hi, integer, default = _SETTINGS[name]
    if name == "cheng2020" and not _has_compressai():
        raise UsageError("anchor codec cheng2020 needs compressai and its weights "
                         "(pip install compressai; pretrained cheng2020-attn in torch's hub cache)")
    if not sep:
        return AnchorSpec(name, default)
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or not lo <= value <= hi:
        raise UsageError(f"bad setting {text.strip()!r} for anchor codec {name}: {meaning}")
    return AnchorSpec(name, value)


# ------------------------------------------------------------------ checks
def _check_size(height: int, width: int, err) -> None:
    ok = (isinstance(height, (int, np.integer)) and isinstance(width, (int, np.integer))
          and 16 <= height <= MAX_HEIGHT and 16 <= width <= MAX_WIDTH
          and height % 16 == 0 and width % 16 == 0 and height * width <= _MAX_PIXELS)
    if not ok:
        raise err(f"anchor size {height}x{width} not supported (multiples of 16, 16..{MAX_HEIGHT} "
                  f"per side, at most {_MAX_PIXELS} pixels)")


def _check_rgb(rgb_hwc) -> np.ndarray:
    x = np.asarray(rgb_hwc)
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[2] != 3:
        raise UsageError(f"anchor must be uint8 [H,W,3], got {x.dtype} {list(x.shape)}")
    _check_size(x.shape[0], x.shape[1], UsageError)
    return np.ascontiguousarray(x)


def _check_out(out, height: int, width: int, what: str) -> np.ndarray:
    if not isinstance(out, np.ndarray) or out.dtype != np.uint8 or out.shape != (height, width, 3):
        got = (f"{out.dtype} {list(out.shape)}" if isinstance(out, np.ndarray)
               else type(out).__name__)
        raise BitstreamError(f"{what} anchor decoded to {got}, expected uint8 "
                             f"[{height}, {width}, 3]")
    return np.ascontiguousarray(out)


def _lib_error(what: str, e: Exception) -> BitstreamError:
    msg = " ".join(str(e).split())[:200] or type(e).__name__
    return BitstreamError(f"corrupt {what} anchor: {msg}")


# ------------------------------------------------------------------ vvc
# BT.709, limited range, 10-bit 4:2:0 with centre-sited chroma (2x2 box down, bilinear up).
# The decoder side is integer-only, so a given VVC stream decodes to the same RGB anywhere.
_KR, _KB = 0.2126, 0.0722
_KG = 1.0 - _KR - _KB
_S = 24
_CY = round(255 / 876 * 2 ** _S)                         # per 10-bit luma step
_C = {k: round(v * 255 / 896 / 16 * 2 ** _S) for k, v in {  # per 1/16 of a 10-bit chroma step
    "rv": 2 * (1 - _KR), "gu": -2 * _KB * (1 - _KB) / _KG, "gv": -2 * _KR * (1 - _KR) / _KG,
    "bu": 2 * (1 - _KB)}.items()}


def _rgb_to_yuv420p10(rgb_hwc: np.ndarray) -> bytes:
    x = rgb_hwc.astype(np.float64) / 255.0
    y = _KR * x[..., 0] + _KG * x[..., 1] + _KB * x[..., 2]
    pb = (x[..., 2] - y) / (2 * (1 - _KB))
    pr = (x[..., 0] - y) / (2 * (1 - _KR))
    h, w = y.shape

    def down(p):
        return p.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

    planes = [64 + 876 * y, 512 + 896 * down(pb), 512 + 896 * down(pr)]
    return b"".join(np.clip(np.rint(p), 0, 1023).astype("<u2").tobytes() for p in planes)


def _up16(c: np.ndarray) -> np.ndarray:
    """[h, w] chroma -> [2h, 2w] bilinear (centre-sited, edges replicated), times 16."""
    p = np.pad(c.astype(np.int64), 1, mode="edge")
    rows = np.empty((2 * c.shape[0], p.shape[1]), np.int64)
    rows[0::2] = 3 * p[1:-1] + p[:-2]
    rows[1::2] = 3 * p[1:-1] + p[2:]
    out = np.empty((rows.shape[0], 2 * c.shape[1]), np.int64)
    out[:, 0::2] = 3 * rows[:, 1:-1] + rows[:, :-2]
    out[:, 1::2] = 3 * rows[:, 1:-1] + rows[:, 2:]
    return out


def _yuv420p10_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    yy = _CY * (y.astype(np.int64) - 64)
    uu, vv = _up16(u) - 512 * 16, _up16(v) - 512 * 16
    half = 1 << (_S - 1)
    r = (yy + _C["rv"] * vv + half) >> _S
    g = (yy + _C["gu"] * uu + _C["gv"] * vv + half) >> _S
    b = (yy + _C["bu"] * uu + half) >> _S
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)


def _ffmpeg(args: list[str], stdin: bytes, timeout: float, what: str, err) -> bytes:
    """stdout of ffmpeg (quiet, ``stdin`` piped in); any failure becomes ``err`` with the
    runner's one-line message (AnchorCodecError when encoding, BitstreamError when decoding)."""
    try:
        return run_ffmpeg(["-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", *args],
                          stdin=stdin, timeout=timeout, what=what)
    except FFmpegError as e:
        raise err(str(e)) from None


def _coded_size(height: int, width: int) -> tuple[int, int]:
    return VVC_SMALL_CODED if (height, width) == (16, 16) else (height, width)


def _encode_vvc(rgb_hwc: np.ndarray, qp: int, preset: str = VVC_PRESET) -> bytes:
    h, w = rgb_hwc.shape[:2]
    ch, cw = _coded_size(h, w)
    x = np.pad(rgb_hwc, ((0, ch - h), (0, cw - w), (0, 0)), mode="edge")
    args = ["-f", "rawvideo", "-pix_fmt", "yuv420p10le", "-s", f"{cw}x{ch}", "-i", "pipe:0",
            "-c:v", "libvvenc", "-preset", preset, "-qp", str(int(qp)), "-qpa", "0",
            "-bsf:v", "filter_units=remove_types=20", "-f", "vvc", "pipe:1"]
    data = _ffmpeg(args, _rgb_to_yuv420p10(x), ENCODE_TIMEOUT_S, f"vvc:{qp} encode",
                   AnchorCodecError)
    if not data:
        raise AnchorCodecError(f"vvc:{qp} encode: ffmpeg wrote no stream")
    return data


def _parse_y4m_one(out: bytes, ch: int, cw: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    head, nl, rest = out.partition(b"\n")
    tokens = head.split()
    if not nl or not tokens or tokens[0] != b"YUV4MPEG2":
        raise BitstreamError("corrupt vvc anchor: the decoder wrote no picture")
    tags = {t[:1]: t[1:] for t in tokens[1:]}
    if tags.get(b"C") != b"420p10":
        fmt = tags.get(b"C", b"?").decode(errors="replace")
        raise BitstreamError(f"vvc anchor is not 10-bit 4:2:0 (y4m C{fmt})")
    if tags.get(b"W") != str(cw).encode() or tags.get(b"H") != str(ch).encode():
        got = [tags.get(k, b"?").decode(errors="replace") for k in (b"W", b"H")]
        raise BitstreamError(f"vvc anchor is {got[0]}x{got[1]}, expected {cw}x{ch}")
    n_y, n_c = ch * cw, (ch // 2) * (cw // 2)
    frame_head, nl, payload = rest.partition(b"\n")
    if not frame_head.startswith(b"FRAME") or len(payload) != 2 * (n_y + 2 * n_c):
        raise BitstreamError("vvc anchor does not decode to exactly one picture")
    s = np.frombuffer(payload, "<u2")
    return (s[:n_y].reshape(ch, cw), s[n_y:n_y + n_c].reshape(ch // 2, cw // 2),
            s[n_y + n_c:].reshape(ch // 2, cw // 2))


def _decode_vvc(data: bytes, height: int, width: int) -> np.ndarray:
    ch, cw = _coded_size(height, width)
    # -max_pixels: a stream claiming a larger picture is refused before allocation (the
    # decoder checks its CTU-aligned size, hence the margin); -frames:v 2 bounds the output,
    # so a stream of several pictures is caught by the parser
    args = ["-max_pixels", str((ch + 128) * (cw + 128)), "-f", "vvc", "-c:v", "vvc", "-i", "pipe:0",
            "-frames:v", "2", "-strict", "-1", "-f", "yuv4mpegpipe", "pipe:1"]
    out = _ffmpeg(args, data, DECODE_TIMEOUT_S, "corrupt vvc anchor", BitstreamError)
    return _yuv420p10_to_rgb(*_parse_y4m_one(out, ch, cw))[:height, :width]


# ------------------------------------------------------------------ jxl, avif
def _jxl_size(data: bytes) -> tuple[int, int]:
    """(height, width) from a bare JPEG XL codestream's SizeHeader (bits read LSB first)."""
    if data[:2] != b"\xff\x0a":
        raise BitstreamError("corrupt jxl anchor: not a JPEG XL codestream")
    v, pos = int.from_bytes(data[2:18], "little"), 0

    def u(n):
        nonlocal pos
        pos += n
        return (v >> (pos - n)) & ((1 << n) - 1)

    def u32():
        return u((9, 13, 18, 30)[u(2)]) + 1

    div8 = u(1)
    h = (u(5) + 1) * 8 if div8 else u32()
    ratio = u(3)
    if ratio == 0:
        return h, ((u(5) + 1) * 8 if div8 else u32())
    num, den = ((1, 1), (12, 10), (4, 3), (3, 2), (16, 9), (5, 4), (2, 1))[ratio - 1]
    return h, h * num // den


def _encode_jxl(rgb_hwc: np.ndarray, distance: float, effort: int = JXL_EFFORT) -> bytes:
    import imagecodecs
    try:
        return bytes(imagecodecs.jpegxl_encode(rgb_hwc, distance=float(distance), effort=effort,
                                               usecontainer=False))
    except Exception as e:  # noqa: BLE001 - imagecodecs raises several types
        raise AnchorCodecError(f"jxl:{_fmt(distance)} encode failed: {e}") from None


def _decode_jxl(data: bytes, height: int, width: int) -> np.ndarray:
    if _jxl_size(data) != (height, width):  # before decoding: no allocation at a claimed size
        got = _jxl_size(data)
        raise BitstreamError(f"jxl anchor is {got[1]}x{got[0]}, expected {width}x{height}")
    import imagecodecs
    try:
        out = imagecodecs.jpegxl_decode(data)
    except Exception as e:  # noqa: BLE001
        raise _lib_error("jxl", e) from None
    return _check_out(out, height, width, "jxl")


def _encode_avif(rgb_hwc: np.ndarray, quality: int, speed: int = AVIF_SPEED,
                 yuv420: bool = AVIF_YUV420) -> bytes:
    import imagecodecs
    fmt = imagecodecs.AVIF.PIXEL_FORMAT
    try:
        return bytes(imagecodecs.avif_encode(rgb_hwc, level=int(quality), speed=speed,
                                             pixelformat=fmt.YUV420 if yuv420 else fmt.YUV444))
    except Exception as e:  # noqa: BLE001
        raise AnchorCodecError(f"avif:{quality} encode failed: {e}") from None


def _avif_sizes(data: bytes) -> list[tuple[int, int]]:
    """(height, width) of every 'ispe' box (an ISOBMFF scan; libavif checks the rest)."""
    out, i = [], data.find(b"ispe")
    while i >= 4:
        if i + 16 <= len(data) and int.from_bytes(data[i - 4:i], "big") == 20:
            out.append((int.from_bytes(data[i + 12:i + 16], "big"),
                        int.from_bytes(data[i + 8:i + 12], "big")))
        i = data.find(b"ispe", i + 1)
    return out


def _decode_avif(data: bytes, height: int, width: int) -> np.ndarray:
    sizes = _avif_sizes(data)
    if not sizes or any(s != (height, width) for s in sizes):
        raise BitstreamError(f"avif anchor sizes {sizes or 'missing'}, expected {height}x{width}")
    import imagecodecs
    try:
        out = imagecodecs.avif_decode(data)
    except Exception as e:  # noqa: BLE001
        raise _lib_error("avif", e) from None
    return _check_out(out, height, width, "avif")


# ------------------------------------------------------------------ cheng2020 (optional)
def _cheng_net(quality: int):
    from compressai.zoo import cheng2020_attn
    return cheng2020_attn(quality=quality, pretrained=True).eval()


def _encode_cheng(rgb_hwc: np.ndarray, quality: int) -> bytes:
    import torch
    try:
        net = _cheng_net(quality)
    except Exception as e:  # noqa: BLE001 - missing weights, no network
        raise UsageError(f"cheng2020 needs compressai and its weights: {e}") from None
    h, w = rgb_hwc.shape[:2]
    ph, pw = -h % 64, -w % 64
    x = torch.from_numpy(rgb_hwc).permute(2, 0, 1)[None].float() / 255
    x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")
    with torch.no_grad():
        strings = net.compress(x)["strings"]
    y, z = strings[0][0], strings[1][0]
    return len(y).to_bytes(4, "big") + y + z


def _decode_cheng(quality: int, data: bytes, height: int, width: int) -> np.ndarray:
    if not _has_compressai():
        raise BitstreamError("cheng2020 anchor: decoding needs compressai and its weights")
    import torch
    n = int.from_bytes(data[:4], "big")
    if len(data) < 4 or n > len(data) - 4:
        raise BitstreamError("corrupt cheng2020 anchor: truncated")
    try:
        net = _cheng_net(quality)
        shape = [-(-height // 64), -(-width // 64)]
        with torch.no_grad():
            x = net.decompress([[data[4:4 + n]], [data[4 + n:]]], shape)["x_hat"]
        out = (x[0, :, :height, :width].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    except Exception as e:  # noqa: BLE001
        raise _lib_error("cheng2020", e) from None
    return _check_out(out, height, width, "cheng2020")


# ------------------------------------------------------------------ API
def encode(spec: AnchorSpec, rgb_hwc: np.ndarray) -> tuple[str, bytes]:
    """Codes one uint8 RGB frame [H,W,3] -> (codec_id, data)."""
    if not isinstance(spec, AnchorSpec):
        spec = parse_spec(str(spec))
    x = _check_rgb(rgb_hwc)
    if spec.name == "vvc":
        return "vvc", _encode_vvc(x, int(spec.setting))
    if spec.name == "jxl":
        return "jxl", _encode_jxl(x, spec.setting)
    if spec.name == "avif":
        return "avif", _encode_avif(x, int(spec.setting))
    if spec.name == "cheng2020":
        parse_spec(str(spec))  # the compressai check
        return f"cheng2020-attn-q{int(spec.setting)}", _encode_cheng(x, int(spec.setting))
    raise UsageError(f"unknown anchor codec {spec.name!r}; valid: {_valid_list()}")


def decode(codec_id: str, data: bytes, height: int, width: int) -> np.ndarray:
    """(codec_id, data) -> uint8 RGB [height, width, 3]; any failure is BitstreamError."""
    if not isinstance(codec_id, str) or len(codec_id) > MAX_ID_CHARS:
        raise BitstreamError(f"bad anchor codec id {str(codec_id)[:MAX_ID_CHARS]!r}")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BitstreamError(f"anchor data must be bytes, got {type(data).__name__}")
    _check_size(height, width, BitstreamError)
    data, height, width = bytes(data), int(height), int(width)
    if not data:
        raise BitstreamError(f"empty {codec_id} anchor")
    if codec_id == "vvc":
        return _decode_vvc(data, height, width)
    if codec_id == "jxl":
        return _decode_jxl(data, height, width)
    if codec_id == "avif":
        return _decode_avif(data, height, width)
    if codec_id.startswith("cheng2020-attn-q") and codec_id[16:] in ("1", "2", "3", "4", "5", "6"):
        return _decode_cheng(int(codec_id[16:]), data, height, width)
    raise BitstreamError(f"unknown anchor codec id {codec_id!r} (known: vvc, jxl, avif, "
                         "cheng2020-attn-q1..6)")
