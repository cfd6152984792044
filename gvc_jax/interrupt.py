"""Ctrl-C that works while XLA runs (docs/cli.md, "Interrupting").

A jitted scan holds the main thread in native code, where Python cannot deliver
KeyboardInterrupt until the scan ends (a minute or more for a GOP). So a command runs its work
in a worker thread while the main thread waits in short joins; on Ctrl-C the main thread
removes every temporary file being written (``gvc_jax.fileutil``), says so in one line and
exits with 130 at once. Outputs are only ever renamed into place when complete, so nothing
partial remains and an existing output is untouched.
"""
from __future__ import annotations

import os
import sys
import threading
from typing import Callable, TypeVar

from gvc_jax.fileutil import remove_live_temps

T = TypeVar("T")
EXIT_INTERRUPTED = 130


def run_interruptible(fn: Callable[[], T], poll_s: float = 0.05) -> T:
    """``fn()`` in a worker thread; its result, or its exception re-raised here."""
    box: dict = {}

    def work():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            box["error"] = e

    t = threading.Thread(target=work, name="gvc-work", daemon=True)
    t.start()
    try:
        while t.is_alive():
            t.join(poll_s)
    except KeyboardInterrupt:
        remove_live_temps()
        sys.stderr.write("\ngvc: error: interrupted; no output written\n")
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)
    if "error" in box:
        raise box["error"]
    return box["value"]
