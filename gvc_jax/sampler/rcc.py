"""Reverse channel coding ("rcc"): greedy shift matching over shared-seed candidates (docs/rcc.md).

Per communicating step t -> s (s < t) of the Markov process with the interpolant's marginals the
encoder knows the x0-conditioned reverse step q(x_s | x_t, x0) = N(A x0 + B x_t, v); the decoder's
model step replaces x0 by x0_hat. The shift delta = A (x0 - x0_hat) is sent, per latent frame, as L
choices of ``bits`` bits each among 2^bits candidate normals z_j (docs/rcc.md §1-§2): the encoder
picks them one after another so that <sum_j z_j / sqrt(L), delta/|delta|> matches |delta|/sqrt(v);
both sides then step x_s = A x0_hat + B x_t + sqrt(v) z. After the last communicating time an
accurate probability-flow ODE tail (Heun/RK4 on a log-SNR grid) maps x_{t_S} to x0.

Both scans are a plain ``jax.jit`` over ``(graphdef, state, ...)`` with ``lax.scan`` inside and the
module merged inside each body (as in :mod:`gvc_jax.sampler.scan`); the decoder regenerates only
the chosen candidates and equals the encoder's output bit for bit on the same backend.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gvc_jax.codebook import candidates as cand
from gvc_jax.codebook import shifted
from gvc_jax.sampler.scan import _from_fd, _to_fd, _velocity
from gvc_jax.sampler.solvers import FAMILIES, SOLVERS

MAX_BITS = {"iid": 24, "shift": shifted.MAX_BITS}


@dataclasses.dataclass(frozen=True)
class RccSpec:
    """Static rcc settings (hashable: a jit static argument), docs/rcc.md §3.

    ``times``: communicating grid t_0 = 1 > t_1 > ... > t_S > 0 (float32 values); ``levels``:
    choices per frame and step; ``bits``: bits per choice (2^bits candidates); the ODE tail takes
    ``tail_steps`` intervals from t_S to 0 with ``tail_solver``, uniform in log-SNR up to
    ``lam_max`` then one Euler step to t = 0; ``chunk``: candidates (``iid``) or bases
    (``shift``) scored per pass (encoder). ``family``: the candidates, i.i.d. normals
    (:mod:`gvc_jax.codebook.candidates`) or signed shifts of shared bases
    (:mod:`gvc_jax.codebook.shifted`); ``group``: latent frames per choice, laid end to end
    (a last, partial group is padded with frames that are dropped); ``parts``: rows each group is
    split into, part p holding every ``parts``-th value of it from value p (docs/rcc.md §3)."""
    times: tuple[float, ...]
    levels: int = 1
    bits: int = 16
    tail_steps: int = 16
    tail_solver: str = "rk4"
    lam_max: float = 12.0
    chunk: int = 4096
    family: str = "iid"
    group: int = 1
    parts: int = 1

    def __post_init__(self):
        t = np.asarray(self.times, np.float64)
        if t.ndim != 1 or t.size < 2 or t[0] != 1.0 or not np.all(np.diff(t) < 0) or t[-1] <= 0:
            raise ValueError(f"times must decrease from 1.0 to a last time > 0, got {self.times}")
        if not np.array_equal(t.astype(np.float32).astype(np.float64), t):
            raise ValueError("times must be float32 values (round them with np.float32)")
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {self.family!r}")
        if not 1 <= self.bits <= MAX_BITS[self.family]:
            raise ValueError(f"bits must lie in [1, {MAX_BITS[self.family]}] for "
                             f"{self.family} candidates, got {self.bits}")
        if not 1 <= self.group <= 4096:
            raise ValueError(f"group must lie in [1, 4096], got {self.group}")
        if not 1 <= self.parts <= 4096:
            raise ValueError(f"parts must lie in [1, 4096], got {self.parts}")
        if not 1 <= self.levels <= 64:
            raise ValueError(f"levels must lie in [1, 64], got {self.levels}")
        if self.tail_solver not in SOLVERS:
            raise ValueError(f"tail_solver must be one of {SOLVERS}, got {self.tail_solver!r}")
        if self.tail_steps < 1 or self.chunk < 1:
            raise ValueError("tail_steps and chunk must be >= 1")
        lam_s = math.log((1.0 - t[-1]) / t[-1]) if t[-1] < 1 else -math.inf
        if not self.lam_max > lam_s:
            raise ValueError(f"lam_max={self.lam_max} must exceed the log-SNR of t_S ({lam_s:.3f})")

    @property
    def n_steps(self) -> int:
        return len(self.times) - 1

    @property
    def n_cand(self) -> int:
        return 1 << self.bits

    def n_rows(self, n_frames: int) -> int:
        """Choices per step and level for ``n_frames`` latent frames (:func:`rows_for`)."""
        return rows_for(n_frames, self.group, self.parts)

    def row_len(self, frame_len: int) -> int:
        """Values per row (per candidate) for frames of ``frame_len`` values:
        ceil(group x frame_len / parts)."""
        return -(-self.group * int(frame_len) // self.parts)

    def step_table(self) -> np.ndarray:
        """float32 [S, 5] rows (t, s, A, B, sqrt v) computed in float64 on the host."""
        rows = [(t, s, *step_coefs(t, s)) for t, s in zip(self.times[:-1], self.times[1:])]
        out = np.array([(t, s, a, b, math.sqrt(v)) for t, s, a, b, v in rows], np.float64)
        return out.astype(np.float32)

    def model_calls(self) -> int:
        """Model evaluations of one GOP: S steps, then the tail's (T - 1) intervals at the
        solver's calls each and one last Euler call (``dpm2m``: one call per interval)."""
        per = {"euler": 1, "heun": 2, "rk4": 4, "dpm2m": 1}[self.tail_solver]
        return self.n_steps + per * (self.tail_steps - 1) + 1

    def dpm2m_table(self) -> np.ndarray:
        """float32 [T - 1, 4] rows (a, b, c1, c2) of the ``dpm2m`` tail, computed in float64 on
        the host: x_s = a x_t + b D with a = s/t, b = (1 - s)(1 - e^-h), h = lambda_s -
        lambda_t, and D = c1 x0_hat(t) + c2 x0_hat(previous t), the second-order multistep
        data-prediction update (DPM-Solver++ 2M; c1 = 1, c2 = 0 on the first interval)."""
        t = self.tail_times().astype(np.float64)[:-1]
        lam = np.log((1.0 - t) / t)
        h = np.diff(lam)
        out = np.zeros((len(h), 4))
        out[:, 0] = t[1:] / t[:-1]
        out[:, 1] = (1.0 - t[1:]) * -np.expm1(-h)
        out[:, 2] = 1.0
        r = h[:-1] / h[1:]
        out[1:, 2] = 1.0 + 0.5 / r
        out[1:, 3] = -0.5 / r
        return out.astype(np.float32)

    def tail_times(self) -> np.ndarray:
        """float32 ODE tail grid from t_S to 0: uniform in log-SNR to ``lam_max``, then 0."""
        t_s = float(self.times[-1])
        lam0 = math.log((1.0 - t_s) / t_s)
        lam = np.linspace(lam0, self.lam_max, self.tail_steps)
        t = 1.0 / (1.0 + np.exp(lam))
        t[0] = t_s
        return np.concatenate([t, [0.0]]).astype(np.float32)


