"""Schema and value limits of the .gvc header (docs/design.md §4, docs/bitstream.md §4).

This layer checks what it can without the codec: the container fields, the model id, the
source and coded geometry and the GOP table's shape. The ``codec`` object must be a JSON
object with a string ``mode``; its fields are checked once, against the registry of codings
and modes, by :meth:`gvc_jax.codec.params.CodecParams.from_header`.
"""
from __future__ import annotations

import json
import re
from typing import Any

from gvc_jax.bitstream.errors import BitstreamError

__all__ = ["validate_header", "encode_header", "decode_header", "HEADER_LIMITS"]

HEADER_LIMITS = {
    "frames": 100_000,      # source/coded frames, GOP count
    "size": 8192,           # height, width
    "fps_term": 2**31 - 1,  # fps numerator / denominator
    "name_len": 256,        # model config name
}
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TOP_KEYS = {"format", "version", "model", "codec", "source", "coded", "gops"}


def _fail(where: str, msg: str) -> None:
    raise BitstreamError(f"bad header: {where} {msg}")


def _dict(obj: Any, where: str, required: set[str], exact: bool) -> dict:
    if not isinstance(obj, dict):
        _fail(where, f"must be an object, got {type(obj).__name__}")
    missing = sorted(required - obj.keys())
    if missing:
        _fail(where, f"misses key(s) {', '.join(missing)}")
    extra = sorted(obj.keys() - required)
    if exact and extra:
        _fail(where, f"has unknown key(s) {', '.join(extra)}")
    return obj


def _int(v: Any, where: str, lo: int, hi: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        _fail(where, f"must be an integer, got {type(v).__name__}")
    if not lo <= v <= hi:
        _fail(where, f"= {v} is outside [{lo}, {hi}]")
    return v


def validate_header(header: Any) -> dict:
    """Check keys, types, ranges and cross-field consistency; return the header or raise BitstreamError."""
    L = HEADER_LIMITS
    h = _dict(header, "header", _TOP_KEYS, exact=True)
    if h["format"] != "gvc":
        _fail("format", f"must be 'gvc', got {h['format']!r}")
    if not isinstance(h["version"], int) or isinstance(h["version"], bool) or h["version"] != 1:
        raise BitstreamError(f"unsupported header version {h['version']!r}")

    m = _dict(h["model"], "model", {"config", "fingerprint"}, exact=True)
    if not isinstance(m["config"], str) or not 0 < len(m["config"]) <= L["name_len"]:
        _fail("model.config", f"must be a non-empty string of at most {L['name_len']} characters")
    if not isinstance(m["fingerprint"], str) or not _HEX64.fullmatch(m["fingerprint"]):
        _fail("model.fingerprint", "must be 64 lowercase hex digits")

    c = _dict(h["codec"], "codec", {"mode"}, exact=False)
    if not isinstance(c["mode"], str):
        _fail("codec.mode", f"must be a string, got {type(c['mode']).__name__}")

    src = _dict(h["source"], "source", {"frames", "height", "width", "fps"}, exact=True)
    frames = _int(src["frames"], "source.frames", 1, L["frames"])
    _int(src["height"], "source.height", 1, L["size"])
    _int(src["width"], "source.width", 1, L["size"])
    fps = src["fps"]
    if not isinstance(fps, list) or len(fps) != 2:
        _fail("source.fps", "must be [numerator, denominator]")
    _int(fps[0], "source.fps[0]", 1, L["fps_term"])
    _int(fps[1], "source.fps[1]", 1, L["fps_term"])

    cod = _dict(h["coded"], "coded", {"frames", "height", "width"}, exact=True)
    _int(cod["frames"], "coded.frames", 1, L["frames"])
    _int(cod["height"], "coded.height", 1, L["size"])
    _int(cod["width"], "coded.width", 1, L["size"])

    gops = h["gops"]
    if not isinstance(gops, list) or not gops:
        _fail("gops", "must be a non-empty list")
    if len(gops) > L["frames"]:
        _fail("gops", f"has {len(gops)} entries > limit {L['frames']}")
    prev_start, covered = -1, 0
    for i, g in enumerate(gops):
        _dict(g, f"gops[{i}]", {"index", "start", "frames"}, exact=True)
        if _int(g["index"], f"gops[{i}].index", 0, L["frames"]) != i:
            _fail(f"gops[{i}].index", f"= {g['index']}, expected {i}")
        start = _int(g["start"], f"gops[{i}].start", 0, frames - 1)
        n = _int(g["frames"], f"gops[{i}].frames", 1, frames)
        if i == 0 and start != 0:
            _fail("gops[0].start", f"= {start}, expected 0")
        if start <= prev_start or start > covered:
            _fail(f"gops[{i}].start", f"= {start} leaves a gap or goes backwards (covered up to {covered})")
        if start + n > frames:
            _fail(f"gops[{i}]", f"ends at frame {start + n} > source.frames {frames}")
        prev_start, covered = start, max(covered, start + n)
    if covered != frames:
        _fail("gops", f"cover {covered} frames, source.frames is {frames}")
    return h


def encode_header(header: dict) -> bytes:
    """Canonical UTF-8 JSON: sorted keys, compact separators, no NaN/Infinity."""
    validate_header(header)
    return json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _no_dupes(pairs: list) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise BitstreamError("bad header: duplicate JSON key")
    return dict(pairs)


def _no_constant(name: str) -> None:
    raise BitstreamError(f"bad header: JSON constant {name} not allowed")


def decode_header(payload: bytes) -> dict:
    """Parse and validate a HEAD payload; it must be canonical JSON as written by encode_header."""
    try:
        text = payload.decode("utf-8")
        header = json.loads(text, object_pairs_hook=_no_dupes, parse_constant=_no_constant)
    except BitstreamError:
        raise
    except (ValueError, RecursionError) as e:  # bad UTF-8, bad JSON, over-long integer literal
        raise BitstreamError(f"bad header: not valid UTF-8 JSON ({type(e).__name__})") from None
    validate_header(header)
    if encode_header(header) != payload:
        raise BitstreamError("bad header: JSON is not in canonical form")
    return header
