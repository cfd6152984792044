"""Planar YUV 4:2:0 video: the :class:`YuvPlanes` container, a raw ``.yuv`` plane reader and the
RGB <-> YCbCr 4:2:0 conversions the metrics use (docs/metrics.md, "YUV planes").

Conversions (R', G', B' = RGB / 255; ``s = 2**(bits - 8)``; ``m = 2**bits - 1``):

* luma and colour differences: ``Y' = kr R' + kg G' + kb B'``, ``Pb = (B' - Y') / (2 (1 - kb))``,
  ``Pr = (R' - Y') / (2 (1 - kr))`` with BT.709 ``kr, kb = 0.2126, 0.0722`` or BT.601
  ``0.299, 0.114`` and ``kg = 1 - kr - kb``;
* limited range: ``Y = s (16 + 219 Y')``, ``Cb = s (128 + 224 Pb)``, ``Cr = s (128 + 224 Pr)``;
  full range: ``Y = m Y'``, ``C = m P + 2**(bits - 1)``;
* RGB -> 4:2:0: Cb and Cr are computed per pixel in float64, averaged over each 2x2 block (the
  pixels of a block that lie inside the frame, for odd sides), then every plane is rounded half
  up (``floor(x + 0.5)``) and clipped to ``[0, m]``;
* 4:2:0 -> RGB: chroma is upsampled by pixel replication (each chroma sample covers its 2x2
  block), the inverse of the equations above is applied in float64, and ``255 x`` is rounded
  half up and clipped to ``[0, 255]``.
"""
from __future__ import annotations

import dataclasses
import fractions
import os
import re

import numpy as np

from gvc_jax.io.errors import VideoIOError

MATRICES = {"bt709": (0.2126, 0.0722), "bt601": (0.299, 0.114)}
_CHUNK_BYTES = 256 << 20  # bounds the float64 working set of the conversions
_PIX_FMT = re.compile(r"^yuv420p(?:(9|10|12|14|16)le)?$")


