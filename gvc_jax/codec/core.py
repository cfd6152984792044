"""The codec loop: one encoder and one decoder for every mode and coding (docs/codec.md).

Per GOP: pad -> autoencoder.encode -> x0 target; seeded x_T (not sent); the coding turns the
target into the GOP's payload (one ``IDX `` chunk) and the decoder's latents back from it; the
mode conditions the GOP, may refine its latents (a residual) and picks the frames it
contributes. The stream is planned by :func:`gvc_jax.codec.stream.plan` (or rate control) and
serialised once, by :func:`gvc_jax.codec.stream.assemble`.
"""
from __future__ import annotations

import dataclasses
import time
from fractions import Fraction
from typing import Callable

import numpy as np

from gvc_jax import codebook
from gvc_jax.bitstream.errors import BitstreamError
from gvc_jax.codec import stream
from gvc_jax.codec.errors import ModelMismatchError, UsageError
from gvc_jax.codec.geometry import Gop, pad_clip
from gvc_jax.codec.prompt import Prompt
from gvc_jax.codec.session import Session
from gvc_jax.sampler import progress as sampler_progress

FORMAT_VERSION = stream.FORMAT_VERSION


@dataclasses.dataclass
class Encoded:
    data: bytes
    header: dict
    recon: np.ndarray          # uint8 [T,H,W,3], equal to what decompress returns
    encode_seconds: float
    decode_seconds: float
    gops: list[Gop]


def _x_T(session: Session, gop: Gop, shape):
    return codebook.init_noise(session.params.seed, gop.index, shape)


def encode_gop(session: Session, gop: Gop, x0) -> bytes:
    """The encoder: one GOP's payload."""
    cond = session.cond(gop)     # before dit_state(): the conditioner may park the weights
    return session.coding.encode_gop(session, gop, x0, _x_T(session, gop, x0.shape), cond)


def decode_gop(session: Session, gop: Gop, payload: bytes):
    """The decoder's latents of one GOP, replayed from its payload."""
    coded = session.header["coded"]
    shape = session.model.geometry.latent_shape(gop.coded, coded["height"], coded["width"])
    cond = session.cond(gop)
    return session.coding.decode_gop(session, gop, payload, _x_T(session, gop, shape), cond)


def finish_gop(session: Session, gop: Gop, x0) -> np.ndarray:
    """Latents -> the GOP's output frames, shared by both sides: the autoencoder's frames at the
    coded size (kept in ``session.decoded`` for later GOPs' conditioning), then the mode's
    output cropped to the source size."""
    frames = session.model.decode(x0)
    session.decoded.append(frames)
    src = session.header["source"]
    out = session.mode.emit(session, gop, frames[: gop.frames])
    return out[:, : src["height"], : src["width"]]


def compress(frames: np.ndarray, fps: Fraction, model, params, *, mode: str = "t2v",
             on_gop: Callable[[int, int, str], None] | None = None,
             on_step: Callable[[int], None] | None = None,
             session: Session | None = None) -> Encoded:
    """Encodes a uint8 clip [T,H,W,3]; returns the .gvc bytes and the decoder's output.
    ``session``: a stream already planned for these frames (rate control plans it); by default
    :func:`gvc_jax.codec.stream.plan` plans one."""
    session = session or stream.plan(frames, fps, model, params, mode)
    ch, cw = session.header["coded"]["height"], session.header["coded"]["width"]
    payloads, extra, recon = {}, {}, []
    enc_s = dec_s = 0.0
    n = len(session.gops)
    with sampler_progress.reporting(on_step):
        for g in session.gops:
            if on_gop:
                on_gop(g.index, n, "encode")
            t0 = time.perf_counter()
            x0 = session.model.encode(pad_clip(frames[g.start:g.start + g.frames], g.coded,
                                               ch, cw))
            payloads[g.index] = encode_gop(session, g, x0)
            enc_s += time.perf_counter() - t0
            # The reconstruction is what the decoder will produce: decode the payload with the
            # decoder's own function.
            if on_gop:
                on_gop(g.index, n, "decode")
            t0 = time.perf_counter()
            x0_dec, extra[g.index] = session.mode.refine(
                session, g, decode_gop(session, g, payloads[g.index]), x0)
            recon.append(finish_gop(session, g, x0_dec))
            dec_s += time.perf_counter() - t0
    data = stream.assemble(session, payloads, extra)
    return Encoded(data, session.header, np.concatenate(recon), enc_s, dec_s, session.gops)


def decompress(data: bytes, load: Callable[[str, Prompt, object], object], *,
               on_gop: Callable[[int, int, str], None] | None = None,
               on_step: Callable[[int], None] | None = None,
               check_weights: Callable[[dict], None] | None = None
               ) -> tuple[np.ndarray, Fraction, dict]:
    """Decodes .gvc bytes; ``load(config_name, prompt, params)`` supplies the model.
    ``check_weights(header["model"])``, when given, runs before the model is loaded (it
    refuses other weights without converting them)."""
    header, params, prompt, by_tag = stream.read_stream(data)
    stream.check_chunks(header, by_tag)
    if check_weights is not None:
        check_weights(header["model"])
    try:
        model = load(header["model"]["config"], prompt, params)
    except UsageError as e:   # the file names a model this build cannot run
        raise ModelMismatchError(str(e)) from None
    session, payloads = stream.open_stream(header, params, model, by_tag)
    out = []
    n = len(session.gops)
    with sampler_progress.reporting(on_step):
        for g in session.gops:
            if on_gop:
                on_gop(g.index, n, "decode")
            x0, _ = session.mode.refine(session, g, decode_gop(session, g, payloads[g.index]),
                                        None)
            out.append(finish_gop(session, g, x0))
    frames = np.concatenate(out)
    src = header["source"]
    if frames.shape[0] != src["frames"]:
        raise BitstreamError(f"GOP table covers {frames.shape[0]} frames, header says "
                             f"{src['frames']}")
    return frames, Fraction(*src["fps"]), header
