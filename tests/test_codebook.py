"""Codebook (docs/design.md §3): bit-exact atoms JAX == NumPy, statistics, selection and combination."""
import hashlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gvc_jax import codebook as cb
from gvc_jax.codebook import table, threefry
from gvc_jax.codebook.reference import order_topm, scores_numpy

U32MAX = 2 ** 32 - 1


def test_threefry_known_answers():
    # Known-answer vectors of Threefry-2x32-20 (Salmon et al., Random123 kat_vectors).
    cases = [((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
             ((U32MAX, U32MAX), (U32MAX, U32MAX), (0x1CB996FC, 0xBB002BE7)),
             ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0))]
    for (k0, k1), (c0, c1), want in cases:
        a = [np.array([v], np.uint32) for v in (k0, k1, c0, c1)]
        with np.errstate(over="ignore"):
            got = threefry.threefry2x32(*a, np.uint32)
        assert (int(got[0][0]), int(got[1][0])) == want
        got_j = jax.jit(lambda *x: threefry.threefry2x32(*x, jnp.uint32))(
            *[jnp.asarray(v) for v in a])
        assert (int(got_j[0][0]), int(got_j[1][0])) == want


def test_table_is_fixed_antisymmetric_on_grid():
    q = table.QUANTILES
    assert q.dtype == np.float32 and q.shape == (65536,)
    assert hashlib.sha256(q.astype("<f4").tobytes()).hexdigest() == table.TABLE_SHA256
    assert np.array_equal(q[::-1], -q)
    assert np.all(np.diff(q) >= 0)
    assert np.array_equal(np.signbit(q), q < 0)          # no -0.0: both lookups give equal bits
    units = q.astype(np.float64) * 2 ** table.GRID_LOG2
    assert np.array_equal(units, np.round(units))
    assert table.MAX_EXACT_ATOMS * table.MAX_ABS * 2 ** table.GRID_LOG2 < 2 ** 24


ADDRESSES = [(0, 0, 0, 0), (1, 2, 3, 4), (U32MAX, U32MAX, U32MAX - 1, U32MAX), (123456789, 7, 16, 8)]
SHAPES = [(1,), (2,), (3,), (5,), (7, 3), (16, 3, 5, 7), 1001]


@pytest.mark.parametrize("addr", ADDRESSES)
def test_atoms_equal_numpy(addr):
    idx = np.array([0, 1, 2, 255, 4096, 65534, 65535])
    for shape in SHAPES:
        a = np.asarray(cb.atoms(*addr, idx, shape))
        b = cb.atoms_numpy(*addr, idx, shape)
        shp = (shape,) if isinstance(shape, int) else shape
        assert a.shape == b.shape == (len(idx),) + shp and a.dtype == b.dtype == np.float32
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))


def test_lookup_modes_bit_identical():
    from gvc_jax.codebook import generate
    b = jnp.arange(65536, dtype=jnp.uint32)
    got = {m: np.asarray(jax.jit(lambda b, m=m: generate.lookup(b, m))(b)).view(np.uint32)
           for m in generate.LOOKUPS}
    assert np.array_equal(got["f32"], table.QUANTILES.view(np.uint32))
    assert np.array_equal(got["i16"], got["f32"])


def test_atoms_prefix_and_index_independence():
    # Element i of an atom does not depend on D nor on which other atoms are generated.
    big = cb.atoms_numpy(5, 6, 7, 8, [3, 9, 65535], 1000)
    small = cb.atoms_numpy(5, 6, 7, 8, [65535], 13)
    assert np.array_equal(big[2, :13], small[0])


def test_atoms_jit_traced_address_equals_numpy():
    f = jax.jit(lambda seed, gop, st, fr, k: cb.atoms(seed, gop, st, fr, k, (3, 11)))
    k = np.array([65535, 0, 17], np.int32)
    for dtype in (jnp.int32, jnp.uint32):
        for st in (0, 5, 16):
            got = np.asarray(f(dtype(9), dtype(2), dtype(st), dtype(3), k))
            assert np.array_equal(got, cb.atoms_numpy(9, 2, st, 3, k, (3, 11)))
    g = jax.jit(lambda s: cb.atoms(s, 1, 2, 3, k, 5))
    assert np.array_equal(np.asarray(g(jnp.uint32(U32MAX))), cb.atoms_numpy(U32MAX, 1, 2, 3, k, 5))


def test_init_noise_equal_numpy_and_distinct():
    shape = (16, 3, 6, 10)
    a = np.asarray(cb.init_noise(42, 3, shape))
    b = cb.init_noise_numpy(42, 3, shape)
    assert a.shape == shape and np.array_equal(a, b)
    assert np.array_equal(np.asarray(jax.jit(lambda g: cb.init_noise(42, g, shape))(jnp.int32(3))), b)
    assert not np.array_equal(b, cb.init_noise_numpy(42, 4, shape))
    assert not np.array_equal(b.ravel(), cb.atoms_numpy(42, 3, 0, 0, [0], b.size)[0])


