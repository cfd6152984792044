"""The comparison of two videos that ``gvc metrics`` and ``gvc eval`` report (docs/metrics.md).

:func:`compare` takes a reference and a distorted video, each either uint8 RGB [T,H,W,3] (an
array or an :class:`~gvc_jax.io.Video`) or 4:2:0 planes (:class:`~gvc_jax.io.yuv.YuvPlanes`), and
returns one JSON-ready dict:

* ``psnr_rgb``: mean over frames of the RGB PSNR (all three channels, peak 255);
* ``psnr_y``, ``psnr_u``, ``psnr_v``, ``psnr_yuv_611``, ``psnr_yuv_411``: PSNR on the 4:2:0
  planes (:mod:`gvc_jax.metrics.yuv`), means over frames;
* each PSNR also as ``<key>_seq``: from the MSE averaged over all frames;
* ``ms_ssim`` (on RGB, :mod:`gvc_jax.metrics.ms_ssim`), ``lpips``, ``dists`` (on RGB): means over
  frames, or None with the reason in ``notes``;
* ``per_frame``: ``{key: [T floats]}`` for every per-frame metric computed;
* ``notes``, ``frames``, ``height``, ``width``, ``yuv_source`` (where the planes came from).

Planes: a side given as planes is used as is; a side given as RGB is converted to 4:2:0 with
the other side's conventions (matrix, range, bit depth), or with BT.709 limited range, 8 bits,
when both sides are RGB (:func:`gvc_jax.io.yuv.rgb_to_yuv420`). RGB: a side given as RGB is used
as is; planes use their ``rgb`` when they carry it, else :func:`gvc_jax.io.yuv.yuv420_to_rgb`
with the reference's matrix.
"""
from __future__ import annotations

import os

import numpy as np

from gvc_jax.io import Video, VideoIOError, read_video
from gvc_jax.io.yuv import YuvPlanes, parse_pix_fmt, read_yuv_planes, rgb_to_yuv420, yuv420_to_rgb
from gvc_jax.metrics.ms_ssim import MIN_SIDE, ms_ssim_supported
from gvc_jax.metrics.ms_ssim import ms_ssim as ms_ssim_frames
from gvc_jax.metrics.errors import MetricUnavailable
from gvc_jax.metrics.psnr import check_video_pair, psnr, psnr_sequence
from gvc_jax.metrics import yuv as yuv_metrics

SCALAR_KEYS = ("psnr_rgb", "psnr_y", "psnr_u", "psnr_v", "psnr_yuv_611", "psnr_yuv_411",
               "ms_ssim", "lpips", "dists")


def _rgb_of(x) -> np.ndarray | None:
    if isinstance(x, Video):
        return x.frames
    if isinstance(x, YuvPlanes):
        return None
    return np.asarray(x)


def _planes_pair(ref, dist):
    """(ref planes, dist planes, description) under the conventions in the module docstring."""
    if isinstance(ref, YuvPlanes) and isinstance(dist, YuvPlanes):
        if ref.bits != dist.bits or ref.full_range != dist.full_range:
            def conv(p):
                return f"{p.bits}-bit {'full' if p.full_range else 'limited'} range"
            raise ValueError(f"ref planes are {conv(ref)}, dist planes {conv(dist)}: they cannot "
                             "be compared sample by sample")
        return ref, dist, "4:2:0 planes of both inputs"
    if isinstance(ref, YuvPlanes) or isinstance(dist, YuvPlanes):
        p = ref if isinstance(ref, YuvPlanes) else dist
        other = dist if p is ref else ref
        conv = rgb_to_yuv420(_rgb_of(other), matrix=p.matrix, full_range=p.full_range, bits=p.bits)
        side = "dist" if p is ref else "ref"
        desc = (f"4:2:0 planes of the {'ref' if p is ref else 'dist'}; the {side} converted from "
                f"RGB ({p.matrix.upper()} {'full' if p.full_range else 'limited'} range, "
                f"{p.bits}-bit)")
        return (p, conv, desc) if p is ref else (conv, p, desc)
    return (rgb_to_yuv420(_rgb_of(ref)), rgb_to_yuv420(_rgb_of(dist)),
            "both converted from RGB (BT.709 limited range, 8-bit, 2x2 chroma mean)")


