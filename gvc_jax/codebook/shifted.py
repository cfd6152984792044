"""Shifted rcc candidates: signed circular shifts of shared-seed base normals (docs/rcc.md §2).

A row is the vector one rcc choice is made for: one latent frame, a group of G frames laid
end to end, or an interleaved part of either (n values; :mod:`gvc_jax.sampler.rcc`). Shifts
run over n' = 2^c / 2 >= n values (the next power of two; the candidate is the first n of
them). Candidate i of address (seed, gop, step, row, level),
i < 2^bits:

* j = i >> c (the base), r = i mod 2^c, k = r >> 1 (the shift), s = r & 1 (the sign);
* candidate_i[e] = (-1)^s * mask[e] * base_j[(e - k) mod n'], e < n.

``base_j`` is atom j of the row key (the atom layout and quantile table of docs/design.md §3),
``mask[e]`` is the sign of atom ``MASK_INDEX`` of the same key. Each candidate is distributed
exactly as n table normals, and its values are table values up to sign, so a decoder rebuilds
the chosen one bit for bit from one base on any backend. The encoder gets the projections of
all 2n' signed shifts of a base from one FFT cross-correlation,
<candidate_(j, k, s), e> = (-1)^s sum_m base_j[m] w[(m + k) mod n'], w = mask * e (e padded
with zeros to n'), so a choice among 2^bits candidates draws 2^(bits-1) normals instead of
2^bits * n. Indices may exceed 32 bits, so JAX carries them as (hi, lo) uint32 words.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gvc_jax.codebook.generate import atoms_c4
from gvc_jax.codebook.reference import bits16_numpy
from gvc_jax.codebook.table import QUANTILES
from gvc_jax.codebook.threefry import address_key, threefry2x32

U32 = jnp.uint32
SHIFT_TAG = 0x53484600        # "SHF\0": first counter word of the row key
MASK_INDEX = 0xFFFFFFFF       # the atom whose signs are the mask (never a base: j < 2^31)
MAX_BITS = 40
CHUNK_BYTES = 2 << 30         # cap on one pass of the encoder's search


def row_key(seed, gop, step, row, level, uint32):
    """Key (two uint32 words) of one (seed, gop, step, row, level) address; NumPy or JAX."""
    k0, k1 = address_key(seed, gop, step, row, uint32)
    return threefry2x32(k0, k1, uint32(SHIFT_TAG), level, uint32)


def layout(bits: int, n: int) -> tuple[int, int, int]:
    """(n', c, bases) of a choice among 2^bits candidates over rows of n values: n' the shift
    period (a power of two >= n), c = log2(2 n') index bits of (shift, sign), and the number of
    bases, 2^(bits - c) (or 1 when 2^bits <= 2 n': then only shifts k < 2^(bits-1) are used)."""
    if not 1 <= bits <= MAX_BITS:
        raise ValueError(f"bits must lie in [1, {MAX_BITS}], got {bits}")
    n_p = 1 << max(0, int(n - 1).bit_length())
    c = n_p.bit_length()                 # 2 n' = 2^c
    if bits - c > 31:
        raise ValueError(f"{bits}-bit choices over rows of {n} values need more than 2^31 bases")
    return n_p, c, 1 << max(0, bits - c)


def _keys(seed, gop, step, level, rows: int):
    u = lambda v: jnp.asarray(v, U32) if isinstance(v, int) else jnp.asarray(v).astype(U32)
    return jax.vmap(lambda r: row_key(u(seed), u(gop), u(step), r, u(level), U32))(
        jnp.arange(rows, dtype=U32))


def _vectors(keys, j_rk, n: int):
    """Atoms j_rk [R, k] of each row's key: float32 [R, k, n]."""
    nc = -(-n // 4)
    a = atoms_c4((keys[0][:, None, None], keys[1][:, None, None]), j_rk, nc)
    return a.reshape(j_rk.shape + (nc * 4,))[..., :n]


def _mask(keys, n: int):
    m = _vectors(keys, jnp.full((keys[0].shape[0], 1), MASK_INDEX, U32), n)[:, 0]
    return jnp.where(m < 0, jnp.float32(-1), jnp.float32(1))


def chosen(seed, gop, step, level, idx_r2, n: int, bits: int):
    """The chosen candidate of each row: float32 [R, n] for indices idx_r2 [R, 2] = (hi, lo)
    uint32 words."""
    n_p, c, _ = layout(bits, n)
    idx = jnp.asarray(idx_r2).astype(U32)
    hi, lo = idx[:, 0], idx[:, 1]
    keys = _keys(seed, gop, step, level, idx.shape[0])
    j = (lo >> c) | (hi << (32 - c)) if c < 32 else hi
    r = lo & U32((1 << c) - 1)
    k, s = (r >> 1).astype(jnp.int32), r & U32(1)
    base = _vectors(keys, j[:, None], n_p)[:, 0]                          # [R, n']
    e = jnp.arange(n, dtype=jnp.int32)[None, :]
    rolled = jnp.take_along_axis(base, (e - k[:, None]) % n_p, axis=1)   # base[(e - k) mod n']
    sign = jnp.where(s == 1, jnp.float32(-1), jnp.float32(1))
    return rolled * _mask(keys, n_p)[:, :n] * sign[:, None]


def search(seed, gop, step, level, e_rn, want_r, bits: int, bases_per_chunk: int):
    """Per row, the candidate whose projection on e_r is nearest want_r.

    Returns (indices uint32 [R, 2] as (hi, lo) words, projections float32 [R]). Bases are drawn
    and correlated ``bases_per_chunk`` at a time (fewer if a pass would exceed
    ``CHUNK_BYTES``); ties keep the lowest index. Encoder only: the
    FFT's float32 projections are not bit-exact across backends, and the decoder never
    recomputes them."""
    R, n = e_rn.shape
    n_p, c, nb = layout(bits, n)
    shifts = min(n_p, 1 << (bits - 1))           # shifts k in use per base
    # ~32 bytes per value and pass (base, spectrum, products, distances): at most ~2 GiB
    chunk = max(1, min(int(bases_per_chunk), nb, CHUNK_BYTES // (32 * R * n_p)))
    n_chunks = -(-nb // chunk)
    keys = _keys(seed, gop, step, level, R)
    e_p = jnp.pad(e_rn.astype(jnp.float32), ((0, 0), (0, n_p - n)))
    w = jnp.fft.rfft(_mask(keys, n_p) * e_p, axis=-1)                    # [R, n'/2+1]
    want = want_r.astype(jnp.float32)[:, None, None]
    k_ok = (jnp.arange(n_p) < shifts)[None, None, :]

    def body(carry, ci):
        best_d, best_j, best_r, best_p = carry
        j = ci * U32(chunk) + jnp.arange(chunk, dtype=U32)                # [chunk]
        base = _vectors(keys, jnp.broadcast_to(j, (R, chunk)), n_p)        # [R, chunk, n']
        p = jnp.fft.irfft(jnp.conj(jnp.fft.rfft(base, axis=-1)) * w[:, None, :], n=n_p, axis=-1)
        valid = (j[None, :, None] < U32(nb)) & k_ok
        d_pos = jnp.where(valid, jnp.abs(p - want), jnp.inf)
        d_neg = jnp.where(valid, jnp.abs(p + want), jnp.inf)
        neg = d_neg < d_pos
        d = jnp.minimum(d_pos, d_neg).reshape(R, -1)
        a = jnp.argmin(d, axis=1)
        take = lambda x: jnp.take_along_axis(x.reshape(R, -1), a[:, None], axis=1)[:, 0]
        d_a, s, p_a = take(d), take(neg), take(p)
        ja = ci * U32(chunk) + (a // n_p).astype(U32)
        ra = (a % n_p).astype(U32) * U32(2) + s.astype(U32)
        better = d_a < best_d
        return (jnp.where(better, d_a, best_d), jnp.where(better, ja, best_j),
                jnp.where(better, ra, best_r),
                jnp.where(better, jnp.where(s, -p_a, p_a), best_p)), None

    init = (jnp.full((R,), jnp.inf, jnp.float32), jnp.zeros((R,), U32), jnp.zeros((R,), U32),
            jnp.zeros((R,), jnp.float32))
    (_, j, r, proj), _ = lax.scan(body, init, jnp.arange(n_chunks, dtype=U32))
    lo = (j << c) | r if c < 32 else r
    hi = j >> (32 - c) if c < 32 else j
    return jnp.stack([hi, lo], axis=1), proj


def words_to_int(idx_w2) -> np.ndarray:
    """(hi, lo) uint32 words [..., 2] -> uint64 [...] (host)."""
    w = np.asarray(idx_w2).astype(np.uint64)
    return (w[..., 0] << np.uint64(32)) | w[..., 1]


def int_to_words(idx) -> np.ndarray:
    """uint64-valued [...] -> (hi, lo) uint32 words [..., 2] (host)."""
    v = np.asarray(idx).astype(np.uint64)
    return np.stack([v >> np.uint64(32), v & np.uint64(0xFFFFFFFF)], axis=-1).astype(np.uint32)


# ---- NumPy reference -----------------------------------------------------------------------
def chosen_numpy(seed, gop, step, row, level, index: int, n: int, bits: int) -> np.ndarray:
    """Reference of one candidate: float32 [n], NumPy only."""
    n_p, c, _ = layout(bits, n)
    u = lambda v: np.array([int(v)], dtype=np.uint32)
    with np.errstate(over="ignore"):
        key = row_key(u(seed), u(gop), u(step), u(row), u(level), np.uint32)
    index = int(index)
    j, r = index >> c, index & ((1 << c) - 1)
    k, s = r >> 1, r & 1
    base = QUANTILES[bits16_numpy(key, [j], n_p)][0]
    mask = np.where(QUANTILES[bits16_numpy(key, [MASK_INDEX], n_p)][0] < 0, -1.0, 1.0)
    out = (np.roll(base, k) * mask.astype(np.float32))[:n]
    return (-out if s else out).astype(np.float32)
