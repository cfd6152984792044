"""``fit``: compile the codec's programs for a target and say whether they fit (docs/fit.md).

Nothing runs and no weight is read: the programs of :mod:`gvc_jax.fit.programs` are compiled
with abstract parameters for the target's devices (compile-only TPU devices from libtpu, or the
local GPU), and the compiler's own memory figures decide the fit.
"""
from __future__ import annotations

import platform as _platform
import time
from typing import Callable, Sequence

import jax

from gvc_jax.codec.placement import OFFLOAD, parks_weights
from gvc_jax.fit.measure import compile_program
from gvc_jax.fit.programs import (dit_programs, encoder_programs, gop_latent_shape,
                                  model_configs, vae_programs)
from gvc_jax.fit.targets import FitError, FitTarget, devices, get

DEFAULT_SHARD = "wan-fsdp"        # the table a multi-chip target uses unless one is named
PROGRAMS = ("dit_encode", "dit_decode", "vae_encode", "vae_decode", "umt5", "clip")
ESTIMATE_NOTE = ("roofline estimate, not a measurement: per program max(FLOPs / peak bf16 "
                 "FLOP/s, HBM bytes / HBM bandwidth) per chip, times its runs per GOP; matrix "
                 "work only (the codebook's Threefry generation runs on the vector units and "
                 "is not in it), so a lower bound")


def parse_size(size) -> tuple[int, int]:
    """``(width, height)`` from ``"WxH"`` or a pair."""
    if isinstance(size, str):
        try:
            w, h = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise FitError(f"size {size!r} is not WIDTHxHEIGHT (e.g. 1280x720)") from None
    else:
        w, h = (int(v) for v in size)
    if w < 16 or h < 16:
        raise FitError(f"size {w}x{h} is too small (at least 16x16)")
    return w, h


def codec_params(config: str, frames: int | None, overrides: dict | None):
    """``(model, mode, CodecParams)`` of preset ``config`` for an accelerator: bf16 unless the
    overrides say otherwise, GOPs of ``frames`` frames when given."""
    from gvc_jax.codec.errors import UsageError
    from gvc_jax.codec.params import CodecParams
    from gvc_jax.codec.presets import PRESETS, get_config

    if config not in PRESETS:
        raise FitError(f"unknown config {config!r}; available: {', '.join(sorted(PRESETS))}")
    cfg = get_config(config)
    values = dict(cfg.codec)
    values["dtype"] = "bfloat16"
    if frames is not None:
        values["gop_frames"] = int(frames)
    values.update(overrides or {})
    try:
        return cfg.model, cfg.mode, CodecParams.from_values(values)
    except UsageError as e:
        raise FitError(str(e)) from None


def _resident(entry: dict, capacity: int, offload: str = "auto") -> int:
    """Bytes of the DiT's weights that stay on the chip while a program other than the DiT's
    runs, under the codec's ``--offload`` (:mod:`gvc_jax.codec.placement`): ``always`` parks
    them in host memory, ``never`` keeps them, ``auto`` parks them only when they take over
    half the chip."""
    w = entry.get("dit_weights_bytes_per_chip", 0)
    return 0 if parks_weights(offload, w, capacity) else w


def program_fits(e: dict, capacity: int, offload: str) -> bool:
    """A compiled program's total plus the DiT weights resident under ``offload`` fit the chip
    (a program the compiler refused never fits)."""
    if e.get("total_bytes") is None:
        return False
    return e["total_bytes"] + _resident(e, capacity, offload) <= capacity


def _seconds(entry: dict, t: FitTarget) -> float | None:
    if not entry.get("fits") and "flops" not in entry:
        return None
    if not t.peak_flops or not t.hbm_bandwidth:
        return None
    return max(entry["flops"] / t.peak_flops, entry["bytes_accessed"] / t.hbm_bandwidth)


