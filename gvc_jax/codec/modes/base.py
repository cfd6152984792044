"""The interface of a coding mode (docs/codec.md, "Modes").

A mode decides how a clip is cut into GOPs and what each GOP is conditioned on. Encoder and
decoder call the same functions with the same :class:`Session`, so a GOP's conditioning can only
be built from what the decoder also has: the header, the mode's own chunks, the prompt context
and the frames decoded so far.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import numpy as np

from gvc_jax.codec.geometry import Gop


@dataclasses.dataclass
class Session:
    """What both sides share while coding one stream."""
    model: Any                      # gvc_jax.codec.models.CodecModel
    params: Any                     # gvc_jax.codec.params.CodecParams
    header: dict
    chunks: dict[str, list[bytes]] = dataclasses.field(default_factory=dict)  # mode chunks by tag
    decoded: list[np.ndarray] = dataclasses.field(default_factory=list)  # per GOP, coded size
    anchors: list[np.ndarray] = dataclasses.field(default_factory=list)  # decoded anchor frames
    residuals: dict[int, bytes] = dataclasses.field(default_factory=dict)  # RESD by GOP
    conds: dict[int, Any] = dataclasses.field(default_factory=dict)      # the current GOP's
    residual_budget: int | None = None   # encoder under rate control: RESD bytes left


class Mode(Protocol):
    name: str
    chunk_tags: tuple[str, ...]     # payload chunks the mode writes besides IDX and PRMT

    def plan(self, n_frames: int, params, geometry) -> list[Gop]:
        """The GOP table for a clip of ``n_frames`` source frames."""

    def begin(self, session: Session, frames: np.ndarray | None) -> list[tuple[str, bytes]]:
        """Before the first GOP. The encoder passes the source frames and gets the mode's chunks
        back (anchors); the decoder passes None and the mode reads ``session.chunks``."""

    def cond(self, session: Session, gop: Gop) -> Any:
        """The velocity model's conditioning for ``gop`` (a pytree of arrays)."""

    def refine(self, session: Session, gop: Gop, x0, target) -> tuple[Any, list]:
        """The GOP's decoded latents before the autoencoder. The encoder passes the target
        latents and gets the corrected latents and the mode's chunks (a residual); the decoder
        passes None and the mode reads ``session.chunks``."""

    def emit(self, session: Session, gop: Gop, frames: np.ndarray) -> np.ndarray:
        """The output frames a decoded GOP contributes (``frames``: the GOP's source frames
        at the coded size; shared boundary frames dropped)."""
