"""Exact rate control: a target file size picks M, the anchor setting and the residual steps
(docs/codec.md, "Rate control").

Codebook bits depend only on K, M, the steps and the geometry, so for every candidate M the
size of the file without its residuals is known *exactly* before coding: the header, the
prompt, the anchors (coded up front) and the packed indices are laid out in a container of
placeholder payloads of their exact sizes. The plan:

1. anchors (I2V, FLF2V) take at most :data:`ANCHOR_SHARE` of the target: the best setting of the
   anchor codec's ladder whose anchors fit;
2. M is the largest value (up to min(K, 947): the most atoms whose sum is exact; it may exceed
   the preset's) whose file fits in what is left, less a
   reserve of :data:`RESIDUAL_SHARE` of it for the I2V residuals (``M_tail`` keeps its ratio to M);
3. each GOP's residual takes the finest step of :data:`RESIDUAL_STEPS` whose bytes fit in the
   bytes still unspent, shared evenly over the GOPs left (unused bytes roll over).

The file therefore lands at or under the target, or the target is refused up front with the
smallest rate that could be met.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from gvc_jax.bitstream import container, indices as bs_indices
from gvc_jax.codebook.table import MAX_EXACT_ATOMS
from gvc_jax.codec.errors import UsageError

ANCHOR_SHARE = 0.5
RESIDUAL_SHARE = 0.5
# Residual steps from fine to coarse; the last one sends (nearly) nothing.
RESIDUAL_STEPS = tuple(0.01 * 1.25 ** k for k in range(40)) + (1e3,)


def target_bytes(kbps: float | None, bpp: float | None, frames: int, height: int, width: int,
                 fps: float) -> int:
    """The byte budget of ``--kbps`` (at the source frame rate) or ``--bpp`` (source pixels)."""
    if (kbps is None) == (bpp is None):
        raise UsageError("give exactly one of --kbps and --bpp")
    v = kbps if kbps is not None else bpp
    if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
        raise UsageError(f"the target rate must be a positive number, got {v!r}")
    bits = kbps * 1000.0 * frames / fps if kbps is not None else bpp * frames * height * width
    return int(bits // 8)


def anchor_ladder(spec) -> list:
    """Settings of the anchor codec from the given one towards smaller files."""
    from gvc_jax.codec import anchors

    name, s = spec.name, float(spec.setting)
    if name == "vvc":
        values = range(int(s), 64)
    elif name == "jxl":
        values = [s * 1.25 ** k for k in range(40) if s * 1.25 ** k <= 25.0]
    elif name == "avif":
        values = range(int(s), -1, -5)
    else:
        values = [s]
    return [anchors.parse_spec(f"{name}:{v:g}") for v in values]


@dataclasses.dataclass
class Plan:
    params: object            # CodecParams with the chosen M (and M_tail, anchor_codec)
    target_bytes: int
    residual_budget: int      # bytes left for the RESD chunks (0 when there is no residual)


def _stream_size(model, mode_name, params, frames, fps, anchor_chunks, indices=True) -> int:
    """Exact size of the stream without residuals: real header, prompt and anchors, and IDX
    chunks of placeholder payloads of their exact sizes (empty with ``indices=False``)."""
    from gvc_jax.codec import core, modes

    t, h, w, _ = frames.shape
    gops = modes.get(mode_name).plan(t, params, model.geometry)
    header = core.make_header(model, mode_name, params, t, h, w, fps, gops)
    chunks = list(model.prompt.chunks()) + list(anchor_chunks)
    geom = model.geometry
    for g in gops:
        bits = bs_indices.index_bits(params.sde_steps,
                                     params.m_per_frame(geom.latent_frames(g.coded)), params.K)
        chunks.append(container.idx_chunk(g.index, bytes(-(-bits // 8) if indices else 0)))
    return len(container.dumps_gvc(header, chunks))


def _anchor_chunks(model, mode_name, params, frames, fps):
    from gvc_jax.codec import core, modes

    t, h, w, _ = frames.shape
    md = modes.get(mode_name)
    gops = md.plan(t, params, model.geometry)
    session = modes.Session(model, params,
                            core.make_header(model, mode_name, params, t, h, w, fps, gops))
    return md.begin(session, frames)


def plan(frames: np.ndarray, fps, model, params, mode_name: str, target: int) -> Plan:
    """The parameters that put the file at or under ``target`` bytes (see the module doc)."""
    from gvc_jax.codec.modes.anchored import anchor_spec

    anchors = []
    if mode_name in ("i2v", "flf2v"):
        # The best setting whose anchors fit their share, else the smallest: anchor bytes shrink
        # along the ladder, so bisect it (each try codes every anchor).
        ladder = anchor_ladder(anchor_spec(params))
        lo, hi, best = 0, len(ladder) - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            p = params.replace(anchor_codec=str(ladder[mid]))
            chunks = _anchor_chunks(model, mode_name, p, frames, fps)
            if sum(len(c[1]) + 12 for c in chunks) <= ANCHOR_SHARE * target:
                best, hi = (p, chunks), mid - 1
            else:
                lo = mid + 1
        if best is None:
            p = params.replace(anchor_codec=str(ladder[-1]))
            best = (p, _anchor_chunks(model, mode_name, p, frames, fps))
        params, anchors = best
    reserve = RESIDUAL_SHARE if params.residual_step else 0.0
    ratio = params.M_tail / params.M if params.M_tail else 0.0
    fixed = _stream_size(model, mode_name, params, frames, fps, anchors, indices=False)
    limit = fixed + (1.0 - reserve) * (target - fixed)   # the residuals' reserve stays free

    def with_m(m):
        return params.replace(M=m, M_tail=max(m, round(ratio * m)) if ratio else 0)

    best = None
    lo, hi = 1, int(min(params.K, MAX_EXACT_ATOMS) / max(1.0, ratio))
    while lo <= hi:                       # the size grows with M: bisect
        m = (lo + hi) // 2
        size = _stream_size(model, mode_name, with_m(m), frames, fps, anchors)
        if size <= limit:
            best, lo = (with_m(m), size), m + 1
        else:
            hi = m - 1
    if best is None:
        need = _stream_size(model, mode_name, with_m(1), frames, fps, anchors)
        need = int(math.ceil(fixed + (need - fixed) / (1.0 - reserve)))
        raise UsageError(f"the target of {target} bytes is below what this clip needs with "
                         f"M=1 (about {need} bytes); raise the target or lower K or steps")
    p, size = best
    return Plan(p, target, target - size if params.residual_step else 0)


def residual_step_for(r_chw: np.ndarray, budget: int) -> tuple[float, bytes]:
    """The finest step of :data:`RESIDUAL_STEPS` whose coded residual fits ``budget`` bytes
    (the coarsest if none does)."""
    from gvc_jax.codec import residual

    lo, hi = 0, len(RESIDUAL_STEPS) - 1
    best = (RESIDUAL_STEPS[-1], residual.encode(r_chw, RESIDUAL_STEPS[-1]))
    while lo <= hi:                       # bytes shrink as the step grows: bisect
        mid = (lo + hi) // 2
        data = residual.encode(r_chw, RESIDUAL_STEPS[mid])
        if len(data) + 16 <= budget:      # the chunk's GOP number and framing
            best, hi = (RESIDUAL_STEPS[mid], data), mid - 1
        else:
            lo = mid + 1
    return best
