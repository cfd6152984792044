"""The Hopper attention path's split and merge (gvc_jax/models/wan/hopper_attention.py), on CPU.

The Mosaic GPU kernel itself needs a Hopper GPU (measured in bench/profile_gpu.py); here an XLA
stand-in with the kernel's contract (pre-scaled queries, base-2 log-sum-exp) takes its place.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gvc_jax.models.wan import hopper_attention as ha


def _stand_in(seen):
    def kernel(q, k, v):
        seen.append((q.shape, k.shape))
        o, lse = ha._xla_partial(q, k, v)
        return o, lse / math.log(2.0)
    return kernel


@pytest.mark.parametrize("l,s", [(200, 300), (128, 256), (70, 100), (5, 7), (256, 129)])
def test_split_attention_equals_full_attention(l, s):
    rng = np.random.default_rng(l + s)
    q, k, v = (jnp.asarray(rng.standard_normal((2, n, 3, 64)) * 2, jnp.float32)
               for n in (l, s, s))
    seen = []
    got = ha.split_attention(q, k, v, _stand_in(seen))
    want = jax.nn.dot_product_attention(q, k, v, implementation="xla")
    # float32 sums in another order; a wrong merge or split errs by O(0.1)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)
    head = (s // ha.BLOCK_KV) * ha.BLOCK_KV
    if head:      # the kernel saw whole key blocks and query rows padded to two query blocks
        [(qs, ks)] = seen
        assert ks[1] == head and qs[1] % (2 * ha.BLOCK_Q) == 0 and qs[1] >= l
    else:
        assert seen == []


def test_merge_is_exact_for_disjoint_key_sets():
    rng = np.random.default_rng(0)
    q, k, v = (jnp.asarray(rng.standard_normal((1, n, 2, 8)), jnp.float32) for n in (9, 20, 20))
    o1, l1 = ha._xla_partial(q, k[:, :13], v[:, :13])
    o2, l2 = ha._xla_partial(q, k[:, 13:], v[:, 13:])
    o, _ = ha._xla_partial(q, k, v)
    np.testing.assert_allclose(np.asarray(ha.merge_partial(o1, l1, o2, l2)), np.asarray(o),
                               rtol=0, atol=1e-6)
