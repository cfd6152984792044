"""Evaluation presets for ``gvc eval`` (docs/design.md §7).

Launch line::

    gvc eval /data/UVG --preset uvg-720p-gvcc --out results/uvg720 --weights /ckpt/wan

``uvg-720p-gvcc`` (T2V), ``uvg-720p-gvcc-i2v`` and ``uvg-720p-gvcc-flf2v`` follow
GVCC's UVG protocol: every sequence is cut to its first 3 GOPs, resized to 1280x720
with Lanczos, and coded with the GVCC codec parameters per mode (K=16384, M=64; I2V
adds M_tail=128 on the last two latent frames). Each takes the --weights folder of
its own model. The four classical baselines run on the same frames at their
default ladders and at our points' rates.

``get_config(name)`` returns an ml_collections ConfigDict:
  frames        frames evaluated per sequence (None: all)
  size          (width, height) after Lanczos resizing (None: keep)
  gvc           list of our runs, "config[:key=v1,v2[:key=...]]" specs
  baselines     baseline names
  match_rate    also run each baseline at the kbps of each of our points
"""
from __future__ import annotations

import ml_collections

# GVCC parameters per mode (docs/design.md §7); the presets of configs/codec.py carry the rest
# (I2V: M_tail=128, the entropy-coded residual; shift 5 at 720p; the default anchor codec).
GVCC_720P = {
    "t2v": "wan2.1-t2v-14b:K=16384:M=64:gop_frames=33",
    "i2v": "wan2.1-i2v-14b-720p:K=16384:M=64:M_tail=128:gop_frames=33",
    "flf2v": "wan2.1-flf2v-14b-720p:K=16384:M=64:gop_frames=33",
}
_BASELINES = dict(baselines=["x264", "x265", "vvc", "av1"], match_rate=True)

_PRESETS = {
    # T2V: 3 disjoint GOPs of 33 frames. I2V and FLF2V: 3 GOPs that share their boundary
    # frames, 97 frames (GVCC's I2V codes 99 with a one-frame offset; ours has none).
    "uvg-720p-gvcc": dict(frames=99, size=(1280, 720), gvc=[GVCC_720P["t2v"]], **_BASELINES),
    "uvg-720p-gvcc-i2v": dict(frames=97, size=(1280, 720), gvc=[GVCC_720P["i2v"]],
                              **_BASELINES),
    "uvg-720p-gvcc-flf2v": dict(frames=97, size=(1280, 720), gvc=[GVCC_720P["flf2v"]],
                                **_BASELINES),
    # The same protocol with the embedded Gaussian prior in place of Wan, runnable
    # without weights (its GOPs are multiples of 4 frames, so 99 = 32+32+32+3).
    "uvg-720p-gaussian": dict(frames=99, size=(1280, 720),
                              gvc=["gaussian:K=16384:M=64:gop_frames=32"],
                              baselines=["x264", "x265", "vvc", "av1"], match_rate=True),
}

PRESETS = tuple(_PRESETS)


def get_config(arg: str = "uvg-720p-gvcc") -> ml_collections.ConfigDict:
    if arg not in _PRESETS:
        raise KeyError(f"unknown eval preset {arg!r}; known: {', '.join(PRESETS)}")
    p = dict(_PRESETS[arg])
    return ml_collections.ConfigDict({"name": arg, **p, "size": list(p["size"] or [])})
