"""The codec core: one encoder and one decoder loop for every mode (docs/codec.md).

Per GOP: pad -> autoencoder.encode -> x0 target; seeded x_T (not sent); the encoder scan emits
the top-M atom indices and signs per SDE step and latent frame, enumeratively coded into one
``IDX `` chunk. The mode (:mod:`gvc_jax.codec.modes`) plans the GOPs and builds each GOP's
conditioning; the decoder rebuilds everything else from the header, the prompt and the mode's
chunks, calling the same functions.
"""
from __future__ import annotations

import dataclasses
import time
from fractions import Fraction
from typing import Callable

import numpy as np

from gvc_jax import codebook
from gvc_jax.bitstream import container, indices as bs_indices
from gvc_jax.bitstream.errors import BitstreamError
from gvc_jax.codec import modes
from gvc_jax.codec.errors import ModelMismatchError, UsageError
from gvc_jax.codec.geometry import Gop, pad_clip
from gvc_jax.codec.models import CodecModel, Prompt
from gvc_jax.codec.params import CodecParams
from gvc_jax.sampler import decode_gop, encode_gop
from gvc_jax.sampler import progress as sampler_progress

FORMAT_VERSION = 1


@dataclasses.dataclass
class Encoded:
    data: bytes
    header: dict
    chunks: list
    recon: np.ndarray          # uint8 [T,H,W,3], equal to what decompress returns
    encode_seconds: float
    decode_seconds: float
    gops: list[Gop]


def make_header(model: CodecModel, mode: str, params: CodecParams, n_frames: int, h: int,
                w: int, fps: Fraction, gops: list[Gop]) -> dict:
    geom = model.geometry
    ch, cw = geom.padded_size(h, w)
    n_lat = geom.latent_frames(geom.coded_length(params.gop_frames))
    return {
        "format": "gvc", "version": FORMAT_VERSION,
        "model": {"config": model.name, "fingerprint": model.fingerprint},
        "codec": {"mode": mode, **params.header_fields(n_lat)},
        "source": {"frames": n_frames, "height": h, "width": w,
                   "fps": [fps.numerator, fps.denominator]},
        "coded": {"frames": sum(g.coded for g in gops), "height": ch, "width": cw},
        "gops": [g.to_json() for g in gops],
    }


def _cond(session: modes.Session, mode, gop: Gop):
    """The GOP's conditioning, built once per GOP (the encoder needs it twice)."""
    if gop.index not in session.conds:
        session.conds.clear()
        session.conds[gop.index] = mode.cond(session, gop)
    return session.conds[gop.index]


def _rcc_spec(model: CodecModel, params: CodecParams, shape):
    """rcc's spec for a GOP of latent ``shape``: both sides plan it from the model."""
    if model.error_fn is None:
        raise UsageError(f"--coding rcc needs a model with a known denoising-error curve; "
                         f"{model.name!r} has none (the gaussian prior and Wan have)")
    spec = params.rcc_spec(model.error_fn(shape))
    frame_len = shape[0] * shape[2] * shape[3]
    if spec.parts > spec.group * frame_len:
        raise UsageError(f"rcc: {spec.parts} parts of rows of {spec.group * frame_len} values")
    if spec.family == "shift":
        from gvc_jax.codebook import shifted

        try:
            shifted.layout(spec.bits, spec.row_len(frame_len))
        except ValueError as e:
            raise UsageError(f"rcc: {e}") from None
    return spec


def _encode_payload(session: modes.Session, mode, gop: Gop, x0) -> bytes:
    """The encoder: one GOP's packed choices (top-M indices and signs, or rcc choices)."""
    model, params = session.model, session.params
    x_T = codebook.init_noise(params.seed, gop.index, x0.shape)
    cond = _cond(session, mode, gop)     # before dit_state(): the conditioner may park it
    if params.coding == "rcc":
        from gvc_jax.bitstream import rcc_payload
        from gvc_jax.sampler import rcc

        spec = _rcc_spec(model, params, tuple(x0.shape))
        choices, _ = rcc.rcc_encode_gop(model.graphdef, model.dit_state(), cond, x_T, x0,
                                        params.seed, gop.index, spec=spec)
        return rcc_payload.pack(rcc.choices_to_ints(choices, spec), spec.bits)
    m = params.m_per_frame(model.geometry.latent_frames(gop.coded))
    idx, sign, _ = encode_gop(model.graphdef, model.dit_state(), cond, x_T, x0, params.seed,
                              gop.index, spec=params.spec(m))
    return bs_indices.pack_indices(np.asarray(idx), np.asarray(sign), m, params.K)


