"""Correctly rounded float32 sqrt and reciprocal from uint32 integer steps.

XLA on NVIDIA GPUs lowers f32 division to ``div.full`` (up to 2 ulp off) and may rewrite 1/sqrt(x) to
an approximate rsqrt, so the unit-std scale of :func:`gvc_jax.codebook.combine` is computed here with
bit-by-bit integer algorithms that give IEEE round-to-nearest results (== NumPy float32 sqrt and 1/x)
on every backend. Inputs: positive normal float32 (vectors); a zero input gives zero.
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax

U32 = jnp.uint32
I32 = jnp.int32


def _split(x):
    bits = lax.bitcast_convert_type(x.astype(jnp.float32), U32)
    e = ((bits >> 23) & U32(0xFF)).astype(I32)
    m = (bits & U32(0x7FFFFF)) | U32(0x800000)
    return e, m


def _pack(e_biased, mant24):
    """Float32 from biased exponent and a 24-bit mantissa that may have rounded up to 2^24."""
    carry = mant24 >> 24
    e_biased = e_biased + carry.astype(I32)
    mant = jnp.where(carry > 0, U32(0), mant24 & U32(0x7FFFFF))
    return lax.bitcast_convert_type((e_biased.astype(U32) << 23) | mant, jnp.float32)


def sqrt_rn(x):
    """IEEE float32 sqrt (round to nearest) of positive normal x; 0 -> 0."""
    e, m = _split(x)
    t = e - 150                                     # x = m * 2^t
    odd = (t & 1) == 1
    s = jnp.where(odd, 23, 24)                      # N = m << s has 47 or 48 bits
    be = ((t - s) >> 1) + 150                       # biased exponent of the 24-bit root

    def body(i, carry):
        rem, root = carry
        p = 23 - i                                  # bit pair (2p+1, 2p) of N
        sh = 2 * p - s
        two = jnp.where(sh >= 0, m >> jnp.clip(sh, 0, 31).astype(U32),
                        m << jnp.clip(-sh, 0, 31).astype(U32)) & U32(3)
        rem = (rem << 2) | two
        trial = (root << 2) | U32(1)
        ge = rem >= trial
        rem = jnp.where(ge, rem - trial, rem)
        root = (root << 1) | ge.astype(U32)
        return rem, root

    rem, root = lax.fori_loop(0, 24, body, (jnp.zeros_like(m), jnp.zeros_like(m)))
    root = root + (rem > root).astype(U32)          # no exact ties for square roots
    return jnp.where(x > 0, _pack(be, root), jnp.float32(0))


def reciprocal_rn(x):
    """IEEE float32 1/x (round to nearest even) of positive normal x; 0 -> 0."""
    e, m = _split(x)

    def body(i, carry):                             # long division of 2^47 by m
        rem, q = carry
        rem = rem << 1
        ge = rem >= m
        rem = jnp.where(ge, rem - m, rem)
        return rem, (q << 1) | ge.astype(U32)

    rem, q = lax.fori_loop(0, 47, body, (jnp.ones_like(m), jnp.zeros_like(m)))
    # q = floor(2^47 / m) in (2^23, 2^24]; round half to even on the remainder.
    up = (rem << 1 > m) | ((rem << 1 == m) & ((q & U32(1)) == U32(1)))
    q = q + up.astype(U32)
    pow2 = m == U32(0x800000)
    be = jnp.where(pow2, 254 - e, 253 - e)
    q = jnp.where(pow2, U32(0x800000), q)
    return jnp.where(x > 0, _pack(be, q), jnp.float32(0))
