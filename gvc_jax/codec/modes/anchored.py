"""What the anchored modes (I2V, FLF2V) share: anchor frames through an image codec, GOPs that
share their boundary frame, GVCC's resolution-dependent shift, and the anchor setting ladder
rate control walks (docs/codec.md, "Modes"; docs/anchors.md).

Anchors are coded at the coded (padded) size by :mod:`gvc_jax.codec.anchors`; both sides
condition on the *decoded* anchor, never on the source. Each anchor is one ``ANCH`` chunk
numbered by the GOP boundary it sits on. The decoded anchors are the mode instance's state.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from gvc_jax.bitstream import container
from gvc_jax.bitstream.errors import BitstreamError
from gvc_jax.codec.errors import UsageError
from gvc_jax.codec.fields import param
from gvc_jax.codec.geometry import pad_clip, plan_shared

FALLBACK_ANCHOR = "jxl:1"   # when the ffmpeg at hand has no libvvenc (docs/anchors.md)


@dataclasses.dataclass(frozen=True)
class Params:
    anchor_codec: str = param("", "image codec of the anchor frames, NAME[:SETTING] (default: "
                                  "vvc:32, or jxl:1 where ffmpeg lacks libvvenc)", header=False)


def anchor_spec(params):
    """The anchor codec: the user's, else the default (VVC intra), else JPEG XL on machines whose
    ffmpeg lacks libvvenc. A codec chosen by the user that cannot run here is a usage error."""
    from gvc_jax.codec import anchors

    spec = anchors.parse_spec(params.anchor_codec or anchors.DEFAULT)
    here = anchors.available()
    if spec.name in here:
        return spec
    if not params.anchor_codec and "jxl" in here:
        return anchors.parse_spec(FALLBACK_ANCHOR)
    raise UsageError(f"anchor codec {spec.name!r} cannot run on this machine (available: "
                     f"{', '.join(here) or 'none'}); choose one with --anchor-codec")


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


def resolution_shift(height: int, width: int) -> float:
    """GVCC's time shift for the anchored modes: 5 above 480p, 3 at or below."""
    return 5.0 if min(height, width) > 480 else 3.0


class Anchored:
    """Base of the anchored modes: anchors, shared-boundary GOPs, conditioning on images."""
    name = ""
    chunk_tags: tuple[str, ...] = ("ANCH",)
    groups: tuple = (("anchored", Params),)
    owners = frozenset({"anchored"})
    independent_gops = False

    def __init__(self):
        self.anchors: list[np.ndarray] = []          # decoded anchor frames, coded size

    # -- GOPs and parameters
    def plan(self, n_frames, params, geometry):
        return plan_shared(n_frames, params.gop_frames, geometry)

    def adapt(self, params, height, width, fixed):
        return params if "shift" in fixed else params.replace(shift=resolution_shift(height,
                                                                                     width))

    # -- anchors
    def code_anchors(self, session, frames: np.ndarray, positions: list[int]) -> list:
        """Encoder: codes source frames ``positions`` (one per anchor number) and keeps the
        decoded anchors; returns the ``ANCH`` chunks."""
        from gvc_jax.codec import anchors

        coded = session.header["coded"]
        spec = anchor_spec(session.params)
        chunks, self.anchors = [], []
        for n, pos in enumerate(positions):
            img = pad_clip(frames[pos:pos + 1], 1, coded["height"], coded["width"])[0]
            cid, data = anchors.encode(spec, img)
            self.anchors.append(anchors.decode(cid, data, coded["height"], coded["width"]))
            chunks.append(container.anchor_chunk(n, cid, data))
        return chunks

    def read_anchors(self, session, count: int) -> None:
        """Decoder: the ``count`` anchors of the stream's ``ANCH`` chunks, decoded."""
        from gvc_jax.codec import anchors

        coded = session.header["coded"]
        by_n = {}
        for payload in session.chunks.get("ANCH", []):
            n, cid, data = container.parse_anchor(payload)
            if n in by_n:
                raise BitstreamError(f"anchor {n} coded twice")
            by_n[n] = (cid, data)
        if sorted(by_n) != list(range(count)):
            raise BitstreamError(f"ANCH chunks for anchors {sorted(by_n)}, the GOP table needs "
                                 f"{count}")
        self.anchors = [anchors.decode(*by_n[n], coded["height"], coded["width"])
                        for n in range(count)]

    def image_cond(self, session, gop, first: np.ndarray, last: np.ndarray | None) -> dict:
        model = session.model
        if model.conditioner is None:
            raise UsageError(f"config {model.name!r} has no image conditioning (a T2V model)")
        return {**model.cond, **model.conditioner(first, last, gop.coded)}

    @staticmethod
    def emit_shared(gop, frames: np.ndarray) -> np.ndarray:
        """GOP 0 contributes all its frames, later GOPs all but the first (the shared one)."""
        return frames if gop.index == 0 else frames[1:]

    def refine(self, session, gop, x0, target):
        return x0, []

    # -- rate control and report
    def side_ladder(self, params):
        return [params.replace(anchor_codec=str(s)) for s in anchor_ladder(anchor_spec(params))]

    def reserve_share(self, params):
        return 0.0

    def set_budget(self, budget):
        pass

    def report(self, params):
        return {"anchor_codec": str(anchor_spec(params))}
