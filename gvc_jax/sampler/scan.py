"""The encoder and decoder scans over one GOP (docs/design.md §1–§3).

Both are a plain ``jax.jit`` over ``(graphdef, state, ...)`` with one
``lax.scan`` over the SDE steps (which carry bits) followed by one over the
deterministic ODE tail. The encoder picks, per step and latent frame, the
top-M signed atoms for r = x0_target − x0_hat; the decoder replays the same
trajectory from the indices and signs. Latents are ``x_cthw``; the codebook
sees them per latent frame as ``[F, D]`` with D = C·H·W.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gvc_jax import codebook
from gvc_jax.sampler import progress as _progress
from gvc_jax.sampler.schedules import make_times
from gvc_jax.sampler.sde import ode_step, sde_step, x0_from_velocity


@dataclasses.dataclass(frozen=True)
class SamplerSpec:
    """Static sampler and codebook settings (hashable: a jit static argument)."""
    n_steps: int = 20
    sde_steps: int = 17
    g_scale: float = 3.0
    shift: float = 1.0
    K: int = 16384
    m_per_frame: tuple[int, ...] = (64,)
    chunk: int | None = None
    schedule: str = "shifted"

    def __post_init__(self):
        if not 0 <= self.sde_steps <= self.n_steps:
            raise ValueError(f"sde_steps={self.sde_steps} must lie in [0, n_steps={self.n_steps}]")
        if not self.m_per_frame or min(self.m_per_frame) < 1 or max(self.m_per_frame) > self.K:
            raise ValueError(f"every M must lie in [1, K={self.K}], got {self.m_per_frame}")

    @property
    def m_max(self) -> int:
        return max(self.m_per_frame)

    def times(self) -> np.ndarray:
        return make_times(self.schedule, self.n_steps, self.shift)


def _to_fd(x_cthw):
    c, f, h, w = x_cthw.shape
    return jnp.moveaxis(x_cthw, 1, 0).reshape(f, c * h * w)


def _from_fd(z_fd, shape_cthw):
    c, f, h, w = shape_cthw
    return jnp.moveaxis(z_fd.reshape(f, c, h, w), 0, 1)


def _velocity(graphdef, state, cond):
    """``u(x, t)``. The module is merged inside each scan body, at that body's trace level
    (NNX transforms inside the model, e.g. ``nnx.scan`` over blocks, require it)."""
    return lambda x, t: nnx.merge(graphdef, state, copy=True).velocity(x, t, cond)


def _ode_tail(velocity, x, times, spec: SamplerSpec):
    def body(x, i):
        t, t_next = times[i], times[i + 1]
        u = velocity(x, t)
        _progress.tick(i)
        return ode_step(x, u, t, t_next), None

    steps = jnp.arange(spec.sde_steps, spec.n_steps)
    x, _ = jax.lax.scan(body, x, steps)
    return x


def _noise(seed, gop, i, idx_fm, sign_fm, spec: SamplerSpec, shape_cthw):
    """The step's noise from the chosen atoms; a single-entry ``m_per_frame`` applies to
    every latent frame, otherwise it needs one entry per frame."""
    c, f, h, w = shape_cthw
    if len(spec.m_per_frame) == 1:
        m = spec.m_per_frame * f
    elif len(spec.m_per_frame) == f:
        m = spec.m_per_frame
    else:
        raise ValueError(f"m_per_frame has {len(spec.m_per_frame)} entries for {f} latent frames")
    z_fd = codebook.combine(seed, gop, i, idx_fm, sign_fm, m, c * h * w)
    return _from_fd(z_fd, shape_cthw)


@functools.partial(jax.jit, static_argnames=("graphdef", "spec"))
def encode_gop(graphdef, state, cond, x_T, x0_target, seed, gop, *, spec: SamplerSpec):
    """Runs the encoder for one GOP.

    Returns ``(idx [S, F, Mmax] int32, sign [S, F, Mmax] bool, x0 [C,F,H,W])``:
    per SDE step and latent frame the atoms ordered by |score|, and the
    encoder's own final sample.
    """
    velocity = _velocity(graphdef, state, cond)
    times = jnp.asarray(spec.times())
    shape = x_T.shape
    seed = jnp.asarray(seed, jnp.uint32)
    gop = jnp.asarray(gop, jnp.uint32)

    def body(x, i):
        t, t_next = times[i], times[i + 1]
        u = velocity(x, t)
        r_fd = _to_fd(x0_target - x0_from_velocity(x, t, u))
        idx, sign = codebook.select_topm(seed, gop, i, r_fd, spec.K, spec.m_max, chunk=spec.chunk)
        z = _noise(seed, gop, i, idx, sign, spec, shape)
        _progress.tick(i)
        return sde_step(x, u, t, t_next, z, spec.g_scale), (idx, sign)

    x, (idx, sign) = jax.lax.scan(body, x_T, jnp.arange(spec.sde_steps))
    return idx, sign, _ode_tail(velocity, x, times, spec)


@functools.partial(jax.jit, static_argnames=("graphdef", "spec"))
def decode_gop(graphdef, state, cond, x_T, idx, sign, seed, gop, *, spec: SamplerSpec):
    """Replays one GOP from its indices and signs; generates only the M atoms used."""
    velocity = _velocity(graphdef, state, cond)
    times = jnp.asarray(spec.times())
    shape = x_T.shape
    seed = jnp.asarray(seed, jnp.uint32)
    gop = jnp.asarray(gop, jnp.uint32)

    def body(x, inputs):
        i, idx_fm, sign_fm = inputs
        t, t_next = times[i], times[i + 1]
        u = velocity(x, t)
        z = _noise(seed, gop, i, idx_fm, sign_fm, spec, shape)
        _progress.tick(i)
        return sde_step(x, u, t, t_next, z, spec.g_scale), None

    x, _ = jax.lax.scan(body, x_T, (jnp.arange(spec.sde_steps), idx, sign))
    return _ode_tail(velocity, x, times, spec)


@functools.partial(jax.jit, static_argnames=("graphdef", "spec"))
def sample_gop(graphdef, state, cond, x_T, key, *, spec: SamplerSpec):
    """Unconditional sampling with Gaussian noise (no target): used to check
    that the SDE keeps the prior's marginals."""
    velocity = _velocity(graphdef, state, cond)
    times = jnp.asarray(spec.times())

    def body(x, i):
        t, t_next = times[i], times[i + 1]
        u = velocity(x, t)
        z = jax.random.normal(jax.random.fold_in(key, i), x.shape, x.dtype)
        return sde_step(x, u, t, t_next, z, spec.g_scale), None

    x, _ = jax.lax.scan(body, x_T, jnp.arange(spec.sde_steps))
    return _ode_tail(velocity, x, times, spec)
