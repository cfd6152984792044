"""Entropy-coded tail residual: mid-tread quantiser + context-adaptive range coding through
``constriction`` (docs/residual.md; docs/design.md §7 "I2V", §11).

``encode(r_chw, step) -> bytes``; ``decode(data, shape) -> float32 [C,H,W]`` equals
``reconstruct(r_chw, step)`` bit for bit. Symbols q = rint(r / step), clipped to ±MAX_SYMBOL.
Channel by channel, each in two checkerboard passes, every symbol falls in a context bin taken
from already decoded magnitudes (the previous channel for pass A, the 4 same-channel
neighbours for pass B); each (channel, pass, bin) group has its own two-parameter model
(zero probability, geometric tail), forward-adapted and sent as two index bytes.
Model tables are built with exact IEEE operations only (no exp/log/pow), so a stream decodes
identically on every platform.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

from gvc_jax.bitstream.errors import BitstreamError

__all__ = ["MAX_SYMBOL", "MAX_ELEMENTS", "decode", "encode", "gvcc_zlib", "reconstruct"]

VERSION = 1
MAX_SYMBOL = 1 << 15            # |q| is clipped here (|r| > MAX_SYMBOL * step is saturated)
MAX_ELEMENTS = 1 << 26          # C*H*W accepted by decode (256 MiB of float32)
MAX_BINS = 16
_NO_CTX = 0                     # the bins byte of a single-bin group


def _grid(n: int, start: float, ratio: float) -> np.ndarray:
    """start * ratio**i by sequential multiplication (exact IEEE, platform independent)."""
    return np.multiply.accumulate(np.concatenate([[start], np.full(n - 1, ratio)]))


# P(q = 0) = ODDS/(1+ODDS), odds 2^((i-96)/12); mean of |q|-1 given q != 0 is 2^((j-110)/10).
# Exact starts (powers of two) and literal ratios: the tables are the same on every platform.
_ODDS = _grid(256, 2.0 ** -8, 1.0594630943592953)       # ratio 2^(1/12)
_P0 = _ODDS / (1.0 + _ODDS)
_MU = _grid(256, 2.0 ** -11, 1.0717734625362931)      # ratio 2^(1/10)
_THETA = _MU / (1.0 + _MU)
_LOG2_ODDS = (np.arange(256) - 96) / 12.0               # encoder-side only (index search)
_LOG2_MU = (np.arange(256) - 110) / 10.0


# ------------------------------------------------------------------ quantiser
def _step32(step) -> np.float32:
    s = np.float32(step)
    if not (np.isfinite(s) and s > 0):
        raise ValueError(f"residual step must be a positive finite number, got {step!r}")
    return s


def _quantise(r_chw, step) -> tuple[np.ndarray, np.float32]:
    r = np.asarray(r_chw, np.float32)
    if r.ndim != 3:
        raise ValueError(f"residual must be [C,H,W], got shape {list(r.shape)}")
    if not np.isfinite(r).all():
        raise ValueError("residual has non-finite values")
    s = _step32(step)
    q = np.clip(np.rint(r / s), -MAX_SYMBOL, MAX_SYMBOL).astype(np.int32)
    return q, s


def _dequantise(q: np.ndarray, s: np.float32) -> np.ndarray:
    return q.astype(np.float32) * s


def reconstruct(r_chw: np.ndarray, step: float) -> np.ndarray:
    """What ``decode(encode(r_chw, step), shape)`` returns, computed without coding."""
    q, s = _quantise(r_chw, step)
    return _dequantise(q, s)


# ------------------------------------------------------------------ contexts
def _cross(a: np.ndarray) -> np.ndarray:
    """2*a + its 4 neighbours (zero outside), int64."""
    p = np.pad(a, 1)
    return 2 * a + p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:]


def _bitlen(v: np.ndarray) -> np.ndarray:
    """Exact bit length of non-negative int64 values < 2^53 (frexp is exact)."""
    return np.frexp(v.astype(np.float64))[1].astype(np.int64)


def _ctx_level(a_prev: np.ndarray | None, a_cur: np.ndarray, pass_b: bool) -> np.ndarray | None:
    """Context level per position, about 2*log2 of a local magnitude sum, or None (none).

    Pass A: the previous channel around the position (2*centre + 4 neighbours). Pass B: twice
    the 4 same-channel neighbours (all in pass A) plus the same previous-channel sum."""
    if pass_b:
        p = np.pad(a_cur, 1)
        v = 2 * (p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:])
        if a_prev is not None:
            v = v + _cross(a_prev)
    elif a_prev is None:
        return None
    else:
        v = _cross(a_prev)
    return _bitlen(v * v)


# ------------------------------------------------------------------ model
def _pmf(m: int, i0: int, j: int) -> np.ndarray:
    """Unnormalised probabilities of q in [-m, m]: zero weight P0[i0], tail geometric."""
    p0, th = _P0[i0], _THETA[j]
    tail = ((1.0 - p0) * (1.0 - th) / 2.0) * np.multiply.accumulate(
        np.concatenate([[1.0], np.full(m - 1, th)]))
    return np.concatenate([tail[::-1], [p0], tail])


def _fit(n: int, n0: int, s: int) -> tuple[int, int]:
    """Index pair for n symbols, n0 zeros, s = sum(|q| - 1) over the non-zero ones."""
    nz = n - n0
    odds = (n0 + 0.5) / (nz + 0.5)
    mu = (s + 0.1) / (nz + 0.1)
    i0 = int(np.argmin(np.abs(_LOG2_ODDS - np.log2(odds))))
    j = int(np.argmin(np.abs(_LOG2_MU - np.log2(mu))))
    return i0, j


def _cost_bits(n: np.ndarray, n0: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Ideal code length (bits) of groups under their ML (p0, theta), vectorised."""
    n, n0, s = (np.asarray(x, np.float64) for x in (n, n0, s))
    nz = n - n0
    with np.errstate(divide="ignore", invalid="ignore"):
        h = lambda c, t: np.where(c > 0, c * np.log2(np.maximum(c, 1) / np.maximum(t, 1)), 0.0)
        mu = s / np.maximum(nz, 1)
        geo = np.where(nz > 0, nz * ((mu + 1) * np.log2(mu + 1) - np.where(mu > 0, mu * np.log2(
            np.where(mu > 0, mu, 1)), 0.0)), 0.0)
        return -h(n0, n) - h(nz, n) + nz + geo      # zero flag + sign + geometric magnitude


