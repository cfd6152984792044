"""The platform a program is built for: kernel choices follow the target, not the host.

A program can be compiled for another platform than the one this process runs on, e.g. for a
TPU topology from a CPU machine (docs/fit.md). Code that picks a kernel at trace time (the DiT's
attention, :func:`gvc_jax.models.wan.attention.choose_implementation`; the codebook's scoring
method, :func:`gvc_jax.codebook.ops.default_method`) reads :func:`current`, which is the local
default backend unless a :func:`building_for` context says otherwise::

    with target.building_for("tpu"):
        compiled = jax.jit(f).trace(*abstract_args).lower().compile()

Note: ``jax.jit`` caches traces by the arguments' types, not by this context. A program traced
for one target and then called with arguments of the same types under another target reuses
the first trace; build target-specific programs with a fresh ``jax.jit`` (as
:mod:`gvc_jax.fit` does).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
from typing import Iterator

import jax

PLATFORMS = ("cpu", "gpu", "tpu")


@dataclasses.dataclass(frozen=True)
class Target:
    """``platform``: "cpu", "gpu" or "tpu". ``gpu_capability``: the CUDA compute capability
    (e.g. 9.0 for an H100, 7.5 for a T4); None on a GPU means one with cuDNN flash attention
    (sm80 or later). ``local``: whether this is the process's own default backend, whose
    devices can be asked directly (kernel probes)."""
    platform: str
    gpu_capability: float | None = None
    local: bool = False

    def __post_init__(self):
        if self.platform not in PLATFORMS:
            raise ValueError(f"unknown target platform {self.platform!r}; known: "
                             f"{', '.join(PLATFORMS)}")
        if self.gpu_capability is not None and self.platform != "gpu":
            raise ValueError("gpu_capability applies to a gpu target only")


def device_capability(device) -> float | None:
    """The compute capability of a CUDA device as a float (9.0), None if it reports none."""
    cap = getattr(device, "compute_capability", None)
    try:
        return float(cap) if cap else None
    except (TypeError, ValueError):
        return None


@functools.lru_cache(maxsize=1)
def local() -> Target:
    """The target of this process's default backend (cached: the backend does not change)."""
    backend = jax.default_backend()
    platform = backend if backend in PLATFORMS else "gpu" if backend in ("cuda", "rocm") \
        else "cpu"
    cap = device_capability(jax.devices()[0]) if platform == "gpu" else None
    return Target(platform, cap, local=True)


_state = threading.local()


def current() -> Target:
    """The innermost :func:`building_for` target, else :func:`local`."""
    stack = getattr(_state, "stack", None)
    return stack[-1] if stack else local()


@contextlib.contextmanager
def building_for(platform: str | Target, gpu_capability: float | None = None
                 ) -> Iterator[Target]:
    """Programs traced inside are built for ``platform`` ("cpu", "gpu", "tpu" or a
    :class:`Target`). A target equal to the local backend (same platform and, on a GPU, the
    same capability or None) counts as local."""
    if isinstance(platform, Target):
        tgt = platform
    else:
        here = local()
        same = platform == here.platform and (gpu_capability is None
                                              or gpu_capability == here.gpu_capability)
        cap = gpu_capability if gpu_capability is not None or not same else here.gpu_capability
        tgt = Target(platform, cap, local=same)
    stack = getattr(_state, "stack", None)
    if stack is None:
        stack = _state.stack = []
    stack.append(tgt)
    try:
        yield tgt
    finally:
        stack.pop()
