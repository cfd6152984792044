"""DISTS (Ding, Ma, Wang & Simoncelli 2020) on uint8 RGB video [T,H,W,3], one value per frame
(lower is closer), as the ``dists-pytorch`` 0.1 wheel computes it (docs/metrics.md, "DISTS").

For a pair of frames mapped to [0, 1] (``x / 255``):

1. features: the input itself (3 channels) and the five stage outputs of the VGG16 trunk with
   L2 pooling (:mod:`gvc_jax.metrics.vgg`) run on ``(x - mean) / std`` (ImageNet statistics):
   six maps with 3, 64, 128, 256, 512, 512 channels (1475 in all);
2. per map and channel, over the pixels: means ``mx, my``, variances ``vx = E[(x - mx)^2]``,
   ``vy``, and covariance ``cxy = E[x y] - mx my``;
   ``S1 = (2 mx my + c1) / (mx^2 + my^2 + c1)``, ``S2 = (2 cxy + c2) / (vx + vy + c2)``,
   ``c1 = c2 = 1e-6``;
3. with ``alpha, beta`` (1475 weights each) divided by ``sum(alpha) + sum(beta)``:
   ``DISTS = 1 - sum over channels of (alpha S1 + beta S2)``.

Any frame size works (each L2 pool maps n pixels to ``(n - 1) // 2 + 1``). The network is
:class:`gvc_jax.metrics.vgg.DISTSNet`; finding and reading its weights (torchvision's
``vgg16-397923af.pth`` and the wheel's ``weights.pt``) is :mod:`gvc_jax.weights.dists`, which
builds :class:`DISTS`.
"""
from __future__ import annotations

import numpy as np

from gvc_jax.metrics.psnr import check_video_pair

# jax, flax and the network (gvc_jax.metrics.vgg) are imported on first use, so that
# ``import gvc_jax.metrics.dists`` stays cheap; torch is never imported.


def _micro_batch(step: int) -> int:
    import jax

    # On CPU one frame pair at a time bounds the VGG activations (about 1 GB per 720p pair);
    # accelerators get the whole chunk vectorized.
    return 1 if jax.default_backend() == "cpu" else step


class DISTS:
    """A loaded DISTS network with its jitted batch function; call it on (ref, dist) videos.

    ``model`` is a loaded :class:`gvc_jax.metrics.vgg.DISTSNet`; build one with
    :func:`gvc_jax.weights.dists.load_dists`.
    """

    def __init__(self, model, trunk_path: str | None = None, weights_path: str | None = None):
        import jax
        import jax.numpy as jnp
        from flax import nnx

        self.model, self.trunk_path, self.weights_path = model, trunk_path, weights_path
        graphdef, state = nnx.split(model)

        def run(state, ref_bhwc, dist_bhwc, micro):
            m = nnx.merge(graphdef, state)

            def unit(x):
                return x.astype(jnp.float32) / 255.0

            if micro == ref_bhwc.shape[0]:
                return m.distance(unit(ref_bhwc), unit(dist_bhwc))
            return jax.lax.map(lambda p: m.distance(unit(p[0])[None], unit(p[1])[None])[0],
                               (ref_bhwc, dist_bhwc), batch_size=micro)

        self._state = state
        self._run = jax.jit(run, static_argnames="micro")

    def __call__(self, ref, dist, *, batch: int = 4) -> np.ndarray:
        """Per-frame DISTS, float64 [T]; frames go through in chunks of ``batch``."""
        ref, dist = check_video_pair(ref, dist)
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
            raise ValueError(f"batch must be a positive integer, got {batch!r}")
        n_t = ref.shape[0]
        step = min(int(batch), n_t)
        micro = _micro_batch(step)
        out = np.empty(n_t, np.float64)
        for t0 in range(0, n_t, step):
            r, d = ref[t0:t0 + step], dist[t0:t0 + step]
            n = r.shape[0]
            if n < step:  # pad the last chunk so every call has one compiled shape
                pad = ((0, step - n), (0, 0), (0, 0), (0, 0))
                r, d = np.pad(r, pad), np.pad(d, pad)
            out[t0:t0 + n] = np.asarray(self._run(self._state, r, d, micro), np.float64)[:n]
        return out
