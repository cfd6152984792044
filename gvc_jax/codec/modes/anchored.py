"""What the anchored modes (I2V, FLF2V) share: anchor frames through an image codec, GOPs that
share their boundary frame, and the tail residual (docs/codec.md, "Modes").

Anchors are coded at the coded (padded) size by :mod:`gvc_jax.codec.anchors`; both sides
condition on the *decoded* anchor, never on the source. Each anchor is one ``ANCH`` chunk
numbered by the GOP boundary it sits on.
"""
from __future__ import annotations

import numpy as np

from gvc_jax.bitstream import container
from gvc_jax.bitstream.errors import BitstreamError
from gvc_jax.codec.errors import UsageError
from gvc_jax.codec.geometry import pad_clip, plan_shared

FALLBACK_ANCHOR = "jxl:1"   # when the ffmpeg at hand has no libvvenc (docs/anchors.md)


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


def code_anchors(session, frames: np.ndarray, positions: list[int]) -> list[tuple[str, bytes]]:
    """Encoder: codes source frames ``positions`` (one per anchor number) and keeps the
    decoded anchors in ``session.anchors``; returns the ``ANCH`` chunks."""
    from gvc_jax.codec import anchors

    coded = session.header["coded"]
    spec = anchor_spec(session.params)
    chunks, session.anchors = [], []
    for n, pos in enumerate(positions):
        img = pad_clip(frames[pos:pos + 1], 1, coded["height"], coded["width"])[0]
        cid, data = anchors.encode(spec, img)
        session.anchors.append(anchors.decode(cid, data, coded["height"], coded["width"]))
        chunks.append(container.anchor_chunk(n, cid, data))
    return chunks


def read_anchors(session, count: int) -> None:
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
    session.anchors = [anchors.decode(*by_n[n], coded["height"], coded["width"])
                       for n in range(count)]


def plan(n_frames, params, geometry):
    return plan_shared(n_frames, params.gop_frames, geometry)


def image_cond(session, gop, first: np.ndarray, last: np.ndarray | None) -> dict:
    model = session.model
    if model.conditioner is None:
        raise UsageError(f"config {model.name!r} has no image conditioning (a T2V model)")
    return {**model.cond, **model.conditioner(first, last, gop.coded)}


def emit_shared(gop, frames: np.ndarray) -> np.ndarray:
    """GOP 0 contributes all its frames, later GOPs all but the first (the shared one)."""
    return frames if gop.index == 0 else frames[1:]


# ------------------------------------------------------------------ tail residual
def residual_encode(session, gop, x0_cthw, target_cthw):
    """Encoder: the entropy-coded residual of the last latent frame; returns the corrected
    latents and the ``RESD`` chunk (none when ``residual_step`` is 0)."""
    from gvc_jax.codec import residual

    step = session.params.residual_step
    if not step:
        return x0_cthw, []
    x0 = np.array(x0_cthw, np.float32)
    r = np.asarray(target_cthw, np.float32)[:, -1] - x0[:, -1]
    budget = getattr(session, "residual_budget", None)
    if budget is not None:          # rate control: this GOP's share of the bytes still unspent
        from gvc_jax.codec.ratecontrol import residual_step_for

        left = len(session.header["gops"]) - gop.index
        step, data = residual_step_for(r, session.residual_budget // left)
        session.residual_budget -= len(data) + 16
    else:
        data = residual.encode(r, step)
    x0[:, -1] += residual.reconstruct(r, step)
    return x0, [container.residual_chunk(gop.index, data)]


def residual_decode(session, gop, x0_cthw):
    """Decoder: adds the GOP's ``RESD`` residual to its last latent frame."""
    from gvc_jax.codec import residual

    if not session.params.residual_step:
        return x0_cthw
    payload = session.residuals.get(gop.index)
    if payload is None:
        raise BitstreamError(f"GOP {gop.index} has no RESD chunk (the header sets a residual "
                             "step)")
    x0 = np.array(x0_cthw, np.float32)
    x0[:, -1] += residual.decode(payload, x0[:, -1].shape)
    return x0


def read_residuals(session, n_gops: int) -> None:
    session.residuals = {}
    for payload in session.chunks.get("RESD", []):
        g, data = container.parse_residual(payload)
        if g in session.residuals:
            raise BitstreamError(f"GOP {g} has two RESD chunks")
        session.residuals[g] = data
    if session.residuals and not session.params.residual_step:
        raise BitstreamError("RESD chunks in a stream whose header sets no residual step")
    if session.params.residual_step and sorted(session.residuals) != list(range(n_gops)):
        raise BitstreamError(f"RESD chunks for GOPs {sorted(session.residuals)}, the GOP table "
                             f"has {n_gops}")
