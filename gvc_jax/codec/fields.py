"""How a codec parameter is declared (docs/codec.md, "Parameters").

A parameter is a field of a small frozen dataclass, its *group*: the common group
(:mod:`gvc_jax.codec.params`), each coding's (:mod:`gvc_jax.codec.codings`) and each mode's
(:mod:`gvc_jax.codec.modes`). The field's metadata says everything that derives from it: the
help text and the ``gvc compress`` flag, the type, the choices and the numeric range (one set of
limits for flags, presets and stream headers), and whether the value travels in the header.
This module imports nothing heavy, so the command line can build its parser without JAX.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from gvc_jax.codec.errors import UsageError

TYPES = {"int": int, "float": float, "str": str}


def param(default, help: str, *, lo=None, hi=None, lo_open: bool = False, choices=None,
          header: bool = True, flag: bool = True, omit_default: bool = False):
    """One parameter: ``lo``/``hi`` bound a number (``lo_open``: lo itself excluded),
    ``choices`` a string; ``header``: written in the stream header (``omit_default``: only
    when it differs from its default, so a field costs no bytes where it is not used);
    ``flag``: offered as a ``gvc compress`` flag."""
    return dataclasses.field(default=default, metadata={
        "help": help, "lo": lo, "hi": hi, "lo_open": lo_open, "choices": choices,
        "header": header, "flag": flag, "omit_default": omit_default})


def type_of(f: dataclasses.Field):
    """int, float, str, or None for an optional integer (``Any``)."""
    return TYPES.get(str(f.type))


def cast(f: dataclasses.Field, v):
    """Strict type of a value: ints stay ints (no bools, no floats), floats accept ints."""
    t = type_of(f)
    if t is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise UsageError(f"{f.name} must be a number, got {v!r}")
        return float(v)
    if t is str:
        if not isinstance(v, str):
            raise UsageError(f"{f.name} must be a string, got {v!r}")
        return v
    if v is None and t is None:
        return v
    if isinstance(v, bool) or not isinstance(v, int):
        raise UsageError(f"{f.name} must be an integer, got {v!r}")
    return v


def check(f: dataclasses.Field, v: Any) -> None:
    """The field's own range and choices (cross-field rules live with their group)."""
    md = f.metadata
    if md["choices"] and v not in md["choices"]:
        raise UsageError(f"{f.name} must be one of {', '.join(md['choices'])}, got {v!r}")
    if v is None or isinstance(v, str):
        return
    lo, hi = md["lo"], md["hi"]
    if v != v or (lo is not None and (v < lo or (md["lo_open"] and v == lo))) or \
            (hi is not None and v > hi):
        left = "(" if md["lo_open"] else "["
        span = f"{left}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
        raise UsageError(f"{f.name} = {v} is outside {span}")
