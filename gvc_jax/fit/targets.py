"""Fit targets: the accelerators :func:`gvc_jax.fit.fit` compiles for (docs/fit.md, "Targets").

A TPU target is described, not attached: ``jax.experimental.topologies.get_topology_desc``
gives compile-only devices of a TPU slice from libtpu on any host, and programs compiled for
them report per-chip memory without running. ``gpu`` is the local GPU (its devices are real).

Peaks are the vendors' public per-chip figures (bf16 dense matmul, HBM bandwidth, HBM size);
``capacity_bytes`` is the memory the TPU compiler lets one program use on a chip (it refuses
programs above it with RESOURCE_EXHAUSTED), measured with libtpu 0.0.42.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os

import jax

GIB = 1 << 30
LIBTPU_PIN = "libtpu==0.0.42.*"     # what jax[tpu]==0.10.2 pins (docs/fit.md)
INSTALL_HINT = 'pip install "gvc-jax[tpu]"'


class FitError(ValueError):
    """A target or configuration the fit cannot compile for (one-line message)."""


@dataclasses.dataclass(frozen=True)
class FitTarget:
    name: str
    platform: str                  # "tpu" or "gpu"
    chips: int                     # devices the programs may use
    peak_flops: float              # bf16 FLOP/s per chip
    hbm_bandwidth: float           # bytes/s per chip
    hbm_bytes: int                 # HBM per chip
    capacity_bytes: int            # what one program may use per chip
    topology: str | None = None    # TPU topology of the host the chips are taken from
    device_kind: str = ""


def _tpu(name, topology, chips, flops, bw, hbm_gb, capacity):
    return FitTarget(name, "tpu", chips, flops, bw, int(hbm_gb * GIB), int(capacity),
                     topology=topology)


# v5e / v6e chips hold one TensorCore, v5p two (one megacore device); "v5p-8" is 4 chips.
# Capacities: the limit the TPU compiler reports when a program does not fit (libtpu 0.0.42).
V5E = dict(flops=197e12, bw=819e9, hbm_gb=16, capacity=int(15.75 * GIB))
V6E = dict(flops=918e12, bw=1.6e12, hbm_gb=32, capacity=int(31.25 * GIB))
V5P = dict(flops=459e12, bw=2.765e12, hbm_gb=95, capacity=int(95.74 * GIB))

TARGETS = {
    "tpu-v5e-1": _tpu("tpu-v5e-1", "v5e:2x2", 1, **V5E),
    "tpu-v5e-4": _tpu("tpu-v5e-4", "v5e:2x2", 4, **V5E),
    "tpu-v5e-8": _tpu("tpu-v5e-8", "v5e:2x4", 8, **V5E),
    "tpu-v6e-1": _tpu("tpu-v6e-1", "v6e:2x2", 1, **V6E),
    "tpu-v6e-8": _tpu("tpu-v6e-8", "v6e:2x4", 8, **V6E),
    "tpu-v5p-8": _tpu("tpu-v5p-8", "v5p:2x2x1", 4, **V5P),
}
NAMES = tuple(TARGETS) + ("gpu",)

# Public bf16 dense peaks and HBM bandwidths of GPUs the local ``gpu`` target may be, by the
# device kind JAX reports (substring match, first hit).
GPU_PEAKS = (
    ("H200", 989e12, 4.8e12), ("H100", 989e12, 3.35e12), ("A100", 312e12, 2.0e12),
    ("L4", 121e12, 0.3e12), ("T4", 65e12, 0.32e12),
)

# Set before libtpu is first loaded, so it describes a topology instead of looking for chips.
# ALLOW_MULTIPLE_LIBTPU_LOAD: other JAX processes of the host may hold libtpu's lock file
# (any process with libtpu installed loads it at start-up); compiling needs no exclusive chip.
TPU_ENV = {"TPU_ACCELERATOR_TYPE": "v5litepod-4", "TPU_WORKER_HOSTNAMES": "localhost",
           "TPU_SKIP_MDS_QUERY": "1", "ALLOW_MULTIPLE_LIBTPU_LOAD": "1"}


def get(name: str) -> FitTarget:
    """The target named ``name`` (:data:`NAMES`); ``gpu`` is the local GPU."""
    if name == "gpu":
        return local_gpu()
    if name not in TARGETS:
        raise FitError(f"unknown fit target {name!r}; known: {', '.join(NAMES)}")
    return TARGETS[name]


def local_gpu() -> FitTarget:
    try:
        devs = jax.devices("gpu")
    except RuntimeError:
        devs = []
    if not devs:
        raise FitError("target 'gpu' needs a local GPU; this machine has none (fit a TPU "
                       "target instead, e.g. tpu-v5e-1)")
    d = devs[0]
    stats = d.memory_stats() or {}
    cap = int(stats.get("bytes_limit", 0))
    kind = str(getattr(d, "device_kind", "GPU"))
    flops, bw = next(((f, b) for key, f, b in GPU_PEAKS if key in kind), (0.0, 0.0))
    return FitTarget("gpu", "gpu", len(devs), flops, bw, cap, cap, device_kind=kind)


def require_libtpu() -> None:
    if importlib.util.find_spec("libtpu") is None:
        raise FitError(f"fitting for TPU needs libtpu: {INSTALL_HINT} (for jax "
                       f"{jax.__version__}: {LIBTPU_PIN})")


def devices(target: FitTarget) -> list:
    """The devices of ``target``: compile-only TPU devices of its topology (the first
    ``chips`` of it), or the local GPUs."""
    if target.platform == "gpu":
        return list(jax.devices("gpu"))[: target.chips]
    require_libtpu()
    for k, v in TPU_ENV.items():
        os.environ.setdefault(k, v)
    from jax.experimental import topologies
    try:
        topo = topologies.get_topology_desc(platform="tpu", topology_name=target.topology)
    except Exception as e:  # noqa: BLE001 - libtpu's own errors, reported in one line
        raise FitError(f"libtpu cannot describe topology {target.topology!r}: "
                       f"{str(e).splitlines()[0][:200]}") from None
    devs = list(topo.devices)
    if len(devs) < target.chips:
        raise FitError(f"topology {target.topology} has {len(devs)} chips, {target.name} "
                       f"needs {target.chips}")
    return devs[: target.chips]
