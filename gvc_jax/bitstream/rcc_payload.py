"""Packing of rcc choices into bits (docs/rcc.md §4).

Choices are an int array [S, R, L] (step, row, level), each in [0, 2^bits); a row is a latent
frame, or a group of frames that share one choice. They are written MSB-first, ``bits`` bits
each (1-40), in C order (step, then row, then level), and the last byte is zero-padded. There is
no side info: the size is exactly S * R * L * bits bits, known from the spec and the latent
shape before coding (:func:`gvc_jax.sampler.rcc.rcc_bits`).
"""
from __future__ import annotations

import numpy as np

from gvc_jax.bitstream.bits import BitReader, BitWriter
from gvc_jax.bitstream.errors import BitstreamError

__all__ = ["payload_bits", "payload_bytes", "pack", "unpack", "MAX_CELLS"]

MAX_CELLS = 2 ** 28        # cap on S * R * L, checked before allocating


def _check_shape(shape, bits: int) -> tuple[int, int, int]:
    if not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 40:
        raise ValueError(f"bits must be an int in [1, 40], got {bits!r}")
    if len(shape) != 3 or any(int(n) < 0 for n in shape):
        raise ValueError(f"choices shape must be [S, R, L] with sizes >= 0, got {tuple(shape)}")
    s, f, l = (int(n) for n in shape)
    if s * f * l > MAX_CELLS:
        raise ValueError(f"{s} x {f} x {l} choices exceed the limit {MAX_CELLS}")
    return s, f, l


def payload_bits(shape, bits: int) -> int:
    """Exact payload size in bits: S * R * L * bits."""
    s, f, l = _check_shape(shape, bits)
    return s * f * l * int(bits)


def payload_bytes(shape, bits: int) -> int:
    return (payload_bits(shape, bits) + 7) // 8


def pack(choices, bits: int) -> bytes:
    """Packs integer choices [S, R, L] (each in [0, 2^bits)) into ``payload_bytes`` bytes."""
    c = np.asarray(choices)
    _check_shape(c.shape if c.ndim == 3 else (-1,), bits)
    if not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"choices must be integers, got {c.dtype}")
    flat = c.astype(np.int64).ravel()
    if flat.size and (flat.min() < 0 or flat.max() >= 1 << bits):
        raise ValueError(f"a choice is outside [0, 2^{bits})")
    w = BitWriter()
    for v in flat.tolist():
        w.write(v, bits)
    return w.getvalue()


def unpack(data: bytes, shape, bits: int) -> np.ndarray:
    """Inverse of :func:`pack`: uint32 [S, R, L] (uint64 above 32 bits). A payload of the wrong
    length or with non-zero padding bits raises :class:`BitstreamError`."""
    s, f, l = _check_shape(shape, bits)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BitstreamError("rcc payload: expected bytes")
    n_bits = s * f * l * int(bits)
    if len(data) != (n_bits + 7) // 8:
        raise BitstreamError(f"rcc payload: {len(data)} bytes, expected {(n_bits + 7) // 8}")
    r = BitReader(bytes(data))
    out = np.fromiter((r.read(bits) for _ in range(s * f * l)), np.int64, count=s * f * l)
    if r.read(r.remaining_bits) != 0:
        raise BitstreamError("rcc payload: non-zero padding bits")
    return out.astype(np.uint32 if bits <= 32 else np.uint64).reshape(s, f, l)
