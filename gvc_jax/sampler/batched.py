"""Batches of GOPs through the single-GOP scans (docs/batch.md, "Batches and devices").

:func:`encode_gops` / :func:`decode_gops` vmap :func:`gvc_jax.sampler.scan.encode_gop` /
:func:`~gvc_jax.sampler.scan.decode_gop` over a leading GOP axis B inside one plain ``jax.jit``
over ``(graphdef, state, ...)``; the seed and model state are shared, and the conditioning is
repeated along the GOP axis (a few MB per GOP). Every GOP
keeps its own codebook address (its GOP number in ``gop_b``), so each result is the one the
per-GOP function gives.

Data parallel: with more than one local device the GOP axis is sharded over a 1-D mesh axis
``"data"`` (``NamedSharding``), the model state replicated; B is padded to a multiple of the
device count (by repeating the last GOP) and the padding dropped again. Each device runs its
share inside ``jax.shard_map``, so kernels without partitioning rules (cuDNN attention refused
queries and keys sharded differently under automatic partitioning; the Mosaic codebook kernel
has no rule at all) see local arrays; the conditioning travels sharded with its GOPs.
"""
from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gvc_jax.sampler.scan import SamplerSpec, decode_gop, encode_gop

AXIS = "data"


def _per_device(fn, mesh, replicated: Sequence[bool]):
    """``fn`` over its device's share of the GOPs: inside ``shard_map`` every op (cuDNN attention,
    the Mosaic codebook kernel) sees local arrays, so no custom call needs partitioning rules.
    Arguments flagged in ``replicated`` (the model state, the seed) are whole on every device;
    the others are split over "data" along their leading GOP axis."""
    if mesh is None:
        return fn
    P = PartitionSpec
    specs = tuple(P() if rep else P(AXIS) for rep in replicated)
    return jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=P(AXIS), check_vma=False)


@functools.partial(jax.jit, static_argnames=("graphdef", "spec", "mesh"))
def _encode_jit(graphdef, state, cond_b, x_T, x0, seed, gop_b, *, spec: SamplerSpec, mesh=None):
    def local(state, cond_b, x_T, x0, seed, gop_b):
        def one(cond, x_T1, x01, gop):
            return encode_gop(graphdef, state, cond, x_T1, x01, seed, gop, spec=spec)
        return jax.vmap(one)(cond_b, x_T, x0, gop_b)

    rep = (True, False, False, False, True, False)
    return _per_device(local, mesh, rep)(state, cond_b, x_T, x0, seed, gop_b)


@functools.partial(jax.jit, static_argnames=("graphdef", "spec", "mesh"))
def _decode_jit(graphdef, state, cond_b, x_T, idx, sign, seed, gop_b, *, spec: SamplerSpec,
                mesh=None):
    def local(state, cond_b, x_T, idx, sign, seed, gop_b):
        def one(cond, x_T1, idx1, sign1, gop):
            return decode_gop(graphdef, state, cond, x_T1, idx1, sign1, seed, gop, spec=spec)
        return jax.vmap(one)(cond_b, x_T, idx, sign, gop_b)

    rep = (True, False, False, False, False, True, False)
    return _per_device(local, mesh, rep)(state, cond_b, x_T, idx, sign, seed, gop_b)


def mesh(devices: Sequence | None = None) -> Mesh | None:
    """The 1-D ``"data"`` mesh over ``devices`` (default: this process's local devices);
    None for a single device."""
    devices = list(jax.local_devices() if devices is None else devices)
    return Mesh(np.array(devices), (AXIS,)) if len(devices) > 1 else None


def replicate(tree, devices: Sequence | None = None):
    """``tree`` placed on every device of the mesh (a no-op on one device). Callers that run
    many batches replicate the model state once; placing it again is then free."""
    m = mesh(devices)
    if m is None:
        return tree
    return jax.device_put(tree, NamedSharding(m, PartitionSpec()))


def _pad(arrays, b: int, n: int):
    """Pads the leading axis of each array from ``b`` to ``n`` by repeating the last entry."""
    if n == b:
        return arrays
    return [np.concatenate([a, np.repeat(a[-1:], n - b, axis=0)]) for a in arrays]


def _place(batched: list, state, cond, devices):
    """``(batched arrays, state, cond repeated per GOP, B)``: on a mesh the batched arrays and
    the repeated cond are sharded over "data" (B padded to a multiple of the device count) and
    the state replicated."""
    batched = [np.asarray(a) for a in batched]
    b = batched[0].shape[0]
    if b < 1 or any(a.shape[0] != b for a in batched):
        raise ValueError(f"need >= 1 GOP and one leading GOP axis, got "
                         f"{[a.shape for a in batched]}")
    m = mesh(devices)
    n = b if m is None else -(-b // m.size) * m.size
    cond_b = jax.tree.map(lambda c: jnp.broadcast_to(jnp.asarray(c), (n,) + jnp.shape(c)), cond)
    if m is None:
        return batched, state, cond_b, b
    data = NamedSharding(m, PartitionSpec(AXIS))
    batched = [jax.device_put(a, data) for a in _pad(batched, b, n)]
    return (batched, jax.device_put(state, NamedSharding(m, PartitionSpec())),
            jax.device_put(cond_b, data), b)


def encode_gops(graphdef, state, cond, x_T_bcthw, x0_bcthw, seed, gop_b, *, spec: SamplerSpec,
                devices: Sequence | None = None):
    """The encoder over B GOPs at once: ``(idx [B,S,F,Mmax], sign [B,S,F,Mmax], x0 [B,C,F,H,W])``,
    GOP b equal to ``encode_gop(..., x_T[b], x0[b], seed, gop_b[b])``. ``devices`` overrides the
    local devices the batch is sharded over."""
    (x_T, x0, g), state, cond_b, b = _place(
        [x_T_bcthw, x0_bcthw, np.asarray(gop_b, np.uint32)], state, cond, devices)
    idx, sign, x = _encode_jit(graphdef, state, cond_b, x_T, x0, jnp.uint32(seed), g, spec=spec,
                               mesh=mesh(devices))
    return idx[:b], sign[:b], x[:b]


def decode_gops(graphdef, state, cond, x_T_bcthw, idx_b, sign_b, seed, gop_b, *,
                spec: SamplerSpec, devices: Sequence | None = None):
    """The decoder over B GOPs at once: x0 ``[B,C,F,H,W]``, GOP b equal to
    ``decode_gop(..., x_T[b], idx[b], sign[b], seed, gop_b[b])``."""
    (x_T, idx, sign, g), state, cond_b, b = _place(
        [x_T_bcthw, idx_b, sign_b, np.asarray(gop_b, np.uint32)], state, cond, devices)
    x = _decode_jit(graphdef, state, cond_b, x_T, idx, sign, jnp.uint32(seed), g, spec=spec,
                    mesh=mesh(devices))
    return x[:b]
