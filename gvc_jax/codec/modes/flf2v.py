"""FLF2V: every GOP boundary frame is a coded anchor (docs/codec.md, "Modes").

GOP g covers ``[g (gop_frames - 1), ...)``; its first and last frames are anchors, and a
boundary frame is coded once, shared by the two GOPs that meet there. Each GOP is conditioned
on its two decoded anchors (CLIP tokens of both, VAE latents of [first, 0, ..., last], a mask
at both ends). At anchor positions the output is the decoded anchor (docs/codec.md explains
why).
"""
from __future__ import annotations

from gvc_jax.codec.modes import anchored


def anchor_positions(gops) -> list[int]:
    """Source frame of each anchor: every GOP's first frame, then the clip's last frame."""
    pos = [g["start"] for g in gops]
    last = gops[-1]["start"] + gops[-1]["frames"] - 1
    return pos + [last] if last != pos[-1] else pos


class FLF2V:
    name = "flf2v"
    chunk_tags: tuple[str, ...] = ("ANCH",)

    def plan(self, n_frames, params, geometry):
        return anchored.plan(n_frames, params, geometry)

    def begin(self, session, frames):
        pos = anchor_positions(session.header["gops"])
        if frames is None:
            anchored.read_anchors(session, len(pos))
            return []
        return anchored.code_anchors(session, frames, pos)

    def _pair(self, session, gop):
        last = min(gop.index + 1, len(session.anchors) - 1)
        return session.anchors[gop.index], session.anchors[last]

    def cond(self, session, gop):
        first, last = self._pair(session, gop)
        return anchored.image_cond(session, gop, first, last)

    def refine(self, session, gop, x0, target):
        return x0, []

    def emit(self, session, gop, frames):
        first, last = self._pair(session, gop)
        out = frames.copy()
        out[0] = first
        out[gop.frames - 1] = last
        return anchored.emit_shared(gop, out)
