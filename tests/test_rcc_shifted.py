"""Shifted rcc candidates and grouped choices (docs/rcc.md §2-§3): bit-exact candidates, the FFT
search against brute force, exact payload bits, decoder == encoder, and the stream round trip."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gvc_jax import codebook
from gvc_jax.bitstream import rcc_payload
from gvc_jax.codebook import shifted
from gvc_jax.models.gaussian import GaussianPrior
from gvc_jax.sampler import rcc


@pytest.mark.parametrize("addr", [(0, 0, 0, 0, 0), (7, 3, 11, 2, 5),
                                  (2**32 - 1, 2**32 - 1, 2**32 - 1, 2**32 - 1, 2**32 - 1)])
def test_chosen_bit_exact_vs_numpy(addr):
    seed, gop, step, row, level = addr
    for n, bits in ((37, 12), (96, 36), (256, 40)):
        n_p, c, nb = shifted.layout(bits, n)
        assert n_p >= n and n_p & (n_p - 1) == 0 and (1 << c) == 2 * n_p
        idx = np.array([0, 1, 2 * n - 1, 2 * n, 2 * n + 1, (1 << bits) // 3, (1 << bits) - 1],
                       np.uint64)
        words = shifted.int_to_words(idx)
        np.testing.assert_array_equal(shifted.words_to_int(words), idx)
        got = np.asarray(jax.jit(lambda w: shifted.chosen(seed, gop, step, level, w, n, bits))(
            jnp.asarray(words)))
        for r, i in enumerate(idx):    # row r of the batch has address row r
            ref = shifted.chosen_numpy(seed, gop, step, r, level, int(i), n, bits)
            np.testing.assert_array_equal(got[r].view(np.uint32), ref.view(np.uint32))
    # a candidate is a signed, masked shift of its base: the values are the base's, up to sign
    a = shifted.chosen_numpy(*addr[:3], 0, addr[4], 2 * 5 + 0, 64, 20)     # j = 0, k = 5, s = 0
    b = shifted.chosen_numpy(*addr[:3], 0, addr[4], 2 * 5 + 1, 64, 20)     # its negation
    np.testing.assert_array_equal(a, -b)
    base = shifted.chosen_numpy(*addr[:3], 0, addr[4], 0, 64, 20)
    np.testing.assert_array_equal(np.sort(np.abs(a)), np.sort(np.abs(base)))
    with pytest.raises(ValueError):
        shifted.layout(40, 128)                # 2^32 bases of 128-value shifts: too many


@pytest.mark.parametrize("bits,n,chunk", [(9, 96, 2), (6, 40, 8), (11, 256, 3)])
def test_search_finds_the_nearest_projection(bits, n, chunk):
    rng = np.random.default_rng(bits)
    e = rng.standard_normal((3, n)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    want = np.array([2.5, -1.0, 0.3], np.float32)
    idx, proj = jax.jit(lambda e, w: shifted.search(1, 2, 3, 4, e, w, bits, chunk))(e, want)
    idx, proj = shifted.words_to_int(np.asarray(idx)), np.asarray(proj)
    for r in range(3):
        cands = np.stack([shifted.chosen_numpy(1, 2, 3, r, 4, c, n, bits)
                          for c in range(1 << bits)])
        assert len({c.tobytes() for c in cands}) == 1 << bits          # no duplicates
        p = cands.astype(np.float64) @ e[r]
        assert idx[r] < 1 << bits
        assert abs(p[idx[r]] - proj[r]) < 1e-4
        assert abs(p[idx[r]] - want[r]) <= np.abs(p - want[r]).min() + 1e-5


def test_grouped_spec_bits_and_planner():
    err = rcc.gaussian_error_fn(np.ones(64))
    one = rcc.plan(err, 96, bits=8)
    grp = rcc.plan(err, 96, bits=24, group=4, family="shift")
    assert (one.n_steps, grp.n_steps) == (12, 16)
    assert rcc.rcc_bits(grp, (64, 8, 1, 1)) == 2 * 16 * 24          # 2 rows of 4 frames
    assert rcc.rcc_bits(grp, (64, 9, 1, 1)) == 3 * 16 * 24          # the last row is partial
    with pytest.raises(ValueError, match="iid"):
        rcc.RccSpec(times=(1.0, 0.5), bits=28)
    rcc.RccSpec(times=(1.0, 0.5), bits=40, family="shift")
    with pytest.raises(ValueError, match="family"):
        rcc.RccSpec(times=(1.0, 0.5), family="lattice")


def test_parts_rows_layout_and_bits():
    """``parts`` splits each group of frames into P interleaved rows (part p = values p, p + P,
    ...; the last part zero-padded), :func:`rcc._unrows` inverts it, and a step carries P
    choices, so the planner takes P times fewer steps at a rate (docs/rcc.md §3)."""
    spec = rcc.RccSpec(times=(1.0, 0.5), group=2, parts=3)
    x = np.arange(1, 3 * 5 + 1, dtype=np.float32).reshape(3, 5)       # F = 3 frames of D = 5
    r = np.asarray(rcc._rows(jnp.asarray(x), spec))
    assert r.shape == (2 * 3, 4) == (spec.n_rows(3), spec.row_len(5))
    np.testing.assert_array_equal(r[0], [1, 4, 7, 10])                  # group 0, part 0
    np.testing.assert_array_equal(r[2], [3, 6, 9, 0])                   # part 2, padded
    np.testing.assert_array_equal(r[3], [11, 14, 0, 0])                 # frame 2 + a pad frame
    np.testing.assert_array_equal(np.asarray(rcc._unrows(jnp.asarray(r), spec, 3, 5)), x)
    err = rcc.gaussian_error_fn(np.ones(64))
    whole, split = rcc.plan(err, 96, bits=8), rcc.plan(err, 96, bits=8, parts=4)
    assert (whole.n_steps, split.n_steps) == (12, 3)
    assert rcc.rcc_bits(split, (64, 2, 1, 1)) == 2 * 4 * 3 * 8 == rcc.rcc_bits(whole, (64, 2, 1, 1))
    # a part holds a quarter of the error, so its 8-bit steps are longer; fewer, coarser steps
    # pay more KL for the same progress, so the stop time is later
    assert split.times[1] < whole.times[1] and split.times[-1] > whole.times[-1]
    with pytest.raises(ValueError, match="parts"):
        rcc.RccSpec(times=(1.0, 0.5), parts=0)


@pytest.mark.parametrize("family,group,parts,frames", [
    ("shift", 1, 1, 2), ("shift", 2, 1, 3), ("iid", 2, 1, 3), ("shift", 2, 3, 3),
    ("iid", 1, 2, 2)])
def test_encode_decode_bit_exact(family, group, parts, frames):
    prior = GaussianPrior()
    gd, st = nnx.split(prior)
    shape = (768, frames, 1, 1)
    x0 = prior.sample_prior(jax.random.key(3), frames, 1, 1)
    spec = rcc.plan(rcc.gaussian_error_fn(np.asarray(prior.var[...])), 40, bits=10, levels=2,
                    group=group, parts=parts, family=family, tail_steps=4,
                    chunk=2 if family == "shift" else 256)
    x_T = codebook.init_noise(9, 1, shape)
    ch, xo = rcc.rcc_encode_gop(gd, st, None, x_T, x0, 9, 1, spec=spec)
    rows = -(-frames // group) * parts
    ints = rcc.choices_to_ints(ch, spec)
    assert ints.shape == (spec.n_steps, rows, 2) and int(ints.max()) < 1 << 10
    data = rcc_payload.pack(ints, spec.bits)
    assert 8 * len(data) >= rcc.rcc_bits(spec, shape) > 8 * (len(data) - 1)
    back = rcc.choices_from_ints(rcc_payload.unpack(data, ints.shape, spec.bits), spec)
    np.testing.assert_array_equal(back, np.asarray(ch))
    xd = rcc.rcc_decode_gop(gd, st, None, x_T, back, 9, 1, spec=spec)
    np.testing.assert_array_equal(np.asarray(xd).view(np.uint32), np.asarray(xo).view(np.uint32))
    wrong = rcc.choices_from_ints((ints + 1) % 1024, spec)
    xw = rcc.rcc_decode_gop(gd, st, None, x_T, wrong, 9, 1, spec=spec)
    assert not np.array_equal(np.asarray(xw), np.asarray(xo))


def test_shift_search_reaches_the_goal_like_iid():
    """A 16-bit choice among shifted candidates lands as near its goal as among i.i.d. ones (the
    extreme-value reach that the RD depends on, docs/rcc.md §8)."""
    n, rows = 1024, 24
    rng = np.random.default_rng(5)
    e = rng.standard_normal((rows, n)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    want = np.full((rows,), 3.0, np.float32)          # ~ the reach of 2^16 normals: 0.999 quantile
    _, p = jax.jit(lambda e, w: shifted.search(0, 0, 0, 0, e, w, 16, 16))(e, want)
    miss = np.abs(np.asarray(p) - want)
    assert np.median(miss) < 0.01 and miss.max() < 0.1, miss
    want = np.full((rows,), 4.6, np.float32)          # beyond the reach: the maxima fall short
    _, p = jax.jit(lambda e, w: shifted.search(0, 0, 0, 0, e, w, 16, 16))(e, want)
    assert 3.5 < np.median(np.asarray(p)) < 4.6
