"""What both sides share while coding one stream (docs/codec.md, "The loop").

Encoder and decoder build the same :class:`Session` and call the same mode and coding functions
with it, so a GOP's conditioning can only come from what the decoder also has: the header, the
mode's chunks, the prompt context and the frames decoded so far. Mode-specific state (anchors,
residuals) lives in the mode instance, not here.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from gvc_jax.codec.geometry import Gop


@dataclasses.dataclass
class Session:
    model: Any                      # gvc_jax.codec.codec_model.CodecModel
    params: Any                     # gvc_jax.codec.params.CodecParams
    mode: Any                       # a fresh instance of the stream's mode (owns its state)
    coding: Any                     # the stream's coding (gvc_jax.codec.codings)
    header: dict
    gops: list[Gop]
    chunks: dict[str, list[bytes]] = dataclasses.field(default_factory=dict)  # mode chunks by tag
    decoded: list[np.ndarray] = dataclasses.field(default_factory=list)  # per GOP, coded size
    conds: dict[int, Any] = dataclasses.field(default_factory=dict)      # the current GOP's
    side_chunks: list = dataclasses.field(default_factory=list)   # encoder: the mode's

    def cond(self, gop: Gop):
        """The GOP's conditioning, built once per GOP (the encoder needs it twice)."""
        if gop.index not in self.conds:
            self.conds.clear()
            self.conds[gop.index] = self.mode.cond(self, gop)
        return self.conds[gop.index]
