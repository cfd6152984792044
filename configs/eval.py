"""Evaluation presets for ``gvc eval`` (docs/design.md §7).

Launch line::

    gvc eval /data/UVG --preset uvg-720p-gvcc --out results/uvg720 --weights /ckpt/wan

``uvg-720p-gvcc`` follows GVCC's UVG protocol: every sequence is cut to its
first 3 GOPs x 33 frames, resized to 1280x720 with Lanczos, and coded with the
GVCC codec parameters per mode (K=16384, M=64; I2V adds M_tail=128 on the last
two latent frames). The four classical baselines run on the same frames at
their default ladders and at our points' rates.

``get_config(name)`` returns an ml_collections ConfigDict:
  frames        frames evaluated per sequence (None: all)
  size          (width, height) after Lanczos resizing (None: keep)
  gvc           list of our runs, "config[:key=v1,v2[:key=...]]" specs
  baselines     baseline names
  match_rate    also run each baseline at the kbps of each of our points
"""
from __future__ import annotations

import ml_collections

# GVCC parameters per mode (docs/design.md §7). Only T2V has a codec mode here yet;
# the I2V / FLF2V entries are listed so the preset names what it will run.
GVCC_720P = {
    "t2v": "wan2.1-t2v-14b:K=16384:M=64:gop_frames=33",
    "i2v": "wan2.1-i2v-14b-720p:K=16384:M=64:gop_frames=33",      # + M_tail=128 (not built)
    "flf2v": "wan2.1-flf2v-14b-720p:K=16384:M=64:gop_frames=33",  # (not built)
}

_PRESETS = {
    "uvg-720p-gvcc": dict(frames=99, size=(1280, 720), gvc=[GVCC_720P["t2v"]],
                          baselines=["x264", "x265", "vvc", "av1"], match_rate=True),
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
