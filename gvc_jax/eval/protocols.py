"""Evaluation protocols: how ``gvc eval`` builds the frames every codec gets and the reference
the metrics compare against (docs/eval.md, "Protocols").

* ``ours``: RGB frames (a raw ``.yuv`` converted by ffmpeg as BT.709 limited range, bicubic
  chroma), resized with Lanczos when asked; every codec gets those RGB frames; the YUV PSNRs
  are on their BT.709 4:2:0 conversion (:func:`gvc_jax.eval.compare.compare`). Rate: file size
  at the source frame rate.
* ``gvcc``: GVCC's frames (a raw ``.yuv`` through OpenCV's bilinear chroma upsampling and
  ``COLOR_YUV2RGB``, no range expansion: :func:`gvc_jax.io.yuv.yuv420_to_rgb_gvcc`), then the
  same Lanczos resize; rate as ``ours`` plus GVCC's count (:mod:`gvc_jax.eval.gvcc`).
* ``dcvc``: the source's 8-bit 4:2:0 planes are the reference (a raw ``.yuv`` as stored; other
  inputs: their BT.709 limited-range conversion); the classical codecs code those planes as
  they are; our codec gets the RGB frames of ``ours`` and its output is converted to the
  reference's planes. The headline figure is ``psnr_yuv_611``.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from gvc_jax.io import Video, VideoIOError
from gvc_jax.io.yuv import YuvPlanes

PROTOCOLS = ("ours", "gvcc", "dcvc")
HEADLINE = {"ours": "psnr_rgb", "gvcc": "psnr_rgb", "dcvc": "psnr_yuv_611"}


@dataclasses.dataclass
class Source:
    """One video under one protocol."""

    video: Video                          # the RGB frames our codec codes, and the frame rate
    ref: Video | YuvPlanes                # what compare() takes as the reference
    baseline_input: np.ndarray | YuvPlanes   # what the classical codecs code

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.video.frames.shape[:3])


def load_source(path: str, protocol: str, *, frames: int | None = None,
                size: tuple[int, int] | None = None) -> Source:
    """The frames of ``path`` under ``protocol`` (module docstring); VideoIOError on bad input."""
    from gvc_jax.eval import inputs

    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    if protocol != "dcvc":
        v = inputs.load_video(path, frames=frames, size=size, gvcc=protocol == "gvcc")
        return Source(v, v, v.frames)
    from gvc_jax.io.yuv import rgb_to_yuv420

    v = inputs.load_video(path, frames=frames, size=size)
    if os.path.splitext(path)[1].lower() == ".yuv" and size is None:
        from gvc_jax.eval.compare import read_for_metrics

        planes = read_for_metrics(path, max_frames=frames)
        if planes.bits != 8:
            raise VideoIOError(f"{path}: the dcvc protocol codes 8-bit 4:2:0 sources; this "
                               f"one is {planes.bits}-bit")
        planes = dataclasses.replace(planes, rgb=v.frames, fps=v.fps)
    else:
        planes = rgb_to_yuv420(v.frames, fps=v.fps)
    return Source(v, planes, planes)
