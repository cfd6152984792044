"""One stream, planned once (docs/codec.md, "The loop").

:func:`plan` is the one place a stream is planned on the encoder side: the mode's GOP table,
the header, and the chunks that precede the GOPs (the prompt and the mode's, e.g. coded
anchors). ``gvc compress``, rate control, ``gvc batch`` and the cost estimate all start from
it. :func:`open_stream` is the decoder's counterpart from a file's header and chunks, checked
against what the encoder would plan. :func:`assemble` lays out the finished file, once.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from gvc_jax.bitstream import container
from gvc_jax.bitstream.errors import BitstreamError
from gvc_jax.codec import registry
from gvc_jax.codec.errors import ModelMismatchError, UsageError
from gvc_jax.codec.geometry import Gop
from gvc_jax.codec.params import CodecParams
from gvc_jax.codec.prompt import Prompt
from gvc_jax.codec.session import Session

FORMAT_VERSION = 1


def make_header(model, mode: str, params, n_frames: int, h: int, w: int, fps: Fraction,
                gops: list[Gop]) -> dict:
    geom = model.geometry
    ch, cw = geom.padded_size(h, w)
    n_lat = geom.latent_frames(geom.coded_length(params.gop_frames))
    return {
        "format": "gvc", "version": FORMAT_VERSION,
        "model": {"config": model.name, "fingerprint": model.fingerprint},
        "codec": params.header_fields(mode, n_lat),
        "source": {"frames": n_frames, "height": h, "width": w,
                   "fps": [fps.numerator, fps.denominator]},
        "coded": {"frames": sum(g.coded for g in gops), "height": ch, "width": cw},
        "gops": [g.to_json() for g in gops],
    }


def _gops(mode, n_frames: int, params, model) -> list[Gop]:
    try:
        return mode.plan(n_frames, params, model.geometry)
    except ValueError as e:
        raise UsageError(str(e)) from None


def plan(frames: np.ndarray, fps: Fraction, model, params, mode_name: str) -> Session:
    """The encoder's stream: GOPs, header, and the prompt's and mode's chunks (the mode's
    side information is coded here, once)."""
    params.validate()
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise UsageError(f"expected uint8 frames [T,H,W,3], got {frames.dtype} {frames.shape}")
    model.check_params(params)
    coding = registry.coding(params.coding)
    coding.check_model(params, model)
    mode = registry.mode(mode_name)()
    t, h, w, _ = frames.shape
    gops = _gops(mode, t, params, model)
    header = make_header(model, mode_name, params, t, h, w, fps, gops)
    s = Session(model, params, mode, coding, header, gops)
    s.side_chunks = list(mode.begin(s, frames))
    return s


def replan(session: Session, params) -> Session:
    """``session`` with other parameters of its coding (rate control's M): a new header, the
    same mode instance and chunks (its side information does not depend on them)."""
    src = session.header["source"]
    gops = _gops(session.mode, src["frames"], params, session.model)
    header = make_header(session.model, session.header["codec"]["mode"], params, src["frames"],
                         src["height"], src["width"], Fraction(*src["fps"]), gops)
    s = Session(session.model, params, session.mode, registry.coding(params.coding), header,
                gops)
    s.side_chunks = session.side_chunks
    return s


def payload_bytes(session: Session, gop: Gop) -> int:
    """Exact size of a GOP's payload, known from the parameters and the geometry."""
    n_lat = session.model.geometry.latent_frames(gop.coded)
    return -(-session.coding.payload_bits(session.params, session.model, n_lat) // 8)


def assemble(session: Session, payloads: dict[int, bytes],
             extra: dict[int, list] | None = None) -> bytes:
    """The file: header, prompt and the mode's side information, then per GOP its ``IDX ``
    chunk followed by the chunks the mode wrote while coding it (``extra``, e.g. a
    residual)."""
    chunks = list(session.model.prompt.chunks()) + list(session.side_chunks)
    for g in session.gops:
        chunks.append(container.idx_chunk(g.index, payloads[g.index]))
        chunks += (extra or {}).get(g.index, [])
    return container.dumps_gvc(session.header, chunks)


def size_with_placeholders(session: Session, indices: bool = True) -> int:
    """Exact size of the stream without the mode's refine chunks: real header, prompt and side
    information, and payloads of their exact sizes (empty with ``indices=False``)."""
    return len(assemble(session, {g.index: bytes(payload_bytes(session, g) if indices else 0)
                                  for g in session.gops}))


# ------------------------------------------------------------------ the decoder's side
def read_stream(data: bytes) -> tuple[dict, CodecParams, Prompt, dict[str, list[bytes]]]:
    """Header (its codec object checked against the registry), parameters, prompt and the
    payload chunks by tag; no model needed."""
    header, chunks = container.read_gvc(data)
    params, _ = CodecParams.from_header(header["codec"])
    for i, g in enumerate(header["gops"]):
        if g["frames"] > params.gop_frames:
            raise BitstreamError(f"bad header: gops[{i}].frames = {g['frames']} is outside "
                                 f"[1, {params.gop_frames}]")
    by_tag: dict[str, list[bytes]] = {}
    for tag, payload in chunks:
        by_tag.setdefault(tag, []).append(payload)
    prompt = Prompt.from_chunk(by_tag.pop("PRMT", [None])[0])
    return header, params, prompt, by_tag


def check_chunks(header: dict, by_tag: dict[str, list[bytes]]) -> None:
    """Only index chunks and the mode's own may follow the header."""
    mode = registry.mode(header["codec"]["mode"])
    for tag in by_tag:
        if tag != "IDX " and tag not in mode.chunk_tags:
            raise BitstreamError(f"unexpected chunk {tag!r} in a {mode.name} stream")


def check_model(want: dict, name: str, fingerprint: str) -> None:
    """The header's ``model`` entry against a model's config name and fingerprint."""
    if want["config"] != name:
        raise ModelMismatchError(f"bitstream was made with config {want['config']!r}, "
                                 f"not {name!r}")
    if want["fingerprint"] != fingerprint:
        raise ModelMismatchError(
            f"model fingerprint mismatch: bitstream {want['fingerprint'][:16]}…, "
            f"the weights {fingerprint[:16]}… (wrong or modified weights)")


def open_stream(header: dict, params, model, by_tag: dict[str, list[bytes]]
                ) -> tuple[Session, dict[int, bytes]]:
    """The decoder's session and the payload of each GOP: the header must hold exactly what
    the encoder would plan for this source and model."""
    mode = registry.mode(header["codec"]["mode"])()
    check_chunks(header, by_tag)
    check_model(header["model"], model.name, model.fingerprint)
    src, coded = header["source"], header["coded"]
    try:
        gops = mode.plan(src["frames"], params, model.geometry)
    except ValueError as e:
        raise BitstreamError(f"inconsistent header: {e}") from None
    if [g.to_json() for g in gops] != header["gops"]:
        raise BitstreamError("GOP table does not match the source geometry and gop_frames")
    if [coded["height"], coded["width"]] != list(model.geometry.padded_size(src["height"],
                                                                            src["width"])):
        raise BitstreamError("coded size does not match the source size")
    if coded["frames"] != sum(g.coded for g in gops):
        raise BitstreamError("coded frame count does not match the GOP table")
    geom = model.geometry
    if header["codec"]["latent_frames"] != geom.latent_frames(
            geom.coded_length(params.gop_frames)):
        raise BitstreamError("codec latent_frames does not match gop_frames")
    payloads = {}
    for payload in by_tag.pop("IDX ", []):
        g, packed = container.parse_idx(payload)
        if g in payloads:
            raise BitstreamError(f"GOP {g} coded twice")
        payloads[g] = packed
    if sorted(payloads) != list(range(len(gops))):
        raise BitstreamError(f"IDX chunks for GOPs {sorted(payloads)} do not match the "
                             f"GOP table of {len(gops)}")
    s = Session(model, params, mode, registry.coding(params.coding), header, gops,
                chunks=by_tag)
    mode.begin(s, None)
    return s, payloads
