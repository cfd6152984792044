"""Model registry: config name -> the velocity model + autoencoder the codec drives.

The codec never knows which model it drives; it sees a :class:`CodecModel`: a
:class:`~gvc_jax.models.protocol.VelocityModel` split once into ``(graphdef, state)`` for the
jitted scans, encode/decode between uint8 frames and latents, one
:class:`~gvc_jax.models.protocol.Geometry`, and the conditioning shared by all GOPs (the prompt
context).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import jax
import numpy as np
from flax import nnx

from gvc_jax.codec.errors import UsageError
from gvc_jax.codec.placement import Placement, place
from gvc_jax.codec.prompt import Prompt
from gvc_jax.models.protocol import Geometry, VelocityModel

# Wan presets -> (model type, the released DiT they name). "wan2.1-t2v", "wan2.1-i2v" and
# "wan2.1-flf2v" take any folder of that type (tiny test folders, custom sizes).
WAN = {"wan2.1-t2v-1.3b": ("t2v", "t2v-1.3b"), "wan2.1-t2v-14b": ("t2v", "t2v-14b"),
       "wan2.1-t2v": ("t2v", None),
       "wan2.1-i2v-14b-480p": ("i2v", "i2v-14b-480p"),
       "wan2.1-i2v-14b-720p": ("i2v", "i2v-14b-720p"), "wan2.1-i2v": ("i2v", None),
       "wan2.1-flf2v-14b-720p": ("flf2v", "flf2v-14b-720p"), "wan2.1-flf2v": ("flf2v", None)}
WAN_T2V = {k: v for k, (t, v) in WAN.items() if t == "t2v"}
@dataclasses.dataclass
class CodecModel:
    name: str
    fingerprint: str
    module: VelocityModel                            # nnx.Module with .velocity
    encode: Callable[[np.ndarray], jax.Array]        # uint8 [T,H,W,3] -> x0 [C,T',H',W']
    decode: Callable[[jax.Array], np.ndarray]        # x0 -> uint8 [T,H,W,3]
    geometry: Geometry
    cond: Any = None
    prompt: Prompt = Prompt()
    text_conditioned: bool = False
    dtype: str = "float32"
    text_len: int = 512                              # the prompt contexts' length
    autoencoder: Any = None                          # the autoencoder object, where there is one
    conditioner: Any = None                          # I2V/FLF2V: (first, last, frames) -> cond
    error_fn: Any = None     # rcc: latent shape -> t -> expected per-frame denoising error
    info: dict = dataclasses.field(default_factory=dict)
    placement: Placement = Placement(offload="never")   # devices and offload of the weights
    graphdef: Any = None
    state: Any = None

    def __post_init__(self):
        self.graphdef, self.state = nnx.split(self.module)
        self.state, self._parker = place(self.module, self.state, self.placement)
        if self._parker is not None:   # the autoencoder and the conditioner park the weights
            self.encode, self.decode = self._parked(self.encode), self._parked(self.decode)
            if self.conditioner is not None:
                self.conditioner = self._parked(self.conditioner)
            self.module = None         # its arrays are the parked ones: use graphdef + dit_state()

    def _parked(self, fn):
        def run(*a, **kw):
            self.state = self._parker.park()
            return fn(*a, **kw)
        return run

    def dit_state(self):
        """The velocity model's state on its devices (brought back if parked)."""
        if self._parker is not None:
            self.state = self._parker.unpark()
        return self.state

    @property
    def offloading(self) -> bool:
        return self._parker is not None

    @property
    def n_devices(self) -> int:
        """Devices the velocity model's weights are placed on."""
        leaves = jax.tree.leaves(self.state)
        return len(leaves[0].sharding.device_set) if leaves else 1

    def check_params(self, params) -> None:
        """Parameters this model cannot honour are usage errors."""
        if params.dtype != self.dtype:
            raise UsageError(f"the model was loaded in {self.dtype}, the parameters ask for "
                             f"{params.dtype}")
        if self.text_conditioned and params.text_len != self.text_len:
            raise UsageError(f"the model was loaded with {self.text_len}-token prompt "
                             f"contexts, the parameters ask for {params.text_len}")
        if not self.text_conditioned and (params.guidance != 1.0 or self.prompt.payload()
                                          or params.text_len != 512):
            raise UsageError(f"config {self.name!r} takes no prompt, guidance or text length")