def step_coefs(t: float, s: float) -> tuple[float, float, float]:
    """(A, B, v) of q(x_s | x_t, x0) = N(A x0 + B x_t, v), 0 < s < t <= 1 (docs/rcc.md §1)."""
    a = (1.0 - t) / (1.0 - s)
    var_ts = t * t - a * a * s * s
    v = 1.0 / (1.0 / (s * s) + a * a / var_ts)
    b = math.sqrt(max(s * s - v, 0.0)) / t
    return (1.0 - s) - b * (1.0 - t), b, v


def rcc_bits(spec: RccSpec, shape_cthw) -> int:
    """Exact payload bits of one GOP: ceil(F / group) x parts rows x S steps x L choices x
    ``bits``; no side info."""
    return spec.n_rows(shape_cthw[1]) * spec.n_steps * spec.levels * spec.bits


# ---- planning (host) -----------------------------------------------------------------------
def gaussian_error_fn(variances, counts=None) -> Callable[[float], float]:
    """Expected per-frame denoising error E|x0 - x0_hat(x_t)|^2 of independent Gaussians
    N(mu_i, var_i) (one frame's dims, optionally as values with ``counts``), as a function of t."""
    v = np.asarray(variances, np.float64).ravel()
    n = np.ones_like(v) if counts is None else np.asarray(counts, np.float64).ravel()
    return lambda t: float(np.sum(n * v * t * t / ((1.0 - t) ** 2 * v + t * t)))


