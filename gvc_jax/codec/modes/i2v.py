"""I2V: a coded first frame, then a chain of GOPs (docs/codec.md, "Modes").

GOP 0's first frame is an anchor coded by an image codec. GOP g covers
``[g (gop_frames - 1), ...)``: its first frame is the last frame of GOP g-1, and it is
conditioned on GOP g-1's *decoded* last frame, so the chain has no one-frame offset. Each GOP's
last latent frame may carry an entropy-coded residual (``residual_step``), which sharpens the
frame the next GOP starts from. Atoms: ``M``, and ``M_tail`` on the last latent frames.
Output frame 0 is the decoded anchor (docs/codec.md explains why).
"""
from __future__ import annotations

from gvc_jax.codec.modes import anchored


class I2V:
    name = "i2v"
    chunk_tags: tuple[str, ...] = ("ANCH", "RESD")

    def plan(self, n_frames, params, geometry):
        return anchored.plan(n_frames, params, geometry)

    def begin(self, session, frames):
        n_gops = len(session.header["gops"])
        if frames is None:
            anchored.read_anchors(session, 1)
            anchored.read_residuals(session, n_gops)
            return []
        session.residuals = {}
        return anchored.code_anchors(session, frames, [0])

    def cond(self, session, gop):
        if gop.index == 0:
            first = session.anchors[0]
        else:
            prev = session.header["gops"][gop.index - 1]
            first = session.decoded[gop.index - 1][prev["frames"] - 1]
        return anchored.image_cond(session, gop, first, None)

    def refine(self, session, gop, x0, target):
        if target is None:
            return anchored.residual_decode(session, gop, x0), []
        return anchored.residual_encode(session, gop, x0, target)

    def emit(self, session, gop, frames):
        if gop.index == 0:          # the clip's first frame is the decoded anchor, as in FLF2V
            frames = frames.copy()
            frames[0] = session.anchors[0]
        return anchored.emit_shared(gop, frames)