# ------------------------------------------------------------------ loaders
def _gaussian(weights: str | None, prompt: Prompt, params, *, placement: Placement = Placement(),
              **_) -> CodecModel:
    """The embedded prior (a few KB of state: ``auto`` never parks it)."""
    from gvc_jax.models.gaussian import GaussianPrior
    from gvc_jax.weights.sources import CheckpointError

    if prompt.payload():
        raise UsageError("the gaussian model takes no prompt")
    if params.dtype == "fp8":
        raise UsageError("--dtype fp8 applies to the Wan DiT; the gaussian model computes in "
                         "float32")
    try:
        prior = GaussianPrior(path=weights) if weights else GaussianPrior()
    except (OSError, ValueError, KeyError, EOFError) as e:
        why = "not an .npz archive" if "pickle" in str(e) or isinstance(e, EOFError) else str(e)
        raise CheckpointError(f"{weights}: not a usable gaussian prior stats file ({why})") \
            from None
    enc = jax.jit(prior.encode)
    dec = jax.jit(prior.decode_uint8)
    geom = Geometry(frames_per_latent=prior.frames_per_latent, causal=False,
                    spatial_multiple=prior.spatial_multiple,
                    spatial_stride=prior.spatial_multiple, latent_channels=prior.latent_channels)
    def error_fn(shape_cthw):
        from gvc_jax.sampler.rcc import gaussian_error_fn

        return gaussian_error_fn(*prior.variance_spectrum(1, *shape_cthw[2:]))

    return CodecModel(name="gaussian", fingerprint=prior.fingerprint, module=prior,
                      encode=lambda f: enc(np.asarray(f)), decode=lambda x: np.asarray(dec(x)),
                      geometry=geom, prompt=prompt, dtype=params.dtype, error_fn=error_fn,
                      placement=placement)


def _wan(name: str):
    kind, variant = WAN[name]

    def load(weights: str | None, prompt: Prompt, params, *, cache_dir=None, log=None,
             progress=False, placement: Placement = Placement()) -> CodecModel:
        from gvc_jax.weights import wan

        if not weights:
            raise UsageError(f"config {name!r} needs --weights: the Wan 2.1 {kind.upper()} "
                             "folder you downloaded (official or diffusers layout)")
        got = wan.load(weights, prompt=prompt.text, negative=prompt.negative,
                       guidance=params.guidance, dtype=params.dtype, cache_dir=cache_dir,
                       expect=variant, log=log, progress=progress, kind=kind,
                       text_len=params.text_len)
        vae = got.vae
        return CodecModel(name=name, fingerprint=got.fingerprint, module=got.module,
                          encode=vae.encode, decode=vae.decode_uint8, geometry=got.geometry,
                          cond=got.cond, prompt=prompt, text_conditioned=True,
                          dtype=params.dtype, text_len=params.text_len, autoencoder=vae, conditioner=got.conditioner,
                          error_fn=unit_variance_error_fn,
                          info={"parts": got.parts, **got.info}, placement=placement)
    return load


def _wan_fingerprint(name: str):
    kind, variant = WAN[name]

    def fingerprint(weights: str | None, *, cache_dir=None, log=None) -> str:
        from gvc_jax.weights import wan

        if not weights:
            raise UsageError(f"config {name!r} needs --weights: the Wan 2.1 {kind.upper()} "
                             "folder you downloaded (official or diffusers layout)")
        wan.architecture(weights, kind=kind, expect=variant)
        return wan.fingerprint(weights, cache_dir=cache_dir, log=log)
    return fingerprint


