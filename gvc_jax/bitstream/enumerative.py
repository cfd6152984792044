"""Enumerative coding of M-subsets of {0..K-1} with the combinatorial number system (docs/design.md §3).

A sorted index set c_0 < c_1 < ... < c_{M-1} has the colex rank

    rank = sum_{i=0}^{M-1} C(c_i, i+1)        in [0, C(K, M)),

which is a bijection between the C(K, M) subsets and the integers below C(K, M), so the rank fits
in ``bits_for(K, M) = ceil(log2 C(K, M))`` bits. Everything is plain Python integers: no tables.

Both directions walk n from K-1 down to the smallest index while keeping the single binomial
C(n, k) up to date with exact O(1) ratio updates (k = number of indices not yet placed):

    C(n-1, k)   = C(n, k) * (n - k) / n       (n is not an index)
    C(n-1, k-1) = C(n, k) * k / n             (n is an index)

Stretches of n that hold no index are crossed in one exact move costing min(d, k) small factors:
C(n-d, k) = C(n, k) * prod(n-d-k+1 .. n-k) / prod(n-d+1 .. n) for short moves, a fresh
``math.comb(n-d, k)`` (k factors) for long ones. ``rank`` knows where to move; ``unrank`` first tries
a few single steps (dense sets), then (for k <= 1024) jumps to a log-gamma float estimate of the next index and
corrects it with exact comparisons (gallop + bisection if the estimate is far off), so floats only
affect speed, never the result.
"""
from __future__ import annotations

import math
from typing import Sequence

from gvc_jax.bitstream.errors import BitstreamError

__all__ = ["bits_for", "rank", "unrank", "num_subsets"]


def num_subsets(K: int, M: int) -> int:
    """C(K, M), with argument checks (0 <= M <= K)."""
    _check_km(K, M)
    return math.comb(K, M)


def bits_for(K: int, M: int) -> int:
    """ceil(log2 C(K, M)); 0 when there is a single subset (M == 0 or M == K)."""
    return (num_subsets(K, M) - 1).bit_length()


def _check_km(K: int, M: int) -> None:
    if not isinstance(K, int) or not isinstance(M, int) or isinstance(K, bool) or isinstance(M, bool):
        raise ValueError(f"K and M must be ints, got {type(K).__name__}, {type(M).__name__}")
    if K < 0 or not 0 <= M <= K:
        raise ValueError(f"need 0 <= M <= K, got K={K}, M={M}")


_SHORT_STEPS = 4
_GUESS_MAX_K = 1024


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _guess(r: int, k: int, hi: int) -> int:
    """Approximate largest n in [k-1, hi] with C(n, k) <= r, from log-gamma (floats, speed only)."""
    if r <= 0 or hi < k:
        return k - 1
    shift = max(r.bit_length() - 53, 0)
    log_r = math.log(r >> shift) + shift * math.log(2)
    lo = k - 1  # C(lo, k) = 0 <= r
    if _log_comb(hi, k) <= log_r:
        return hi
    while hi - lo > 1:  # invariant: logC(lo) <= log r < logC(hi)
        mid = (lo + hi) // 2
        if mid >= k and _log_comb(mid, k) > log_r:
            hi = mid
        else:
            lo = mid
    return lo


def _down(c: int, n: int, k: int, d: int) -> int:
    """C(n-d, k) from c = C(n, k), for d >= 0 and k <= n-d (exact integer arithmetic).

    Costs min(d, k) small factors: the d-term ratio prod(n-d-k+1..n-k) / prod(n-d+1..n) for short
    moves, a fresh k-term falling factorial (``math.comb``) for long ones.
    """
    if d == 0:
        return c
    if d == 1:
        return c * (n - k) // n
    if d >= k:
        return math.comb(n - d, k)
    return c * math.prod(range(n - d - k + 1, n - k + 1)) // math.prod(range(n - d + 1, n + 1))


