"""Rectified-flow ODE -> SDE sampler that carries the codebook bits (docs/design.md §2)."""
from gvc_jax.sampler.schedules import shifted_times
from gvc_jax.sampler.sde import (diffusion, ode_step, score_from_velocity, sde_step,
                                 x0_from_velocity)
from gvc_jax.sampler.scan import SamplerSpec, decode_gop, encode_gop

__all__ = ["shifted_times", "diffusion", "ode_step", "score_from_velocity", "sde_step",
           "x0_from_velocity", "SamplerSpec", "encode_gop", "decode_gop"]