def chroma_shape(height: int, width: int) -> tuple[int, int]:
    """(H, W) of a 4:2:0 chroma plane: both sides halved, rounded up."""
    return -(-int(height) // 2), -(-int(width) // 2)


@dataclasses.dataclass(frozen=True, eq=False)
class YuvPlanes:
    """A 4:2:0 video as its planes: ``y`` [T,H,W], ``u`` and ``v`` [T,ceil(H/2),ceil(W/2)], uint8
    for 8 bits, uint16 for 9-16 bits.

    ``matrix`` and ``full_range`` say which RGB the planes encode (used only to convert to or
    from RGB); ``rgb``, when given, is the uint8 RGB video [T,H,W,3] these planes stand for (e.g.
    the frames a codec was fed) and is used for the RGB metrics instead of a conversion.
    """

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    bits: int = 8
    matrix: str = "bt709"
    full_range: bool = False
    fps: fractions.Fraction | None = None
    rgb: np.ndarray | None = None

    def __post_init__(self):
        if isinstance(self.bits, bool) or not isinstance(self.bits, (int, np.integer)) \
                or not 8 <= self.bits <= 16:
            raise ValueError(f"bits must be an int in 8..16, got {self.bits!r}")
        if self.matrix not in MATRICES:
            raise ValueError(f"matrix must be one of {sorted(MATRICES)}, got {self.matrix!r}")
        want = np.uint8 if self.bits == 8 else np.uint16
        for name in ("y", "u", "v"):
            a = getattr(self, name)
            if not isinstance(a, np.ndarray) or a.dtype != want or a.ndim != 3:
                raise ValueError(f"plane {name} must be a {np.dtype(want).name} array [T,H,W] for "
                                 f"{self.bits} bits, got {getattr(a, 'dtype', type(a).__name__)} "
                                 f"{list(getattr(a, 'shape', []))}")
        t, h, w = self.y.shape
        if 0 in self.y.shape:
            raise ValueError(f"plane y is empty: shape {list(self.y.shape)}")
        for name in ("u", "v"):
            if getattr(self, name).shape != (t, *chroma_shape(h, w)):
                raise ValueError(f"plane {name} has shape {list(getattr(self, name).shape)}, 4:2:0 "
                                 f"of {w}x{h} needs {[t, *chroma_shape(h, w)]}")
        if self.rgb is not None:
            r = self.rgb
            if not isinstance(r, np.ndarray) or r.dtype != np.uint8 or r.shape != (t, h, w, 3):
                raise ValueError(f"rgb must be uint8 [{t},{h},{w},3], got "
                                 f"{getattr(r, 'dtype', type(r).__name__)} "
                                 f"{list(getattr(r, 'shape', []))}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(T, H, W) of the luma plane."""
        return tuple(self.y.shape)

    @property
    def peak(self) -> int:
        """Largest sample value, ``2**bits - 1`` (255 for 8 bits)."""
        return (1 << self.bits) - 1

    @property
    def planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.y, self.u, self.v


def parse_pix_fmt(pix_fmt: str) -> int:
    """Bit depth of an ffmpeg-style 4:2:0 planar pixel format: ``yuv420p`` -> 8,
    ``yuv420p10le`` -> 10 (9, 12, 14, 16 alike); anything else is a VideoIOError."""
    m = _PIX_FMT.match(str(pix_fmt).strip().lower())
    if not m:
        raise VideoIOError(f"pixel format {pix_fmt!r} is not supported for metrics; use yuv420p "
                           "or yuv420pNNle (4:2:0 planar, little-endian above 8 bits)")
    return int(m.group(1) or 8)


def _coeffs(matrix: str):
    if matrix not in MATRICES:
        raise ValueError(f"matrix must be one of {sorted(MATRICES)}, got {matrix!r}")
    kr, kb = MATRICES[matrix]
    return kr, 1.0 - kr - kb, kb


def _quantise(x: np.ndarray, bits: int) -> np.ndarray:
    out = np.clip(np.floor(x + 0.5), 0, (1 << bits) - 1)
    return out.astype(np.uint8 if bits == 8 else np.uint16)


def _mean_2x2(c_thw: np.ndarray) -> np.ndarray:
    """2x2 block means; an odd side is padded by repeating its last row/column, so a border
    block averages only the pixels that lie inside the frame."""
    t, h, w = c_thw.shape
    c_thw = np.pad(c_thw, ((0, 0), (0, h % 2), (0, w % 2)), mode="edge")
    return c_thw.reshape(t, (h + 1) // 2, 2, (w + 1) // 2, 2).mean(axis=(2, 4))


def rgb_to_yuv420(rgb, *, matrix: str = "bt709", full_range: bool = False, bits: int = 8,
                  fps=None) -> YuvPlanes:
    """uint8 RGB video [T,H,W,3] -> :class:`YuvPlanes` (equations in the module docstring).

    The default is BT.709 limited range, 8 bits. ``rgb`` is kept on the result.
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 4 or rgb.shape[-1] != 3 or 0 in rgb.shape:
        raise ValueError(f"rgb must be a non-empty uint8 array [T,H,W,3], got {rgb.dtype} "
                         f"{list(rgb.shape)}")
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 8 <= bits <= 16:
        raise ValueError(f"bits must be an int in 8..16, got {bits!r}")
    kr, kg, kb = _coeffs(matrix)
    n_t, h, w, _ = rgb.shape
    ch, cw = chroma_shape(h, w)
    dt = np.uint8 if bits == 8 else np.uint16
    y_out = np.empty((n_t, h, w), dt)
    u_out, v_out = np.empty((n_t, ch, cw), dt), np.empty((n_t, ch, cw), dt)
    s, m = float(1 << (bits - 8)), float((1 << bits) - 1)
    step = max(1, _CHUNK_BYTES // (h * w * 3 * 8))
    for t0 in range(0, n_t, step):
        x = rgb[t0:t0 + step].astype(np.float64) / 255.0
        r, g, b = x[..., 0], x[..., 1], x[..., 2]
        yp = kr * r + kg * g + kb * b
        pb = (b - yp) / (2.0 * (1.0 - kb))
        pr = (r - yp) / (2.0 * (1.0 - kr))
        if full_range:
            yy, cb, cr = m * yp, m * pb + (m + 1) / 2, m * pr + (m + 1) / 2
        else:
            yy, cb, cr = s * (16 + 219 * yp), s * (128 + 224 * pb), s * (128 + 224 * pr)
        y_out[t0:t0 + step] = _quantise(yy, bits)
        u_out[t0:t0 + step] = _quantise(_mean_2x2(cb), bits)
        v_out[t0:t0 + step] = _quantise(_mean_2x2(cr), bits)
    return YuvPlanes(y_out, u_out, v_out, bits=bits, matrix=matrix, full_range=full_range,
                     fps=fps, rgb=rgb)


def yuv420_to_rgb(planes: YuvPlanes, *, matrix: str | None = None) -> np.ndarray:
    """:class:`YuvPlanes` -> uint8 RGB [T,H,W,3] by chroma replication and the inverse equations
    (module docstring); ``matrix`` overrides the planes' own. ``planes.rgb`` is not consulted."""
    kr, kg, kb = _coeffs(matrix or planes.matrix)
    n_t, h, w = planes.shape
    bits = planes.bits
    s, m = float(1 << (bits - 8)), float((1 << bits) - 1)
    out = np.empty((n_t, h, w, 3), np.uint8)
    step = max(1, _CHUNK_BYTES // (h * w * 3 * 8))
    for t0 in range(0, n_t, step):
        yy = planes.y[t0:t0 + step].astype(np.float64)
        cb, cr = (np.repeat(np.repeat(c[t0:t0 + step], 2, axis=1), 2, axis=2)[:, :h, :w]
                  .astype(np.float64) for c in (planes.u, planes.v))
        if planes.full_range:
            yp, pb, pr = yy / m, (cb - (m + 1) / 2) / m, (cr - (m + 1) / 2) / m
        else:
            yp, pb, pr = (yy / s - 16) / 219, (cb / s - 128) / 224, (cr / s - 128) / 224
        r = yp + 2.0 * (1.0 - kr) * pr
        b = yp + 2.0 * (1.0 - kb) * pb
        g = (yp - kr * r - kb * b) / kg
        out[t0:t0 + step] = _quantise(255.0 * np.stack([r, g, b], axis=-1), 8)
    return out


def read_yuv_planes(path: str, width: int, height: int, *, bits: int = 8,
                    max_frames: int | None = None, fps=None, matrix: str = "bt709",
                    full_range: bool = False) -> YuvPlanes:
    """The frames of a headerless planar 4:2:0 file (Y, then U, then V per frame; 16-bit
    little-endian samples above 8 bits). The file size must be a whole number of frames."""
    width, height = int(width), int(height)
    if width <= 0 or height <= 0:
        raise VideoIOError(f"{path}: frame size must be positive, got {width}x{height}")
    ch, cw = chroma_shape(height, width)
    n_luma, n_chroma = width * height, ch * cw
    sample = 1 if bits == 8 else 2
    frame_bytes = (n_luma + 2 * n_chroma) * sample
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise VideoIOError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from None
    if size == 0 or size % frame_bytes:
        raise VideoIOError(f"{path}: {size} bytes is not a whole number of {width}x{height} "
                           f"4:2:0 {bits}-bit frames ({frame_bytes} bytes each); check the size "
                           "and pixel format")
    n = size // frame_bytes if max_frames is None else min(size // frame_bytes, int(max_frames))
    dtype = np.dtype(np.uint8) if bits == 8 else np.dtype("<u2")
    try:
        flat = np.fromfile(path, dtype=dtype, count=n * frame_bytes // sample)
    except OSError as e:
        raise VideoIOError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from None
    frames = flat.reshape(n, n_luma + 2 * n_chroma)
    native = np.uint8 if bits == 8 else np.uint16

    def plane(lo, hi, shape):
        return np.ascontiguousarray(frames[:, lo:hi], dtype=native).reshape(n, *shape)

    y = plane(0, n_luma, (height, width))
    u = plane(n_luma, n_luma + n_chroma, (ch, cw))
    v = plane(n_luma + n_chroma, n_luma + 2 * n_chroma, (ch, cw))
    if bits > 8 and max(int(y.max()), int(u.max()), int(v.max())) > (1 << bits) - 1:
        raise VideoIOError(f"{path}: samples above {(1 << bits) - 1}: not {bits}-bit video")
    return YuvPlanes(y, u, v, bits=bits, matrix=matrix, full_range=full_range, fps=fps)


# ------------------------------------------------------------------ GVCC's frames
# OpenCV's fixed-point constants (docs/eval.md, "The gvcc protocol"): cv2.resize INTER_LINEAR
# weights in 1/2048 (INTER_RESIZE_COEF_BITS = 11); cv2.COLOR_YUV2RGB's analog-YUV coefficients
# 1.140, -0.581, -0.395, 2.032 as round(c * 2**14).
_CV_COEF_BITS = 11
_CV_YUV_SHIFT = 14
_CV_V2R, _CV_V2G, _CV_U2G, _CV_U2B = 18678, -9519, -6472, 33292


def _linear_taps(n_out: int, n_in: int, clamp_weight: bool):
    """Source indices and weights (in 1/2048) of a linear resize from ``n_in`` to ``n_out``
    samples on half-pixel centres. ``clamp_weight``: a tap outside the source puts all its
    weight on the edge sample (OpenCV's horizontal pass); otherwise only the index is clamped
    and the weights stay (its vertical pass)."""
    pos = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    i0 = np.floor(pos).astype(np.int64)
    frac = pos - i0
    if clamp_weight:
        out = (i0 < 0) | (i0 >= n_in - 1)
        frac[out] = 0.0
        i0 = np.clip(i0, 0, n_in - 1)
    w1 = np.rint(frac * (1 << _CV_COEF_BITS)).astype(np.int64)
    return (np.clip(i0, 0, n_in - 1), np.clip(i0 + 1, 0, n_in - 1),
            (1 << _CV_COEF_BITS) - w1, w1)


def upsample_chroma_opencv(c_thw: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 chroma planes [T,h,w] resized to [T,height,width] as ``cv2.resize(...,
    interpolation=cv2.INTER_LINEAR)`` computes it on 8-bit data: a horizontal pass with
    integer weights in 1/2048, then a vertical pass that drops 4 bits, keeps the high 16 bits of
    each weighted row and rounds the sum of the two over 2 bits (its vectorised path; the
    result equals OpenCV 4.10 and 5.1 on x86 for every size tested, docs/eval.md)."""
    c = np.asarray(c_thw)
    if c.dtype != np.uint8 or c.ndim != 3:
        raise ValueError(f"chroma planes must be uint8 [T,h,w], got {c.dtype} {list(c.shape)}")
    out = np.empty((c.shape[0], height, width), np.uint8)
    j0, j1, a0, a1 = _linear_taps(width, c.shape[2], clamp_weight=True)
    i0, i1, b0, b1 = _linear_taps(height, c.shape[1], clamp_weight=False)
    step = max(1, _CHUNK_BYTES // (height * width * 8 * 3))
    for t0 in range(0, c.shape[0], step):
        x = c[t0:t0 + step].astype(np.int64)
        rows = x[:, :, j0] * a0 + x[:, :, j1] * a1            # horizontal, in 1/2048
        s0, s1 = rows[:, i0, :] >> 4, rows[:, i1, :] >> 4
        v = ((s0 * b0[:, None]) >> 16) + ((s1 * b1[:, None]) >> 16)
        out[t0:t0 + step] = np.clip((v + 2) >> 2, 0, 255)
    return out


def yuv444_to_rgb_opencv(y, u, v) -> np.ndarray:
    """``cv2.cvtColor(stack([y, u, v]), cv2.COLOR_YUV2RGB)`` on uint8 planes of one shape:
    ``R = Y + ((V-128)·18678 + 2^13) >> 14``, ``G = Y + ((U-128)·(-6472) + (V-128)·(-9519) +
    2^13) >> 14``, ``B = Y + ((U-128)·33292 + 2^13) >> 14``, clipped to 0..255 (arithmetic
    shifts). Y is not expanded from limited range: Y=16 grey stays 16, Y=235 stays 235."""
    y, u, v = (np.asarray(p) for p in (y, u, v))
    if not (y.shape == u.shape == v.shape) or any(p.dtype != np.uint8 for p in (y, u, v)):
        raise ValueError("y, u, v must be uint8 planes of one shape")
    shape = y.shape
    y, u, v = (p.reshape(-1, shape[-1] if shape else 1) for p in (y, u, v))
    out = np.empty(y.shape + (3,), np.uint8)
    half = 1 << (_CV_YUV_SHIFT - 1)
    step = max(1, _CHUNK_BYTES // (max(1, y.shape[1]) * 8 * 6))
    for r0 in range(0, y.shape[0], step):
        yy = y[r0:r0 + step].astype(np.int64)
        du, dv = u[r0:r0 + step].astype(np.int64) - 128, v[r0:r0 + step].astype(np.int64) - 128
        r = yy + ((dv * _CV_V2R + half) >> _CV_YUV_SHIFT)
        g = yy + ((du * _CV_U2G + dv * _CV_V2G + half) >> _CV_YUV_SHIFT)
        b = yy + ((du * _CV_U2B + half) >> _CV_YUV_SHIFT)
        out[r0:r0 + step] = np.clip(np.stack([r, g, b], axis=-1), 0, 255)
    return out.reshape(shape + (3,))


def yuv420_to_rgb_gvcc(planes: YuvPlanes) -> np.ndarray:
    """GVCC's RGB frames of 8-bit 4:2:0 planes (its UVG loader): each chroma plane resized to
    the luma size by :func:`upsample_chroma_opencv`, then :func:`yuv444_to_rgb_opencv`. Not a
    colour-correct conversion (no range expansion, analog-YUV coefficients on Cb/Cr); it is
    what GVCC's published figures were measured on (docs/eval.md)."""
    if planes.bits != 8:
        raise ValueError(f"GVCC reads 8-bit 4:2:0 video; these planes are {planes.bits}-bit")
    _, h, w = planes.shape
    if h % 2 or w % 2:
        raise ValueError(f"GVCC's loader needs an even width and height, got {w}x{h}")
    u = upsample_chroma_opencv(planes.u, h, w)
    v = upsample_chroma_opencv(planes.v, h, w)
    return yuv444_to_rgb_opencv(planes.y, u, v)
