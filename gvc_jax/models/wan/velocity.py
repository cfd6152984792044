"""Wan 2.1 as the codec's velocity model, for T2V, I2V and FLF2V (docs/wan.md).

:class:`WanVelocity` is the velocity adapter the sampler runs: it adds the batch axis, gives the
DiT its time as ``t * 1000`` (Wan's timestep scale), passes the prompt context and, for the
image models, the CLIP tokens and the mask/anchor latents of
:mod:`gvc_jax.models.wan.i2v`; when the conditioning carries a negative context it applies
classifier-free guidance ``u = u_neg + g (u_cond - u_neg)`` in one batched forward.
:func:`geometry` is the codec geometry of a DiT config over the Wan VAE. Loading a download
folder is :func:`gvc_jax.weights.wan.load`.
"""
from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from gvc_jax.models.protocol import Geometry

GEOMETRY_VAE_STRIDE = 8


class WanVelocity(nnx.Module):
    """``velocity(x [C,T,H,W], t in [0,1], cond) -> u`` over a :class:`WanDiT`.

    ``cond = {"context": [L, D]}``, plus ``"negative": [L, D]`` and ``"guidance": scalar`` for
    classifier-free guidance; for I2V/FLF2V also ``"clip": [N, D_clip]`` (CLIP tokens) and
    ``"y": [20, T, H, W]`` (mask and anchor latents, :mod:`gvc_jax.models.wan.i2v`), which both
    guidance branches share.
    """

    def __init__(self, dit):
        self.dit = dit

    def velocity(self, x_cthw, t, cond):
        t1000 = jnp.asarray(t, jnp.float32) * jnp.float32(1000.0)
        ctx, clip, y = cond["context"], cond.get("clip"), cond.get("y")
        if "negative" not in cond:
            return self.dit(x_cthw[None], t1000.reshape(1), ctx[None],
                            None if clip is None else clip[None],
                            None if y is None else y[None])[0]
        two = lambda a: None if a is None else jnp.stack([a, a])  # noqa: E731
        u = self.dit(two(x_cthw), two(t1000), jnp.stack([ctx, cond["negative"]]), two(clip),
                     two(y))
        g = jnp.asarray(cond["guidance"], jnp.float32)
        return u[1] + g * (u[0] - u[1])


def geometry(dit_cfg, z_dim: int) -> Geometry:
    """Frames per latent, causality, pixel multiple and stride of a DiT over the Wan VAE."""
    patch = tuple(int(p) for p in dit_cfg.patch_size)
    if patch[0] != 1 or patch[1] != patch[2]:
        raise ValueError(f"unsupported DiT patch {patch}")
    return Geometry(frames_per_latent=4, causal=True,
                    spatial_multiple=GEOMETRY_VAE_STRIDE * patch[1],
                    spatial_stride=GEOMETRY_VAE_STRIDE, latent_channels=z_dim)