def _rgb_view(x, matrix: str) -> np.ndarray:
    if isinstance(x, YuvPlanes):
        return x.rgb if x.rgb is not None else yuv420_to_rgb(x, matrix=matrix)
    return _rgb_of(x)


def _check_rgb(name: str, a: np.ndarray) -> None:
    if a.dtype != np.uint8 or a.ndim != 4 or a.shape[-1] != 3 or 0 in a.shape:
        raise ValueError(f"{name} must be YUV planes or non-empty uint8 RGB [T,H,W,3], got "
                         f"{a.dtype} {list(a.shape)}")


def _check_inputs(ref, dist):
    for name, x in (("ref", ref), ("dist", dist)):
        if not isinstance(x, YuvPlanes):
            _check_rgb(name, _rgb_of(x))
        shape = x.shape if isinstance(x, (YuvPlanes, Video)) else np.shape(x)[:3]
        if name == "ref":
            ref_shape = tuple(shape)
        elif tuple(shape) != ref_shape:
            raise ValueError(f"ref is {ref_shape[0]} frames of {ref_shape[2]}x{ref_shape[1]}, "
                             f"dist {shape[0]} frames of {shape[2]}x{shape[1]}")
    return ref_shape


def _learned(name: str, fn, ref_rgb, dist_rgb, per_frame, notes):
    if fn is None:
        notes[name] = f"{name.upper()} not computed (no model given)"
        return None
    try:
        vals = np.asarray(fn(ref_rgb, dist_rgb), np.float64)
    except MetricUnavailable as e:
        notes[name] = str(e)
        return None
    per_frame[name] = vals
    return float(np.mean(vals))


def compare(ref, dist, *, lpips=None, dists=None, ms_ssim: bool = True) -> dict:
    """Every metric of ``dist`` against ``ref`` (see the module docstring for the keys).

    ``lpips`` / ``dists``: loaded models called as ``fn(ref_rgb, dist_rgb) -> [T]`` (e.g.
    :class:`gvc_jax.metrics.lpips.LPIPS`, :func:`gvc_jax.weights.dists.load_dists`); None leaves
    the value None with a note, as does a :class:`MetricUnavailable` they raise. Bad input
    (dtype, shape, mismatched sizes or frame counts) raises ValueError with one line.
    """
    n_t, h, w = _check_inputs(ref, dist)
    ref_p, dist_p, yuv_source = _planes_pair(ref, dist)
    matrix = ref_p.matrix
    ref_rgb, dist_rgb = _rgb_view(ref, matrix), _rgb_view(dist, matrix)
    ref_rgb, dist_rgb = check_video_pair(ref_rgb, dist_rgb)

    per_frame: dict[str, np.ndarray] = {"psnr_rgb": psnr(ref_rgb, dist_rgb)}
    out: dict = {"psnr_rgb": float(np.mean(per_frame["psnr_rgb"])),
                 "psnr_rgb_seq": psnr_sequence(ref_rgb, dist_rgb)}
    mse = yuv_metrics.plane_mse(ref_p, dist_p)
    yuv_frames = yuv_metrics.psnr_yuv_from_mse(mse, float(ref_p.peak))
    per_frame.update(yuv_frames)
    out.update(yuv_metrics.summarize(yuv_frames, mse, float(ref_p.peak)))

    notes: dict[str, str] = {}
    out["ms_ssim"] = None
    if not ms_ssim:
        notes["ms_ssim"] = "MS-SSIM not computed (not requested)"
    elif ms_ssim_supported(h, w):
        per_frame["ms_ssim"] = ms_ssim_frames(ref_rgb, dist_rgb)
        out["ms_ssim"] = float(np.mean(per_frame["ms_ssim"]))
    else:
        notes["ms_ssim"] = (f"MS-SSIM needs frames of at least {MIN_SIDE} px a side, "
                            f"these are {w}x{h}")
    out["lpips"] = _learned("lpips", lpips, ref_rgb, dist_rgb, per_frame, notes)
    out["dists"] = _learned("dists", dists, ref_rgb, dist_rgb, per_frame, notes)
    out.update({"per_frame": {k: [float(x) for x in v] for k, v in per_frame.items()},
                "notes": notes, "frames": n_t, "height": h, "width": w,
                "yuv_source": yuv_source})
    return out