def _decode_gop_latents(session: modes.Session, mode, gop: Gop, payload: bytes):
    """The decoder's latents of one GOP, replayed from its packed indices."""
    model, params, header = session.model, session.params, session.header
    geom = model.geometry
    coded = header["coded"]
    m = params.m_per_frame(geom.latent_frames(gop.coded))
    shape = geom.latent_shape(gop.coded, coded["height"], coded["width"])
    x_T = codebook.init_noise(params.seed, gop.index, shape)
    cond = _cond(session, mode, gop)     # before dit_state(): the conditioner may park it
    if params.coding == "rcc":
        from gvc_jax.bitstream import rcc_payload
        from gvc_jax.sampler import rcc

        try:
            spec = _rcc_spec(model, params, shape)
        except UsageError as e:          # a header the model cannot plan
            raise BitstreamError(f"unsupported rcc parameters in header: {e}") from None
        choices = rcc_payload.unpack(payload, (spec.n_steps, spec.n_rows(shape[1]), spec.levels),
                                     spec.bits)
        return rcc.rcc_decode_gop(model.graphdef, model.dit_state(), cond, x_T,
                                  rcc.choices_from_ints(choices, spec),
                                  params.seed, gop.index, spec=spec)
    idx, sign = bs_indices.unpack_indices(payload, params.sde_steps, m, params.K)
    return decode_gop(model.graphdef, model.dit_state(), cond, x_T, idx, sign, params.seed,
                      gop.index, spec=params.spec(m))


def _finish_gop(session: modes.Session, mode, gop: Gop, x0) -> np.ndarray:
    """Latents -> the GOP's output frames, shared by both sides: the autoencoder's frames at the
    coded size (kept in ``session.decoded`` for later GOPs' conditioning), then the mode's
    output cropped to the source size."""
    frames = session.model.decode(x0)
    session.decoded.append(frames)
    src = session.header["source"]
    out = mode.emit(session, gop, frames[: gop.frames])
    return out[:, : src["height"], : src["width"]]


def compress(frames: np.ndarray, fps: Fraction, model: CodecModel, params: CodecParams, *,
             mode: str = "t2v", on_gop: Callable[[int, int, str], None] | None = None,
             on_step: Callable[[int], None] | None = None,
             residual_budget: int | None = None) -> Encoded:
    """Encodes a uint8 clip [T,H,W,3]; returns the .gvc bytes and the decoder's output.
    ``residual_budget``: bytes for the residual chunks under rate control
    (:mod:`gvc_jax.codec.ratecontrol`)."""
    params.validate()
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise UsageError(f"expected uint8 frames [T,H,W,3], got {frames.dtype} {frames.shape}")
    model.check_params(params)
    md = modes.get(mode)
    t, h, w, _ = frames.shape
    try:
        gops = md.plan(t, params, model.geometry)
    except ValueError as e:
        raise UsageError(str(e)) from None
    header = make_header(model, mode, params, t, h, w, fps, gops)
    ch, cw = header["coded"]["height"], header["coded"]["width"]
    session = modes.Session(model, params, header, residual_budget=residual_budget)
    chunks = list(model.prompt.chunks()) + list(md.begin(session, frames))
    recon = []
    enc_s = dec_s = 0.0
    with sampler_progress.reporting(on_step):
        for g in gops:
            if on_gop:
                on_gop(g.index, len(gops), "encode")
            t0 = time.perf_counter()
            x0 = model.encode(pad_clip(frames[g.start:g.start + g.frames], g.coded, ch, cw))
            payload = _encode_payload(session, md, g, x0)
            chunks.append(container.idx_chunk(g.index, payload))
            enc_s += time.perf_counter() - t0
            # The reconstruction is what the decoder will produce: decode the packed indices
            # with the decoder's own function.
            if on_gop:
                on_gop(g.index, len(gops), "decode")
            t0 = time.perf_counter()
            x0_dec = _decode_gop_latents(session, md, g, payload)
            x0_dec, extra = md.refine(session, g, x0_dec, x0)
            chunks.extend(extra)
            recon.append(_finish_gop(session, md, g, x0_dec))
            dec_s += time.perf_counter() - t0
    data = container.dumps_gvc(header, chunks)
    return Encoded(data, header, chunks, np.concatenate(recon), enc_s, dec_s, gops)


