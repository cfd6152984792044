"""YUV4MPEG2 (.y4m) reader and writer, 8-bit, progressive only.

Colour: BT.601 matrix; range from the ``XCOLORRANGE`` tag (FULL or LIMITED), LIMITED when absent, as
ffmpeg does. Subsampled chroma (4:2:0 any siting, 4:2:2) is upsampled by pixel replication.
The writer emits C444 full range (``XCOLORRANGE=FULL``), so RGB -> y4m -> RGB is within ±1 level
but not bit-exact (the 8-bit YCbCr rounding); use .npy for exact storage.
"""
from __future__ import annotations

import fractions
from typing import BinaryIO

import numpy as np

from gvc_jax.io.color import rgb_to_ycbcr, ycbcr_to_rgb
from gvc_jax.io.errors import VideoIOError

_SIG = b"YUV4MPEG2"
_MAX_LINE = 4096
_MAX_SIZE = 16384
# colourspace tag -> (chroma subsampling (sy, sx) or None for mono)
_CSP = {"420jpeg": (2, 2), "420": (2, 2), "420mpeg2": (2, 2), "420paldv": (2, 2),
        "422": (1, 2), "444": (1, 1), "mono": None}


def _line(f: BinaryIO, what: str) -> bytes:
    line = f.readline(_MAX_LINE)
    if not line.endswith(b"\n"):
        if not line:
            return b""
        raise VideoIOError(f"y4m: {what} line too long or truncated")
    return line[:-1]


def _parse_header(line: bytes, path: str):
    tokens = line.split(b" ")
    if tokens[0] != _SIG:
        raise VideoIOError(f"{path}: not a y4m file (bad signature)")
    w = h = None
    fps = fractions.Fraction(25)
    csp, full = "420jpeg", False
    for tok in tokens[1:]:
        if not tok:
            continue
        key, val = chr(tok[0]), tok[1:].decode("ascii", "replace")
        if key == "I" and val not in ("p", "?"):
            raise VideoIOError(f"{path}: interlaced y4m (I{val}) is not supported")
        try:
            if key == "W":
                w = int(val)
            elif key == "H":
                h = int(val)
            elif key == "F":
                num, den = val.split(":")
                fps = fractions.Fraction(int(num), int(den))
            elif key == "C":
                csp = val
            elif key == "X" and val.upper().startswith("COLORRANGE="):
                full = val.split("=", 1)[1].upper() == "FULL"
        except (ValueError, ZeroDivisionError):
            raise VideoIOError(f"{path}: bad y4m header field {tok[:32]!r}") from None
    if w is None or h is None or not (0 < w <= _MAX_SIZE and 0 < h <= _MAX_SIZE):
        raise VideoIOError(f"{path}: y4m header lacks a valid W/H")
    if fps <= 0:
        raise VideoIOError(f"{path}: y4m frame rate must be positive")
    if csp not in _CSP:
        raise VideoIOError(f"{path}: y4m colourspace C{csp} is not supported (8-bit 420/422/444/mono only)")
    return w, h, fps, csp, full


def read_y4m(path: str, max_frames: int | None = None) -> tuple[np.ndarray, fractions.Fraction]:
    """uint8 RGB frames [T, H, W, 3] and the frame rate."""
    with open(path, "rb") as f:
        w, h, fps, csp, full = _parse_header(_line(f, "header"), path)
        sub = _CSP[csp]
        if sub is None:
            csize = 0
            ch = cw = 0
        else:
            ch, cw = -(-h // sub[0]), -(-w // sub[1])
            csize = ch * cw
        fsize = w * h + 2 * csize
        frames = []
        while max_frames is None or len(frames) < max_frames:
            tag = _line(f, "FRAME")
            if not tag:
                break
            if not tag.startswith(b"FRAME"):
                raise VideoIOError(f"{path}: y4m frame {len(frames)} lacks its FRAME marker")
            buf = f.read(fsize)
            if len(buf) != fsize:
                raise VideoIOError(f"{path}: y4m truncated in frame {len(frames)}")
            a = np.frombuffer(buf, np.uint8)
            y = a[:w * h].reshape(h, w)
            if sub is None:
                cb = cr = np.full((h, w), 128, np.uint8)
            else:
                cb = a[w * h:w * h + csize].reshape(ch, cw)
                cr = a[w * h + csize:].reshape(ch, cw)
                cb = np.repeat(np.repeat(cb, sub[0], 0), sub[1], 1)[:h, :w]
                cr = np.repeat(np.repeat(cr, sub[0], 0), sub[1], 1)[:h, :w]
            frames.append(ycbcr_to_rgb(np.stack([y, cb, cr], -1), full))
    if not frames:
        raise VideoIOError(f"{path}: y4m file has no frames")
    return np.stack(frames), fps


def write_y4m(f: BinaryIO, frames: np.ndarray, fps: fractions.Fraction) -> None:
    """Write C444 full-range 8-bit y4m to an open binary file."""
    T, H, W, _ = frames.shape
    f.write(f"YUV4MPEG2 W{W} H{H} F{fps.numerator}:{fps.denominator} Ip A1:1 C444 "
            f"XCOLORRANGE=FULL\n".encode("ascii"))
    for t in range(T):
        ycc = rgb_to_ycbcr(frames[t], full_range=True)
        f.write(b"FRAME\n")
        f.write(np.ascontiguousarray(ycc.transpose(2, 0, 1)).tobytes())
