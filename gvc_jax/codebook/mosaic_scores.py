"""Codebook scores as one hand-written GPU kernel (Mosaic GPU), with the table in shared memory.

Computes what :func:`gvc_jax.codebook.scoring.scores` computes, s[f, k] = <atom(seed, gop, step, f, k),
r_f> (docs/design.md §3; float32 sums in another order), without writing any atom or Threefry
word to memory:

* a block of ``THREADS`` threads copies the 128 KiB int16 table into shared memory once;
* thread t of block (bx, f, s) owns atom k = bx·THREADS + t of frame f and the counters
  c in [s·C, (s+1)·C), C = ⌈D/4⌉ / S: for each c it runs Threefry-2x32-20 on (c, k) under the
  frame's key in registers, looks the four 16-bit halves up in shared memory and accumulates
  them against r[f, 4c : 4c+4] (read by the whole warp at one address);
* the S partial sums are added by XLA afterwards.

Written against ``jax.experimental.mosaic.gpu`` (MLIR built in Python, compiled by the CUDA
plugin), so it runs on NVIDIA GPUs only; elsewhere :func:`available` is False and callers use
the XLA path. The choice between the two is made by :mod:`gvc_jax.codebook.scoring`, which
imports this module (never the reverse). The kernel's numbers are checked against
``scoring.scores`` by bench/profile_gpu.py on the GPU; on CPU a test checks that the kernel's
MLIR builds and verifies.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gvc_jax.codebook.generate import TABLE_I16, frame_key
from gvc_jax.codebook.table import GRID_LOG2
from gvc_jax.codebook.threefry import _PARITY, _ROT

THREADS = 1024
TABLE_SIZE = 1 << 16


def fits(capability: float) -> bool:
    """Whether a GPU of this compute capability gives one block the table's 128 KiB of shared
    memory: sm_80 and sm_87 (163 KiB), sm_90 and the sm_10x data-centre parts (227 KiB); not
    sm_86, sm_89 or sm_120 (99 KiB), nor anything older."""
    return capability in (8.0, 8.7) or 9.0 <= capability < 12.0


def available() -> bool:
    """True where the kernel can run: the default backend is CUDA, its first device
    :func:`fits`, and Mosaic GPU imports."""
    if jax.default_backend() != "gpu":
        return False
    try:
        cap = float(getattr(jax.devices()[0], "compute_capability", "0") or 0)
        from jax.experimental.mosaic import gpu as _  # noqa: F401
    except Exception:  # noqa: BLE001  (ROCm, an old jaxlib: the XLA path is used)
        return False
    return fits(cap)


def _body(n_per_split: int):
    """The kernel body for ``n_per_split`` counters per thread."""
    from jax._src.lib.mlir import ir
    from jax._src.lib.mlir.dialects import arith, gpu, memref, scf

    def body(ctx, keys_ref, table_ref, r_ref, out_ref, smem):
        del ctx
        i32 = ir.IntegerType.get_signless(32)
        f32 = ir.F32Type.get()
        index = ir.IndexType.get()
        u = lambda v: arith.constant(i32, ir.IntegerAttr.get(i32, int(np.int32(np.uint32(v)))))  # noqa: E731
        ix = lambda v: arith.constant(index, ir.IntegerAttr.get(index, int(v)))  # noqa: E731
        to_index = lambda v: arith.index_castui(index, v)  # noqa: E731
        tab = smem

        tid = gpu.thread_id(gpu.Dimension.x)
        bx = gpu.block_id(gpu.Dimension.x)
        f = gpu.block_id(gpu.Dimension.y)
        s = gpu.block_id(gpu.Dimension.z)
        # The table into shared memory: TABLE_SIZE / THREADS coalesced copies per thread.
        for j in range(TABLE_SIZE // THREADS):
            e = arith.addi(tid, ix(j * THREADS))
            memref.store(memref.load(table_ref, [e]), tab, [e])
        gpu.barrier()

        k = arith.index_cast(i32, arith.addi(arith.muli(bx, ix(THREADS)), tid))
        f2 = arith.muli(f, ix(2))
        k0 = memref.load(keys_ref, [f2])
        k1 = memref.load(keys_ref, [arith.addi(f2, ix(1))])
        ks = (k0, k1, arith.xori(arith.xori(k0, k1), u(_PARITY)))

        def rotl(x, r):
            return arith.ori(arith.shli(x, u(r)), arith.shrui(x, u(32 - r)))

        c_lo = arith.muli(s, ix(n_per_split))
        c_hi = arith.addi(c_lo, ix(n_per_split))
        zero = arith.constant(f32, ir.FloatAttr.get(f32, 0.0))
        loop = scf.ForOp(c_lo, c_hi, ix(1), [zero])
        with ir.InsertionPoint(loop.body):
            c = loop.induction_variable
            acc = loop.inner_iter_args[0]
            x0 = arith.addi(arith.index_cast(i32, c), ks[0])
            x1 = arith.addi(k, ks[1])
            for rnd in range(20):
                x0 = arith.addi(x0, x1)
                x1 = arith.xori(rotl(x1, _ROT[rnd % 8]), x0)
                if rnd % 4 == 3:
                    n = (rnd + 1) // 4
                    x0 = arith.addi(x0, ks[n % 3])
                    x1 = arith.addi(arith.addi(x1, ks[(n + 1) % 3]), u(n))
            m16 = u(0xFFFF)
            halves = (arith.shrui(x0, u(16)), arith.andi(x0, m16),
                      arith.shrui(x1, u(16)), arith.andi(x1, m16))
            for j, h in enumerate(halves):
                v = arith.sitofp(f32, memref.load(tab, [to_index(h)]))
                rj = memref.load(r_ref, [f, c, ix(j)])
                acc = arith.addf(acc, arith.mulf(v, rj))
            scf.YieldOp([acc])
        memref.store(loop.results[0], out_ref,
                     [s, f, arith.addi(arith.muli(bx, ix(THREADS)), tid)])

    return body


@functools.lru_cache(maxsize=None)
def _kernel(F: int, k_pad: int, ncp: int, splits: int):
    from jax._src.interpreters import mlir
    from jax._src.lib import mosaic_gpu_dialect
    from jax._src.lib.mlir import ir
    from jax.experimental.mosaic import gpu as mgpu
    keys = jax.ShapeDtypeStruct((2 * F,), jnp.uint32)
    table = jax.ShapeDtypeStruct((TABLE_SIZE,), jnp.int16)
    r = jax.ShapeDtypeStruct((F, ncp, 4), jnp.float32)
    out = jax.ShapeDtypeStruct((splits, F, k_pad), jnp.float32)
    ctx = mlir.make_ir_context()
    mosaic_gpu_dialect.register_dialect(ctx)
    with ctx, ir.Location.unknown():
        return mgpu.as_gpu_kernel(
            _body(ncp // splits), grid=(k_pad // THREADS, F, splits), block=(THREADS, 1, 1),
            in_shape=(keys, table, r), out_shape=out,
            smem_scratch_shape=jax.ShapeDtypeStruct((TABLE_SIZE,), jnp.int16),
            module_name="codebook_scores", kernel_name="codebook_scores")


@functools.lru_cache(maxsize=None)
def _batched_scores(K: int, splits: int):
    """scores(keys [F, 2], r [F, D]) -> [F, K_pad] for static (K, splits); under ``jax.vmap`` the
    batch folds into the frame axis (every frame carries its own key), so one launch serves a
    batch of GOPs."""

    @jax.custom_batching.custom_vmap
    def run(keys_f2, r_fd):
        F, D = r_fd.shape
        nc = -(-D // 4)
        ncp = -(-nc // splits) * splits
        k_pad = -(-K // THREADS) * THREADS
        r = jnp.pad(r_fd.astype(jnp.float32), ((0, 0), (0, ncp * 4 - D)))
        r = (r * jnp.float32(2.0 ** -GRID_LOG2)).reshape(F, ncp, 4)     # exact scaling
        part = _kernel(F, k_pad, ncp, splits)(keys_f2.reshape(-1), jnp.asarray(TABLE_I16), r)
        return jnp.sum(part, axis=0)

    @run.def_vmap
    def _rule(axis_size, in_batched, keys_f2, r_fd):
        keys_f2, r_fd = (x if b else jnp.broadcast_to(x, (axis_size,) + x.shape)
                         for x, b in zip((keys_f2, r_fd), in_batched))
        b, F = r_fd.shape[:2]
        out = run(keys_f2.reshape((b * F,) + keys_f2.shape[2:]), r_fd.reshape((b * F,) + r_fd.shape[2:]))
        return out.reshape(b, F, -1), True

    return run


SPLITS = 32


def scores_for_keys(keys_f2, r_fd, K: int, *, splits: int = SPLITS):
    """float32 scores [F, ⌈K/THREADS⌉·THREADS] of the atoms (or rcc candidates) of frame keys
    ``keys_f2`` uint32 [F, 2] against r [F, D]; columns >= K are junk.

    ``splits``: counter ranges per atom (partial sums added afterwards). On an H200 (F=9,
    D=230,400, K=16,384) 8-32 take 39.6-40.5 ms; fewer, longer float32 sums drift further from
    the XLA path's (bench/results/h200/profile_codebook_mosaic.json)."""
    return _batched_scores(int(K), int(splits))(keys_f2, r_fd)


def scores_mosaic(seed, gop, step, r_fd, K: int, *, splits: int = SPLITS):
    """:func:`scores_for_keys` under the atom keys of (seed, gop, step, frame = f)."""
    F, _ = r_fd.shape
    keys = jax.vmap(lambda f: frame_key(seed, gop, step, f))(jnp.arange(F, dtype=jnp.uint32))
    return scores_for_keys(jnp.stack(keys, axis=1), r_fd, K, splits=splits)
