"""T2V mode: GOPs coded independently, no anchors (DESIGN §1, §7).

Per GOP: pad -> autoencoder.encode -> x0 target; seeded x_T (not sent);
the encoder scan emits top-M atom indices and signs per SDE step and latent
frame; they are enumeratively coded into one ``IDX `` chunk. The decoder
rebuilds everything else from the header.
"""
from __future__ import annotations

import dataclasses
import time
from fractions import Fraction
from typing import Callable

import jax
import numpy as np

from gvc_jax import codebook
from gvc_jax.codebook.table import MAX_EXACT_ATOMS
from gvc_jax.bitstream import container, indices as bs_indices
from gvc_jax.bitstream.errors import BitstreamError
from gvc_jax.codec.errors import ModelMismatchError, UsageError
from gvc_jax.codec.geometry import (Gop, coded_length, latent_frames, pad_clip, padded_size,
                                    plan_gops)
from gvc_jax.codec.models import CodecModel
from gvc_jax.sampler import SamplerSpec, decode_gop, encode_gop
from gvc_jax.sampler import progress as sampler_progress

FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class CodecParams:
    """Codec settings; all of them travel in the header."""
    K: int = 16384
    M: int = 64
    steps: int = 20
    sde_steps: int = 17
    g_scale: float = 3.0
    shift: float = 1.0
    seed: int = 0
    gop_frames: int = 16
    schedule: str = "shifted"
    chunk: int | None = None   # encoder-side memory knob, not in the bitstream

    def validate(self) -> None:
        if not 2 <= self.K <= 2 ** 16:
            raise UsageError(f"K must lie in [2, 65536], got {self.K}")
        if not 1 <= self.M <= min(self.K, MAX_EXACT_ATOMS):
            raise UsageError(f"M must lie in [1, min(K, {MAX_EXACT_ATOMS})], got {self.M} "
                             f"(K={self.K}; sums of more atoms are not exact in float32)")
        if not 1 <= self.steps <= 1000 or not 0 <= self.sde_steps <= self.steps:
            raise UsageError(f"need 1 <= steps <= 1000 and 0 <= sde_steps <= steps, "
                             f"got steps={self.steps}, sde_steps={self.sde_steps}")
        if not self.g_scale >= 0 or not self.shift > 0:
            raise UsageError("g_scale must be >= 0 and shift > 0")
        if not 0 <= self.seed < 2 ** 32:
            raise UsageError("seed must lie in [0, 2^32)")
        if self.schedule == "logsnr" and self.steps < 2:
            raise UsageError("the logsnr schedule needs at least 2 steps")
        if self.schedule not in ("shifted", "logsnr"):
            raise UsageError(f"schedule must be 'shifted' or 'logsnr', got {self.schedule!r}")


def _m_list(header_codec: dict, n_latent: int) -> tuple[int, ...]:
    m = header_codec["M"]
    if len(m) < n_latent:
        raise BitstreamError(f"header lists {len(m)} M values for a GOP of {n_latent} latent frames")
    return tuple(int(v) for v in m[:n_latent])


def _spec(codec: dict, m: tuple[int, ...], chunk=None) -> SamplerSpec:
    return SamplerSpec(n_steps=int(codec["steps"]), sde_steps=int(codec["sde_steps"]),
                       g_scale=float(codec["g_scale"]), shift=float(codec["shift"]),
                       K=int(codec["K"]), m_per_frame=m, chunk=chunk,
                       schedule=str(codec.get("schedule", "shifted")))


def _x_T(seed: int, gop: int, shape) -> jax.Array:
    return codebook.init_noise(seed, gop, tuple(shape))


@dataclasses.dataclass
class Encoded:
    data: bytes
    header: dict
    chunks: list
    recon: np.ndarray          # uint8 [T,H,W,3], equal to what decompress returns
    encode_seconds: float
    decode_seconds: float
    gops: list[Gop]


