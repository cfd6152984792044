"""Codec presets: model config + codec parameters (DESIGN §2, §5, §7).

Launch line::

    gvc compress clip.mp4 -o clip.gvc --config gaussian --json

``get_config(name)`` returns an ml_collections ConfigDict; the CLI's
``--K/--M/...`` flags override single fields.
"""
from __future__ import annotations

import ml_collections

# name -> (model config, codec parameters)
_PRESETS = {
    # The embedded analytic prior. GOP = 16 frames = 4 latent frames of 4.
    # K/M sized so a QCIF clip codes in seconds on a 2-core CPU.
    "gaussian": ("gaussian", dict(K=4096, M=16, steps=20, sde_steps=17, g_scale=3.0,
                                  shift=1.0, seed=0, gop_frames=16, schedule="shifted")),
    # Small codebook for CPU use: ~16x less encoder work than `gaussian`.
    "gaussian-fast": ("gaussian", dict(K=256, M=4, steps=20, sde_steps=17, g_scale=3.0,
                                       shift=1.0, seed=0, gop_frames=16, schedule="shifted")),
    # GVCC's 720p T2V parameters (DESIGN §7): K=16384, M=64, 33-frame GOPs,
    # shift 3. The Wan models are not yet wired into the codec.
    "wan2.1-t2v-1.3b": ("wan2.1-t2v-1.3b", dict(K=16384, M=64, steps=20, sde_steps=17,
                                                g_scale=3.0, shift=3.0, seed=0, gop_frames=33,
                                                schedule="shifted")),
    "wan2.1-t2v-14b": ("wan2.1-t2v-14b", dict(K=16384, M=64, steps=20, sde_steps=17,
                                              g_scale=3.0, shift=3.0, seed=0, gop_frames=33,
                                                schedule="shifted")),
}

PRESETS = tuple(_PRESETS)


def get_config(arg: str = "gaussian") -> ml_collections.ConfigDict:
    if arg not in _PRESETS:
        raise KeyError(f"unknown codec preset {arg!r}; known: {', '.join(PRESETS)}")
    model, codec = _PRESETS[arg]
    return ml_collections.ConfigDict({"name": arg, "model": model, "codec": dict(codec)})
