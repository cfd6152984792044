"""Host-side progress for jitted scans, via ``jax.debug.callback``.

A jitted scan cannot print; each step calls :func:`tick`, which forwards the
step number to whatever reporter is installed with :func:`reporting` (none by
default, so library use is silent).
"""
from __future__ import annotations

import contextlib
from typing import Callable

import jax

_REPORTER: list[Callable[[int], None] | None] = [None]


def _on_host(i):
    fn = _REPORTER[0]
    if fn is not None:
        fn(int(i))


def tick(i):
    jax.debug.callback(_on_host, i)


@contextlib.contextmanager
def reporting(fn: Callable[[int], None] | None):
    prev, _REPORTER[0] = _REPORTER[0], fn
    try:
        yield
    finally:
        _REPORTER[0] = prev