def check_model(header: dict, model: CodecModel) -> None:
    want = header["model"]
    if want["config"] != model.name:
        raise ModelMismatchError(f"bitstream was made with config {want['config']!r}, "
                                 f"not {model.name!r}")
    if want["fingerprint"] != model.fingerprint:
        raise ModelMismatchError(
            f"model fingerprint mismatch: bitstream {want['fingerprint'][:16]}…, "
            f"loaded weights {model.fingerprint[:16]}… (wrong or modified weights)")


def _check_gop_table(header: dict, md, params: CodecParams, model: CodecModel) -> list[Gop]:
    """The GOP table must be exactly what the encoder would plan for this source."""
    src, coded, codec = header["source"], header["coded"], header["codec"]
    try:
        want = md.plan(src["frames"], params, model.geometry)
    except ValueError as e:
        raise BitstreamError(f"inconsistent header: {e}") from None
    if [g.to_json() for g in want] != header["gops"]:
        raise BitstreamError("GOP table does not match the source geometry and gop_frames")
    if [coded["height"], coded["width"]] != list(model.geometry.padded_size(src["height"],
                                                                            src["width"])):
        raise BitstreamError("coded size does not match the source size")
    if coded["frames"] != sum(g.coded for g in want):
        raise BitstreamError("coded frame count does not match the GOP table")
    n_lat = model.geometry.latent_frames(model.geometry.coded_length(params.gop_frames))
    if int(codec.get("latent_frames", -1)) != n_lat:
        raise BitstreamError("codec latent_frames does not match gop_frames")
    return want


def read_stream(data: bytes) -> tuple[dict, Prompt, dict[str, list[bytes]]]:
    """Header, prompt and the payload chunks by tag; no model needed."""
    header, chunks = container.read_gvc(data)
    by_tag: dict[str, list[bytes]] = {}
    for tag, payload in chunks:
        by_tag.setdefault(tag, []).append(payload)
    prompt = Prompt.from_chunk(by_tag.pop("PRMT", [None])[0])
    return header, prompt, by_tag


def decompress(data: bytes, load: Callable[[str, Prompt, CodecParams], CodecModel], *,
               on_gop: Callable[[int, int, str], None] | None = None,
               on_step: Callable[[int], None] | None = None) -> tuple[np.ndarray, Fraction, dict]:
    """Decodes .gvc bytes; ``load(config_name, prompt, params)`` supplies the model."""
    header, prompt, by_tag = read_stream(data)
    codec = header["codec"]
    md = modes.get(codec["mode"]) if codec.get("mode") in modes.MODES else None
    if md is None:
        raise BitstreamError(f"unsupported codec mode {codec.get('mode')!r}")
    params = CodecParams.from_header(codec)
    for tag in by_tag:
        if tag != "IDX " and tag not in md.chunk_tags:
            raise BitstreamError(f"unexpected chunk {tag!r} in a {md.name} stream")
    try:
        model = load(header["model"]["config"], prompt, params)
    except UsageError as e:   # the file names a model this build cannot run
        raise ModelMismatchError(str(e)) from None
    check_model(header, model)
    gops = _check_gop_table(header, md, params, model)
    by_gop = {}
    for payload in by_tag.pop("IDX ", []):
        g, packed = container.parse_idx(payload)
        if g in by_gop:
            raise BitstreamError(f"GOP {g} coded twice")
        by_gop[g] = packed
    if sorted(by_gop) != list(range(len(gops))):
        raise BitstreamError(f"IDX chunks for GOPs {sorted(by_gop)} do not match the "
                             f"GOP table of {len(gops)}")
    session = modes.Session(model, params, header, chunks=by_tag)
    md.begin(session, None)
    out = []
    with sampler_progress.reporting(on_step):
        for g in gops:
            if on_gop:
                on_gop(g.index, len(gops), "decode")
            x0, _ = md.refine(session, g, _decode_gop_latents(session, md, g, by_gop[g.index]),
                              None)
            out.append(_finish_gop(session, md, g, x0))
    frames = np.concatenate(out)
    src = header["source"]
    if frames.shape[0] != src["frames"]:
        raise BitstreamError(f"GOP table covers {frames.shape[0]} frames, header says "
                             f"{src['frames']}")
    return frames, Fraction(*src["fps"]), header
