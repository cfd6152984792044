"""The embedded `gaussian` model: an orthonormal block transform + an independent Gaussian prior.

Autoencoder: ``x0 = scale * forward(frames)`` with the orthonormal colour + 4x8x8 DCT-II of
:mod:`gvc_jax.models.block_transform`, so a squared error ``e`` in the latent is
``255^2 * e / scale^2`` in pixel units. Prior: each of the C = 768 coefficient channels is
i.i.d. over latent positions with ``x0 ~ N(mean_c, var_c)``, fitted on Big Buck Bunny by
``scripts/fit_gaussian_prior.py`` (see docs/gaussian_prior.md).

Velocity (docs/design.md §2, interpolant x_t = (1-t) x0 + t eps) in closed form: with
``d = x_t - (1-t) mean`` and ``v = (1-t)^2 var + t^2`` (> 0 on [0, 1]),
``E[x0|x_t] = mean + (1-t) var d / v``, ``E[eps|x_t] = t d / v``, and
``u = E[eps|x_t] - E[x0|x_t] = (t - (1-t) var) d / v - mean``.
"""
from __future__ import annotations

import hashlib
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gvc_jax.models import block_transform as bt_mod

DATA_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                         "gaussian_prior.npz")


class PriorStat(nnx.Variable):
    """Fixed per-channel statistic of the prior (a Variable, not a trainable Param)."""


