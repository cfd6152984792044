"""Pallas (Triton) codebook scores: interpreted against ops.scores, and lowered for CUDA."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gvc_jax.codebook import ops
from gvc_jax.codebook.pallas_scores import scores_pallas

U32 = jnp.uint32


def _r(F, D, seed=0):
    return jax.random.normal(jax.random.PRNGKey(seed), (F, D), jnp.float32)


@pytest.mark.parametrize("D,K,block_k,block_c,traced", [
    (1001, 100, 64, 64, False),     # odd D (nc = 251 -> 256), K not a multiple of block_k
    (16 * 6 * 10, 128, 64, 256, True),   # default blocks, traced seed/gop/step
])
def test_interpret_matches_ops_scores(D, K, block_k, block_c, traced):
    F = 2
    r = _r(F, D)
    seed, gop, step = 1234567, 3, 0xFFFFFFF0
    fn = functools.partial(scores_pallas, K=K, block_k=block_k, block_c=block_c, interpret=True)
    if traced:
        s = jax.jit(lambda a, b, c, x: fn(a, b, c, x))(U32(seed), U32(gop), U32(step), r)
    else:
        s = fn(seed, gop, step, r)
    n = -(-K // block_k) * block_k
    assert s.shape == (F, n) and s.dtype == jnp.float32
    ref = np.asarray(ops.scores(seed, gop, step, r, K, 64, method="matmul"))[:, :K]
    s = np.asarray(s)[:, :K]
    scale = float(np.abs(ref).max())
    np.testing.assert_allclose(s, ref, rtol=1e-5, atol=1e-4 * scale)
    top = lambda x: np.argsort(-np.abs(x), axis=1, kind="stable")[:, :8]
    np.testing.assert_array_equal(top(s), top(ref))


def test_block_sizes_must_be_powers_of_two():
    with pytest.raises(ValueError, match="power of two"):
        scores_pallas(0, 0, 0, jnp.zeros((1, 8), jnp.float32), 64, block_c=48, interpret=True)


def _triton_modules(lowered):
    """The Triton IR modules (parsed and verified) of the pallas_calls in a lowered computation."""
    from jax._src.lib.mlir import ir
    from jax._src.pallas.triton import lowering as triton_lowering

    calls = []

    def walk(op):
        op = op.operation
        if op.name == "stablehlo.custom_call":
            calls.append(op)
        for region in op.regions:
            for block in region.blocks:
                for child in block.operations:
                    walk(child)

    walk(lowered.compiler_ir("stablehlo").operation)
    mods = []
    for op in calls:
        if ir.StringAttr(op.attributes["call_target_name"]).value != "__gpu$xla.gpu.triton":
            continue
        blob = ir.StringAttr(ir.DictAttr(op.attributes["mhlo.backend_config"])["ir"]).value_bytes
        with triton_lowering._new_ir_context():
            m = ir.Module.parse(blob)
            assert m.operation.verify()
            mods.append(str(m))
    return mods


def test_lowers_for_cuda():
    """Cross-lowers on a CPU-only host: every op of the kernel has a Triton lowering (uint32
    add/xor/shifts, the int16 table gather, the counter loop) and the Triton module verifies.
    (Triton's own compilation to PTX happens in XLA:GPU and is not exercised here.)"""
    F, D, K = 3, 1001, 200
    fn = jax.jit(lambda seed, gop, step, r: scores_pallas(seed, gop, step, r, K))
    lowered = fn.trace(U32(1), U32(2), U32(3), jnp.zeros((F, D), jnp.float32)).lower(
        lowering_platforms=("cuda",))
    [tt] = _triton_modules(lowered)
    assert "scf.for" in tt                                     # the fori_loop over counter blocks
    assert "tensor<64x256x!tt.ptr<i16>>" in tt                 # the table gather, one per half
    assert tt.count("arith.sitofp") >= 4
    for op in ("arith.shli", "arith.shrui", "arith.xori", "arith.addi", "tt.reduce"):
        assert op in tt
    assert "arith.shrsi" not in tt                             # uint32 shifts stay logical
