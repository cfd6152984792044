"""Bit-exact addressable codebook (docs/design.md §3).

Atom (seed, gop, step, frame, k) is a pure function of five integers: Threefry-2x32 words under an
address key, split into 16-bit halves, through a table of normal quantiles. ``atoms``/``select_topm``/
``combine``/``init_noise`` use JAX; the ``*_numpy`` functions need NumPy only (JAX is imported lazily).
"""
from gvc_jax.codebook.reference import (atoms_numpy, combine_numpy, init_noise_numpy,
                                        select_topm_numpy)

_JAX_NAMES = ("atoms", "select_topm", "combine", "init_noise", "auto_chunk", "scores")

__all__ = ["atoms", "atoms_numpy", "select_topm", "select_topm_numpy", "combine", "combine_numpy",
           "init_noise", "init_noise_numpy", "auto_chunk"]


def __getattr__(name):
    if name in _JAX_NAMES:
        from gvc_jax.codebook import ops
        return getattr(ops, name)
    raise AttributeError(f"module 'gvc_jax.codebook' has no attribute {name!r}")
