"""The one registry of codings and modes (docs/codec.md, "Modes" and "Codings").

A coding (:mod:`gvc_jax.codec.codings`) turns one GOP's target latents into payload bits and
back; a mode (:mod:`gvc_jax.codec.modes`) cuts a clip into GOPs and conditions each one. Both
declare their parameter group here once; :mod:`gvc_jax.codec.params` builds the parameters,
the flags and the header from these tables, and the stream reader checks a header's ``mode``
and ``coding`` against them. Adding a coding is one new module and one line below.
"""
from __future__ import annotations

from gvc_jax.codec.codings import rcc, topm
from gvc_jax.codec.errors import UsageError
from gvc_jax.codec.modes import flf2v, i2v, t2v

CODINGS = {c.name: c for c in (topm.TOPM, rcc.RCC)}
MODES = {m.name: m for m in (t2v.T2V, i2v.I2V, flf2v.FLF2V)}


def coding(name: str):
    if name not in CODINGS:
        raise UsageError(f"coding {name!r} is not available (available: {', '.join(CODINGS)})")
    return CODINGS[name]


def mode(name: str):
    """The mode class of ``name``; a stream codes with a fresh instance (it holds the mode's
    state: anchors, residuals)."""
    if name not in MODES:
        raise UsageError(f"mode {name!r} is not available (available: {', '.join(MODES)})")
    return MODES[name]


def mode_groups() -> list[tuple[str, type]]:
    """``(owner, parameter group)`` of every mode, each group once."""
    out = {}
    for m in MODES.values():
        for owner, group in m.groups:
            out.setdefault(owner, group)
    return list(out.items())
