"""GOP planning and padding: source geometry <-> coded geometry.

A GOP is a run of source frames coded independently (T2V). Each GOP is
padded in time to the model's next valid length (repeating its last frame)
and in space to the model's block/patch multiple (edge replication); the
decoder crops back to the true geometry recorded in the header.
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Gop:
    index: int
    start: int    # first source frame
    frames: int   # source frames in this GOP
    coded: int    # frames after temporal padding

    def to_json(self) -> dict:
        return {"index": self.index, "start": self.start, "frames": self.frames}


def coded_length(n: int, frames_per_latent: int, causal: bool) -> int:
    """Smallest valid clip length >= n: a multiple of ``frames_per_latent``, or
    1 + a multiple of it for causal autoencoders (Wan's VAE: T = 1 + 4k)."""
    if n < 1:
        raise ValueError("a GOP needs at least one frame")
    q = frames_per_latent
    if causal:
        return 1 + -(-(n - 1) // q) * q
    return -(-n // q) * q


def latent_frames(coded: int, frames_per_latent: int, causal: bool) -> int:
    return 1 + (coded - 1) // frames_per_latent if causal else coded // frames_per_latent


def plan_gops(n_frames: int, gop_frames: int, frames_per_latent: int, causal: bool) -> list[Gop]:
    """Splits ``n_frames`` into GOPs of ``gop_frames`` (the last may be shorter)."""
    if gop_frames < 1:
        raise ValueError(f"gop_frames must be >= 1, got {gop_frames}")
    if coded_length(gop_frames, frames_per_latent, causal) != gop_frames:
        kind = "1 + a multiple of" if causal else "a multiple of"
        raise ValueError(f"gop_frames={gop_frames} must be {kind} {frames_per_latent} for this model")
    gops, start = [], 0
    while start < n_frames:
        n = min(gop_frames, n_frames - start)
        gops.append(Gop(len(gops), start, n, coded_length(n, frames_per_latent, causal)))
        start += n
    return gops


def padded_size(h: int, w: int, multiple: int) -> tuple[int, int]:
    return -(-h // multiple) * multiple, -(-w // multiple) * multiple


def pad_clip(frames_thwc: np.ndarray, coded_t: int, coded_h: int, coded_w: int) -> np.ndarray:
    """Edge-pads a uint8 clip to (coded_t, coded_h, coded_w)."""
    t, h, w, _ = frames_thwc.shape
    return np.pad(frames_thwc, ((0, coded_t - t), (0, coded_h - h), (0, coded_w - w), (0, 0)),
                  mode="edge")
