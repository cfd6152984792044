"""Schema and value limits of the .gvc header (docs/design.md §4, docs/bitstream.md §4)."""
from __future__ import annotations

import json
import math
import re
from typing import Any

from gvc_jax.bitstream.errors import BitstreamError

__all__ = ["validate_header", "encode_header", "decode_header", "MODES", "HEADER_LIMITS"]

MODES = ("t2v", "i2v", "flf2v")
HEADER_LIMITS = {
    "frames": 100_000,      # source/coded frames, GOP count
    "size": 8192,           # height, width
    "fps_term": 2**31 - 1,  # fps numerator / denominator
    "K": 2**16,
    "steps": 1000,
    "latent_frames": 100_000,
    "seed": 2**64 - 1,
    "float_abs": 1e6,       # g_scale, shift
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


def _num(v: Any, where: str, lo: float, hi: float, lo_open: bool = False) -> float:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        _fail(where, f"must be a number, got {type(v).__name__}")
    if not math.isfinite(v) or v > hi or v < lo or (lo_open and v == lo):
        _fail(where, f"= {v} is outside {'(' if lo_open else '['}{lo}, {hi}]")
    return float(v)


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

    c = _dict(h["codec"], "codec", {"mode", "K", "M", "steps", "sde_steps", "g_scale", "shift", "seed",
                                    "gop_frames", "latent_frames"}, exact=False)
    if c["mode"] not in MODES:
        _fail("codec.mode", f"must be one of {', '.join(MODES)}, got {c['mode']!r}")
    K = _int(c["K"], "codec.K", 2, L["K"])
    steps = _int(c["steps"], "codec.steps", 1, L["steps"])
    _int(c["sde_steps"], "codec.sde_steps", 0, steps)
    _num(c["g_scale"], "codec.g_scale", 0.0, L["float_abs"])
    _num(c["shift"], "codec.shift", 0.0, L["float_abs"], lo_open=True)
    _int(c["seed"], "codec.seed", 0, L["seed"])
    gop_frames = _int(c["gop_frames"], "codec.gop_frames", 1, L["frames"])
    lf = _int(c["latent_frames"], "codec.latent_frames", 1, L["latent_frames"])
    if not isinstance(c["M"], list):
        _fail("codec.M", f"must be a list of per-latent-frame counts, got {type(c['M']).__name__}")
    if len(c["M"]) != lf:
        _fail("codec.M", f"has {len(c['M'])} entries, latent_frames is {lf}")
    for i, mv in enumerate(c["M"]):
        _int(mv, f"codec.M[{i}]", 1, K)

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
        n = _int(g["frames"], f"gops[{i}].frames", 1, gop_frames)
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