def fit(target: str, config: str, size, frames: int | None = None, *, mode: str | None = None,
        shard: str | None = None, weights: str | None = None, overrides: dict | None = None,
        models: dict | None = None, programs: Sequence[str] | None = None,
        memo: dict | None = None, log: Callable[[str], None] | None = None,
        offload: str = "auto") -> dict:
    """Compiles one GOP's programs of codec preset ``config`` at ``size`` (WxH) for ``target``
    (:data:`gvc_jax.fit.targets.NAMES`) and returns the fit report (docs/fit.md, "Report").

    ``frames``: frames per GOP (default: the preset's ``gop_frames``). ``shard``: a table of
    ``configs/sharding.py`` for the DiT programs (default ``wan-fsdp`` on several chips).
    ``weights``: a Wan folder whose config files give the architecture. ``models``: config
    names overriding parts (``{"dit": "tiny-t2v", "vae": "tiny", "t5": "tiny"}``).
    ``programs``: a subset of :data:`PROGRAMS`. ``memo``: a dict shared between calls; a
    program already compiled for the same chip, placement and arguments is taken from it
    (marked ``"reused": true``), e.g. the VAE of several DiT configurations. ``offload``: the
    codec's ``--offload`` (auto, always, never), which decides whether the DiT's weights stay on
    the chip while the VAE and CLIP run; the report also says whether ``always`` would fit.
    """
    if offload not in OFFLOAD:
        raise FitError(f"offload {offload!r} is not one of {', '.join(OFFLOAD)}")
    t = get(target)
    w, h = parse_size(size)
    model, preset_mode, params = codec_params(config, frames, overrides)
    if mode is not None and mode != preset_mode:
        raise FitError(f"config {config!r} codes {preset_mode}, not {mode}")
    mode = preset_mode
    wanted = tuple(programs or PROGRAMS)
    bad = sorted(set(wanted) - set(PROGRAMS))
    if bad:
        raise FitError(f"unknown programs {bad}; known: {', '.join(PROGRAMS)}")
    devs = devices(t)
    if len(devs) > 1 and not shard:
        shard = DEFAULT_SHARD
    cfgs = model_configs(model, weights=weights, names=models)
    coded, hw, latent = gop_latent_shape(cfgs, params.gop_frames, h, w)
    plist = []
    if {"dit_encode", "dit_decode"} & set(wanted):
        plist += dit_programs(cfgs, params, mode, latent, devs, shard)
    if {"vae_encode", "vae_decode"} & set(wanted):
        plist += vae_programs(cfgs, mode, coded, hw, latent, devs[0])
    if {"umt5", "clip"} & set(wanted):
        plist += encoder_programs(cfgs, params, mode, devs[0])
    plist = [p for p in plist if p.name in wanted]
    dit_weights = max((p.weights_bytes_per_chip for p in plist if p.name.startswith("dit")),
                      default=0)
    entries = []
    for p in plist:
        if log:
            log(f"compiling {p.name} ({p.placement}) for {t.name}")
        key = _memo_key(p, t)
        if memo is not None and key in memo:
            e = dict(memo[key], reused=True)
        else:
            e = compile_program(p, t, t.capacity_bytes)
            if memo is not None:
                memo[key] = dict(e)
        if not p.name.startswith("dit") and p.name != "umt5":
            e["dit_weights_bytes_per_chip"] = dit_weights
        e["resident_bytes"] = _resident(e, t.capacity_bytes, offload)
        if e.get("total_bytes") is not None:
            e["fits"] = program_fits(e, t.capacity_bytes, offload)
        e["estimate_seconds"] = _seconds(e, t)
        entries.append(e)
    report = _report(t, devs, config, model, mode, params, (w, h), coded, hw, latent, shard,
                     entries)
    report["offload"] = offload
    report["fits_with_offload_always"] = all(program_fits(e, t.capacity_bytes, "always")
                                             for e in entries)
    return report


def _memo_key(p, t: FitTarget) -> str:
    """What makes two compiles the same: chip, placement, program and its abstract arguments."""
    chip = (t.platform, t.topology.split(":")[0] if t.topology else t.device_kind,
            t.capacity_bytes)
    leaves = [(tuple(x.shape), str(x.dtype), str(getattr(x, "sharding", "")))
              for x in jax.tree.leaves(p.args) if hasattr(x, "shape")]
    return repr((chip, p.name, p.placement, p.devices, leaves, sorted(p.kwargs.items())))


def _need(e: dict) -> int:
    if e.get("total_bytes") is not None:
        return e["total_bytes"] + e["resident_bytes"]
    return int(e.get("required_bytes") or 0)


def _report(t, devs, config, model, mode, params, size, coded, hw, latent, shard, entries):
    largest = max(entries, key=_need) if entries else None

    def total(runs_key):
        s = 0.0
        for e in entries:
            if e[runs_key]:
                if e["estimate_seconds"] is None:
                    return None
                s += e[runs_key] * e["estimate_seconds"]
        return s

    per = None
    if largest is not None:
        per = {k: largest.get(f"{k}_bytes") for k in ("arguments", "temporaries", "outputs")}
        per["resident"] = largest.get("resident_bytes", 0)
        per["total"] = _need(largest)
    return {
        "target": t.name, "platform": t.platform, "devices": len(devs),
        "device_kind": t.device_kind or str(getattr(devs[0], "device_kind", "")),
        "config": config, "model": model, "mode": mode, "dtype": params.dtype,
        "size": list(size), "coded_size": [hw[1], hw[0]], "frames": coded,
        "latent_shape": list(latent), "sharding": shard if len(devs) > 1 else None,
        "fits": all(e["fits"] for e in entries),
        "largest_program": largest["name"] if largest else None,
        "per_device_bytes": per, "capacity_bytes": t.capacity_bytes,
        "programs": entries,
        "estimate_seconds_per_gop": total("runs_per_gop_encode"),
        "estimate_seconds_per_gop_decode": total("runs_per_gop_decode"),
        "estimate_note": ESTIMATE_NOTE,
        "peaks": {"bf16_flops": t.peak_flops, "hbm_bytes_per_s": t.hbm_bandwidth},
        "compiled_not_run": True,
        "versions": {"jax": jax.__version__, "libtpu": _libtpu_version(),
                     "python": _platform.python_version()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _libtpu_version() -> str | None:
    try:
        from importlib.metadata import version
        return version("libtpu")
    except Exception:  # noqa: BLE001 - not installed
        return None
