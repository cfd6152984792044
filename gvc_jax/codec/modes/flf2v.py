"""FLF2V: every GOP boundary frame is a coded anchor (docs/codec.md, "Modes").

GOP g covers ``[g (gop_frames - 1), ...)``; its first and last frames are anchors, and a
boundary frame is coded once, shared by the two GOPs that meet there. Each GOP is conditioned
on its two decoded anchors (CLIP tokens of both, VAE latents of [first, 0, ..., last], a mask
at both ends). At anchor positions the output is the decoded anchor (docs/codec.md explains
why).
"""
from __future__ import annotations

from gvc_jax.codec.modes.anchored import Anchored


def anchor_positions(gops) -> list[int]:
    """Source frame of each anchor: every GOP's first frame, then the clip's last frame."""
    pos = [g.start for g in gops]
    last = gops[-1].start + gops[-1].frames - 1
    return pos + [last] if last != pos[-1] else pos


class FLF2V(Anchored):
    name = "flf2v"
    anchors_per_gop = 2     # the first and last frame of each GOP

    def begin(self, session, frames):
        pos = anchor_positions(session.gops)
        if frames is None:
            self.read_anchors(session, len(pos))
            return []
        return self.code_anchors(session, frames, pos)

    def _pair(self, gop):
        last = min(gop.index + 1, len(self.anchors) - 1)
        return self.anchors[gop.index], self.anchors[last]

    def cond(self, session, gop):
        return self.image_cond(session, gop, *self._pair(gop))

    def emit(self, session, gop, frames):
        first, last = self._pair(gop)
        out = frames.copy()
        out[0] = first
        out[gop.frames - 1] = last
        return self.emit_shared(gop, out)
