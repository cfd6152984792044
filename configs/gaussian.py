"""Config of the embedded `gaussian` model (analytic prior, no weights).

    gvc compress clip.mp4 -o clip.gvc --config gaussian

Settings mirror :class:`gvc_jax.models.gaussian.GaussianPrior`: 4x8x8 orthonormal block DCT of
the colour-rotated frames (768 latent channels) and per-channel stats from
``gvc_jax/data/gaussian_prior.npz`` (refit with ``python scripts/fit_gaussian_prior.py --out ...``).
"""
from __future__ import annotations

import ml_collections


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    """``arg`` is unused (a single variant); kept for the common ``get_config(arg)`` interface."""
    del arg
    cfg = ml_collections.ConfigDict()
    cfg.name = "gaussian"
    cfg.model = "gaussian"
    cfg.block_t = 4
    cfg.block_s = 8
    cfg.latent_channels = 3 * cfg.block_t * cfg.block_s * cfg.block_s
    cfg.colour_basis = "orthonormal (1,1,1)/sqrt3, (1,0,-1)/sqrt2, (1,-2,1)/sqrt6"
    cfg.pixel_offset = 0.5
    cfg.data_file = "gvc_jax/data/gaussian_prior.npz"
    cfg.needs_weights = False
    return cfg
