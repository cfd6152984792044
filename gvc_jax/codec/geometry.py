"""GOPs and padding: source geometry <-> coded geometry (docs/codec.md, "GOPs").

A GOP is a run of source frames coded as one clip. Each GOP is padded in time to the model's
next valid length (repeating its last frame) and in space to the model's pixel multiple (edge
replication); the decoder crops back to the true geometry recorded in the header. The shape
rules themselves live in :class:`gvc_jax.models.protocol.Geometry`.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from gvc_jax.models.protocol import Geometry


@dataclasses.dataclass(frozen=True)
class Gop:
    index: int
    start: int    # first source frame
    frames: int   # source frames in this GOP
    coded: int    # frames after temporal padding

    def to_json(self) -> dict:
        return {"index": self.index, "start": self.start, "frames": self.frames}


def check_gop_frames(gop_frames: int, geom: Geometry) -> None:
    if gop_frames < 1:
        raise ValueError(f"gop_frames must be >= 1, got {gop_frames}")
    if geom.coded_length(gop_frames) != gop_frames:
        kind = "1 + a multiple of" if geom.causal else "a multiple of"
        raise ValueError(f"gop_frames={gop_frames} must be {kind} {geom.frames_per_latent} "
                         "for this model")


def plan_disjoint(n_frames: int, gop_frames: int, geom: Geometry) -> list[Gop]:
    """Splits ``n_frames`` into back-to-back GOPs of ``gop_frames`` (the last may be shorter)."""
    check_gop_frames(gop_frames, geom)
    gops, start = [], 0
    while start < n_frames:
        n = min(gop_frames, n_frames - start)
        gops.append(Gop(len(gops), start, n, geom.coded_length(n)))
        start += n
    return gops


def pad_clip(frames_thwc: np.ndarray, coded_t: int, coded_h: int, coded_w: int) -> np.ndarray:
    """Edge-pads a uint8 clip to (coded_t, coded_h, coded_w)."""
    t, h, w, _ = frames_thwc.shape
    return np.pad(frames_thwc, ((0, coded_t - t), (0, coded_h - h), (0, coded_w - w), (0, 0)),
                  mode="edge")


def plan_shared(n_frames: int, gop_frames: int, geom: Geometry) -> list[Gop]:
    """GOPs of ``gop_frames`` whose last frame is the next GOP's first: GOP g covers
    ``[g (gop_frames - 1), g (gop_frames - 1) + gop_frames)`` (the last may be shorter)."""
    check_gop_frames(gop_frames, geom)
    if gop_frames < 2:
        raise ValueError("GOPs that share boundary frames need gop_frames >= 2")
    gops, start = [], 0
    while True:
        n = min(gop_frames, n_frames - start)
        gops.append(Gop(len(gops), start, n, geom.coded_length(n)))
        if start + n >= n_frames:
            return gops
        start += gop_frames - 1
