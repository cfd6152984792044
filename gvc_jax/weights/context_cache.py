"""On-disk cache of prompt contexts (umT5 outputs), keyed by weights and prompt.

The 5.7B-parameter text encoder only turns a prompt into a ``[512, 4096]``
context; the codec needs that context for every GOP but the encoder never
again. So the context is computed once per (model fingerprint, prompt) and
stored at ``<cache>/context/<fingerprint>/<sha256(prompt)>.npz``; the
encoder can then be freed before the DiT is loaded. ``<cache>`` is
``--cache-dir``, ``$GVC_CACHE_DIR``, ``$XDG_CACHE_HOME/gvc_jax`` or ``~/.cache/gvc_jax``. Other weights have another
fingerprint, hence another folder: a stale context is never reused. Writes
are atomic (temp file + ``os.replace``); an unreadable or mismatched file is
recomputed, never trusted.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from typing import Callable

import numpy as np

from gvc_jax.weights.cache import cache_root


def context_path(prompt: str, fingerprint: str, cache_dir: str | None = None) -> str:
    if not fingerprint or any(c in fingerprint for c in "/\\."):
        raise ValueError(f"bad model fingerprint {fingerprint!r}")
    key = hashlib.sha256(prompt.encode("utf-8")).hexdigest()
    return os.path.join(cache_root(cache_dir), "context", fingerprint, f"{key}.npz")


def _read(path: str, prompt: str, fingerprint: str) -> np.ndarray | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["prompt"]) != prompt or str(z["fingerprint"]) != fingerprint:
                return None
            ctx = np.array(z["context"])
            if str(z["dtype"]) == "bfloat16":
                import ml_dtypes
                ctx = ctx.view(ml_dtypes.bfloat16)
            return ctx
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def _write(path: str, ctx: np.ndarray, prompt: str, fingerprint: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    from gvc_jax.fileutil import track_temp, untrack_temp

    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-", suffix=".npz")
    track_temp(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            raw = ctx.view(np.uint16) if str(ctx.dtype) == "bfloat16" else ctx  # npz has no bfloat16
            np.savez(f, context=raw, dtype=np.array(str(ctx.dtype)), prompt=np.array(prompt),
                     fingerprint=np.array(fingerprint))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        untrack_temp(tmp)


def get_context(prompt: str, fingerprint: str, compute_fn: Callable[[str], np.ndarray],
                cache_dir: str | None = None) -> np.ndarray:
    """The cached context for ``prompt``, or ``compute_fn(prompt)`` stored then returned.

    ``compute_fn`` returns the context as an array (e.g. ``[512, 4096]``
    float32, or bfloat16). A cache write that fails (read-only disk) only
    costs the reuse, never the result.
    """
    path = context_path(prompt, fingerprint, cache_dir)
    if os.path.isfile(path):
        ctx = _read(path, prompt, fingerprint)
        if ctx is not None:
            return ctx
    ctx = np.asarray(compute_fn(prompt))
    try:
        _write(path, ctx, prompt, fingerprint)
    except OSError:
        pass
    return ctx
