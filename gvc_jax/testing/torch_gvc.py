"""Independent PyTorch reference of the GVC encoder/decoder loop, written from the equations.

Nothing of the codec is used except the NumPy codebook primitives ``atoms_numpy`` (the addressable
atoms) and ``init_noise_numpy`` (the seeded x_T); selection, the signed combination and its RMS
normalisation, the SDE/ODE steps and the loop are all re-derived here.

Equations (rectified flow, t runs from 1 to 0)::

    x_t = (1−t)·x0 + t·ε,  u = ε − x0 (the model's velocity)
    x0_hat = x_t − t·u,    s = −(x_t + (1−t)·u)/t,   g_t = g_scale·t²,   f = u − ½·g_t²·s
    SDE step (dt = t − t_next > 0):  x ← x − f·dt + g_t·√dt·z
    ODE step:                        x ← x − u·dt

The first ``sde_steps`` steps are SDE steps whose noise z carries the bits: for SDE step i and latent
frame f, r_f = (x0_target − x0_hat)[:, f] flattened C-major over [C, H, W]; score_k = ⟨a_k, r_f⟩
over the K atoms a_k = atoms_numpy(seed, gop, i, f, k); the m_f atoms of largest |score| are kept
(ties: smaller k first) with sign_k = score_k ≥ 0; z_f = Σ ±a_k scaled to unit RMS (0 if all zero).
The remaining steps are deterministic Euler steps of the probability-flow ODE.

Precision (the ``dtype`` argument, default float64):

* The model runs in its own dtype (``wan_velocity`` casts x to the transformer's parameter dtype and
  the output back to the dtype of x); everything outside the model — x0_hat, residual, score,
  drift, the SDE/ODE updates — runs in the loop ``dtype``. Scalars (t, t_next, dt, √dt, g_t) are
  0-d tensors of that dtype, built from the float32 grid values (exact in float64).
* float64 (default) makes the loop arithmetic essentially exact, so against a float32 JAX loop the
  measured gap is the JAX side's rounding plus the model's own float32 differences; it is the
  better "truth" for a rel. L2 tolerance of 1e-5. ``dtype=torch.float32`` mirrors a float32
  implementation op for op (same formulas, same order) when a closer, bit-level-ish comparison is
  wanted.
* Scores are always float64 (atoms are float32 grid values, exact in float64; the residual is cast
  up from the loop dtype), so the ranking is exact up to genuine ties whatever the loop dtype.
* The signed sum of atoms is formed in float64 and is exact (every atom value is a multiple of
  2^-12 of magnitude < 5, so sums of up to ~10^3 atoms lose nothing); the mean square and the
  division by its square root are float64 too; z is then cast to the loop dtype.
"""
from __future__ import annotations

import copy
from typing import Callable, Sequence

import numpy as np

from gvc_jax.codebook import atoms_numpy, init_noise_numpy
from gvc_jax.testing.deps import require

require("the PyTorch GVC reference needs", ("torch",))
import torch  # noqa: E402

__all__ = ["gvc_encode_torch", "gvc_decode_torch", "gvc_sample_torch", "wan_velocity",
           "shifted_times_np", "seeded_x_T", "select_topm_torch", "combine_rms_torch",
           "to_fd", "from_fd"]

F64 = torch.float64
# Above this many atom elements per (step, frame) the scores are computed in chunks of K and the
# selected atoms regenerated (same values: an atom is a pure function of its address).
_MAX_ATOM_ELEMS = 1 << 26


# ----------------------------------------------------------------------------------------------
# Small pieces
# ----------------------------------------------------------------------------------------------
def shifted_times_np(n_steps: int, shift: float = 1.0) -> np.ndarray:
    """t_i = shift·τ/(1 + (shift−1)·τ), τ = linspace(1, 0, N+1) in float64, cast to float32."""
    tau = np.linspace(1.0, 0.0, int(n_steps) + 1, dtype=np.float64)
    return (shift * tau / (1.0 + (shift - 1.0) * tau)).astype(np.float32)


