"""I2V: a coded first frame, then a chain of GOPs (docs/codec.md, "Modes").

GOP 0's first frame is an anchor coded by an image codec. GOP g covers
``[g (gop_frames - 1), ...)``: its first frame is the last frame of GOP g-1, and it is
conditioned on GOP g-1's *decoded* last frame, so the chain has no one-frame offset. Each GOP's
last latent frame may carry an entropy-coded residual (``residual_step``, docs/residual.md),
which sharpens the frame the next GOP starts from. Output frame 0 is the decoded anchor
(docs/codec.md explains why).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from gvc_jax.bitstream import container
from gvc_jax.bitstream.errors import BitstreamError
from gvc_jax.codec.fields import param
from gvc_jax.codec.modes import anchored
from gvc_jax.codec.modes.anchored import Anchored

RESIDUAL_SHARE = 0.5   # rate control: the share of the bytes after the anchors and indices


@dataclasses.dataclass(frozen=True)
class Params:
    residual_step: float = param(0.0, "quantiser step of the entropy-coded residual of each "
                                      "GOP's last latent frame (0 = no residual)", lo=0.0,
                                 hi=1e3, omit_default=True)


class I2V(Anchored):
    name = "i2v"
    chunk_tags: tuple[str, ...] = ("ANCH", "RESD")
    groups = (("anchored", anchored.Params), ("i2v", Params))
    owners = frozenset({"anchored", "i2v"})
    anchors_per_gop = 1

    def __init__(self):
        super().__init__()
        self.residuals: dict[int, bytes] = {}     # decoder: RESD payloads by GOP
        self.budget: int | None = None            # encoder under rate control: RESD bytes left

    def begin(self, session, frames):
        if frames is None:
            self.read_anchors(session, 1)
            self._read_residuals(session)
            return []
        self.residuals = {}
        return self.code_anchors(session, frames, [0])

    def cond(self, session, gop):
        if gop.index == 0:
            first = self.anchors[0]
        else:
            prev = session.gops[gop.index - 1]
            first = session.decoded[gop.index - 1][prev.frames - 1]
        return self.image_cond(session, gop, first, None)

    def emit(self, session, gop, frames):
        if gop.index == 0:          # the clip's first frame is the decoded anchor, as in FLF2V
            frames = frames.copy()
            frames[0] = self.anchors[0]
        return self.emit_shared(gop, frames)

    # -- the tail residual
    def refine(self, session, gop, x0, target):
        if target is None:
            return self._residual_decode(session, gop, x0), []
        return self._residual_encode(session, gop, x0, target)

    def _residual_encode(self, session, gop, x0_cthw, target_cthw):
        """Encoder: the entropy-coded residual of the last latent frame; returns the corrected
        latents and the ``RESD`` chunk (none when ``residual_step`` is 0)."""
        from gvc_jax.codec import residual

        step = session.params.residual_step
        if not step:
            return x0_cthw, []
        x0 = np.array(x0_cthw, np.float32)
        r = np.asarray(target_cthw, np.float32)[:, -1] - x0[:, -1]
        if self.budget is not None:    # this GOP's share of the bytes still unspent
            left = len(session.gops) - gop.index
            step, data = residual.step_for_budget(r, self.budget // left)
            self.budget -= len(data) + 16
        else:
            data = residual.encode(r, step)
        x0[:, -1] += residual.reconstruct(r, step)
        return x0, [container.residual_chunk(gop.index, data)]

    def _residual_decode(self, session, gop, x0_cthw):
        """Decoder: adds the GOP's ``RESD`` residual to its last latent frame."""
        from gvc_jax.codec import residual

        if not session.params.residual_step:
            return x0_cthw
        payload = self.residuals.get(gop.index)
        if payload is None:
            raise BitstreamError(f"GOP {gop.index} has no RESD chunk (the header sets a "
                                 "residual step)")
        x0 = np.array(x0_cthw, np.float32)
        x0[:, -1] += residual.decode(payload, x0[:, -1].shape)
        return x0

    def _read_residuals(self, session) -> None:
        n_gops = len(session.gops)
        self.residuals = {}
        for payload in session.chunks.get("RESD", []):
            g, data = container.parse_residual(payload)
            if g in self.residuals:
                raise BitstreamError(f"GOP {g} has two RESD chunks")
            self.residuals[g] = data
        if self.residuals and not session.params.residual_step:
            raise BitstreamError("RESD chunks in a stream whose header sets no residual step")
        if session.params.residual_step and sorted(self.residuals) != list(range(n_gops)):
            raise BitstreamError(f"RESD chunks for GOPs {sorted(self.residuals)}, the GOP table "
                                 f"has {n_gops}")

    # -- rate control
    def reserve_share(self, params):
        return RESIDUAL_SHARE if params.residual_step else 0.0

    def set_budget(self, budget):
        self.budget = budget
