"""Enumerative coding, bit I/O and index packing (gvc_jax.bitstream, docs/bitstream.md §3, §5)."""
import itertools
import math
import random

import numpy as np
import pytest

from gvc_jax.bitstream import (BitstreamError, bits_for, index_bits, index_bytes, pack_indices, rank,
                               unpack_indices, unrank)
from gvc_jax.bitstream.bits import BitReader, BitWriter


def _colex(idx):
    return sum(math.comb(c, i + 1) for i, c in enumerate(idx))


def test_exhaustive_small_bijection():
    for K in range(0, 10):
        for M in range(0, K + 1):
            ranks = []
            for comb in itertools.combinations(range(K), M):
                r = rank(comb, K)
                assert r == _colex(comb)
                assert unrank(r, K, M) == list(comb)
                ranks.append(r)
            assert sorted(ranks) == list(range(math.comb(K, M)))


@pytest.mark.parametrize("K,M", [(2, 1), (7, 7), (100, 1), (100, 100), (100, 99), (4096, 8), (16384, 64),
                                 (2**16, 1), (2**16, 64), (2**16, 2**16), (2**16, 2**16 - 1), (2**14, 2**13)])
def test_random_round_trip(K, M):
    rnd = random.Random(K * 7919 + M)
    for _ in range(3 if M < 1000 else 1):
        idx = sorted(rnd.sample(range(K), M))
        r = rank(idx, K)
        assert 0 <= r < math.comb(K, M)
        if M <= 64:
            assert r == _colex(idx)
        assert r.bit_length() <= bits_for(K, M)
        assert unrank(r, K, M) == idx


