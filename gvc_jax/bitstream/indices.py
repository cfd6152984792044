"""Packing of the per-step, per-frame signed atom choices into bits (docs/design.md §3, docs/bitstream.md §5).

For each step s, then each latent frame f, the M_f chosen indices are sorted ascending, their colex
rank is written in ``bits_for(K, M_f)`` bits, then one sign bit per index (1 = +1) in sorted order.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from gvc_jax.bitstream.bits import BitReader, BitWriter
from gvc_jax.bitstream.enumerative import bits_for, rank, unrank
from gvc_jax.bitstream.errors import BitstreamError

__all__ = ["pack_indices", "unpack_indices", "index_bits", "index_bytes", "MAX_INDEX_CELLS"]

# Cap on S * F * Mmax, the size of the dense arrays unpack_indices returns (checked before allocating):
# a forged header with one huge M among many frames could otherwise ask for terabytes.
MAX_INDEX_CELLS = 2**28


def _check_m(m_per_frame: Sequence[int], K: int) -> list[int]:
    ms = [int(m) for m in m_per_frame]
    if not isinstance(K, (int, np.integer)) or K < 1:
        raise ValueError(f"K must be a positive int, got {K!r}")
    for f, m in enumerate(ms):
        if not 0 <= m <= K:
            raise ValueError(f"M for frame {f} is {m}, outside [0, {K}]")
    return ms


def index_bits(S: int, m_per_frame: Sequence[int], K: int) -> int:
    """Exact payload size in bits: S * sum_f (bits_for(K, M_f) + M_f)."""
    K = int(K)
    ms = _check_m(m_per_frame, K)
    if S < 0:
        raise ValueError(f"S must be >= 0, got {S}")
    width = {m: bits_for(K, m) for m in set(ms)}  # one binomial per distinct M, not per frame
    return int(S) * sum(width[m] + m for m in ms)


def index_bytes(S: int, m_per_frame: Sequence[int], K: int) -> int:
    """Payload size in bytes, ceil(index_bits / 8)."""
    return (index_bits(S, m_per_frame, K) + 7) // 8


def pack_indices(idx_sfm: np.ndarray, sign_sfm: np.ndarray, m_per_frame: Sequence[int], K: int) -> bytes:
    """Pack idx [S, F, Mmax] and signs [S, F, Mmax] (True/1 = +1); only the first M_f of frame f count."""
    K = int(K)
    idx = np.asarray(idx_sfm)
    sgn = np.asarray(sign_sfm)
    ms = _check_m(m_per_frame, K)
    if idx.ndim != 3 or sgn.shape != idx.shape:
        raise ValueError(f"idx and sign must both be [S, F, Mmax], got {idx.shape} and {sgn.shape}")
    S, F, mmax = idx.shape
    if len(ms) != F:
        raise ValueError(f"m_per_frame has {len(ms)} entries for {F} frames")
    if ms and max(ms) > mmax:
        raise ValueError(f"M {max(ms)} exceeds the index array width {mmax}")
    if not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"indices must be integers, got {idx.dtype}")
    if sgn.dtype != np.bool_:
        if not np.all((sgn == 0) | (sgn == 1)):
            raise ValueError("signs must be bool or 0/1")
        sgn = sgn.astype(bool)
    w = BitWriter()
    for s in range(S):
        for f, m in enumerate(ms):
            row = idx[s, f, :m].astype(np.int64)
            if m and (row.min() < 0 or row.max() >= K):
                raise ValueError(f"index out of range [0, {K}) at step {s}, frame {f}")
            order = np.argsort(row, kind="stable")
            srt = row[order]
            if m > 1 and np.any(srt[1:] == srt[:-1]):
                raise ValueError(f"duplicate index at step {s}, frame {f}")
            w.write(rank(srt.tolist(), K), bits_for(K, m))
            signs = sgn[s, f, :m][order]
            if m:
                w.write(int("".join("1" if b else "0" for b in signs), 2), m)
    return w.getvalue()


def unpack_indices(data: bytes, S: int, m_per_frame: Sequence[int], K: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`pack_indices`: idx int32 [S, F, Mmax] sorted per frame, sign bool [S, F, Mmax].

    Padding entries (beyond M_f) are index 0 and sign False. Strict: the byte length must be exactly
    ``index_bytes(S, m_per_frame, K)`` and the final padding bits zero, else BitstreamError.
    """
    K = int(K)
    ms = _check_m(m_per_frame, K)
    mmax = max(ms) if ms else 0
    if S * len(ms) * mmax > MAX_INDEX_CELLS:
        raise BitstreamError(f"index arrays too large: {S} x {len(ms)} x {mmax} > limit {MAX_INDEX_CELLS} entries")
    if S * sum(ms) > 8 * len(data):  # the sign bits alone: cheap, before any binomial is computed
        raise BitstreamError(f"index payload is {len(data)} bytes, too short for the {S * sum(ms)} sign "
                             f"bits of S={S}, K={K}, {len(ms)} latent frames")
    nbits = index_bits(S, ms, K)
    if len(data) != (nbits + 7) // 8:
        raise BitstreamError(
            f"index payload is {len(data)} bytes, expected {(nbits + 7) // 8} for S={S}, K={K}, M={ms}")
    width = {m: bits_for(K, m) for m in set(ms)}
    idx = np.zeros((S, len(ms), mmax), np.int32)
    sgn = np.zeros((S, len(ms), mmax), bool)
    r = BitReader(data)
    for s in range(S):
        for f, m in enumerate(ms):
            code = r.read(width[m])
            idx[s, f, :m] = unrank(code, K, m)  # BitstreamError when code >= C(K, m)
            if m:
                bits = r.read(m)
                sgn[s, f, :m] = [c == "1" for c in format(bits, f"0{m}b")]
    if r.read(r.remaining_bits) != 0:
        raise BitstreamError("index payload has non-zero padding bits")
    return idx, sgn
