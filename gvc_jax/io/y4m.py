"""YUV4MPEG2 (.y4m) reader and writer, 8-bit, progressive only.

Colour: BT.601 matrix; range from the ``XCOLORRANGE`` tag (FULL or LIMITED), LIMITED when absent, as
ffmpeg does. Subsampled chroma (4:2:0 any siting, 4:2:2) is upsampled by pixel replication.
:func:`read_y4m_planes` returns the stored planes of a 4:2:0 file without conversion (for metrics).
The writer emits C444 full range (``XCOLORRANGE=FULL``), so RGB -> y4m -> RGB is within ±1 level
but not bit-exact (the 8-bit YCbCr rounding); use .npy for exact storage.
"""
from __future__ import annotations

import fractions
from typing import BinaryIO

import numpy as np

from gvc_jax.io.color import rgb_to_ycbcr, ycbcr_to_rgb
from gvc_jax.io.errors import VideoIOError
from gvc_jax.io.yuv import YuvPlanes

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


def _frames(f: BinaryIO, path: str, w: int, h: int, sub, max_frames: int | None):
    """Yields (y [H,W], cb, cr) uint8 planes per frame; chroma as stored (None for mono)."""
    if sub is None:
        ch = cw = 0
    else:
        ch, cw = -(-h // sub[0]), -(-w // sub[1])
    csize = ch * cw
    fsize = w * h + 2 * csize
    n = 0
    while max_frames is None or n < max_frames:
        tag = _line(f, "FRAME")
        if not tag:
            break
        if not tag.startswith(b"FRAME"):
            raise VideoIOError(f"{path}: y4m frame {n} lacks its FRAME marker")
        buf = f.read(fsize)
        if len(buf) != fsize:
            raise VideoIOError(f"{path}: y4m truncated in frame {n}")
        a = np.frombuffer(buf, np.uint8)
        y = a[:w * h].reshape(h, w)
        if sub is None:
            yield y, None, None
        else:
            yield y, a[w * h:w * h + csize].reshape(ch, cw), a[w * h + csize:].reshape(ch, cw)
        n += 1
    if n == 0:
        raise VideoIOError(f"{path}: y4m file has no frames")


def read_y4m(path: str, max_frames: int | None = None) -> tuple[np.ndarray, fractions.Fraction]:
    """uint8 RGB frames [T, H, W, 3] and the frame rate."""
    with open(path, "rb") as f:
        w, h, fps, csp, full = _parse_header(_line(f, "header"), path)
        sub = _CSP[csp]
        frames = []
        for y, cb, cr in _frames(f, path, w, h, sub, max_frames):
            if sub is None:
                cb = cr = np.full((h, w), 128, np.uint8)
            else:
                cb = np.repeat(np.repeat(cb, sub[0], 0), sub[1], 1)[:h, :w]
                cr = np.repeat(np.repeat(cr, sub[0], 0), sub[1], 1)[:h, :w]
            frames.append(ycbcr_to_rgb(np.stack([y, cb, cr], -1), full))
    return np.stack(frames), fps


def y4m_colourspace(path: str) -> str:
    """The ``C`` tag of a y4m header (``420jpeg`` when absent), after the header checks."""
    with open(path, "rb") as f:
        return _parse_header(_line(f, "header"), path)[3]


def is_420(colourspace: str) -> bool:
    """Whether a y4m ``C`` tag is 8-bit 4:2:0 (any chroma siting)."""
    return _CSP.get(colourspace) == (2, 2)


def read_y4m_planes(path: str, max_frames: int | None = None) -> YuvPlanes:
    """The 4:2:0 planes of an 8-bit 4:2:0 y4m, as stored (no conversion), as :class:`YuvPlanes`
    labelled BT.601 (the matrix :func:`read_y4m` decodes with) and full range when the header
    says ``XCOLORRANGE=FULL``. Other colourspaces are a VideoIOError."""
    with open(path, "rb") as f:
        w, h, fps, csp, full = _parse_header(_line(f, "header"), path)
        if not is_420(csp):
            raise VideoIOError(f"{path}: y4m colourspace C{csp} is not 4:2:0")
        ys, us, vs = [], [], []
        for y, cb, cr in _frames(f, path, w, h, _CSP[csp], max_frames):
            ys.append(y)
            us.append(cb)
            vs.append(cr)
    return YuvPlanes(np.stack(ys), np.stack(us), np.stack(vs), bits=8, matrix="bt601",
                     full_range=full, fps=fps)


def write_y4m(f: BinaryIO, frames: np.ndarray, fps: fractions.Fraction) -> None:
    """Write C444 full-range 8-bit y4m to an open binary file."""
    T, H, W, _ = frames.shape
    f.write(f"YUV4MPEG2 W{W} H{H} F{fps.numerator}:{fps.denominator} Ip A1:1 C444 "
            f"XCOLORRANGE=FULL\n".encode("ascii"))
    for t in range(T):
        ycc = rgb_to_ycbcr(frames[t], full_range=True)
        f.write(b"FRAME\n")
        f.write(np.ascontiguousarray(ycc.transpose(2, 0, 1)).tobytes())
