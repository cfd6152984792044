"""Rectified-flow ODE -> SDE sampler that carries the codebook bits (docs/design.md §2).

JAX is imported on first use of a sampler function, so light modules (``solvers``) can be read
without it."""
_LAZY = {"shifted_times": "schedules", "diffusion": "sde", "ode_step": "sde",
         "score_from_velocity": "sde", "sde_step": "sde", "x0_from_velocity": "sde",
         "SamplerSpec": "scan", "encode_gop": "scan", "decode_gop": "scan"}

__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"gvc_jax.sampler.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'gvc_jax.sampler' has no attribute {name!r}")
