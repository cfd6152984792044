"""The memory-bounded online-softmax attention (gvc_jax/models/wan/blocked_attention.py) and the
kernel choice by target (gvc_jax/models/wan/attention.py, gvc_jax/target.py), on CPU.

Tolerances: both this attention and XLA's are compared with a float64 softmax of the same
(rounded) inputs. In float32 the two differ by summation order only (measured max abs 8e-6 for
O(1) outputs over up to 517 keys); the bound 3e-5 is float32 rounding over ~500 terms
(500 x 6e-8). In bf16 the output rounding (2^-8 relative) dominates: this attention must be no
further from the exact result than XLA's own bf16 path plus one bf16 step of the output scale
(measured: its error is 0.4-1.0x XLA's). A wrong rescaling or a mask error is off by O(0.1-1).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gvc_jax import target
from gvc_jax.models.wan import attention as att
from gvc_jax.models.wan.blocked_attention import (TILE_BUDGET_BYTES, block_sizes,
                                                  blocked_attention, peak_extra_bytes)

SHAPES = [  # (B, L, S, N, H, block_q, block_k)
    (2, 300, 300, 3, 64, 64, 128),     # L and S not multiples of the blocks
    (1, 1000, 77, 2, 32, None, None),  # cross-attention shape, one key block
    (2, 130, 517, 2, 128, 64, 256),    # Lq != Lk, ragged last key block
    (1, 5, 7, 1, 8, None, 4),
]


def _inputs(b, l, s, n, h, dtype, seed):
    ks = jax.random.split(jax.random.key(seed), 3)
    q = (jax.random.normal(ks[0], (b, l, n, h)) * 2).astype(dtype)
    k = (jax.random.normal(ks[1], (b, s, n, h)) * 2).astype(dtype)
    v = jax.random.normal(ks[2], (b, s, n, h)).astype(dtype)
    return q, k, v


def _exact(q, k, v):
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    s = np.einsum("blnh,bsnh->bnls", q, k) / np.sqrt(q.shape[-1])
    p = np.exp(s - s.max(-1, keepdims=True))
    return np.einsum("bnls,bsnh->blnh", p / p.sum(-1, keepdims=True), v)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("shape", SHAPES)
def test_equals_xla_attention(shape, dtype):
    b, l, s, n, h, bq, bk = shape
    q, k, v = _inputs(b, l, s, n, h, dtype, l + s)
    got = jax.jit(lambda *a: blocked_attention(*a, block_q=bq, block_k=bk))(q, k, v)
    assert got.shape == q.shape and got.dtype == q.dtype
    xla = jax.nn.dot_product_attention(q, k, v, implementation="xla")
    exact = _exact(q, k, v)
    got, xla = np.asarray(got, np.float64), np.asarray(xla, np.float64)
    if dtype == jnp.float32:
        assert np.abs(got - xla).max() < 3e-5
    else:
        ulp = 2.0 ** -8 * np.abs(exact).max()
        assert np.abs(got - exact).max() <= np.abs(xla - exact).max() + ulp


def test_block_sizes_bound_the_tile():
    bq, bk = block_sizes(1, 32760, 40, 32760)
    assert bk == 512 and bq % 64 == 0 and 1 * 40 * bq * bk * 4 <= TILE_BUDGET_BYTES
    assert block_sizes(1, 100, 2, 7) == (100, 7)            # short: one block each
    # The bound does not grow with the sequence: Wan's 14B at 720p x 33 frames, 480p x 81.
    assert peak_extra_bytes(1, 32400, 40, 128, 32400) < 0.25e9
    assert peak_extra_bytes(1, 32760, 12, 128, 32760) < 0.25e9


def test_no_score_matrix_is_materialised():
    """XLA:CPU's temporaries for L = S = 4096, one head: far below the 64 MiB of an [L, S]
    float32 score matrix (XLA's own attention needs more than that)."""
    sds = jax.ShapeDtypeStruct((1, 4096, 1, 64), jnp.float32)
    temps = lambda f: f.trace(sds, sds, sds).lower().compile().memory_analysis()  # noqa: E731
    ours = temps(jax.jit(lambda q, k, v: blocked_attention(q, k, v, block_q=512)))
    xla = temps(jax.jit(lambda q, k, v: jax.nn.dot_product_attention(q, k, v,
                                                                        implementation="xla")))
    assert xla.temp_size_in_bytes >= 4096 * 4096 * 4
    assert ours.temp_size_in_bytes < 4096 * 4096 * 4 // 8


def _choice(platform, dtype, cap=None, shape=(1, 64, 2, 128)):
    q = jax.ShapeDtypeStruct(shape, dtype)
    with target.building_for(platform, cap) as t:
        return att.choose_implementation(q, q, q), t


def test_choice_follows_the_target():
    assert _choice("cpu", jnp.bfloat16)[0] == "xla"
    assert _choice("tpu", jnp.float32)[0] == "pallas"
    assert _choice("gpu", jnp.float32, 9.0)[0] == "blocked"          # cuDNN takes no fp32
    assert _choice("gpu", jnp.bfloat16, 7.5)[0] == "blocked"         # a T4: before sm80
    assert _choice("gpu", jnp.float16, 7.5)[0] == "blocked"
    assert _choice("gpu", jnp.bfloat16, 9.0)[0] == "cudnn"           # an H100
    assert _choice("gpu", jnp.bfloat16, 8.0, (1, 64, 2, 192))[0] == "blocked"   # head dim
    assert _choice("gpu", jnp.bfloat16, 9.0, (1, 64, 2, 192))[0] == "cudnn"
    # Without a context the local backend decides (CPU here), so CPU streams are unchanged.
    q = jax.ShapeDtypeStruct((1, 8, 1, 8), jnp.float32)
    assert target.current() == target.local() and att.choose_implementation(q, q, q) == "xla"


def test_building_for_is_scoped_and_validated():
    with target.building_for("tpu") as t:
        assert target.current() == t and not t.local
        with target.building_for("gpu", 7.5):
            assert target.current().gpu_capability == 7.5
        assert target.current().platform == "tpu"
    assert target.current() == target.local()
    with pytest.raises(ValueError, match="unknown target platform"):
        with target.building_for("npu"):
            pass
    with target.building_for(target.local().platform) as t:
        assert t.local


def test_dit_forward_with_blocked_attention_on_a_gpu_target():
    """The model traced for a GPU target in fp32 takes the blocked kernel and agrees with XLA
    (run here on CPU: the kernel is plain JAX)."""
    from flax import nnx

    from configs.wan_dit import get_config
    from gvc_jax.models.wan.dit import WanDiT

    cfg = get_config("tiny-t2v")
    model = WanDiT(cfg, rngs=nnx.Rngs(0), dtype=jnp.float32, param_dtype=jnp.float32)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((1, 16, 2, 4, 6)), jnp.float32)
    ctx = jnp.asarray(rng.standard_normal((1, cfg.text_len, cfg.text_dim)), jnp.float32)
    t = jnp.asarray([321.0])
    seen = []
    real = att._local_attention

    def spy(q, k, v, implementation=None):
        seen.append(implementation or att.choose_implementation(q, k, v))
        return real(q, k, v, implementation)

    want = model(x, t, ctx, implementation="xla")
    att._local_attention = spy
    try:
        with target.building_for("gpu", 9.0):
            got = model(x, t, ctx)
    finally:
        att._local_attention = real
    assert seen and set(seen) == {"blocked"}
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_blocked_attention_on_gpu_without_cudnn(dtype):
    """On a GPU with cuDNN flash attention unavailable (fp32 inputs, which cuDNN refuses; bf16
    built for an sm75 GPU, as a T4): the automatic choice is the blocked kernel, and it agrees
    with XLA's attention on the same GPU (matmuls at full fp32 precision; bf16 as above)."""
    if jax.default_backend() != "gpu":
        pytest.skip("needs a GPU")
    q, k, v = _inputs(1, 4100, 4100, 12, 128, dtype, 7)
    cap = None if dtype == jnp.float32 else 7.5
    with jax.default_matmul_precision("highest"), target.building_for("gpu", cap):
        assert att.choose_implementation(q, k, v) == "blocked"
        got = np.asarray(jax.jit(att.attention)(q, k, v), np.float64)
        xla = np.asarray(jax.nn.dot_product_attention(q, k, v, implementation="xla"),
                         np.float64)
    if dtype == jnp.float32:
        assert np.abs(got - xla).max() < 1e-4        # float32 rounding over 4,100 keys
    else:
        exact = _exact(q, k, v)
        ulp = 2.0 ** -8 * np.abs(exact).max()
        assert np.abs(got - exact).max() <= np.abs(xla - exact).max() + ulp


def test_gvc_attention_forces_the_kernel(monkeypatch, capsys):
    """``$GVC_ATTENTION`` overrides the automatic choice (how a GPU is run as one without cuDNN
    flash attention); a name that is no kernel is a one-line usage error of the CLI."""
    q = jnp.zeros((1, 8, 2, 16), jnp.float32)
    monkeypatch.setenv("GVC_ATTENTION", "blocked")
    assert att.choose_implementation(q, q, q) == "blocked"
    with target.building_for("tpu"):
        assert att.choose_implementation(q, q, q) == "blocked"
    monkeypatch.setenv("GVC_ATTENTION", "flash9")
    from gvc_jax.cli import main
    assert main(["decompress", "nothing.gvc", "-o", "out.npy"]) == 2
    err = capsys.readouterr().err
    assert "$GVC_ATTENTION='flash9' is not one of" in err and err.count("\n") == 1
    monkeypatch.delenv("GVC_ATTENTION")
    assert att.choose_implementation(q, q, q) == "xla"
