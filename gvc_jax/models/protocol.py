"""What the codec needs from a model (docs/codec.md, "Models").

A codec model is a :class:`VelocityModel` (an NNX module the sampler runs inside its jitted
scans, split once into ``(graphdef, state)``) plus an autoencoder between uint8 frames and
latents, described by one :class:`Geometry`. The codec never knows which model it drives.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:   # the geometry rules are read without JAX (the command line's parser)
    import jax


@runtime_checkable
class VelocityModel(Protocol):
    def velocity(self, x_cthw: jax.Array, t: jax.Array, cond: Any) -> jax.Array:
        """Rectified-flow velocity u = eps - x0 at time t in [0, 1] (fp32, shape of x)."""


@dataclasses.dataclass(frozen=True)
class Geometry:
    """Pixels <-> latents: the one home of a model's shape rules.

    ``frames_per_latent`` source frames make one latent frame; a ``causal`` autoencoder (Wan's
    VAE) takes 1 + k * frames_per_latent frames and gives 1 + k latent frames. Coded frames are
    padded to ``spatial_multiple`` (autoencoder stride times the DiT patch) and each latent
    pixel covers ``spatial_stride`` pixels a side.
    """
    frames_per_latent: int
    causal: bool
    spatial_multiple: int
    spatial_stride: int
    latent_channels: int

    def coded_length(self, n: int) -> int:
        """Smallest valid clip length >= n."""
        if n < 1:
            raise ValueError("a GOP needs at least one frame")
        q = self.frames_per_latent
        if self.causal:
            return 1 + -(-(n - 1) // q) * q
        return -(-n // q) * q

    def latent_frames(self, coded: int) -> int:
        q = self.frames_per_latent
        return 1 + (coded - 1) // q if self.causal else coded // q

    def padded_size(self, h: int, w: int) -> tuple[int, int]:
        m = self.spatial_multiple
        return -(-h // m) * m, -(-w // m) * m

    def latent_shape(self, t: int, h: int, w: int) -> tuple[int, int, int, int]:
        """``(C, T', H', W')`` of a coded clip (t a valid length, h and w padded)."""
        if self.coded_length(t) != t or self.padded_size(h, w) != (h, w):
            raise ValueError(f"{t}x{h}x{w} is not a coded geometry of this model")
        s = self.spatial_stride
        return (self.latent_channels, self.latent_frames(t), h // s, w // s)
