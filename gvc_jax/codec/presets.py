"""Codec presets, read from ``configs/codec.py``."""
from __future__ import annotations

from configs.codec import PRESETS, get_config


def matching(model: str, mode: str, params) -> str | None:
    """The preset whose model, mode and header fields a stream's match, if one does (the
    compute dtype and runtime knobs aside)."""
    from gvc_jax.codec.params import CodecParams

    for name in PRESETS:
        cfg = get_config(name)
        if cfg.model != model or cfg.mode != mode:
            continue
        ref = CodecParams.from_values({**cfg.codec, "dtype": params.dtype,
                                       "chunk": params.chunk})
        if ref.header_fields(mode, 1) == params.header_fields(mode, 1):
            return name
    return None