def _gaussian_fingerprint(weights: str | None, **_) -> str:
    from gvc_jax.models.gaussian import GaussianPrior
    from gvc_jax.weights.sources import CheckpointError

    try:
        return (GaussianPrior(path=weights) if weights else GaussianPrior()).fingerprint
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise CheckpointError(f"{weights}: not a usable gaussian prior stats file ({e})") \
            from None


def unit_variance_error_fn(shape_cthw):
    """rcc's planning curve for a model without a calibrated one (docs/rcc.md, "As a stream
    coding"): the linear estimator's error of unit-variance latents, C H W t^2/((1-t)^2 + t^2)
    per frame. The Wan VAE normalises its latents per channel, and for any source of unit
    variance this bounds the ideal denoiser's error from above."""
    from gvc_jax.sampler.rcc import gaussian_error_fn

    c, _, h, w = shape_cthw
    return gaussian_error_fn([1.0], counts=[c * h * w])


_LOADERS: dict[str, Callable[..., CodecModel]] = {"gaussian": _gaussian,
                                                  **{n: _wan(n) for n in WAN}}
_FINGERPRINTS: dict[str, Callable[..., str]] = {"gaussian": _gaussian_fingerprint,
                                                **{n: _wan_fingerprint(n) for n in WAN}}


def available_configs() -> list[str]:
    return sorted(_LOADERS)


def load_model(config: str, weights: str | None = None, prompt: Prompt = Prompt(),
               params=None, *, placement: Placement | None = None, **kw) -> CodecModel:
    """The codec model of a config name; ``params`` (CodecParams) give the guidance and dtype,
    ``placement`` the devices and offload of its weights (default: ``Placement()``)."""
    from gvc_jax.codec.params import CodecParams

    params = params if params is not None else CodecParams()
    kw["placement"] = placement or Placement()
    if config in _LOADERS:
        return _LOADERS[config](weights, prompt, params, **kw)
    raise UsageError(f"unknown config {config!r}; available: {', '.join(available_configs())}")


def model_fingerprint(config: str, weights: str | None = None, *, cache_dir=None,
                      log=None) -> str:
    """The fingerprint ``load_model(config, weights)`` would give, converting nothing and
    writing nothing (a Wan folder's architecture is checked first, from its config files):
    the decoder refuses other weights with it before loading them."""
    if config not in _FINGERPRINTS:
        raise UsageError(f"unknown config {config!r}; available: "
                         f"{', '.join(available_configs())}")
    return _FINGERPRINTS[config](weights, cache_dir=cache_dir, log=log)


def detect_config(weights: str | None) -> str:
    """The preset for a ``--weights`` path when ``--config`` is not given: the Wan preset the
    folder holds, else the embedded prior, sized for the machine (``gaussian-fast`` on a CPU,
    16x less codebook work, so a short clip codes in minutes on 2 cores)."""
    if not weights or (os.path.isfile(weights) and weights.endswith(".npz")):
        return "gaussian" if jax.default_backend() in ("gpu", "tpu") else "gaussian-fast"
    from gvc_jax.weights import folder as wf
    from gvc_jax.weights.sources import CheckpointError

    if not os.path.exists(weights):
        raise CheckpointError(f"{weights}: does not exist (--weights takes a Wan 2.1 folder or "
                              "a gaussian prior .npz)")
    if not os.path.isdir(weights):
        raise CheckpointError(f"{weights}: --weights takes a Wan 2.1 folder or a gaussian prior "
                              ".npz")
    cfg, _, _ = wf.dit_config(weights)
    if cfg.model_type == "t2v":
        for name, variant in WAN_T2V.items():
            if variant is not None and variant == cfg.name:
                return name
    # The 480p and 720p I2V checkpoints share one architecture: the generic preset fits both.
    if f"wan2.1-{cfg.model_type}" in WAN:
        return f"wan2.1-{cfg.model_type}"
    raise UsageError(f"{weights}: a {cfg.model_type} checkpoint, which no mode codes")