def make_header(model: CodecModel, params: CodecParams, n_frames: int, h: int, w: int,
                fps: Fraction, gops: list[Gop], coded_h: int, coded_w: int) -> dict:
    n_lat = latent_frames(params.gop_frames, model.frames_per_latent, model.causal)
    return {
        "format": "gvc", "version": FORMAT_VERSION,
        "model": {"config": model.name, "fingerprint": model.fingerprint},
        "codec": {"mode": "t2v", "K": params.K, "M": [params.M] * n_lat,
                  "steps": params.steps, "sde_steps": params.sde_steps,
                  "g_scale": params.g_scale, "shift": params.shift, "seed": params.seed,
                  "schedule": params.schedule,
                  "gop_frames": params.gop_frames, "latent_frames": n_lat},
        "source": {"frames": n_frames, "height": h, "width": w,
                   "fps": [fps.numerator, fps.denominator]},
        "coded": {"frames": sum(g.coded for g in gops), "height": coded_h, "width": coded_w},
        "gops": [g.to_json() for g in gops],
    }


def _coded_frames(model: CodecModel, gop: dict) -> int:
    return coded_length(gop["frames"], model.frames_per_latent, model.causal)


def _decode_one(model: CodecModel, codec: dict, gop: dict, idx, sign, coded_h, coded_w):
    coded_t = _coded_frames(model, gop)
    m = _m_list(codec, latent_frames(coded_t, model.frames_per_latent, model.causal))
    shape = tuple(model.module.latent_shape(coded_t, coded_h, coded_w))
    x_T = _x_T(codec["seed"], gop["index"], shape)
    x0 = decode_gop(model.graphdef, model.state, model.cond, x_T, idx, sign,
                    codec["seed"], gop["index"], spec=_spec(codec, m))
    return model.decode(x0)[: gop["frames"]]


def compress(frames: np.ndarray, fps: Fraction, model: CodecModel, params: CodecParams,
             *, on_gop: Callable[[int, int, str], None] | None = None,
             on_step: Callable[[int], None] | None = None) -> Encoded:
    """Encodes a uint8 clip [T,H,W,3]; returns the .gvc bytes and the decoder's output."""
    params.validate()
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise UsageError(f"expected uint8 frames [T,H,W,3], got {frames.dtype} {frames.shape}")
    t, h, w, _ = frames.shape
    try:
        gops = plan_gops(t, params.gop_frames, model.frames_per_latent, model.causal)
    except ValueError as e:
        raise UsageError(str(e)) from None
    ch, cw = padded_size(h, w, model.spatial_multiple)
    header = make_header(model, params, t, h, w, fps, gops, ch, cw)
    codec = header["codec"]
    chunks, recon = [], []
    enc_s = dec_s = 0.0
    with sampler_progress.reporting(on_step):
        for g in gops:
            clip = pad_clip(frames[g.start:g.start + g.frames], g.coded, ch, cw)
            n_lat = latent_frames(g.coded, model.frames_per_latent, model.causal)
            m = _m_list(codec, n_lat)
            if on_gop:
                on_gop(g.index, len(gops), "encode")
            t0 = time.perf_counter()
            x0 = model.encode(clip)
            x_T = _x_T(params.seed, g.index, x0.shape)
            idx, sign, _ = encode_gop(model.graphdef, model.state, model.cond, x_T, x0,
                                      params.seed, g.index, spec=_spec(codec, m, params.chunk))
            idx, sign = np.asarray(idx), np.asarray(sign)
            payload = bs_indices.pack_indices(idx, sign, m, params.K)
            chunks.append(container.idx_chunk(g.index, payload))
            enc_s += time.perf_counter() - t0
            # The reconstruction is what the decoder will produce: decode the
            # packed indices with the decoder's own function.
            if on_gop:
                on_gop(g.index, len(gops), "decode")
            t0 = time.perf_counter()
            d_idx, d_sign = bs_indices.unpack_indices(payload, params.sde_steps, m, params.K)
            recon.append(_decode_one(model, codec, g.to_json(), d_idx, d_sign, ch, cw)[:, :h, :w])
            dec_s += time.perf_counter() - t0
    data = container.dumps_gvc(header, chunks)
    return Encoded(data, header, chunks, np.concatenate(recon), enc_s, dec_s, gops)


