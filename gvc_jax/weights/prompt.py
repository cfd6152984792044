"""Prompt -> Wan prompt context through the on-disk context cache (docs/wan_text_image.md,
"Prompt-context cache").

:class:`PromptEncoder` runs the umT5 encoder (:mod:`gvc_jax.models.wan.t5`) only on a cache
miss, loading it on the first one, so a warm cache never loads the 11 GB encoder.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from gvc_jax.models.wan.t5 import make_apply
from gvc_jax.weights.context_cache import get_context


class PromptEncoder:
    """Prompt -> Wan context ``[text_len, dim]``, through the disk cache.

    ``load_fn()`` returns the :class:`~gvc_jax.models.wan.t5.UMT5Encoder`; it runs only on the first
    cache miss, so with a warm cache the 11 GB encoder is never loaded. Call
    :meth:`release` before loading the DiT to give its memory back.
    ``fingerprint`` names the weights (e.g. the one ``gvc-convert t5`` wrote
    in ``meta.json``); ``tokenizer`` maps a list of prompts to ``(ids, mask)``.
    """

    def __init__(self, load_fn, tokenizer, fingerprint: str, cache_dir: str | None = None):
        self._load, self.tokenizer, self.fingerprint, self.cache_dir = load_fn, tokenizer, fingerprint, cache_dir
        self._fn = self._state = None
        self.loads = 0

    def _compute(self, prompt: str) -> np.ndarray:
        if self._fn is None:
            graphdef, self._state = nnx.split(self._load())
            self._fn = make_apply(graphdef)
            self.loads += 1
        ids, mask = self.tokenizer([prompt])
        return np.asarray(self._fn(self._state, jnp.asarray(ids), jnp.asarray(mask))[0])

    def __call__(self, prompt: str) -> np.ndarray:
        """The context of ``prompt``; ``cache_dir=False`` computes it without the cache."""
        if self.cache_dir is False:
            return self._compute(prompt)
        return get_context(prompt, self.fingerprint, self._compute, self.cache_dir)

    def release(self) -> None:
        """Drops the encoder's weights (the cache keeps the contexts)."""
        self._fn = self._state = None
