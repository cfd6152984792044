"""Codec presets: a model config, a mode and the codec parameters the preset changes from their
declared defaults (the declarations live in the library: gvc_jax/codec/params.py and the
coding and mode modules). This file is data; it imports nothing from the library.

Launch line::

    gvc compress clip.mp4 -o clip.gvc --config wan2.1-t2v-1.3b --weights ~/Wan2.1-T2V-1.3B --json

``get_config(name)`` returns an ml_collections ConfigDict with ``name``, ``model``, ``mode`` and
``codec``, the changed fields only; the CLI's ``--K/--M/...`` flags override single fields.
"""
from __future__ import annotations

import ml_collections

# GVCC's T2V settings (docs/wan.md): K=16384, M=64, 20 steps of which 17 are SDE steps,
# g_scale 3, shift 3, 33-frame GOPs, empty prompt, guidance 1.
_GVCC_T2V = dict(K=16384, M=64, steps=20, sde_steps=17, g_scale=3.0, shift=3.0, gop_frames=33,
                 guidance=1.0)

# GVCC's I2V settings: M_tail = 2M on the last 2 latent frames, shift 5 above 480p (3 at or
# below: the anchored modes' resolution rule, gvc_jax/codec/modes/anchored.py), and an entropy-coded tail residual
# (docs/residual.md) instead of GVCC's 8-bit zlib dump. Its step, 0.05, is near the steps that
# give GVCC's MSE on the residuals measured there (0.035-0.043); real Wan residuals are unmeasured.
_GVCC_I2V = dict(_GVCC_T2V, M_tail=128, shift=5.0, residual_step=0.05)
# GVCC's FLF2V settings: shift 5, 33-frame GOPs sharing their boundary anchors.
_GVCC_FLF2V = dict(_GVCC_T2V, shift=5.0)

# name -> (model config, mode, changed codec parameters)
_PRESETS = {
    # The embedded analytic prior. GOP = 16 frames = 4 latent frames of 4.
    # K/M sized so a QCIF clip codes in seconds on a 2-core CPU.
    "gaussian": ("gaussian", "t2v", dict(K=4096, M=16, shift=1.0, gop_frames=16)),
    # Small codebook for CPU use: ~16x less encoder work than `gaussian`.
    "gaussian-fast": ("gaussian", "t2v", dict(K=256, M=4, shift=1.0, gop_frames=16)),
    "wan2.1-t2v-1.3b": ("wan2.1-t2v-1.3b", "t2v", _GVCC_T2V),
    "wan2.1-t2v-14b": ("wan2.1-t2v-14b", "t2v", _GVCC_T2V),
    # Any T2V folder whose architecture is read from its own config files (tiny test folders,
    # custom sizes): GVCC's T2V settings.
    "wan2.1-t2v": ("wan2.1-t2v", "t2v", _GVCC_T2V),
    "wan2.1-i2v-14b-480p": ("wan2.1-i2v-14b-480p", "i2v", dict(_GVCC_I2V, shift=3.0)),
    "wan2.1-i2v-14b-720p": ("wan2.1-i2v-14b-720p", "i2v", _GVCC_I2V),
    "wan2.1-i2v": ("wan2.1-i2v", "i2v", _GVCC_I2V),
    "wan2.1-flf2v-14b-720p": ("wan2.1-flf2v-14b-720p", "flf2v", _GVCC_FLF2V),
    "wan2.1-flf2v": ("wan2.1-flf2v", "flf2v", _GVCC_FLF2V),
}

PRESETS = tuple(_PRESETS)


def get_config(arg: str = "gaussian") -> ml_collections.ConfigDict:
    if arg not in _PRESETS:
        raise KeyError(f"unknown codec preset {arg!r}; known: {', '.join(PRESETS)}")
    model, mode, changed = _PRESETS[arg]
    return ml_collections.ConfigDict({"name": arg, "model": model, "mode": mode,
                                      "codec": dict(changed)})
