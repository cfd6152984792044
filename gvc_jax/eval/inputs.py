"""Evaluation inputs: video lists, UVG-style raw ``.yuv`` and resizing (:mod:`gvc_jax.io.resize`).

A raw ``.yuv`` file carries no header, so its geometry comes from its name in the
UVG convention, e.g. ``Beauty_1920x1080_120fps_420_8bit_YUV.yuv``: planar 4:2:0,
8 or 10 bit (little-endian), BT.709 limited range. It is converted to RGB by the
ffmpeg binary of imageio-ffmpeg with those colour settings stated explicitly.
"""
from __future__ import annotations

import dataclasses
import fractions
import os
import re

import numpy as np

from gvc_jax.io import FFMPEG_EXTS, Video, VideoIOError, read_video
from gvc_jax.io.resize import resize_lanczos

VIDEO_EXTS = FFMPEG_EXTS + (".y4m", ".yuv", ".npy")
LIST_EXTS = (".txt", ".lst")

_UVG = re.compile(r"^(?P<name>.+?)_(?P<w>\d+)x(?P<h>\d+)_(?P<fps>\d+(?:\.\d+)?)fps"
                  r"_(?P<chroma>420|422|444)_(?P<bits>8|10)bit(?:_YUV)?\.yuv$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class RawYuv:
    name: str
    width: int
    height: int
    fps: fractions.Fraction
    chroma: str
    bits: int

    @property
    def frame_bytes(self) -> int:
        luma = self.width * self.height
        chroma = {"420": luma // 2, "422": luma, "444": 2 * luma}[self.chroma]
        return (luma + chroma) * (2 if self.bits > 8 else 1)

    @property
    def pix_fmt(self) -> str:
        return f"yuv{self.chroma}p" + ("10le" if self.bits == 10 else "")


def parse_uvg_name(path: str) -> RawYuv:
    """Geometry of a raw .yuv from its UVG-style file name (raises VideoIOError)."""
    base = os.path.basename(path)
    m = _UVG.match(base)
    if not m:
        raise VideoIOError(f"{path}: a raw .yuv needs a UVG-style name like "
                           "Beauty_1920x1080_120fps_420_8bit_YUV.yuv to give its geometry")
    w, h = int(m["w"]), int(m["h"])
    if m["chroma"] == "420" and (w % 2 or h % 2):
        raise VideoIOError(f"{path}: 4:2:0 needs an even width and height, got {w}x{h}")
    return RawYuv(m["name"], w, h, fractions.Fraction(m["fps"]), m["chroma"], int(m["bits"]))


def video_name(path: str) -> str:
    """Short name of an input, used in the results table."""
    base = os.path.basename(os.path.normpath(path))
    if base.lower().endswith(".yuv"):
        m = _UVG.match(base)
        if m:
            return m["name"]
    return os.path.splitext(base)[0]


def read_list(path: str) -> list[str]:
    """The paths a ``.txt`` list names, one per line (``#`` starts a comment), relative ones
    taken from the list's folder; an unreadable or empty list is a VideoIOError."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [ln.split("#", 1)[0].strip() for ln in f]
    except (OSError, UnicodeDecodeError) as e:
        raise VideoIOError(f"{path}: cannot read the list ({e})") from None
    base = os.path.dirname(os.path.abspath(path))
    items = [ln if os.path.isabs(ln) else os.path.join(base, ln) for ln in lines if ln]
    if not items:
        raise VideoIOError(f"{path}: the list names no videos")
    return items


def list_inputs(paths: list[str]) -> list[str]:
    """Expands folders (their videos, sorted, not recursive) and list files (one path per
    line, relative to the list; '#' comments) into video paths."""
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            found = sorted(os.path.join(p, f) for f in os.listdir(p)
                           if os.path.splitext(f)[1].lower() in VIDEO_EXTS)
            if not found:
                raise VideoIOError(f"{p}: no videos ({', '.join(VIDEO_EXTS)}) in this folder")
            out += found
        elif os.path.splitext(p)[1].lower() in LIST_EXTS:
            out += list_inputs(read_list(p))
        elif not os.path.exists(p):
            raise VideoIOError(f"{p}: no such file or folder")
        else:
            out.append(p)
    names = [video_name(p) for p in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise VideoIOError(f"two inputs share the name {dup[0]!r}; rename one, the results "
                           "table keys rows by video name")
    return out


def _read_yuv(path: str, max_frames: int | None) -> Video:
    from gvc_jax.io.ffmpeg import FFmpegError, run_ffmpeg

    spec = parse_uvg_name(path)
    n = os.path.getsize(path) // spec.frame_bytes
    if n == 0:
        raise VideoIOError(f"{path}: smaller than one {spec.width}x{spec.height} frame")
    if max_frames is not None:
        n = min(n, max_frames)
    # The colour settings are explicit: UVG is BT.709, limited ('tv') range.
    vf = ("scale=in_color_matrix=bt709:in_range=tv:out_range=pc:"
          "flags=bicubic+accurate_rnd+full_chroma_int")
    args = ["-nostdin", "-v", "error", "-f", "rawvideo", "-pix_fmt", spec.pix_fmt,
            "-s:v", f"{spec.width}x{spec.height}", "-r", str(spec.fps),
            "-i", os.path.abspath(path), "-frames:v", str(n), "-vf", vf,
            "-pix_fmt", "rgb24", "-f", "rawvideo", "-"]
    try:
        out = run_ffmpeg(args, cwd=os.getcwd(), what=f"{path}: converting to RGB")
    except FFmpegError as e:
        raise VideoIOError(str(e)) from None
    if len(out) != n * spec.width * spec.height * 3:
        raise VideoIOError(f"{path}: ffmpeg returned {len(out)} bytes for {n} frames")
    frames = np.frombuffer(out, np.uint8).reshape(n, spec.height, spec.width, 3)
    return Video(frames.copy(), spec.fps)


def _read_yuv_gvcc(path: str, max_frames: int | None) -> Video:
    """A UVG raw file as GVCC builds its frames (:func:`gvc_jax.io.yuv.yuv420_to_rgb_gvcc`)."""
    from gvc_jax.io.yuv import read_yuv_planes, yuv420_to_rgb_gvcc

    spec = parse_uvg_name(path)
    if spec.chroma != "420" or spec.bits != 8:
        raise VideoIOError(f"{path}: the gvcc protocol reads 8-bit 4:2:0 raw video, as GVCC "
                           f"does; this file is {spec.chroma} {spec.bits}-bit")
    planes = read_yuv_planes(path, spec.width, spec.height, max_frames=max_frames)
    try:
        rgb = yuv420_to_rgb_gvcc(planes)
    except ValueError as e:
        raise VideoIOError(f"{path}: {e}") from None
    return Video(rgb, spec.fps)


def load_video(path: str, *, frames: int | None = None,
               size: tuple[int, int] | None = None, gvcc: bool = False) -> Video:
    """Reads the first ``frames`` frames of ``path`` as RGB; ``size=(W, H)`` resizes them
    (Pillow's Lanczos). ``gvcc``: a raw ``.yuv`` is converted as GVCC's loader does
    (docs/eval.md, "Protocols"); other inputs are read as usual."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".yuv":
        v = _read_yuv_gvcc(path, frames) if gvcc else _read_yuv(path, frames)
    else:
        v = read_video(path, max_frames=frames)
    if frames is not None and v.frames.shape[0] < frames:
        raise VideoIOError(f"{path}: has {v.frames.shape[0]} frames, the evaluation needs {frames}")
    if size is not None:
        v = Video(resize_lanczos(v.frames, *size), v.fps)
    return v