def _check_codec_fields(codec: dict) -> None:
    """The header's codec parameters must be ones this decoder can run exactly."""
    try:
        CodecParams(K=int(codec["K"]), M=max(int(m) for m in codec["M"]),
                    steps=int(codec["steps"]), sde_steps=int(codec["sde_steps"]),
                    g_scale=float(codec["g_scale"]), shift=float(codec["shift"]),
                    seed=int(codec["seed"]), gop_frames=int(codec["gop_frames"]),
                    schedule=str(codec.get("schedule", "shifted"))).validate()
        if min(int(m) for m in codec["M"]) < 1:
            raise UsageError("M must be >= 1")
    except (UsageError, KeyError, TypeError, ValueError) as e:
        raise BitstreamError(f"unsupported codec parameters in header: {e}") from None


def _check_gop_table(header: dict, model: CodecModel) -> None:
    """The GOP table must be exactly what the encoder would plan for this source."""
    src, coded, codec = header["source"], header["coded"], header["codec"]
    try:
        want = plan_gops(src["frames"], int(codec["gop_frames"]), model.frames_per_latent,
                         model.causal)
    except ValueError as e:
        raise BitstreamError(f"inconsistent header: {e}") from None
    if [g.to_json() for g in want] != header["gops"]:
        raise BitstreamError("GOP table does not match the source geometry and gop_frames")
    if (coded["height"], coded["width"]) != padded_size(src["height"], src["width"],
                                                        model.spatial_multiple):
        raise BitstreamError("coded size does not match the source size")
    n_lat = latent_frames(int(codec["gop_frames"]), model.frames_per_latent, model.causal)
    if int(codec.get("latent_frames", -1)) != n_lat or len(codec["M"]) != n_lat:
        raise BitstreamError("codec latent_frames / M list do not match gop_frames")


def check_model(header: dict, model: CodecModel) -> None:
    want = header["model"]
    if want["config"] != model.name:
        raise ModelMismatchError(f"bitstream was made with config {want['config']!r}, "
                                 f"not {model.name!r}")
    if want["fingerprint"] != model.fingerprint:
        raise ModelMismatchError(
            f"model fingerprint mismatch: bitstream {want['fingerprint'][:16]}…, "
            f"loaded weights {model.fingerprint[:16]}… (wrong or modified weights)")


def decompress(data: bytes, load: Callable[[str], CodecModel], *,
               on_gop: Callable[[int, int, str], None] | None = None,
               on_step: Callable[[int], None] | None = None) -> tuple[np.ndarray, Fraction, dict]:
    """Decodes .gvc bytes; ``load(config_name)`` supplies the model."""
    header, chunks = container.read_gvc(data)
    codec = header["codec"]
    if codec.get("mode") != "t2v":
        raise BitstreamError(f"unsupported codec mode {codec.get('mode')!r}")
    try:
        model = load(header["model"]["config"])
    except UsageError as e:   # the file names a model this build cannot run
        raise ModelMismatchError(str(e)) from None
    check_model(header, model)
    src, coded = header["source"], header["coded"]
    by_gop = {}
    for tag, payload in chunks:
        if tag != "IDX ":
            raise BitstreamError(f"unexpected chunk {tag!r} in a t2v stream")
        g, packed = container.parse_idx(payload)
        if g in by_gop:
            raise BitstreamError(f"GOP {g} coded twice")
        by_gop[g] = packed
    gops = header["gops"]
    _check_codec_fields(codec)
    _check_gop_table(header, model)
    if sorted(by_gop) != list(range(len(gops))):
        raise BitstreamError(f"IDX chunks for GOPs {sorted(by_gop)} do not match the "
                             f"GOP table of {len(gops)}")
    out = []
    with sampler_progress.reporting(on_step):
        for gop in gops:
            if on_gop:
                on_gop(gop["index"], len(gops), "decode")
            n_lat = latent_frames(_coded_frames(model, gop), model.frames_per_latent, model.causal)
            m = _m_list(codec, n_lat)
            idx, sign = bs_indices.unpack_indices(by_gop[gop["index"]], int(codec["sde_steps"]),
                                                  m, int(codec["K"]))
            frames = _decode_one(model, codec, gop, idx, sign, coded["height"], coded["width"])
            out.append(frames[:, : src["height"], : src["width"]])
    frames = np.concatenate(out)
    if frames.shape[0] != src["frames"]:
        raise BitstreamError(f"GOP table covers {frames.shape[0]} frames, header says {src['frames']}")
    return frames, Fraction(*src["fps"]), header
