"""Resizing clips before coding or evaluation: Lanczos (a=3) per frame with Pillow, and the
``WIDTHxHEIGHT`` / scale-factor arguments that ask for it."""
from __future__ import annotations

import re

import numpy as np

from gvc_jax.io.errors import VideoIOError


def resize_lanczos(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """Per-frame Lanczos (a=3) resize of uint8 RGB frames ``[T,H,W,3]`` to ``width x height``."""
    from PIL import Image

    if frames.shape[1:3] == (height, width):
        return frames
    out = np.empty((frames.shape[0], height, width, 3), np.uint8)
    for i, f in enumerate(frames):
        out[i] = np.asarray(Image.fromarray(f).resize((width, height), Image.Resampling.LANCZOS))
    return out


def parse_size(text: str, flag: str = "--size") -> tuple[int, int]:
    """``"1280x720"`` -> ``(1280, 720)``; ValueError naming ``flag`` otherwise."""
    m = re.fullmatch(r"(\d+)[xX](\d+)", str(text).strip())
    if not m or int(m[1]) < 1 or int(m[2]) < 1:
        raise ValueError(f"{flag}: expected WIDTHxHEIGHT like 1280x720, got {text!r}")
    return int(m[1]), int(m[2])


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """``(width, height)`` of a frame scaled by ``scale`` (rounded, at least 1 pixel)."""
    if not (isinstance(scale, (int, float)) and 0 < scale <= 64):
        raise ValueError(f"--scale must lie in (0, 64], got {scale!r}")
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_clip(frames: np.ndarray, *, size: tuple[int, int] | None = None,
                scale: float | None = None) -> np.ndarray:
    """``frames`` resized to ``size=(W, H)`` or by ``scale`` (neither: unchanged)."""
    if size is not None and scale is not None:
        raise ValueError("give --size or --scale, not both")
    if scale is not None:
        size = scaled_size(frames.shape[1], frames.shape[2], scale)
    if size is None:
        return frames
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise VideoIOError(f"cannot resize frames of shape {frames.shape}")
    return resize_lanczos(frames, *size)
