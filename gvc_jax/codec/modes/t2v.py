"""T2V: GOPs coded independently with no anchors (docs/codec.md, "Modes").

Back-to-back GOPs of ``gop_frames``; every GOP is conditioned on the prompt context alone, so
it needs no other chunk and contributes all its frames.
"""
from __future__ import annotations

from gvc_jax.codec.geometry import plan_disjoint


class T2V:
    name = "t2v"
    chunk_tags: tuple[str, ...] = ()
    groups: tuple = ()
    owners = frozenset()
    independent_gops = True
    anchors_per_gop = 0

    def plan(self, n_frames, params, geometry):
        return plan_disjoint(n_frames, params.gop_frames, geometry)

    def adapt(self, params, height, width, fixed):
        return params

    def begin(self, session, frames):
        return []

    def cond(self, session, gop):
        return session.model.cond

    def refine(self, session, gop, x0, target):
        return x0, []

    def emit(self, session, gop, frames):
        return frames

    def side_ladder(self, params):
        return []

    def reserve_share(self, params):
        return 0.0

    def set_budget(self, budget):
        pass

    def report(self, params):
        return {}
