"""Threefry-2x32 (20 rounds, Salmon et al. 2011) written once over plain array operators.

The same function runs on NumPy ``uint32`` arrays and on ``jnp.uint32`` arrays: additions wrap
mod 2^32, rotations are two shifts and an or, so results are bit-identical on every backend.
"""
from __future__ import annotations

_ROT = (13, 15, 26, 6, 17, 29, 16, 24)
_PARITY = 0x1BD11BDA
# Address of the seeded initial noise x_T (docs/design.md §2): a step number the sampler never uses.
INIT_STEP = 0xFFFFFFFF
INIT_FRAME = 0xFFFFFFFF


def _rotl(x, r: int):
    return (x << r) | (x >> (32 - r))


def threefry2x32(k0, k1, c0, c1, uint32):
    """Threefry-2x32-20 of counter (c0, c1) under key (k0, k1); all uint32 arrays (broadcast).

    ``uint32`` is the dtype constructor of the array module (``np.uint32`` or ``jnp.uint32``),
    used for the constants so nothing is promoted to a wider type.
    """
    ks = (k0, k1, k0 ^ k1 ^ uint32(_PARITY))
    x0 = c0 + ks[0]
    x1 = c1 + ks[1]
    for r in range(20):
        x0 = x0 + x1
        x1 = _rotl(x1, _ROT[r % 8])
        x1 = x1 ^ x0
        if r % 4 == 3:
            s = (r + 1) // 4
            x0 = x0 + ks[s % 3]
            x1 = x1 + ks[(s + 1) % 3] + uint32(s)
    return x0, x1


def address_key(seed, gop, step, frame, uint32):
    """Key of one (seed, gop, step, frame) address: Threefry keyed by (seed, gop) applied to
    the counter (step, frame). Atom k, call c of that address then uses counter (c, k)."""
    return threefry2x32(seed, gop, step, frame, uint32)