@pytest.mark.parametrize("K,M", [(2**16, 64), (2**16, 1000), (16384, 128), (1000, 500), (2**16, 2)])
def test_extreme_and_random_ranks_round_trip(K, M):
    top = math.comb(K, M) - 1
    assert unrank(top, K, M) == list(range(K - M, K))
    assert unrank(0, K, M) == list(range(M))
    assert rank(list(range(K - M, K)), K) == top
    rnd = random.Random(M)
    for r in [1, top // 2, top - 1] + [rnd.randrange(top) for _ in range(3)]:
        idx = unrank(r, K, M)
        assert len(idx) == M and all(a < b for a, b in zip(idx, idx[1:])) and 0 <= idx[0] and idx[-1] < K
        assert rank(idx, K) == r


@pytest.mark.parametrize("K,M", [(2, 1), (3, 1), (4, 2), (5, 2), (4096, 8), (16384, 64), (2**16, 64),
                                 (2**16, 2**15), (2**16, 2**15 - 3), (2**16, 1), (2**16, 2**16), (9, 0)])
def test_bits_for_is_exact_ceil_log2(K, M):
    c = math.comb(K, M)
    b = bits_for(K, M)
    if c == 1:
        assert b == 0
    else:  # ceil(log2 c) = b  <=>  2^(b-1) < c <= 2^b, checked in exact integers
        assert 2 ** (b - 1) < c <= 2**b


def test_design_rate_figure():
    # docs/design.md §3: at K=16384, M=64 enumerative coding costs 664 bits per frame-step (rank + 64 signs)
    assert bits_for(16384, 64) + 64 == 664


def test_rank_rejects_bad_sets():
    with pytest.raises(ValueError):
        rank([3, 3], 10)
    with pytest.raises(ValueError):
        rank([4, 2], 10)
    with pytest.raises(ValueError):
        rank([0, 10], 10)
    with pytest.raises(ValueError):
        rank([-1, 2], 10)
    with pytest.raises(ValueError):
        bits_for(3, 4)


def test_unrank_out_of_range():
    with pytest.raises(BitstreamError, match="out of range"):
        unrank(math.comb(10, 3), 10, 3)
    with pytest.raises(BitstreamError):
        unrank(-1, 10, 3)


def test_bit_writer_reader():
    rnd = random.Random(1)
    items = [(rnd.getrandbits(n), n) for n in [0, 1, 3, 8, 13, 64, 700, 5, 40000, 2]]
    w = BitWriter()
    for v, n in items:
        w.write(v, n)
    total = sum(n for _, n in items)
    data = w.getvalue()
    assert len(data) == (total + 7) // 8 and w.bits_written == total
    r = BitReader(data)
    assert [r.read(n) for _, n in items] == [v for v, _ in items]
    assert r.remaining_bits == 8 * len(data) - total
    assert r.read(r.remaining_bits) == 0  # zero padding
    with pytest.raises(BitstreamError):
        r.read(1)
    w = BitWriter()
    w.write(0b101, 3)
    assert w.getvalue() == bytes([0b10100000])  # MSB first
    with pytest.raises(ValueError):
        w.write(8, 3)


def _random_choice(rng, S, ms, K, mmax):
    idx = np.zeros((S, len(ms), mmax), np.int64)
    sgn = rng.integers(0, 2, (S, len(ms), mmax)).astype(bool)
    for s in range(S):
        for f, m in enumerate(ms):
            idx[s, f, :m] = rng.choice(K, m, replace=False)  # unsorted on purpose
    return idx, sgn


@pytest.mark.parametrize("K,ms", [(4096, [8, 8, 8, 8]), (16384, [64, 64, 128]), (37, [1, 37, 5, 36]),
                                  (2, [1, 2])])
def test_pack_unpack_round_trip(K, ms):
    rng = np.random.default_rng(K)
    S = 3
    idx, sgn = _random_choice(rng, S, ms, K, max(ms) + 2)
    data = pack_indices(idx, sgn, ms, K)
    assert len(data) == index_bytes(S, ms, K) == (index_bits(S, ms, K) + 7) // 8
    assert index_bits(S, ms, K) == S * sum(bits_for(K, m) + m for m in ms)
    i2, s2 = unpack_indices(data, S, ms, K)
    assert i2.dtype == np.int32 and s2.dtype == bool and i2.shape == (S, len(ms), max(ms))
    for s in range(S):
        for f, m in enumerate(ms):
            order = np.argsort(idx[s, f, :m])
            np.testing.assert_array_equal(i2[s, f, :m], idx[s, f, :m][order])
            np.testing.assert_array_equal(s2[s, f, :m], sgn[s, f, :m][order])
            assert not i2[s, f, m:].any() and not s2[s, f, m:].any()
    # signs as 0/1 ints give the same bytes
    assert pack_indices(idx, sgn.astype(np.int8), ms, K) == data


def test_pack_rejects_bad_input():
    idx = np.array([[[1, 2, 3]]])
    sgn = np.ones_like(idx)
    with pytest.raises(ValueError, match="duplicate"):
        pack_indices(np.array([[[1, 2, 1]]]), sgn, [3], 10)
    with pytest.raises(ValueError, match="out of range"):
        pack_indices(np.array([[[1, 2, 10]]]), sgn, [3], 10)
    with pytest.raises(ValueError, match="out of range"):
        pack_indices(np.array([[[1, -2, 5]]]), sgn, [3], 10)
    with pytest.raises(ValueError):
        pack_indices(idx, sgn, [4], 10)  # M wider than the array
    with pytest.raises(ValueError):
        pack_indices(idx, sgn * 2, [3], 10)  # sign not 0/1


def test_unpack_is_strict():
    K, ms, S = 10, [2, 3], 2
    rng = np.random.default_rng(0)
    idx, sgn = _random_choice(rng, S, ms, K, 3)
    data = pack_indices(idx, sgn, ms, K)
    nbits = index_bits(S, ms, K)
    assert nbits % 8 != 0  # this case has padding bits to corrupt
    with pytest.raises(BitstreamError, match="expected"):
        unpack_indices(data[:-1], S, ms, K)
    with pytest.raises(BitstreamError, match="expected"):
        unpack_indices(data + b"\0", S, ms, K)
    with pytest.raises(BitstreamError, match="padding"):
        unpack_indices(data[:-1] + bytes([data[-1] | 1]), S, ms, K)
    # a rank code >= C(K, M): C(10, 2) = 45 fits in 6 bits, write 63
    w = BitWriter()
    w.write(63, bits_for(K, 2))
    w.write(0, 2)
    w.write(0, bits_for(K, 3) + 3)
    with pytest.raises(BitstreamError, match="out of range"):
        unpack_indices(w.getvalue(), 1, ms, K)


def test_unpack_caps_dense_arrays_before_allocating(monkeypatch):
    import gvc_jax.bitstream.indices as ind

    K, ms, S = 10, [1, 9], 3
    data = pack_indices(np.array([[[2, 0, 0, 0, 0, 0, 0, 0, 0], list(range(9))]] * S), np.ones((S, 2, 9)), ms, K)
    assert unpack_indices(data, S, ms, K)[0].shape == (S, 2, 9)
    monkeypatch.setattr(ind, "MAX_INDEX_CELLS", S * 2 * 9 - 1)
    with pytest.raises(BitstreamError, match="too large"):
        unpack_indices(data, S, ms, K)