# ------------------------------------------------------------------ reading
def _parse_size(size) -> tuple[int, int]:
    if isinstance(size, str):
        try:
            w, h = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise VideoIOError(f"bad size {size!r}, expected WxH such as 1920x1080") from None
    else:
        w, h = (int(v) for v in size)
    if w <= 0 or h <= 0:
        raise VideoIOError(f"bad size {w}x{h}: both sides must be positive")
    return w, h


def _read_raw_yuv(path: str, size, fps, pix_fmt, max_frames):
    from gvc_jax.eval.inputs import parse_uvg_name

    geom = None
    try:
        geom = parse_uvg_name(path)
    except VideoIOError as e:
        if "UVG-style" not in str(e):  # a UVG name with a bad geometry
            raise
    if geom is None and (size is None or pix_fmt is None):
        missing = " and ".join(f for f, v in (("--size WxH", size), ("--pix-fmt yuv420p", pix_fmt))
                               if v is None)
        raise VideoIOError(f"{path}: a raw .yuv without a UVG-style name "
                           f"(e.g. Beauty_1920x1080_120fps_420_8bit_YUV.yuv) needs {missing}")
    if geom is not None and geom.chroma != "420" and pix_fmt is None:
        raise VideoIOError(f"{path}: metrics read 4:2:0 raw video only; this name says "
                           f"{geom.chroma}")
    w, h = _parse_size(size) if size is not None else (geom.width, geom.height)
    bits = parse_pix_fmt(pix_fmt) if pix_fmt is not None else geom.bits
    if fps is None and geom is not None:
        fps = geom.fps
    return read_yuv_planes(path, w, h, bits=bits, max_frames=max_frames, fps=fps)


def read_for_metrics(path, size=None, fps=None, pix_fmt=None, *,
                     max_frames: int | None = None) -> YuvPlanes | Video:
    """A video as :func:`compare` takes it: 4:2:0 planes for ``.yuv`` and 4:2:0 ``.y4m``, RGB
    (:class:`~gvc_jax.io.Video`) for everything else (a y4m in 4:2:2, 4:4:4 or mono included).

    A raw ``.yuv`` takes its geometry from a UVG-style name (``Name_WxH_FPSfps_420_8bit_YUV.yuv``);
    ``size`` (``"WxH"`` or ``(W, H)``) and ``pix_fmt`` (``yuv420p``, ``yuv420p10le``, ...) override
    it, and are required without such a name. Planes of a raw file are labelled BT.709 limited
    range (UVG's colour); those of a y4m, BT.601 with the header's range (as ``read_video``
    decodes it). Errors are one-line :class:`~gvc_jax.io.VideoIOError`.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".yuv":
        return _read_raw_yuv(path, size, fps, pix_fmt, max_frames)
    if ext == ".y4m":
        from gvc_jax.io.y4m import is_420, read_y4m_planes, y4m_colourspace

        try:
            csp = y4m_colourspace(path)
        except OSError as e:
            raise VideoIOError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from None
        if is_420(csp):
            return read_y4m_planes(path, max_frames=max_frames)
    return read_video(path, max_frames=max_frames, fps=fps)