def rows_for(n_frames: int, group: int = 1, parts: int = 1) -> int:
    """Rows (choices per step and level) of ``n_frames`` latent frames: ceil(F / G) x P."""
    return -(-int(n_frames) // group) * parts


def steps_for(bits_per_frame: int, bits: int, levels: int = 1, group: int = 1,
              parts: int = 1) -> int:
    """Communicating steps S of a rate of ``bits_per_frame``: whole steps of ``parts * levels *
    bits`` bits for ``group`` frames, floor(G N / (P L b)) (docs/rcc.md §3)."""
    return int(bits_per_frame) * int(group) // (bits * levels * parts)


def plan(err_fn: Callable[[float], float], bits_per_frame: int, *, bits: int = 16,
         levels: int = 1, eta: float = 1.0, group: int = 1, parts: int = 1,
         **kw) -> RccSpec:
    """RccSpec for a rate of ``bits_per_frame`` (rounded down to whole choices), docs/rcc.md §3.

    ``err_fn(t)`` is the model's expected per-frame denoising error (for the Gaussian prior
    :func:`gaussian_error_fn`; for another model a calibrated curve). A row is 1/``parts`` of
    ``group`` frames, so a step costs ``parts * levels * bits / group`` bits per frame. Steps are
    placed one after another so each step's expected KL per row, A^2 (group / parts) err(t) /
    (2v), equals ``eta`` x its ``levels * bits`` bits; the last time reached is the stop time.
    Extra keywords go to :class:`RccSpec`."""
    n_steps = steps_for(bits_per_frame, bits, levels, group, parts)
    if n_steps < 1:
        raise ValueError(f"{bits_per_frame} bits per frame is less than one step "
                         f"({bits * levels * parts} bits for {group} frame(s))")
    goal = eta * levels * bits * math.log(2.0)
    times = [1.0]
    for _ in range(n_steps):
        t = times[-1]
        e = group * err_fn(t) / parts
        lo, hi = 0.0, t
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            if mid <= 0.0 or mid >= t:
                break
            a, _, v = step_coefs(t, mid)
            if a * a * e / (2.0 * v) > goal:
                lo = mid
            else:
                hi = mid
        s = float(np.float32(0.5 * (lo + hi)))
        if not 0.0 < s < t:
            raise ValueError(f"cannot place step {len(times)}: rate too high for this model")
        times.append(s)
    return RccSpec(times=tuple(times), levels=levels, bits=bits, group=group, parts=parts, **kw)


# ---- traced pieces -------------------------------------------------------------------------
def ode_tail(velocity, x, spec: RccSpec):
    """Probability-flow ODE from t_S to 0 on :meth:`RccSpec.tail_times` (last interval Euler)."""
    times = jnp.asarray(spec.tail_times())
    if spec.tail_solver == "dpm2m":
        coefs = jnp.asarray(spec.dpm2m_table())

        def step(carry, i):
            x, prev = carry
            x0h = x - times[i] * velocity(x, times[i])
            a, b, c1, c2 = coefs[i, 0], coefs[i, 1], coefs[i, 2], coefs[i, 3]
            return (a * x + b * (c1 * x0h + c2 * prev), x0h), None

        (x, _), _ = jax.lax.scan(step, (x, jnp.zeros_like(x)), jnp.arange(spec.tail_steps - 1))
        t = times[spec.tail_steps - 1]
        return x - t * velocity(x, t)

    def body(x, i):
        t, s = times[i], times[i + 1]
        h = t - s
        u1 = velocity(x, t)
        if spec.tail_solver == "euler":
            return x - h * u1, None
        if spec.tail_solver == "heun":
            u2 = velocity(x - h * u1, s)
            return x - (0.5 * h) * (u1 + u2), None
        tm = t - 0.5 * h
        u2 = velocity(x - (0.5 * h) * u1, tm)
        u3 = velocity(x - (0.5 * h) * u2, tm)
        u4 = velocity(x - h * u3, s)
        return x - (h / 6.0) * (u1 + 2.0 * u2 + 2.0 * u3 + u4), None

    x, _ = jax.lax.scan(body, x, jnp.arange(spec.tail_steps - 1))
    t = times[spec.tail_steps - 1]
    return x - t * velocity(x, t)                       # last interval: Euler to t = 0


def _rows(x_fd, spec: RccSpec):
    """[F, D] -> [rows, n] (docs/rcc.md §3): groups of frames end to end (the last padded with
    zero frames), each split into ``parts`` interleaved rows, part p = values p, p + P, ...
    (zero-padded to a whole n = ceil(G D / P) per part)."""
    f, d = x_fd.shape
    g, p, n = spec.group, spec.parts, spec.row_len(d)
    r0 = -(-f // g)
    x = jnp.pad(x_fd, ((0, r0 * g - f), (0, 0))).reshape(r0, g * d)
    x = jnp.pad(x, ((0, 0), (0, n * p - g * d)))
    return x.reshape(r0, n, p).transpose(0, 2, 1).reshape(r0 * p, n)


def _unrows(z_rn, spec: RccSpec, f: int, d: int):
    """Inverse of :func:`_rows`: [rows, n] -> [F, D], dropping the padding."""
    g, p = spec.group, spec.parts
    r0 = z_rn.shape[0] // p
    z = z_rn.reshape(r0, p, -1).transpose(0, 2, 1).reshape(r0, -1)[:, :g * d]
    return z.reshape(-1, d)[:f]


def _chosen(seed, gop, k, level, idx_r, n: int, spec: RccSpec):
    if spec.family == "shift":
        return shifted.chosen(seed, gop, k, level, idx_r, n, spec.bits)
    return cand.chosen(seed, gop, k, level, idx_r, n)


def choices_to_ints(choices, spec: RccSpec) -> np.ndarray:
    """The encoder's choices (``shift``: (hi, lo) words [S, R, L, 2]) as integers uint64
    [S, R, L] for :func:`gvc_jax.bitstream.rcc_payload.pack` (host)."""
    c = np.asarray(choices)
    return shifted.words_to_int(c) if spec.family == "shift" else c.astype(np.uint64)


def choices_from_ints(ints, spec: RccSpec) -> np.ndarray:
    """Inverse of :func:`choices_to_ints`: what :func:`rcc_decode_gop` takes (host)."""
    v = np.asarray(ints)
    return shifted.int_to_words(v) if spec.family == "shift" else v.astype(np.uint32)


def _noise_fd(seed, gop, k, idx_rl, spec: RccSpec, f: int, d: int):
    """z [F, D] from the rows' sum_j candidate(k, row, j, idx[row, j]) / sqrt(L); the sum is
    exact (table grid, signs)."""
    n = spec.row_len(d)
    z = _chosen(seed, gop, k, 0, idx_rl[:, 0], n, spec)
    for j in range(1, spec.levels):
        z = z + _chosen(seed, gop, k, j, idx_rl[:, j], n, spec)
    if spec.levels > 1:
        z = z * jnp.float32(1.0 / math.sqrt(spec.levels))
    return _unrows(z, spec, f, d)


def _step(velocity, x, row):
    t, s, a, b, sv = row[0], row[1], row[2], row[3], row[4]
    x0h = x - t * velocity(x, t)
    return x0h, a, b, sv


def _pick(seed, gop, k, r_fd, sv, spec: RccSpec):
    """Greedy choices uint32 [rows, L] (``shift``: [rows, L, 2] index words): each level's
    projection brings the running sum toward the goal, per row (a group of frames)."""
    r_rn = _rows(r_fd, spec)
    nrm = jnp.sqrt(jnp.sum(r_rn * r_rn, axis=1))
    e_rn = r_rn / jnp.maximum(nrm, jnp.float32(1e-30))[:, None]
    goal = nrm / sv * jnp.float32(math.sqrt(spec.levels))
    acc = jnp.zeros_like(goal)
    idx = []
    for j in range(spec.levels):
        want = (goal - acc) / jnp.float32(spec.levels - j)
        if spec.family == "shift":
            i, p_i = shifted.search(seed, gop, k, j, e_rn, want, spec.bits, spec.chunk)
        else:
            p = cand.scores(seed, gop, k, j, e_rn, spec.n_cand, min(spec.chunk, spec.n_cand))
            i = jnp.argmin(jnp.abs(p - want[:, None]), axis=1)
            p_i = jnp.take_along_axis(p, i[:, None], axis=1)[:, 0]
        acc = acc + p_i
        idx.append(i.astype(jnp.uint32))
    return jnp.stack(idx, axis=1)


@functools.partial(jax.jit, static_argnames=("graphdef", "spec"))
def rcc_encode_gop(graphdef, state, cond, x_T, x0_target, seed, gop, *, spec: RccSpec):
    """Encodes one GOP: returns (choices uint32 [S, rows, L], x0_out [C, F, H, W]), rows =
    ceil(F / group) x parts; ``shift`` choices are (hi, lo) index words [S, rows, L, 2]
    (:func:`choices_to_ints`; docs/rcc.md §2)."""
    velocity = _velocity(graphdef, state, cond)
    table = jnp.asarray(spec.step_table())
    shape = x_T.shape
    d = shape[0] * shape[2] * shape[3]
    seed = jnp.asarray(seed, jnp.uint32)
    gop = jnp.asarray(gop, jnp.uint32)

    def body(x, k):
        x0h, a, b, sv = _step(velocity, x, table[k])
        r_fd = _to_fd(a * (x0_target - x0h))
        idx = _pick(seed, gop, k, r_fd, sv, spec)
        z = _from_fd(_noise_fd(seed, gop, k, idx, spec, shape[1], d), shape)
        return a * x0h + b * x + sv * z, idx

    x, choices = jax.lax.scan(body, x_T, jnp.arange(spec.n_steps, dtype=jnp.uint32))
    return choices, ode_tail(velocity, x, spec)


@functools.partial(jax.jit, static_argnames=("graphdef", "spec"))
def rcc_decode_gop(graphdef, state, cond, x_T, choices, seed, gop, *, spec: RccSpec):
    """Replays one GOP from choices [S, rows, L] (``shift``: [S, rows, L, 2] words,
    :func:`choices_from_ints`); generates only the chosen candidates."""
    velocity = _velocity(graphdef, state, cond)
    table = jnp.asarray(spec.step_table())
    shape = x_T.shape
    d = shape[0] * shape[2] * shape[3]
    seed = jnp.asarray(seed, jnp.uint32)
    gop = jnp.asarray(gop, jnp.uint32)

    def body(x, inputs):
        k, idx = inputs
        x0h, a, b, sv = _step(velocity, x, table[k])
        z = _from_fd(_noise_fd(seed, gop, k, idx, spec, shape[1], d), shape)
        return a * x0h + b * x + sv * z, None

    steps = jnp.arange(spec.n_steps, dtype=jnp.uint32)
    x, _ = jax.lax.scan(body, x_T, (steps, jnp.asarray(choices).astype(jnp.uint32)))
    return ode_tail(velocity, x, spec)