def _choose_bins(level: np.ndarray, a: np.ndarray) -> tuple[int, int]:
    """(bins, offset) minimising the estimated bits plus side info of one channel pass.

    Bins are [0, o+1), [o+1, o+2), ..., [o+nb-1, inf) in context level; every (nb, o) is
    scored at once from per-level counts."""
    lmax = int(level.max()) + 1
    n = np.bincount(level, minlength=lmax)
    n0 = np.bincount(level, weights=(a == 0), minlength=lmax)
    s = np.bincount(level, weights=np.maximum(a - 1, 0), minlength=lmax)
    cn, c0, cs = (np.concatenate([[0], np.cumsum(x)]) for x in (n, n0, s))

    def span(lo, hi):  # estimated bits of the levels [lo, hi) as one group
        return _cost_bits(cn[hi] - cn[lo], c0[hi] - c0[lo], cs[hi] - cs[lo])

    unit = np.concatenate([[0.0], np.cumsum(span(np.arange(lmax), np.arange(1, lmax + 1)))])
    nb = np.arange(2, min(MAX_BINS, lmax) + 1)[None, :]
    o = np.arange(lmax)[:, None]
    last = np.minimum(o + nb - 1, lmax)                      # start of the last bin
    ok = o + nb - 1 <= lmax - 1
    cost = (span(0, np.minimum(o + 1, lmax)) + unit[last] - unit[np.minimum(o + 1, last)]
            + span(last, lmax) + 16 + 24 * nb)
    cost = np.where(ok, cost, np.inf)
    one = float(span(0, lmax)) + 24
    if cost.size == 0 or one <= cost.min():
        return 1, 0
    k_o, k_nb = np.unravel_index(int(np.argmin(cost)), cost.shape)
    return int(nb[0, k_nb]), int(k_o)


def _bins(level: np.ndarray | None, nb: int, o: int, size: int) -> np.ndarray:
    if level is None or nb == 1:
        return np.zeros(size, np.int64)
    return np.clip(level - o, 0, nb - 1)