def test_atoms_statistics():
    n_atoms, d = 64, 1 << 15                     # 2^21 values: mean/var/kurtosis resolvable
    x = cb.atoms_numpy(11, 0, 3, 2, np.arange(n_atoms), d).astype(np.float64)
    v = x.ravel()
    n = v.size
    assert abs(v.mean()) < 5 / np.sqrt(n)
    assert abs(v.var() - 1) < 5 * np.sqrt(2 / n)
    kurt = np.mean(v ** 4) / v.var() ** 2
    assert abs(kurt - 3) < 5 * np.sqrt(24 / n)
    # Within an atom: neighbouring elements (same word, same call, next call) are uncorrelated.
    for lag in (1, 2, 3, 4, 8):
        c = np.mean(x[:, :-lag] * x[:, lag:])
        assert abs(c) < 5 / np.sqrt(n), lag
    # Distinct atoms / steps / frames / gops / seeds are uncorrelated.
    others = [cb.atoms_numpy(11, 0, 3, 2, np.arange(1, n_atoms + 1), d),
              cb.atoms_numpy(11, 0, 4, 2, np.arange(n_atoms), d),
              cb.atoms_numpy(11, 0, 3, 3, np.arange(n_atoms), d),
              cb.atoms_numpy(11, 1, 3, 2, np.arange(n_atoms), d),
              cb.atoms_numpy(12, 0, 3, 2, np.arange(n_atoms), d)]
    for y in others:
        c = np.mean(x * y.astype(np.float64))
        assert abs(c) < 5 / np.sqrt(n)
    # Each 16-bit half is uniform: chi-square over 256 buckets of the table index.
    from gvc_jax.codebook.reference import _key, bits16_numpy
    b = bits16_numpy(_key(11, 0, 3, 2), np.arange(16), 1 << 14).ravel()
    for sub in (b >> 8, b & 0xFF):
        cnt = np.bincount(sub, minlength=256)
        e = b.size / 256
        chi2 = np.sum((cnt - e) ** 2 / e)
        assert 255 - 6 * np.sqrt(510) < chi2 < 255 + 6 * np.sqrt(510)


def _check_against_bruteforce(seed, gop, step, r, K, m, chunk, method=None):
    idx, sign = jax.jit(lambda st, r: cb.select_topm(seed, gop, st, r, K, m, chunk=chunk,
                                                     method=method))(
        jnp.uint32(step), jnp.asarray(r))
    idx, sign = np.asarray(idx), np.asarray(sign)
    s_ref = scores_numpy(seed, gop, step, r, K)
    ridx, rsign = order_topm(s_ref, m)
    assert idx.dtype == np.int32 and sign.dtype == np.bool_ and idx.shape == (r.shape[0], m)
    assert np.array_equal(idx, ridx)
    assert np.array_equal(sign, rsign)


@pytest.mark.parametrize("K,m,chunk,D", [(300, 10, 64, 37), (256, 256, 256, 8), (1000, 33, 7, 5),
                                         (65536, 5, 8192, 3)])
@pytest.mark.parametrize("method", ["fused", "matmul"])
def test_select_topm_equals_bruteforce(K, m, chunk, D, method):
    r = np.random.default_rng(K + D).standard_normal((3, D)).astype(np.float32)
    _check_against_bruteforce(7, 1, 4, r, K, m, chunk, method)


def test_select_topm_ties_by_smaller_k():
    K, D = 4096, 6
    # r = 0: all scores tie at 0 -> atoms 0..m-1, sign True (s >= 0).
    idx, sign = cb.select_topm(1, 0, 2, jnp.zeros((2, D)), K, 20, chunk=1000)
    assert np.array_equal(np.asarray(idx), np.tile(np.arange(20), (2, 1)))
    assert np.asarray(sign).all()
    # One-hot r: s_k is one table value exactly, so |s| has many exact ties; full order of all K.
    r = np.zeros((2, D), np.float32)
    r[0, 3] = 1.0
    r[1, 0] = -0.5
    s_ref = scores_numpy(1, 0, 2, r, K)
    assert len(np.unique(np.abs(s_ref[0]))) < K - 100          # there really are ties
    idx, sign = cb.select_topm(1, 0, 2, jnp.asarray(r), K, K, chunk=1000)
    ridx, rsign = order_topm(s_ref, K)
    assert np.array_equal(np.asarray(idx), ridx) and np.array_equal(np.asarray(sign), rsign)