def seeded_x_T(seed: int, gop: int, shape_cfhw) -> np.ndarray:
    """x_T = init_noise_numpy(seed, gop, (C, F, H, W)), float32."""
    return init_noise_numpy(seed, gop, tuple(int(s) for s in shape_cfhw))


def to_fd(x_cfhw: torch.Tensor) -> torch.Tensor:
    """[C, F, H, W] -> [F, C·H·W] (C-major flatten of each latent frame)."""
    c, f, h, w = x_cfhw.shape
    return x_cfhw.permute(1, 0, 2, 3).reshape(f, c * h * w)


def from_fd(z_fd: torch.Tensor, shape_cfhw) -> torch.Tensor:
    """Inverse of :func:`to_fd`."""
    c, f, h, w = shape_cfhw
    return z_fd.reshape(f, c, h, w).permute(1, 0, 2, 3).contiguous()


def _atoms(seed, gop, step, frame, indices, d) -> torch.Tensor:
    """Atoms [n, d] as float64 (exact copies of the float32 grid values)."""
    a = atoms_numpy(seed, gop, step, frame, np.asarray(indices, np.int64), d)
    return torch.from_numpy(np.ascontiguousarray(a)).to(F64)


def _rank(scores_k: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The m largest |score| (stable: equal |score| keeps the smaller k first); sign = score ≥ 0."""
    order = torch.argsort(-scores_k.abs(), stable=True)[:m]
    return order, scores_k[order] >= 0


def _scores(seed, gop, step, frame, r_d: torch.Tensor, K: int):
    """float64 scores [K] of one frame; also the [K, D] atoms when they fit in memory."""
    d = r_d.numel()
    r = r_d.to(F64)
    if K * d <= _MAX_ATOM_ELEMS:
        a = _atoms(seed, gop, step, frame, np.arange(K), d)
        return a @ r, a
    chunk = max(1, _MAX_ATOM_ELEMS // d)
    parts = [_atoms(seed, gop, step, frame, np.arange(k0, min(K, k0 + chunk)), d) @ r
             for k0 in range(0, K, chunk)]
    return torch.cat(parts), None


def select_topm_torch(seed: int, gop: int, step: int, r_fd, K: int, m_max: int):
    """Selection for every frame of a residual [F, D]: (idx int32 [F, m_max], sign bool [F, m_max])."""
    r = torch.as_tensor(np.asarray(r_fd) if not torch.is_tensor(r_fd) else r_fd)
    idx = np.empty((r.shape[0], m_max), np.int32)
    sign = np.empty((r.shape[0], m_max), bool)
    for f in range(r.shape[0]):
        s, _ = _scores(seed, gop, step, f, r[f], K)
        o, sg = _rank(s, m_max)
        idx[f], sign[f] = o.numpy(), sg.numpy()
    return idx, sign


def _rms_normalise(z_d: torch.Tensor) -> torch.Tensor:
    """z / sqrt(mean(z²)) in float64; an all-zero z stays zero."""
    ms = torch.mean(z_d * z_d)
    if ms.item() == 0.0:
        return torch.zeros_like(z_d)
    return z_d / torch.sqrt(ms)


def combine_rms_torch(atoms_md: torch.Tensor, sign_m) -> torch.Tensor:
    """Σ (+1 if sign else −1)·a_k over the rows of atoms [m, D], normalised to unit RMS (float64)."""
    sign_m = torch.as_tensor(np.asarray(sign_m, bool))
    w = torch.where(sign_m, 1.0, -1.0).to(F64)
    return _rms_normalise((w[:, None] * atoms_md.to(F64)).sum(0))


def _m_list(m_per_frame, n_frames: int) -> list[int]:
    m = [int(v) for v in (m_per_frame if isinstance(m_per_frame, (list, tuple, np.ndarray))
                          else [m_per_frame])]
    if len(m) == 1:
        m = m * n_frames
    if len(m) != n_frames:
        raise ValueError(f"m_per_frame has {len(m)} entries for {n_frames} latent frames")
    if min(m) < 1:
        raise ValueError(f"every M must be >= 1, got {m}")
    return m


def _tensor(x, dtype) -> torch.Tensor:
    if torch.is_tensor(x):
        return x.detach().to(dtype=dtype, device="cpu").clone()
    return torch.from_numpy(np.array(x)).to(dtype)


# ----------------------------------------------------------------------------------------------
# The steps
# ----------------------------------------------------------------------------------------------
def _sde_step(x, u, t, t_next, z, g_scale):
    dt = t - t_next
    g = g_scale * t * t
    s = -(x + (1.0 - t) * u) / t
    f = u - 0.5 * g * g * s
    return x - f * dt + (g * torch.sqrt(dt)) * z


def _ode_step(x, u, t, t_next):
    return x - u * (t - t_next)


def _call_velocity(velocity, x, t: torch.Tensor) -> torch.Tensor:
    u = velocity(x, float(t.item()))
    u = torch.as_tensor(u)
    if tuple(u.shape) != tuple(x.shape):
        raise ValueError(f"velocity returned shape {tuple(u.shape)} for x of shape {tuple(x.shape)}")
    return u.to(dtype=x.dtype, device=x.device)


def _run(velocity, x_T, *, times, sde_steps, g_scale, dtype, noise_fn, trajectory):
    """The shared loop: ``noise_fn(i, x, t, u) -> z`` (loop dtype) at each SDE step."""
    times = np.asarray(times, np.float32)
    n = times.shape[0] - 1
    if not 0 <= sde_steps <= n:
        raise ValueError(f"sde_steps={sde_steps} must lie in [0, {n}]")
    ts = torch.from_numpy(times.astype(np.float64)).to(dtype)   # exact: float32 -> float64
    gs = torch.tensor(float(g_scale), dtype=dtype)
    x = _tensor(x_T, dtype)
    traj = [x.numpy().copy()] if trajectory else None
    with torch.no_grad():
        for i in range(sde_steps):
            t, t_next = ts[i], ts[i + 1]
            u = _call_velocity(velocity, x, t)
            z = noise_fn(i, x, t, u)
            x = _sde_step(x, u, t, t_next, z.to(dtype), gs)
            if trajectory:
                traj.append(x.numpy().copy())
        x_sde = x
        for i in range(sde_steps, n):
            t, t_next = ts[i], ts[i + 1]
            u = _call_velocity(velocity, x, t)
            x = _ode_step(x, u, t, t_next)
            if trajectory:
                traj.append(x.numpy().copy())
    return x_sde, x, traj


# ----------------------------------------------------------------------------------------------
# Public loops
# ----------------------------------------------------------------------------------------------
def gvc_encode_torch(velocity: Callable, x_T, x0_target, *, times, sde_steps: int, g_scale: float,
                     K: int, m_per_frame: Sequence[int], seed: int, gop: int, teacher=None,
                     dtype=torch.float64, return_trajectory: bool = False) -> dict:
    """Encodes one GOP: per SDE step and latent frame, the top-m_f signed atoms of the residual.

    Args:
      velocity: ``velocity(x [C,F,H,W] tensor in the loop dtype, t python float) -> u``.
      x_T: initial latent [C, F, H, W] (normally :func:`seeded_x_T`).
      x0_target: target latent [C, F, H, W].
      times: float32 grid [N+1], decreasing from 1 to 0.
      m_per_frame: one M per latent frame (a single entry applies to every frame).
      teacher: optional ``(idx [S,F,Mmax], sign [S,F,Mmax])`` whose first m_f entries per frame are
        used to build the noise instead of the selection (the selection is still returned).
      dtype: loop dtype (see the module docstring).
      return_trajectory: also return ``traj`` [N+1, C, F, H, W], the latent before/after each step.

    Returns ``{"idx": int32 [S,F,Mmax] (−1 past m_f, ordered by |score| descending),
    "sign": bool [S,F,Mmax] (False past m_f), "x0": final latent, "x_sde": latent after the SDE
    steps}`` as NumPy arrays (latents in the loop dtype).
    """
    x0t = _tensor(x0_target, dtype)
    shape = tuple(x0t.shape)
    if tuple(np.shape(x_T)) != shape:
        raise ValueError(f"x_T shape {tuple(np.shape(x_T))} != target shape {shape}")
    c, n_f, h, w = shape
    d = c * h * w
    ms = _m_list(m_per_frame, n_f)
    m_max = max(ms)
    if m_max > K:
        raise ValueError(f"M={m_max} exceeds K={K}")
    idx_out = np.full((sde_steps, n_f, m_max), -1, np.int32)
    sign_out = np.zeros((sde_steps, n_f, m_max), bool)
    if teacher is not None:
        t_idx, t_sign = np.asarray(teacher[0]), np.asarray(teacher[1], bool)
        if t_idx.shape[:2] != (sde_steps, n_f) or t_idx.shape[2] < m_max or t_sign.shape != t_idx.shape:
            raise ValueError(f"teacher arrays of shape {t_idx.shape}/{t_sign.shape} do not fit "
                             f"[S={sde_steps}, F={n_f}, >= {m_max}]")

    def noise(i, x, t, u):
        x0_hat = x - t * u
        r_fd = to_fd(x0t - x0_hat)
        z_fd = torch.zeros((n_f, d), dtype=F64)
        for f in range(n_f):
            m = ms[f]
            s, atoms = _scores(seed, gop, i, f, r_fd[f], K)
            sel, sg = _rank(s, m)
            idx_out[i, f, :m] = sel.numpy()
            sign_out[i, f, :m] = sg.numpy()
            if teacher is not None:
                use = torch.from_numpy(t_idx[i, f, :m].astype(np.int64))
                use_sign = t_sign[i, f, :m]
                if use.min().item() < 0 or use.max().item() >= K:
                    raise ValueError(f"teacher index out of [0, K) at step {i}, frame {f}")
            else:
                use, use_sign = sel, sg.numpy()
            a = atoms[use] if atoms is not None else _atoms(seed, gop, i, f, use.numpy(), d)
            z_fd[f] = combine_rms_torch(a, use_sign)
        return from_fd(z_fd, shape)

    x_sde, x, traj = _run(velocity, x_T, times=times, sde_steps=sde_steps, g_scale=g_scale,
                          dtype=dtype, noise_fn=noise, trajectory=return_trajectory)
    out = {"idx": idx_out, "sign": sign_out, "x0": x.numpy(), "x_sde": x_sde.numpy()}
    if return_trajectory:
        out["traj"] = np.stack(traj)
    return out


def gvc_decode_torch(velocity: Callable, x_T, idx, sign, *, times, sde_steps: int, g_scale: float,
                     m_per_frame: Sequence[int], seed: int, gop: int, dtype=torch.float64,
                     return_trajectory: bool = False) -> dict:
    """Replays one GOP from indices and signs [S, F, ≥Mmax] (only the first m_f per frame are read);
    generates only the atoms used. Returns ``{"x0", "x_sde"}`` (and ``traj`` if asked)."""
    idx = np.asarray(idx)
    sign = np.asarray(sign, bool)
    shape = tuple(np.shape(x_T))
    c, n_f, h, w = shape
    d = c * h * w
    ms = _m_list(m_per_frame, n_f)
    if idx.shape[:2] != (sde_steps, n_f) or idx.shape[2] < max(ms) or sign.shape != idx.shape:
        raise ValueError(f"idx/sign of shape {idx.shape}/{sign.shape} do not fit "
                         f"[S={sde_steps}, F={n_f}, >= {max(ms)}]")

    def noise(i, x, t, u):
        z_fd = torch.zeros((n_f, d), dtype=F64)
        for f in range(n_f):
            m = ms[f]
            if idx[i, f, :m].min() < 0:
                raise ValueError(f"negative index among the first {m} at step {i}, frame {f}")
            z_fd[f] = combine_rms_torch(_atoms(seed, gop, i, f, idx[i, f, :m], d), sign[i, f, :m])
        return from_fd(z_fd, shape)

    x_sde, x, traj = _run(velocity, x_T, times=times, sde_steps=sde_steps, g_scale=g_scale,
                          dtype=dtype, noise_fn=noise, trajectory=return_trajectory)
    out = {"x0": x.numpy(), "x_sde": x_sde.numpy()}
    if return_trajectory:
        out["traj"] = np.stack(traj)
    return out


def gvc_sample_torch(velocity: Callable, x_T, *, times, sde_steps: int, g_scale: float,
                     generator: torch.Generator, dtype=torch.float64) -> dict:
    """The same loop with i.i.d. Gaussian noise instead of atoms (no bits): ``{"x0", "x_sde"}``."""
    def noise(i, x, t, u):
        return torch.randn(x.shape, generator=generator, dtype=F64)

    x_sde, x, _ = _run(velocity, x_T, times=times, sde_steps=sde_steps, g_scale=g_scale,
                       dtype=dtype, noise_fn=noise, trajectory=False)
    return {"x0": x.numpy(), "x_sde": x_sde.numpy()}


# ----------------------------------------------------------------------------------------------
# diffusers Wan transformer as a velocity
# ----------------------------------------------------------------------------------------------
def wan_velocity(transformer, context, negative_context=None, guidance: float = 1.0, *,
                 dtype=None, image_context=None, y=None) -> Callable:
    """``velocity(x, t)`` from a diffusers ``WanTransformer3DModel``.

    The transformer is called as ``transformer(hidden_states=x[None], timestep=[t·1000],
    encoder_hidden_states=context[None], return_dict=False)[0][0]``. With ``guidance != 1`` it is
    called again with ``negative_context`` and u = u_neg + g·(u_cond − u_neg).

    Args:
      context / negative_context: text features [L, text_dim] (no batch axis).
      dtype: the model dtype (torch.float32 or torch.float64). None: the transformer's parameter
        dtype. If it differs, a converted copy is used (the given module is left untouched). Note
        that diffusers' Wan blocks route some norms through ``.float()``, so a float64 model is
        not float64 everywhere.
      image_context: optional CLIP tokens [L_img, clip_dim] (``encoder_hidden_states_image``);
        FLF2V: [2, L_img, clip_dim], the first frame's tokens then the last's.
      y: optional conditioning latent [C_y, F, H, W] concatenated to x on channels (i2v).

    x is cast to the model dtype, the timestep t·1000 is formed in the model dtype from the
    float32 grid value, and the guided combination is computed in the dtype of the x passed in
    (the loop dtype).
    """
    p_dtype = next(transformer.parameters()).dtype
    model_dtype = p_dtype if dtype is None else dtype
    model = transformer if model_dtype == p_dtype else copy.deepcopy(transformer).to(model_dtype)
    model.eval()
    if guidance != 1.0 and negative_context is None:
        raise ValueError("guidance != 1 needs a negative_context")

    def prep(a):
        return None if a is None else _tensor(a, model_dtype)

    ctx, neg, img, cond_y = prep(context), prep(negative_context), prep(image_context), prep(y)

    def one(x_m, ts, c):
        hs = x_m if cond_y is None else torch.cat([x_m, cond_y], dim=0)
        # FLF2V: [2, L_img, D] (first, last) goes in as is; diffusers folds it into one row.
        kw = {} if img is None else {"encoder_hidden_states_image":
                                     img if img.ndim == 3 else img[None]}
        return model(hidden_states=hs[None], timestep=ts, encoder_hidden_states=c[None],
                     return_dict=False, **kw)[0][0]

    def velocity(x, t):
        x = torch.as_tensor(x)
        ts = torch.tensor([t], dtype=model_dtype) * 1000.0
        with torch.no_grad():
            x_m = x.to(model_dtype)
            u = one(x_m, ts, ctx).to(x.dtype)
            if guidance == 1.0:
                return u
            u_neg = one(x_m, ts, neg).to(x.dtype)
            return u_neg + guidance * (u - u_neg)

    return velocity
