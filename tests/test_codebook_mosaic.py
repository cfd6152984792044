"""The Mosaic GPU codebook kernel (gvc_jax/codebook/mosaic_scores.py) without a GPU.

The kernel's own numbers are checked on the GPU (bench/profile_gpu.py: against ``scoring.scores``).
Here: its MLIR builds and verifies; the host side (keys, padding, exact r scaling, the split
partial sums, vmap folding GOPs into frames) gives ``scoring.scores`` when a NumPy stand-in with the
kernel's contract replaces the launch; and the method choice.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gvc_jax import codebook as cb
from gvc_jax.codebook import mosaic_scores as ms
from gvc_jax.codebook import ops
from gvc_jax.codebook.reference import bits16_numpy


def test_kernel_mlir_builds_and_verifies():
    from jax._src.interpreters import mlir
    from jax._src.lib import mosaic_gpu_dialect
    from jax._src.lib.mlir import ir
    from jax.experimental.mosaic.gpu import core
    F, ncp, S, kp = 2, 64, 8, 2 * ms.THREADS
    sds = jax.ShapeDtypeStruct
    ctx = mlir.make_ir_context()
    mosaic_gpu_dialect.register_dialect(ctx)
    with ctx, ir.Location.unknown():
        module = core._kernel_to_module(
            ms._body(ncp // S), (kp // ms.THREADS, F, S), (ms.THREADS, 1, 1),
            (sds((2 * F,), jnp.uint32), sds((65536,), jnp.int16), sds((F, ncp, 4), jnp.float32)),
            sds((S, F, kp), jnp.float32), sds((65536,), jnp.int16))[0]
        text = str(module)
    assert module.operation.verify()
    assert "dynamic_shared_memory_size %c131072_i32" in text           # the table in smem
    assert text.count("arith.shrui") >= 20 and "scf.for" in text and "gpu.barrier" in text


def _stand_in(F, k_pad, ncp, splits):
    """NumPy kernel with the launch's contract: keys [2F], int16 table, r [F, ncp, 4] (scaled)
    -> partial sums [splits, F, k_pad] over the counter ranges of each split."""
    def kernel(keys, table, r):
        def host(keys, table, r):
            keys, table, r = np.asarray(keys), np.asarray(table), np.asarray(r)
            out = np.zeros((splits, F, k_pad), np.float32)
            per = ncp // splits
            for f in range(F):
                h = bits16_numpy(keys[2 * f:2 * f + 2], np.arange(k_pad), ncp * 4)
                t = (table[h.astype(np.int64)].astype(np.float32).reshape(k_pad, ncp, 4)
                     * r[f][None]).sum(-1)
                for s in range(splits):
                    out[s, f] = t[:, s * per:(s + 1) * per].sum(1)
            return out
        return jax.pure_callback(host, jax.ShapeDtypeStruct((splits, F, k_pad), jnp.float32),
                                 keys, table, r)
    return kernel


@pytest.fixture
def stand_in(monkeypatch):
    monkeypatch.setattr(ms, "_kernel", _stand_in)
    ms._batched_scores.cache_clear()
    yield
    ms._batched_scores.cache_clear()


def test_host_side_equals_ops_scores(stand_in):
    F, D, K = 2, 1001, 100                       # odd D: padded counters; K < one block
    r = jax.random.normal(jax.random.key(0), (F, D), jnp.float32)
    got = np.asarray(ms.scores_mosaic(7, 3, 11, r, K, splits=4))
    assert got.shape == (F, ms.THREADS)
    want = np.asarray(ops.scores(7, 3, 11, r, K, 64, method="matmul"))[:, :K]
    np.testing.assert_allclose(got[:, :K], want, rtol=1e-5, atol=1e-4 * np.abs(want).max())


def test_vmap_folds_gops_into_frames(stand_in):
    """Under vmap (batches of GOPs) each GOP keeps its own address."""
    F, D, K = 2, 96, 64
    r = jax.random.normal(jax.random.key(1), (3, F, D), jnp.float32)
    gops = jnp.arange(3, dtype=jnp.uint32) * 5
    got = jax.vmap(lambda g, rr: ms.scores_mosaic(9, g, 4, rr, K, splits=2))(gops, r)
    for b in range(3):
        want = ops.scores(9, int(gops[b]), 4, r[b], K, 64, method="matmul")[:, :K]
        np.testing.assert_allclose(np.asarray(got[b, :, :K]), np.asarray(want),
                                   rtol=1e-5, atol=1e-4 * float(jnp.abs(want).max()))


def test_kernel_only_where_the_table_fits_in_shared_memory():
    assert all(ms.fits(c) for c in (8.0, 8.7, 9.0, 10.0))
    assert not any(ms.fits(c) for c in (7.0, 7.5, 8.6, 8.9, 12.0))


def test_method_choice(monkeypatch):
    monkeypatch.delenv(ops.METHOD_ENV, raising=False)
    assert not ms.available()                    # CPU: the XLA paths
    assert ops.default_method() == "matmul"
    monkeypatch.setenv(ops.METHOD_ENV, "fused")
    assert ops.default_method() == "fused"
    monkeypatch.setenv(ops.METHOD_ENV, "cuda")
    with pytest.raises(ValueError, match="GVC_CODEBOOK_METHOD"):
        ops.default_method()


def test_rcc_candidates_through_the_kernel_host_side(stand_in):
    """rcc candidates are atoms under other keys: the kernel's host side with those keys gives
    candidates.scores (on CUDA ``method="mosaic"`` takes this path)."""
    from gvc_jax.codebook import candidates
    e = jax.random.normal(jax.random.key(2), (2, 200), jnp.float32)
    keys = jax.vmap(lambda f: candidates._key(5, 1, 2, f, 3))(jnp.arange(2, dtype=jnp.uint32))
    got = ms.scores_for_keys(jnp.stack(keys, axis=1), e, 128)[:, :128]
    want = candidates.scores(5, 1, 2, 3, e, 128, 64, method="matmul")
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5,
                               atol=1e-4 * float(jnp.abs(want).max()))


def test_mosaic_method_on_a_cpu_device_takes_the_xla_path():
    """The kernel is chosen where the computation is lowered: on a CPU device (say, a GPU
    host's CPU) "mosaic" gives the fused XLA scores, no GPU needed."""
    from gvc_jax.codebook import candidates
    r = jax.random.normal(jax.random.key(3), (2, 300), jnp.float32)
    got = ops.scores(1, 2, 3, r, 100, 64, method="mosaic")
    assert got.shape == (2, 100)
    np.testing.assert_array_equal(np.asarray(got),
                                  np.asarray(ops.scores(1, 2, 3, r, 100, 64, method="fused"))[:, :100])
    c = candidates.scores(1, 2, 3, 4, r, 128, 64, method="mosaic")
    np.testing.assert_array_equal(np.asarray(c),
                                  np.asarray(candidates.scores(1, 2, 3, 4, r, 128, 64, "fused")))


@pytest.mark.gpu
@pytest.mark.skipif(not ms.available(), reason="needs a CUDA GPU whose blocks get 128 KiB of smem")
def test_kernel_on_the_gpu_matches_the_xla_path():
    """On a GPU (``pytest -m gpu``): the kernel's scores against the XLA path's, one GOP and a
    vmapped batch of GOPs, and the top-M choice through the default method."""
    F, D, K = 3, 16 * 30 * 40, 4096
    r = jax.random.normal(jax.random.key(4), (2, F, D), jnp.float32)
    for b in range(2):
        got = np.asarray(jax.jit(lambda x: ops.scores(5, b, 7, x, K, 128, method="mosaic"))(r[b]))
        want = np.asarray(ops.scores(5, b, 7, r[b], K, 128, method="fused"))[:, :K]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())
    batched = jax.jit(jax.vmap(lambda g, x: ops.scores(5, g, 7, x, K, 128, method="mosaic")))(
        jnp.arange(2, dtype=jnp.uint32), r)
    for b in range(2):
        want = np.asarray(ops.scores(5, b, 7, r[b], K, 128, method="fused"))[:, :K]
        np.testing.assert_allclose(np.asarray(batched[b]), want, rtol=0,
                                   atol=1e-5 * np.abs(want).max())
    assert ops.default_method() == "mosaic"
    idx, _ = ops.select_topm(5, 0, 7, r[0], K, 16)
    want_idx, _ = ops.select_topm(5, 0, 7, r[0], K, 16, method="fused")
    assert np.mean(np.asarray(idx) == np.asarray(want_idx)) > 0.95   # near-ties may swap