def test_auto_chunk_bounds_memory():
    from gvc_jax.codebook import ops
    K, F, D = 16384, 9, 16 * 90 * 160
    c = cb.auto_chunk(K, F, D)
    assert F * c * D * 4 <= ops.CHUNK_BUDGET_BYTES and c >= 1
    r = jax.ShapeDtypeStruct((F, D), jnp.float32)
    f = jax.jit(lambda st, r: cb.select_topm(3, 0, st, r, K, 64))
    mem = f.lower(jax.ShapeDtypeStruct((), jnp.uint32), r).compile().memory_analysis()
    if mem is not None:      # the K x D atoms (15 GB) are never held; one chunk at most
        assert mem.temp_size_in_bytes < 2 * ops.CHUNK_BUDGET_BYTES < K * F * D * 4 // 16


def _reference_combine(seed, gop, step, idx, sign, ms, d):
    z = np.zeros((idx.shape[0], d))
    for f, m in enumerate(ms):
        a = cb.atoms_numpy(seed, gop, step, f, idx[f, :m], d).astype(np.float64)
        z[f] = ((2.0 * sign[f, :m] - 1)[:, None] * a).sum(0)
    return z


@pytest.mark.parametrize("norm", ["sqrt_m", "rms"])
def test_combine_equals_numpy_and_masks(norm):
    F, m_max, d, K = 4, 12, 101, 1 << 16
    rng = np.random.default_rng(0)
    idx = rng.integers(0, K, (F, m_max)).astype(np.int32)
    sign = rng.random((F, m_max)) < 0.5
    ms = (12, 3, 7, 3)
    f = jax.jit(lambda st, i, s: cb.combine(5, 2, st, i, s, ms, d, norm=norm))
    z = np.asarray(f(jnp.int32(6), idx, sign))
    zn = cb.combine_numpy(5, 2, 6, idx, sign, ms, d, norm=norm)
    assert z.shape == (F, d) and z.dtype == np.float32
    assert np.array_equal(z, zn)
    ref = _reference_combine(5, 2, 6, idx, sign, ms, d)
    scale = np.sqrt(np.array(ms))[:, None] if norm == "sqrt_m" else np.sqrt(np.mean(ref ** 2, 1, keepdims=True))
    np.testing.assert_allclose(z, ref / scale, rtol=1e-5, atol=1e-6)
    # Entries j >= M_f are ignored.
    idx2, sign2 = idx.copy(), sign.copy()
    for fr, m in enumerate(ms):
        idx2[fr, m:] = rng.integers(0, K, m_max - m)
        sign2[fr, m:] = ~sign2[fr, m:]
    assert np.array_equal(np.asarray(f(jnp.int32(6), idx2, sign2)), z)
    with pytest.raises(ValueError):
        cb.combine(5, 2, 6, idx, sign, (13, 1, 1, 1), d)


def test_select_then_combine_points_along_residual():
    F, D, K, m = 2, 512, 2048, 16
    r = np.random.default_rng(3).standard_normal((F, D)).astype(np.float32)
    idx, sign = cb.select_topm(9, 1, 3, jnp.asarray(r), K, m)
    z = np.asarray(cb.combine(9, 1, 3, idx, sign, (m, m), D))
    cos = np.sum(z * r, 1) / np.linalg.norm(z, axis=1) / np.linalg.norm(r, axis=1)
    assert np.all(cos > 0.3)        # random directions give |cos| ~ 0.04


def test_rms_normalisation_bit_exact_many_rows():
    from gvc_jax.codebook import ops, reference
    rng = np.random.default_rng(5)
    units = rng.integers(-(2 ** 23), 2 ** 23, (64, 777)) >> rng.integers(0, 20, (64, 1))
    z = (units * 2.0 ** -table.GRID_LOG2).astype(np.float32)
    got = np.asarray(jax.jit(lambda z: ops._normalise(z, (1,) * 64, "rms"))(z))
    want = reference.normalise_numpy(z, (1,) * 64, "rms")
    assert np.array_equal(got, want)
    exact = units.astype(np.float64) / np.sqrt(np.mean(units.astype(np.float64) ** 2, 1, keepdims=True))
    np.testing.assert_allclose(want, exact, rtol=3e-7, atol=0)


def test_exact_sqrt_and_reciprocal_match_ieee():
    from gvc_jax.codebook.exact_math import reciprocal_rn, sqrt_rn
    rng = np.random.default_rng(0)
    x = (rng.uniform(0, 1, 20000) * 2.0 ** rng.integers(-60, 60, 20000)).astype(np.float32)
    p2 = (2.0 ** np.arange(-80, 80)).astype(np.float32)
    x = np.concatenate([x, p2, np.nextafter(p2, np.float32(0)), np.nextafter(p2, np.float32(np.inf)),
                        (np.arange(1, 3000) ** 2).astype(np.float32)])
    x = x[x >= np.finfo(np.float32).tiny]
    assert np.array_equal(np.asarray(jax.jit(sqrt_rn)(x)), np.sqrt(x))
    assert np.array_equal(np.asarray(jax.jit(reciprocal_rn)(x)), np.float32(1) / x)
    assert not np.asarray(sqrt_rn(jnp.zeros(1))).any() and not np.asarray(reciprocal_rn(jnp.zeros(1))).any()
