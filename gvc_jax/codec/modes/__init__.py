"""Coding modes, one small module each (docs/codec.md, "Modes")."""
from __future__ import annotations

from gvc_jax.codec.errors import UsageError
from gvc_jax.codec.modes.base import Mode, Session
from gvc_jax.codec.modes.flf2v import FLF2V
from gvc_jax.codec.modes.i2v import I2V
from gvc_jax.codec.modes.t2v import T2V

MODES: dict[str, Mode] = {"t2v": T2V(), "i2v": I2V(), "flf2v": FLF2V()}


def get(name: str) -> Mode:
    if name not in MODES:
        raise UsageError(f"mode {name!r} is not available (available: {', '.join(MODES)})")
    return MODES[name]


__all__ = ["MODES", "Mode", "Session", "get"]
