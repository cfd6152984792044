"""JAX's persistent compilation cache for the ``gvc`` process (docs/cli.md, "Caches").

A second ``gvc`` process with the same shapes reads its compiled programs (the DiT scans, the
VAE, the codebook search) from ``<cache root>/xla`` instead of compiling them again; the cache
root is the weights cache's (``--cache-dir``, ``$GVC_CACHE_DIR``, ``$XDG_CACHE_HOME/gvc_jax``,
``~/.cache/gvc_jax``), and ``--no-cache`` turns both off. The CLI process enables it before
its first compilation; library users call :func:`enable` themselves.
"""
from __future__ import annotations

import os

MIN_COMPILE_SECONDS = 0.0   # keep every program: a second process then compiles nothing


def enable(cache_dir: str | None | bool = None) -> str | None:
    """Points JAX's persistent compilation cache at ``<cache root>/xla``; returns the folder,
    or None when ``cache_dir`` is False."""
    if cache_dir is False:
        return None
    import jax

    from gvc_jax.weights.cache import cache_root

    path = os.path.join(cache_root(cache_dir or None), "xla")
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    try:   # a program compiled at import time may have settled "no cache" already
        from jax._src import compilation_cache
        compilation_cache.reset_cache()
    except (ImportError, AttributeError):
        pass
    return path
