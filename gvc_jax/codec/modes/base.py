"""The interface of a coding mode (docs/codec.md, "Modes").

A mode decides how a clip is cut into GOPs and what each GOP is conditioned on, and owns the
chunks and state that go with it (anchors, residuals). A stream codes with a fresh instance of
its mode class; encoder and decoder call the same methods with the same
:class:`~gvc_jax.codec.session.Session`.
"""
from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from gvc_jax.codec.geometry import Gop


class Mode(Protocol):
    name: str
    chunk_tags: tuple[str, ...]     # payload chunks the mode writes besides IDX and PRMT
    groups: tuple[tuple[str, type], ...]   # (owner, parameter group) the mode uses
    owners: frozenset[str]          # the owners of those groups
    independent_gops: bool          # no GOP needs anything from another (batchable)
    anchors_per_gop: int            # anchor frames conditioning each GOP (CLIP images, VAE clip)

    def plan(self, n_frames: int, params, geometry) -> list[Gop]:
        """The GOP table for a clip of ``n_frames`` source frames."""

    def adapt(self, params, height: int, width: int, fixed: frozenset[str]):
        """The parameters for a source of this size (``fixed``: fields the user set)."""

    def begin(self, session, frames: np.ndarray | None) -> list[tuple[str, bytes]]:
        """Before the first GOP. The encoder passes the source frames and gets the mode's chunks
        back (anchors); the decoder passes None and the mode reads ``session.chunks``."""

    def cond(self, session, gop: Gop) -> Any:
        """The velocity model's conditioning for ``gop`` (a pytree of arrays)."""

    def refine(self, session, gop: Gop, x0, target) -> tuple[Any, list]:
        """The GOP's decoded latents before the autoencoder. The encoder passes the target
        latents and gets the corrected latents and the mode's chunks (a residual); the decoder
        passes None and the mode reads ``session.chunks``."""

    def emit(self, session, gop: Gop, frames: np.ndarray) -> np.ndarray:
        """The output frames a decoded GOP contributes (``frames``: the GOP's source frames
        at the coded size; shared boundary frames dropped)."""

    def side_ladder(self, params) -> list:
        """Rate control: parameters of the mode's side information from the best setting
        towards smaller chunks (``[]``: the mode sends none)."""

    def reserve_share(self, params) -> float:
        """Rate control: the share of the bytes left after the indices kept for the chunks
        :meth:`refine` writes (0: none)."""

    def set_budget(self, budget: int | None) -> None:
        """Rate control: bytes the encoder's :meth:`refine` chunks may take in all."""

    def report(self, params) -> dict:
        """Entries of the compress report that describe the mode's side information."""
