"""Model registry: config name -> the velocity model + autoencoder the codec drives.

The codec never knows which model it drives; it sees a :class:`CodecModel`:
an NNX module with ``velocity(x_cthw, t, cond)`` split once into
``(graphdef, state)`` for the jitted scans, plus encode/decode to latents.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import numpy as np
from flax import nnx

from gvc_jax.codec.errors import UsageError

WAN_CONFIGS = ("wan2.1-t2v-1.3b", "wan2.1-t2v-14b", "wan2.1-i2v-14b-480p",
               "wan2.1-i2v-14b-720p", "wan2.1-flf2v-14b-720p")


@dataclasses.dataclass
class CodecModel:
    name: str
    fingerprint: str
    module: Any                      # nnx.Module with .velocity
    encode: Callable[[np.ndarray], jax.Array]      # uint8 [T,H,W,3] -> x0 [C,T',H',W']
    decode: Callable[[jax.Array], np.ndarray]      # x0 -> uint8 [T,H,W,3]
    frames_per_latent: int
    causal: bool
    spatial_multiple: int
    cond: Any = None
    graphdef: Any = None
    state: Any = None

    def __post_init__(self):
        self.graphdef, self.state = nnx.split(self.module)


def _gaussian(weights: str | None) -> CodecModel:
    from gvc_jax.models.gaussian import GaussianPrior

    from gvc_jax.weights.sources import CheckpointError

    try:
        prior = GaussianPrior(path=weights) if weights else GaussianPrior()
    except (OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{weights}: not a usable gaussian prior stats file ({e})") from None
    enc = jax.jit(prior.encode)
    dec = jax.jit(prior.decode_uint8)
    return CodecModel(
        name="gaussian", fingerprint=prior.fingerprint, module=prior,
        encode=lambda f: enc(np.asarray(f)), decode=lambda x: np.asarray(dec(x)),
        frames_per_latent=prior.frames_per_latent, causal=False,
        spatial_multiple=prior.spatial_multiple)


_LOADERS: dict[str, Callable[[str | None], CodecModel]] = {"gaussian": _gaussian}


def available_configs() -> list[str]:
    return sorted(_LOADERS) + list(WAN_CONFIGS)


def load_model(config: str, weights: str | None = None) -> CodecModel:
    if config in _LOADERS:
        return _LOADERS[config](weights)
    if config in WAN_CONFIGS or config.startswith("wan"):
        raise UsageError(f"config {config!r}: the Wan models are ported (gvc_jax.models.wan) but "
                         "not yet wired into the codec; use --config gaussian")
    raise UsageError(f"unknown config {config!r}; available: {', '.join(available_configs())}")
