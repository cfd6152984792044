"""3-D rotary position embedding and the timestep sinusoid of the Wan DiT.

Reference: ``rope_params``/``rope_apply`` and ``sinusoidal_embedding_1d`` in the official
``wan/modules/model.py``. Both build their tables in float64; here the position-independent
parts are built in NumPy float64 and cast to fp32, and the traced timestep is handled in
split-float arithmetic so the sinusoid matches the float64 construction to fp32 rounding.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


def rope_split(head_dim: int) -> tuple[int, int, int]:
    """Per-axis (frame, height, width) rotary widths: d - 4*(d//6), 2*(d//6), 2*(d//6)."""
    part = 2 * (head_dim // 6)
    return head_dim - 2 * part, part, part


@functools.lru_cache(maxsize=64)
def _axis_angles(n: int, width: int, theta: float) -> np.ndarray:
    """Angles [n, width//2] = pos * theta^(-2i/width), float64."""
    inv = 1.0 / np.power(theta, np.arange(0, width, 2, dtype=np.float64) / width)
    return np.outer(np.arange(n, dtype=np.float64), inv)


def rope_tables(grid_fhw: tuple[int, int, int], head_dim: int, theta: float = 10000.0
                ) -> tuple[jax.Array, jax.Array]:
    """cos, sin tables [F*H*W, head_dim//2] (fp32) for tokens in (f, h, w) order.

    Built per axis in float64 on the host (small), then broadcast on device.
    """
    f, h, w = grid_fhw
    widths = rope_split(head_dim)
    parts_cos, parts_sin = [], []
    for n, width, shape in zip((f, h, w), widths,
                               ((f, 1, 1), (1, h, 1), (1, 1, w))):
        ang = _axis_angles(n, width, float(theta))
        c = jnp.asarray(np.cos(ang).astype(np.float32)).reshape(*shape, -1)
        s = jnp.asarray(np.sin(ang).astype(np.float32)).reshape(*shape, -1)
        parts_cos.append(jnp.broadcast_to(c, (f, h, w, c.shape[-1])))
        parts_sin.append(jnp.broadcast_to(s, (f, h, w, s.shape[-1])))
    cos = jnp.concatenate(parts_cos, -1).reshape(f * h * w, head_dim // 2)
    sin = jnp.concatenate(parts_sin, -1).reshape(f * h * w, head_dim // 2)
    return cos, sin


def apply_rope(x_blnh: jax.Array, cos_lk: jax.Array, sin_lk: jax.Array) -> jax.Array:
    """Rotates interleaved pairs (x[2i], x[2i+1]) of the head dim; computed in fp32."""
    b, l, n, h = x_blnh.shape
    x = x_blnh.astype(jnp.float32).reshape(b, l, n, h // 2, 2)
    x0, x1 = x[..., 0], x[..., 1]
    c, s = cos_lk[None, :, None, :], sin_lk[None, :, None, :]
    out = jnp.stack([x0 * c - x1 * s, x0 * s + x1 * c], axis=-1)
    return out.reshape(b, l, n, h)


# ------------------------------------------------------------------ time sinusoid
def _split_bits(v: np.ndarray, bits: int = 12) -> np.ndarray:
    """Rounds float64 ``v`` to ``bits`` significant bits (exact in fp32)."""
    m, e = np.frexp(v)
    return np.ldexp(np.round(m * 2.0**bits), e - bits)


_TWO_PI = 2.0 * np.pi
_P1 = float(_split_bits(np.float64(_TWO_PI)))
_P2 = float(_split_bits(np.float64(_TWO_PI - _P1)))
_P3 = float(np.float32(_TWO_PI - _P1 - _P2))


def sinusoid(t_b: jax.Array, dim: int) -> jax.Array:
    """[cos | sin] of t * 10000^(-i/half), i < half, as fp32 [B, dim].

    The reference forms the angle in float64. Here frequencies are split on the host into
    12-bit pieces (f1, f2) plus an fp32 rest, t is split by masking into a 12-bit head and
    an exact tail, so the large products are exact in fp32; the angle is then reduced
    modulo 2*pi (Cody-Waite, 3-piece 2*pi) before cos/sin. Valid for |t| < ~20000.
    """
    half = dim // 2
    freq = np.power(10000.0, -np.arange(half, dtype=np.float64) / half)
    f1 = _split_bits(freq)
    f2 = _split_bits(freq - f1)
    f3 = (freq - f1 - f2).astype(np.float32)
    f1, f2 = f1.astype(np.float32), f2.astype(np.float32)

    t = t_b.astype(jnp.float32)[:, None]
    t_hi = jax.lax.bitcast_convert_type(
        jax.lax.bitcast_convert_type(t, jnp.uint32) & jnp.uint32(0xFFFFF000), jnp.float32)
    t_lo = t - t_hi
    big = t_hi * f1  # exact: 12 x 12 significant bits
    k = jnp.round(big * np.float32(1.0 / _TWO_PI))
    red = ((big - k * np.float32(_P1)) - k * np.float32(_P2)) - k * np.float32(_P3)
    mid = t_hi * f2 + t_lo * f1  # each exact, ~|t| * 2^-12
    small = t_lo * f2 + t * f3
    ang = red + (mid + small)
    return jnp.concatenate([jnp.cos(ang), jnp.sin(ang)], axis=-1)
