"""The interface of a coding (docs/codec.md, "Codings").

A coding turns one GOP's target latents into its payload (the ``IDX `` chunk) and replays the
decoder's latents from it. It declares its parameter group (``Params``, fields of
:mod:`gvc_jax.codec.fields`), which the header carries for streams that use it, and it knows
its payload size from the parameters and the geometry alone, before coding.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol


class Coding(Protocol):
    name: str
    summary: str                      # one line for ``--coding``'s help
    Params: type                      # the parameter group
    label_keys: tuple[str, ...]       # the fields that name a rate point (gvc eval)
    batch: bool                       # has :meth:`encode_batch` (gvc batch)

    def check_params(self, params) -> None:
        """Cross-field rules of the group (UsageError)."""

    def check_model(self, params, model) -> None:
        """What the model must offer for this coding (UsageError)."""

    def header_entries(self, params, n_latent: int) -> dict:
        """Header entries beyond the group's fields (or replacing them)."""

    def read_entries(self, codec: dict, values: dict, n_latent: int) -> dict:
        """The group's values from those header entries (UsageError if malformed)."""

    def payload_bits(self, params, model, n_latent: int) -> int:
        """Exact payload bits of one GOP of ``n_latent`` latent frames."""

    def encode_gop(self, session, gop, x0, x_T, cond) -> bytes:
        """The encoder: one GOP's packed payload."""

    def decode_gop(self, session, gop, payload: bytes, x_T, cond) -> Any:
        """The decoder: the GOP's latents from its payload."""

    def cost(self, params, model, shape_cthw) -> dict:
        """``{"atom_samples", "model_evaluations"}`` of encoding one GOP (both decode passes
        included)."""

    def progress_steps(self, params) -> int | None:
        """Progress ticks of one GOP pass (None: not known before the model plans it)."""

    def rate_knob(self, params) -> tuple[int, int, Callable[[int], Any]] | None:
        """Rate control: ``(lo, hi, value -> params)`` of a knob the payload grows with, or
        None when the coding has none (its rate is set directly)."""
