"""Compiling one program for a target and reading what the compiler says (docs/fit.md).

:func:`compile_program` traces a fresh ``jax.jit`` of the program under
:func:`gvc_jax.target.building_for` (so kernels follow the target, and no trace cached for
another target is reused), lowers and compiles it, and returns per-chip memory from
``memory_analysis()`` and costs from :mod:`gvc_jax.fit.hlo_cost` (the compiled HLO, every loop
body scaled by its trip count). A program the compiler refuses for lack of memory
(RESOURCE_EXHAUSTED) is reported as not fitting, with the bytes the compiler asked for.
"""
from __future__ import annotations

import re
import time

import jax

from gvc_jax import target as tgt_mod
from gvc_jax.fit.hlo_cost import analyse, pallas_calls
from gvc_jax.fit.programs import Program
from gvc_jax.fit.targets import FitTarget

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _bytes(num: str, unit: str) -> int:
    return int(float(num) * _UNITS[unit.upper()[:1] if unit else ""])


def parse_oom(message: str) -> dict | None:
    """``{"required_bytes", "available_bytes"}`` from a RESOURCE_EXHAUSTED message of the TPU
    compiler (either of its two phrasings), None if it is not one."""
    if "RESOURCE_EXHAUSTED" not in message:
        return None
    m = re.search(r"required for HLO temporaries \(([\d.]+)([KMGT]?)\) exceeds available "
                  r"HBM \(([\d.]+)([KMGT]?)\)", message)
    if m:
        return {"required_bytes": _bytes(m[1], m[2]), "available_bytes": _bytes(m[3], m[4]),
                "what": "temporaries"}
    m = re.search(r"Used ([\d.]+)([KMGT]?) of ([\d.]+)([KMGT]?) hbm", message)
    if m:
        return {"required_bytes": _bytes(m[1], m[2]), "available_bytes": _bytes(m[3], m[4]),
                "what": "total"}
    return {"required_bytes": None, "available_bytes": None, "what": "unknown"}


def _first_line(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return (s[0] if s else type(e).__name__)[:300]


def compile_program(p: Program, target: FitTarget, capacity: int) -> dict:
    """Compiles ``p`` for ``target``; the program's entry of :func:`gvc_jax.fit.fit`."""
    platform_target = tgt_mod.Target(target.platform, None,
                                     local=target.platform == tgt_mod.local().platform)
    t0 = time.perf_counter()
    entry = {"name": p.name, "sharding": p.placement, "devices": p.devices,
             "runs_per_gop_encode": p.runs_per_gop_encode,
             "runs_per_gop_decode": p.runs_per_gop_decode,
             "weights_bytes_per_chip": p.weights_bytes_per_chip}
    try:
        with tgt_mod.building_for(platform_target):
            fn = jax.jit(p.fn, static_argnums=p.static, static_argnames=tuple(p.kwargs))
            traced = fn.trace(*p.args, **p.kwargs)
            kernels = pallas_calls(traced.jaxpr)
            compiled = traced.lower().compile()
    except Exception as e:  # noqa: BLE001 - the compiler's refusal is a result, not a crash
        oom = parse_oom(str(e))
        if oom is None:
            raise
        entry.update(fits=False, compile_seconds=time.perf_counter() - t0,
                     error=_first_line(e), required_bytes=oom["required_bytes"],
                     capacity_bytes=oom["available_bytes"] or capacity)
        return entry
    seconds = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    args, temps = int(mem.argument_size_in_bytes), int(mem.temp_size_in_bytes)
    outs = int(mem.output_size_in_bytes) - int(mem.alias_size_in_bytes)
    total = args + temps + outs
    cost = analyse(compiled.as_text())
    flops = cost["flops"] + sum(k["flops"] for k in kernels)
    entry.update(
        fits=total <= capacity, compile_seconds=seconds,
        arguments_bytes=args, temporaries_bytes=temps, outputs_bytes=outs, total_bytes=total,
        capacity_bytes=capacity, flops=flops, bytes_accessed=cost["bytes"],
        kernels=sorted({k["name"] for k in kernels}),
        mosaic_custom_calls=cost["custom_calls"].get("tpu_custom_call", 0),
        xla_cost_analysis_flops=float((compiled.cost_analysis() or {}).get("flops", 0.0)))
    return entry
