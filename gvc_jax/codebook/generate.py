"""Atom generation on device: address keys, the table lookup and four elements per Threefry call.

The building blocks every JAX path shares (:mod:`~gvc_jax.codebook.ops`,
:mod:`~gvc_jax.codebook.scoring`, :mod:`~gvc_jax.codebook.mosaic_scores`, the rcc candidates).
They follow the layout of docs/codebook.md ("Address scheme", "Transform") and give the same
float32 bits as :mod:`gvc_jax.codebook.reference`.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from gvc_jax.codebook.table import GRID_LOG2, QUANTILES
from gvc_jax.codebook.threefry import address_key, threefry2x32

U32 = jnp.uint32


def u32(x):
    """An address component as a uint32 scalar; a Python int outside [0, 2^32) is a ValueError."""
    if isinstance(x, (int, np.integer)):
        if not 0 <= int(x) < 2 ** 32:
            raise ValueError(f"address component {int(x)} is not in [0, 2^32)")
        return jnp.asarray(np.uint32(x))
    return jnp.asarray(x).astype(U32)


def frame_key(seed, gop, step, frame):
    """Address key (two uint32 words) of the atoms of (seed, gop, step, frame)."""
    return address_key(u32(seed), u32(gop), u32(step), u32(frame), U32)


# The table in grid units as int16 (128 KiB): QUANTILES == TABLE_I16 * 2^-12 exactly.
TABLE_I16 = np.round(QUANTILES.astype(np.float64) * (1 << GRID_LOG2)).astype(np.int16)
assert np.array_equal(TABLE_I16.astype(np.float32) * np.float32(2.0 ** -GRID_LOG2), QUANTILES)
LOOKUPS = ("i16", "f32")
DEFAULT_LOOKUP = "i16"


def lookup(b, mode: str = DEFAULT_LOOKUP):
    """Table value of 16-bit indices b (uint32); both modes give the same float32 bits.

    "i16" gathers int16 grid units (half the bytes of "f32") and scales by 2^-12, exact. Each
    index is used once: uses of the Threefry words multiply the elemental code XLA emits.
    On an H200 one 720p step's scores take 81 ms with "i16", 186 ms with "f32" and 129 ms with
    a 32,768-entry antisymmetric half table (bench/results/h200/profile_gpu.json)."""
    i = b.astype(jnp.int32)
    if mode == "f32":
        return jnp.asarray(QUANTILES)[i]
    if mode == "i16":
        return jnp.asarray(TABLE_I16)[i].astype(jnp.float32) * jnp.float32(2.0 ** -GRID_LOG2)
    raise ValueError(f"unknown lookup {mode!r}")


def atoms_c4(key, k, nc: int, mode: str = DEFAULT_LOOKUP):
    """Atoms of key for atom numbers k (uint32 [...]) as float32 [..., nc, 4] (4 per call)."""
    c = lax.broadcasted_iota(U32, k.shape + (nc,), k.ndim)
    w0, w1 = threefry2x32(key[0], key[1], c, k[..., None], U32)
    b = jnp.stack([w0 >> 16, w0 & U32(0xFFFF), w1 >> 16, w1 & U32(0xFFFF)], axis=-1)
    return lookup(b, mode)
