"""Exact rate control: a target file size picks the mode's side-information setting, the
coding's rate knob and the residual budget (docs/codec.md, "Rate control").

A coding's payload depends only on its parameters and the geometry, so for every value of its
knob (top-M's M) the size of the file without the mode's refine chunks is known *exactly*
before coding: the planned stream (:func:`gvc_jax.codec.stream.plan`: header, prompt, side
information) with payloads of their exact sizes. The plan:

1. side information (I2V/FLF2V anchors) takes at most :data:`SIDE_SHARE` of the target: the
   best setting of the mode's ladder whose chunks fit, found by bisection (each try codes the
   side information; the chosen stream keeps its coded chunks, which the encoder then uses);
2. the knob takes the largest value whose file fits in what is left, less the share of it the
   mode reserves for its refine chunks (I2V's residuals);
3. the mode spends that reserve GOP by GOP while coding (``set_budget``).

The file therefore lands at or under the target, or the target is refused up front with the
smallest rate that could be met.
"""
from __future__ import annotations

import dataclasses
import math

from gvc_jax.codec import registry, stream
from gvc_jax.codec.errors import UsageError
from gvc_jax.codec.session import Session

SIDE_SHARE = 0.5


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


@dataclasses.dataclass
class Plan:
    session: Session          # the planned stream at the chosen parameters
    target_bytes: int
    reserve: int              # bytes left for the mode's refine chunks (0: none)

    @property
    def params(self):
        return self.session.params


def _side_bytes(session: Session) -> int:
    """Bytes of the mode's chunks in the file (payload and framing)."""
    return sum(len(payload) + 12 for _, payload in session.side_chunks)


def plan(frames, fps, model, params, mode_name: str, target: int) -> Plan:
    """The stream that puts the file at or under ``target`` bytes (see the module doc)."""
    coding = registry.coding(params.coding)
    if coding.rate_knob(params) is None:
        raise UsageError(f"--kbps/--bpp need a coding with a rate knob; with --coding "
                         f"{coding.name} {coding.rate_hint}")
    session = stream.plan(frames, fps, model, params, mode_name)
    ladder = session.mode.side_ladder(params)
    if ladder:
        # The best setting whose side information fits its share, else the smallest: the
        # chunks shrink along the ladder, so bisect it (each try codes them once).
        lo, hi, best = 0, len(ladder) - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            s = stream.plan(frames, fps, model, ladder[mid], mode_name)
            if _side_bytes(s) <= SIDE_SHARE * target:
                best, hi = s, mid - 1
            else:
                lo = mid + 1
        session = best or stream.plan(frames, fps, model, ladder[-1], mode_name)
    params = session.params
    share = session.mode.reserve_share(params)
    fixed = stream.size_with_placeholders(session, indices=False)
    limit = fixed + (1.0 - share) * (target - fixed)   # the refine chunks' reserve stays free
    lo, hi, with_value = session.coding.rate_knob(params)
    best = None
    while lo <= hi:                       # the size grows with the knob: bisect
        v = (lo + hi) // 2
        s = stream.replan(session, with_value(v))
        size = stream.size_with_placeholders(s)
        if size <= limit:
            best, lo = (s, size), v + 1
        else:
            hi = v - 1
    if best is None:
        s = stream.replan(session, with_value(1))
        need = stream.size_with_placeholders(s)
        need = int(math.ceil(fixed + (need - fixed) / (1.0 - share)))
        raise UsageError(f"the target of {target} bytes is below what this clip needs with "
                         f"M=1 (about {need} bytes); raise the target or lower K or steps")
    s, size = best
    reserve = target - size if share else 0
    s.mode.set_budget(reserve if share else None)
    return Plan(s, target, reserve)
