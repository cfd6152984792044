"""BT.601 RGB <-> YCbCr for 8-bit y4m (docs/bitstream.md §9, 'Video I/O').

Full range ('jpeg' range, XCOLORRANGE=FULL): Y, Cb, Cr span 0..255.
Limited range (the y4m default, 'tv' range): Y spans 16..235, Cb/Cr 16..240.
"""
from __future__ import annotations

import numpy as np

_KR, _KB = 0.299, 0.114
_KG = 1.0 - _KR - _KB


def rgb_to_ycbcr(rgb: np.ndarray, full_range: bool) -> np.ndarray:
    """uint8 [..., 3] RGB -> uint8 [..., 3] YCbCr (rounded, clipped)."""
    x = rgb.astype(np.float32) / 255.0
    y = _KR * x[..., 0] + _KG * x[..., 1] + _KB * x[..., 2]
    cb = (x[..., 2] - y) / (2 * (1 - _KB))
    cr = (x[..., 0] - y) / (2 * (1 - _KR))
    if full_range:
        out = np.stack([255 * y, 255 * cb + 128, 255 * cr + 128], axis=-1)
    else:
        out = np.stack([16 + 219 * y, 128 + 224 * cb, 128 + 224 * cr], axis=-1)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def ycbcr_to_rgb(ycc: np.ndarray, full_range: bool) -> np.ndarray:
    """uint8 [..., 3] YCbCr -> uint8 [..., 3] RGB (rounded, clipped)."""
    v = ycc.astype(np.float32)
    if full_range:
        y, cb, cr = v[..., 0] / 255, (v[..., 1] - 128) / 255, (v[..., 2] - 128) / 255
    else:
        y, cb, cr = (v[..., 0] - 16) / 219, (v[..., 1] - 128) / 224, (v[..., 2] - 128) / 224
    r = y + 2 * (1 - _KR) * cr
    b = y + 2 * (1 - _KB) * cb
    g = (y - _KR * r - _KB * b) / _KG
    out = np.stack([r, g, b], axis=-1) * 255
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