# ------------------------------------------------------------------ varints
def _put_varint(out: bytearray, v: int) -> None:
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


class _Reader:
    def __init__(self, data: bytes, pos: int):
        self.data, self.pos = data, pos

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise BitstreamError("residual truncated in its side info")
        self.pos += 1
        return self.data[self.pos - 1]

    def varint(self, limit: int) -> int:
        v = shift = 0
        while True:
            b = self.byte()
            v |= (b & 0x7F) << shift
            shift += 7
            if v > limit or shift > 35:
                raise BitstreamError(f"residual side info value over its limit {limit}")
            if b < 0x80:
                return v


# ------------------------------------------------------------------ coding
def _passes(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat positions of pass A ((y + x) even) and pass B (odd), raster order."""
    even = ((np.arange(h)[:, None] + np.arange(w)[None, :]) % 2 == 0).ravel()
    return np.flatnonzero(even), np.flatnonzero(~even)


def _level_at(q: np.ndarray, ci: int, pb: int, pos: np.ndarray) -> np.ndarray | None:
    """Context levels of channel ``ci``, pass ``pb`` at ``pos`` from what the decoder has:
    channels < ci and, for pass B, pass A of channel ci."""
    a_prev = np.abs(q[ci - 1]).astype(np.int64) if ci else None
    level = _ctx_level(a_prev, np.abs(q[ci]).astype(np.int64), bool(pb))
    return None if level is None else level.ravel()[pos]


def encode(r_chw: np.ndarray, step: float) -> bytes:
    """Residual float [C,H,W] -> self-describing bytes (step and model inside, shape not).

    Layout: version u8, step f32, qmax varint; if qmax > 0: side-info length varint, word
    count varint, side info (per channel and pass: bins byte [offset byte]; per bin: m varint
    [i0 byte, j byte]), then the range coder's u32 words, little endian."""
    import constriction

    q, s = _quantise(r_chw, step)
    c, h, w = q.shape
    qmax = int(np.abs(q).max()) if q.size else 0
    head = bytearray([VERSION]) + struct.pack("<f", float(s))
    _put_varint(head, qmax)
    if qmax == 0:
        return bytes(head)
    side = bytearray()
    enc = constriction.stream.queue.RangeEncoder()
    cat = constriction.stream.model.Categorical
    flat = q.reshape(c, h * w)
    for ci in range(c):
        for pb, pos in enumerate(_passes(h, w)):
            lev = _level_at(q, ci, pb, pos)
            qv = flat[ci, pos]
            av = np.abs(qv).astype(np.int64)
            nb, o = (1, 0) if lev is None else _choose_bins(lev, av)
            side += bytes([_NO_CTX]) if nb == 1 else bytes([nb, o])
            bins = _bins(lev, nb, o, qv.size)
            for b in range(nb):
                ab = av[bins == b]
                m = int(ab.max()) if ab.size else 0
                _put_varint(side, m)
                if m == 0:
                    continue
                i0, j = _fit(ab.size, int((ab == 0).sum()), int(np.maximum(ab - 1, 0).sum()))
                side += bytes([i0, j])
                enc.encode(qv[bins == b] + m, cat(_pmf(m, i0, j), perfect=False))
    words = enc.get_compressed().astype("<u4").tobytes()
    _put_varint(head, len(side))
    _put_varint(head, len(words) // 4)
    return bytes(head + side) + words


def _decode_header(data: bytes) -> tuple[np.float32, int, _Reader, bytes]:
    if len(data) < 6 or data[0] != VERSION:
        raise BitstreamError("residual: bad version or too short")
    s = np.float32(struct.unpack("<f", data[1:5])[0])
    if not (np.isfinite(s) and s > 0):
        raise BitstreamError("residual: bad step")
    rd = _Reader(data, 5)
    qmax = rd.varint(MAX_SYMBOL)
    if qmax == 0:
        if rd.pos != len(data):
            raise BitstreamError("residual: trailing bytes after an all-zero residual")
        return s, 0, rd, b""
    n_side, n_words = rd.varint(len(data)), rd.varint(len(data))
    if rd.pos + n_side + 4 * n_words != len(data):
        raise BitstreamError(f"residual: {len(data)} bytes, its header implies "
                             f"{rd.pos + n_side + 4 * n_words}")
    return s, qmax, _Reader(data[:rd.pos + n_side], rd.pos), data[rd.pos + n_side:]


def decode(data: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    """Bytes from :func:`encode` -> float32 [C,H,W]; corrupt data -> BitstreamError."""
    import constriction

    if (not isinstance(shape, (tuple, list)) or len(shape) != 3
            or not all(isinstance(x, (int, np.integer)) and x > 0 for x in shape)):
        raise BitstreamError(f"bad residual shape {shape!r}")
    c, h, w = (int(x) for x in shape)
    if c * h * w > MAX_ELEMENTS:
        raise BitstreamError(f"residual shape {[c, h, w]} over the limit of {MAX_ELEMENTS} values")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BitstreamError(f"residual data must be bytes, got {type(data).__name__}")
    s, qmax, rd, words = _decode_header(bytes(data))
    q = np.zeros((c, h, w), np.int32)
    if qmax == 0:
        return _dequantise(q, s)
    flat = q.reshape(c, h * w)
    try:
        dec = constriction.stream.queue.RangeDecoder(np.frombuffer(words, "<u4").astype(np.uint32))
        cat = constriction.stream.model.Categorical
        for ci in range(c):
            for pb, pos in enumerate(_passes(h, w)):
                nb = rd.byte()
                if nb > MAX_BINS or nb == 1:
                    raise BitstreamError(f"residual: bad bin count {nb}")
                nb, o = (1, 0) if nb == _NO_CTX else (nb, rd.byte())
                lev = _level_at(q, ci, pb, pos)
                if lev is None and nb > 1:
                    raise BitstreamError("residual: context bins where there is no context")
                bins = _bins(lev, nb, o, pos.size)
                for b in range(nb):
                    m = rd.varint(qmax)
                    if m == 0:
                        continue
                    i0, j = rd.byte(), rd.byte()
                    sel = pos[bins == b]
                    if sel.size:
                        model = cat(_pmf(m, i0, j), perfect=False)
                        flat[ci, sel] = np.asarray(dec.decode(model, sel.size), np.int32) - m
    except BitstreamError:
        raise
    except Exception as e:  # noqa: BLE001 - constriction raises several types on bad words
        raise BitstreamError(f"corrupt residual: {' '.join(str(e).split())[:160]}") from None
    if rd.pos != len(rd.data):
        raise BitstreamError("residual: side info longer than its symbols need")
    return _dequantise(q, s)


def gvcc_zlib(r_chw: np.ndarray) -> tuple[bytes, np.ndarray]:
    """GVCC's scheme, for comparison only: per channel r / max|r| -> int8 round(127 x),
    zlib level 9. Payload: C float32 scales (max|r|) then the zlib stream; returns it and the
    reconstruction q * max|r| / 127."""
    r = np.asarray(r_chw, np.float32)
    scale = np.abs(r).reshape(r.shape[0], -1).max(axis=1).astype(np.float32)
    safe = np.where(scale > 0, scale, np.float32(1))[:, None, None]
    q = np.clip(np.rint(r / safe * 127), -127, 127).astype(np.int8)
    payload = scale.astype("<f4").tobytes() + zlib.compress(q.tobytes(), 9)
    return payload, (q.astype(np.float32) * safe / np.float32(127)).astype(np.float32)


# ------------------------------------------------------------------ under a byte budget
# Steps from fine to coarse; the last one sends (nearly) nothing.
BUDGET_STEPS = tuple(0.01 * 1.25 ** k for k in range(40)) + (1e3,)


def step_for_budget(r_chw: np.ndarray, budget: int) -> tuple[float, bytes]:
    """The finest step of :data:`BUDGET_STEPS` whose coded residual fits ``budget`` bytes (the
    coarsest if none does), with its bytes (docs/codec.md, "Rate control")."""
    lo, hi = 0, len(BUDGET_STEPS) - 1
    best = (BUDGET_STEPS[-1], encode(r_chw, BUDGET_STEPS[-1]))
    while lo <= hi:                       # bytes shrink as the step grows: bisect
        mid = (lo + hi) // 2
        data = encode(r_chw, BUDGET_STEPS[mid])
        if len(data) + 16 <= budget:      # the chunk's GOP number and framing
            best, hi = (BUDGET_STEPS[mid], data), mid - 1
        else:
            lo = mid + 1
    return best