def load_stats(path: str = DATA_FILE) -> dict:
    """Arrays and metadata of a fitted prior file (no pickle)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


class GaussianPrior(nnx.Module):
    """Analytic video model: block DCT autoencoder and exact velocity of a per-channel Gaussian.

    ``mean`` and ``var`` are per-channel :class:`PriorStat` variables (not Params) of shape [C]; everything
    else is static. Build the default with ``GaussianPrior()`` (the shipped fit) or pass arrays.
    """

    name = "gaussian"
    frames_per_latent = 4
    spatial_multiple = 8

    def __init__(self, mean=None, var=None, *, scale: float | None = None, path: str | None = None):
        if mean is None or var is None or scale is None:
            stats = load_stats(path or DATA_FILE)
            if int(stats["block_t"]) != self.frames_per_latent or \
                    int(stats["block_s"]) != self.spatial_multiple:
                raise ValueError(f"{path or DATA_FILE}: block size does not match the model")
            if not np.allclose(stats["colour_matrix"], bt_mod.colour_matrix(), rtol=0, atol=1e-15):
                raise ValueError(f"{path or DATA_FILE}: colour matrix does not match the model")
            mean = stats["mean"] if mean is None else mean
            var = stats["var"] if var is None else var
            scale = float(stats["scale"]) if scale is None else scale
        mean = np.asarray(mean, np.float64)
        var = np.asarray(var, np.float64)
        c = self.latent_channels
        if mean.shape != (c,) or var.shape != (c,):
            raise ValueError(f"mean/var must have shape ({c},), got {mean.shape} and {var.shape}")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var)) and np.all(var > 0)):
            raise ValueError("mean must be finite and var finite and > 0")
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be finite and > 0, got {scale}")
        self.scale = float(scale)
        self.mean = PriorStat(jnp.asarray(mean, jnp.float32))
        self.var = PriorStat(jnp.asarray(var, jnp.float32))
        self._fingerprint = self._hash(mean, var, self.scale)

    # ---- static description -------------------------------------------------------------
    @property
    def latent_channels(self) -> int:
        return 3 * self.frames_per_latent * self.spatial_multiple ** 2

    @property
    def fingerprint(self) -> str:
        """sha256 of the model's content: transform parameters, scale, mean and var (float64 LE).

        Hashing the arrays rather than the file bytes keeps it independent of the container
        and valid for models built from arrays; any change of the stats changes it.
        """
        return self._fingerprint

    @classmethod
    def _hash(cls, mean, var, scale) -> str:
        h = hashlib.sha256()
        h.update(f"gvc-jax/gaussian/v1 bt={cls.frames_per_latent} bs={cls.spatial_multiple} "
                 f"offset={bt_mod.PIXEL_OFFSET!r} scale={float(scale)!r}\n".encode())
        h.update(np.ascontiguousarray(bt_mod.colour_matrix(), "<f8").tobytes())
        h.update(np.ascontiguousarray(mean, "<f8").tobytes())
        h.update(np.ascontiguousarray(var, "<f8").tobytes())
        return h.hexdigest()

    def latent_shape(self, t: int, h: int, w: int) -> tuple[int, int, int, int]:
        """``(C, T/4, H/8, W/8)``; ValueError if the geometry does not fit the blocks."""
        bt_mod.check_geometry(t, h, w, self.frames_per_latent, self.spatial_multiple)
        return (self.latent_channels, t // self.frames_per_latent, h // self.spatial_multiple,
                w // self.spatial_multiple)

    # ---- autoencoder ---------------------------------------------------------------------
    def encode(self, frames_thwz) -> jax.Array:
        """uint8 frames ``[T,H,W,3]`` -> latent ``x0_cthw`` float32 (jit-able)."""
        if frames_thwz.ndim != 4:
            raise ValueError(f"expected frames [T,H,W,3], got shape {tuple(frames_thwz.shape)}")
        x = bt_mod.forward(jnp.asarray(frames_thwz), self.frames_per_latent,
                           self.spatial_multiple, xp=jnp, dtype=jnp.float32)
        return x * jnp.float32(self.scale)

    def decode(self, x0_cthw) -> jax.Array:
        """Latent ``x0_cthw`` -> frames ``[T,H,W,3]`` float32 in pixel units (0..255, not clipped)."""
        x = jnp.asarray(x0_cthw, jnp.float32)
        if x.ndim != 4:
            raise ValueError(f"expected a latent [C,T',H',W'], got shape {tuple(x.shape)}")
        return bt_mod.inverse(x / jnp.float32(self.scale), self.frames_per_latent,
                              self.spatial_multiple, xp=jnp)

    def decode_uint8(self, x0_cthw) -> jax.Array:
        """:meth:`decode`, rounded and clipped to uint8."""
        return jnp.clip(jnp.round(self.decode(x0_cthw)), 0, 255).astype(jnp.uint8)

    # ---- prior and velocity --------------------------------------------------------------
    def _stats(self, dtype):
        """mean, var broadcastable against ``[..., C, T', H', W']``."""
        m = self.mean[...].astype(dtype)[:, None, None, None]
        v = self.var[...].astype(dtype)[:, None, None, None]
        return m, v

    def velocity(self, x_cthw, t, cond=None) -> jax.Array:
        """Exact ``u = E[eps - x0 | x_t]`` for the per-channel Gaussian prior; ``cond`` is ignored."""
        del cond
        x = jnp.asarray(x_cthw)
        dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
        x = x.astype(dtype)
        t = jnp.asarray(t, dtype)
        m, s2 = self._stats(dtype)
        one_m_t = 1.0 - t
        d = x - one_m_t * m
        v = one_m_t * one_m_t * s2 + t * t
        return (t - one_m_t * s2) * d / v - m

    def x0_hat(self, x_cthw, t, cond=None) -> jax.Array:
        """Posterior mean ``E[x0 | x_t] = x_t - t * u``."""
        return x_cthw - jnp.asarray(t, x_cthw.dtype) * self.velocity(x_cthw, t, cond)

    def sample_prior(self, key_or_seed, tq: int, hq: int, wq: int) -> jax.Array:
        """A draw ``x0 ~ N(mean, var)`` of shape ``[C, T', H', W']`` (for tests)."""
        key = jax.random.key(key_or_seed) if isinstance(key_or_seed, (int, np.integer)) else key_or_seed
        m, s2 = self._stats(jnp.float32)
        z = jax.random.normal(key, (self.latent_channels, tq, hq, wq), jnp.float32)
        return m + jnp.sqrt(s2) * z

    # ---- for the bounds ------------------------------------------------------------------
    def variance_spectrum(self, tq: int, hq: int, wq: int) -> tuple[np.ndarray, np.ndarray]:
        """Compact per-dimension variances: ``(values [C] float64, counts [C])``, count = T'H'W'."""
        vals = np.asarray(self.var[...], np.float64)
        return vals, np.full(vals.shape, tq * hq * wq, np.int64)

    def variances_per_dim(self, tq: int, hq: int, wq: int) -> np.ndarray:
        """Variance of every latent dimension, ``[C, T', H', W']`` float64 (small videos only)."""
        vals = np.asarray(self.var[...], np.float64)
        return np.broadcast_to(vals[:, None, None, None], (vals.size, tq, hq, wq)).copy()

    def pixel_mse(self, latent_sq_err_total: float, n_dims: int) -> float:
        """Per-sample pixel MSE (0..255 units) of a total latent squared error over ``n_dims`` dims."""
        return float(latent_sq_err_total) / n_dims * (255.0 / self.scale) ** 2
