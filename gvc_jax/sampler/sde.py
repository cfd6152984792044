"""Pure per-step functions of the rectified-flow SDE (docs/design.md §2, GVC eq. for the ODE->SDE).

Interpolant x_t = (1−t)·x0 + t·ε, velocity u = ε − x0.
"""
from __future__ import annotations

import jax.numpy as jnp


def x0_from_velocity(x, t, u):
    """Clean estimate x0_hat = x_t − t·u."""
    return x - t * u


def score_from_velocity(x, t, u):
    """Score s = −(x_t + (1−t)·u) / t, i.e. −E[ε|x_t]/t."""
    return -(x + (1.0 - t) * u) / t


def diffusion(t, g_scale):
    """g_t = g_scale · t²."""
    return g_scale * t * t


def sde_step(x, u, t, t_next, z, g_scale):
    """Euler–Maruyama step with t decreasing: x ← x − f·Δt + g_t·√Δt·z,
    drift f = u − ½·g_t²·s. Same marginals as the ODE dx/dt = u."""
    dt = t - t_next
    g = diffusion(t, g_scale)
    f = u - 0.5 * g * g * score_from_velocity(x, t, u)
    return x - f * dt + (g * jnp.sqrt(dt)) * z


def ode_step(x, u, t, t_next):
    """Deterministic Euler step of the probability-flow ODE: x ← x − u·Δt."""
    return x - u * (t - t_next)
