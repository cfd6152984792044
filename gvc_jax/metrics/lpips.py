"""LPIPS-Alex v0.1 on uint8 RGB video [T,H,W,3], one value per frame (lower is closer).

For a pair of frames mapped to [-1, 1]:

1. scaling layer: ``(x - shift) / scale`` with ``shift = 2*mean - 1`` and ``scale = 2*std``, the
   ImageNet per-channel mean/std expressed for [-1, 1] input (what the trunk was trained on);
2. the AlexNet trunk (:mod:`gvc_jax.metrics.alexnet`) gives five ReLU maps per frame;
3. each map is divided, per pixel, by its channel-vector L2 norm plus 1e-10;
4. the squared difference of the two normalised maps goes through a 1x1 linear head
   without bias (one weight per channel), is averaged over the pixels, and the five layer
   values are summed.

This module holds the metric around a loaded network; finding and converting the weights
(the heads ship in the ``lpips`` wheel, the trunk is torchvision's ``alexnet-owt-7be5be79.pth``)
is :mod:`gvc_jax.weights.lpips`, whose ``load(alexnet=None)`` returns an :class:`LPIPS` and
raises :class:`MetricUnavailable` naming what it looked for when a file is missing; nothing is
substituted. No torch import: the files are read by our own restricted reader.
"""
from __future__ import annotations

import hashlib

import numpy as np

from gvc_jax.metrics.errors import MetricUnavailable
from gvc_jax.metrics.psnr import check_video_pair

# jax, flax and the network (gvc_jax.metrics.alexnet) are imported on first load, so that
# ``import gvc_jax.metrics`` stays cheap; torch is never imported.


class LPIPS:
    """A loaded LPIPS-Alex with its jitted batch function; call it on (ref, dist) videos."""

    def __init__(self, model, trunk_path: str | None = None, heads_path: str | None = None):
        """``model``: a loaded :class:`gvc_jax.metrics.alexnet.LPIPSAlex`
        (:func:`gvc_jax.weights.lpips.load` gives a ready :class:`LPIPS`)."""
        import jax
        from flax import nnx

        from gvc_jax.metrics.alexnet import min_side, to_unit

        self.model, self.trunk_path, self.heads_path = model, trunk_path, heads_path
        self.min_side = min_side()
        graphdef, state = nnx.split(model)

        @jax.jit
        def run(state, ref_bhwc, dist_bhwc):
            m = nnx.merge(graphdef, state)
            return m.distance(to_unit(ref_bhwc), to_unit(dist_bhwc))

        self._state, self._run = state, run

    def official_trunk(self) -> bool:
        """Whether the trunk file's SHA-256 starts with the 8 hex digits in its hub name."""
        from gvc_jax.metrics.alexnet import ALEXNET_SHA256_PREFIX

        if self.trunk_path is None:
            return False
        h = hashlib.sha256()
        with open(self.trunk_path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest().startswith(ALEXNET_SHA256_PREFIX)

    def __call__(self, ref, dist, *, batch: int = 8) -> np.ndarray:
        """Per-frame LPIPS, float64 [T]; frames go through in chunks of ``batch``."""
        ref, dist = check_video_pair(ref, dist)
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
            raise ValueError(f"batch must be a positive integer, got {batch!r}")
        n_t, h, w = ref.shape[:3]
        if min(h, w) < self.min_side:
            raise MetricUnavailable(f"LPIPS-Alex needs frames of at least {self.min_side} px a side, "
                                    f"these are {w}x{h}")
        step = min(int(batch), n_t)
        out = np.empty(n_t, np.float64)
        pending = []  # chunks in flight: the next one uploads while this one runs

        def collect():
            t0, n, val = pending.pop(0)
            out[t0:t0 + n] = np.asarray(val)[:n]

        for t0 in range(0, n_t, step):
            r, d = ref[t0:t0 + step], dist[t0:t0 + step]
            n = r.shape[0]
            if n < step:  # pad the last chunk so every call has one compiled shape
                pad = ((0, step - n), (0, 0), (0, 0), (0, 0))
                r, d = np.pad(r, pad), np.pad(d, pad)
            pending.append((t0, n, self._run(self._state, r, d)))
            if len(pending) > 2:
                collect()
        while pending:
            collect()
        return out