def rank(indices: Sequence[int], K: int) -> int:
    """Colex rank of a strictly increasing index list in [0, K); inverse of :func:`unrank`."""
    idx = [int(i) for i in indices]
    M = len(idx)
    _check_km(K, M)
    for a, b in zip(idx, idx[1:]):
        if b <= a:
            raise ValueError("indices must be strictly increasing")
    if M and (idx[0] < 0 or idx[-1] >= K):
        raise ValueError(f"indices must lie in [0, {K})")
    if M == 0:
        return 0
    r = 0
    k = M
    n = K - 1
    c = math.comb(n, k)  # C(n, k) > 0 whenever n >= k
    for pos in range(M - 1, -1, -1):  # here k == pos + 1
        target = idx[pos]
        if target == k - 1:  # the rest is forced to 0..k-1 and contributes C(i, i+1) = 0
            break
        c = _down(c, n, k, n - target)  # C(target, k), n >= target >= k
        r += c
        c = c * k // target  # C(target-1, k-1)
        n = target - 1
        k -= 1
    return r


def unrank(r: int, K: int, M: int) -> list[int]:
    """Sorted index list whose colex rank is ``r``; BitstreamError unless 0 <= r < C(K, M)."""
    _check_km(K, M)
    if not isinstance(r, int) or isinstance(r, bool):
        raise ValueError(f"rank must be an int, got {type(r).__name__}")
    total = math.comb(K, M)
    if not 0 <= r < total:
        raise BitstreamError(f"rank {r} out of range for C({K}, {M})")
    out = list(range(M))  # entries not overwritten below are the forced tail 0..k-1
    k = M
    n = K - 1
    c = math.comb(n, k) if M else 0  # C(n, k)
    while k > 0 and n >= k and r > 0:  # r == 0: the rest is forced to 0..k-1 (already in out)
        # Largest n' <= n with C(n', k) <= r; it exists since C(k-1, k) = 0 <= r.
        for _ in range(_SHORT_STEPS):  # dense sets: the next index is usually a few steps away
            if c <= r or n == k:
                break
            c = c * (n - k) // n
            n -= 1
        if c > r and n == k:  # C(k, k) = 1 > r = 0: the rest is forced to 0..k-1
            break
        if c > r:
            lo_n, lo_c = n, c  # C(lo_n, k) > r
        if c > r and k <= _GUESS_MAX_K:  # a fresh C(g, k) costs ~k factors: only for small k
            g = _guess(r, k, n - 1)  # float estimate of the answer, then corrected exactly
            if g >= k:
                gc = math.comb(g, k)
                if gc <= r:
                    while True:  # step up while C(g+1, k) <= r; stops below lo_n
                        up = gc * (g + 1) // (g + 1 - k)
                        if up > r:
                            break
                        g, gc = g + 1, up
                    n, c = g, gc
                    lo_n = None
                else:
                    lo_n, lo_c = g, gc
        if c > r:
            # gallop down with steps 1, 2, 4, ... while C stays > r, then bisect
            step = 1
            while True:
                m = lo_n - step
                if m < k:
                    hi_n, hi_c = k - 1, 0
                    break
                mc = _down(lo_c, lo_n, k, step)
                if mc <= r:
                    hi_n, hi_c = m, mc
                    break
                lo_n, lo_c = m, mc
                step *= 2
            # invariant: C(lo_n, k) > r >= C(hi_n, k) and hi_n < lo_n
            while lo_n - hi_n > 1:  # mid > hi_n >= k-1, so _down stays in range
                mid = (lo_n + hi_n) // 2
                mc = _down(lo_c, lo_n, k, lo_n - mid)
                if mc <= r:
                    hi_n, hi_c = mid, mc
                else:
                    lo_n, lo_c = mid, mc
            n, c = hi_n, hi_c
        if n < k:  # n == k-1: the rest is forced to 0..k-1 (already in out)
            break
        out[k - 1] = n
        r -= c
        c = c * k // n  # C(n-1, k-1)
        n -= 1
        k -= 1
    if r != 0:  # cannot happen for 0 <= r < C(K, M); guards the arithmetic
        raise AssertionError("unrank: residual rank left")
    return out
