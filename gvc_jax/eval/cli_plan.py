"""Turns ``gvc eval`` arguments (and an optional preset) into an :class:`EvalPlan`."""
from __future__ import annotations

import re

from gvc_jax.codec.errors import UsageError
from gvc_jax.eval import inputs
from gvc_jax.eval.runner import EvalPlan, parse_gvc_spec

ALL_BASELINES = ("x264", "x265", "vvc", "av1")


def _floats(text: str, what: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{what}: expected comma-separated numbers, got {text!r}") from None
    if not vals or any(v <= 0 for v in vals):
        raise UsageError(f"{what}: expected positive numbers, got {text!r}")
    return vals


def parse_size(text: str) -> tuple[int, int]:
    from gvc_jax.io.resize import parse_size as parse

    try:
        return parse(text)
    except ValueError as e:
        raise UsageError(str(e)) from None


def parse_ladder(text: str) -> tuple[str, list[dict]]:
    """'x265=crf:30,36,42' -> ('x265', [{'crf': 30.0}, ...])."""
    m = re.fullmatch(r"\s*([\w-]+)\s*=\s*(\w+)\s*:\s*(.+)", text)
    if not m:
        raise UsageError(f"--ladder: expected NAME=KNOB:V1,V2 like x265=crf:30,36,42, got {text!r}")
    name, knob, vals = m[1], m[2], m[3]
    if knob not in ("crf", "qp", "kbps"):
        raise UsageError(f"--ladder {text!r}: the knob is crf, qp or kbps")
    nums = [float(v) for v in vals.split(",") if v.strip()] if re.fullmatch(
        r"[\d.,\s]+", vals) else None
    if not nums:
        raise UsageError(f"--ladder {text!r}: expected numbers after the colon")
    return name, [{knob: (int(v) if knob != "kbps" and v.is_integer() else v)} for v in nums]


def parse_protocols(text: str) -> list[str]:
    """'gvcc,ours' -> ['gvcc', 'ours'] (order kept, repeats dropped)."""
    from gvc_jax.eval.protocols import PROTOCOLS

    names = list(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    bad = [p for p in names if p not in PROTOCOLS]
    if bad or not names:
        raise UsageError(f"--protocol: expected a comma list of {', '.join(PROTOCOLS)}, got "
                         f"{text!r}")
    return names


def plan_from_args(a) -> EvalPlan:
    preset = None
    published = []
    if a.preset:
        from configs.eval import PRESETS, get_config, published_rows
        if a.preset not in PRESETS:
            raise UsageError(f"unknown --preset {a.preset!r}; known: {', '.join(PRESETS)}")
        preset = get_config(a.preset)
        published = published_rows(preset.published)
    specs = a.gvc if a.gvc else (list(preset.gvc) if preset else ["gaussian"])
    gvc = [] if specs == ["none"] else [run for s in specs for run in parse_gvc_spec(s)]
    if a.baselines is not None:
        names = [b.strip() for b in a.baselines.split(",") if b.strip()]
        baselines = [] if names == ["none"] else names
    else:
        baselines = list(preset.baselines) if preset else list(ALL_BASELINES)
    bad = [b for b in baselines if b not in ALL_BASELINES]
    if bad:
        raise UsageError(f"--baselines: unknown {bad[0]!r}; known: {', '.join(ALL_BASELINES)}, none")
    ladders = {}
    preset_ladders = [f"{k}={v}" for k, v in (preset.ladders if preset else {}).items()]
    for text in preset_ladders + list(a.ladder or []):
        name, ladder = parse_ladder(text)
        if name not in ALL_BASELINES:
            raise UsageError(f"--ladder {text!r}: unknown baseline {name!r}")
        ladders[name] = ladder
    if a.frames is not None and a.frames < 1:
        raise UsageError(f"--frames must be >= 1, got {a.frames}")
    frames = a.frames if a.frames is not None else (preset.frames if preset else None)
    size = parse_size(a.size) if a.size else (tuple(preset.size) if preset and preset.size
                                              else None)
    match = a.match_rate if a.match_rate is not None else bool(preset and preset.match_rate)
    protocols = (parse_protocols(a.protocol) if a.protocol
                 else list(preset.protocols) if preset else ["ours"])
    bd_anchor = a.bd_anchor if a.bd_anchor is not None else (preset.bd_anchor if preset else None)
    if bd_anchor == "none":
        bd_anchor = None
    return EvalPlan(
        videos=inputs.list_inputs(a.inputs), out=a.out, gvc=gvc, baselines=baselines,
        ladders=ladders, match_rate=match,
        kbps=_floats(a.kbps, "--kbps") if a.kbps else [], frames=frames, size=size,
        preset=a.preset, weights=a.weights, alexnet=a.lpips_alexnet, lpips=not a.no_lpips,
        vgg=a.dists_vgg, dists=not a.no_dists, protocols=protocols, bd_anchor=bd_anchor,
        bd_method=a.bd_method, published=published)
