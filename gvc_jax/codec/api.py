"""File-level codec API used by the CLI, the demo, eval and the benchmarks."""
from __future__ import annotations

import os
from fractions import Fraction

import numpy as np

from gvc_jax.bitstream import container
from gvc_jax.codec import core, registry, stream
from gvc_jax.codec.codec_model import (CodecModel, detect_config, load_model,
                                       model_fingerprint)
from gvc_jax.codec.errors import ModelMismatchError, UsageError
from gvc_jax.codec.params import CodecParams, check_in_use
from gvc_jax.codec.placement import Placement
from gvc_jax.codec.presets import PRESETS, get_config
from gvc_jax.codec.prompt import Prompt
from gvc_jax.fileutil import write_bytes_atomic
from gvc_jax.metrics import psnr_mean, psnr_sequence


def default_dtype(model_name: str) -> str:
    """bf16 for the Wan models on an accelerator, fp32 on a CPU and for the analytic prior."""
    if model_name == "gaussian":
        return "float32"
    import jax

    return "bfloat16" if jax.default_backend() in ("gpu", "tpu") else "float32"


def params_for(config: str | None, overrides: dict | None = None, weights: str | None = None
               ) -> tuple[str, str, CodecParams]:
    """``(model name, mode, params)`` of a preset with the user's overrides.

    With no ``config``, the preset follows ``weights`` (see :func:`detect_config`). A parameter
    the stream would not use (another coding's or mode's) is a usage error."""
    config = config or detect_config(weights)
    if config not in PRESETS:
        raise UsageError(f"unknown config {config!r}; available: {', '.join(sorted(PRESETS))}")
    cfg = get_config(config)
    values = dict(cfg.codec)
    values.update(overrides or {})
    if "dtype" not in (overrides or {}):
        values["dtype"] = default_dtype(cfg.model)
    params = CodecParams.from_values(values)
    check_in_use({k: v for k, v in (overrides or {}).items() if k != "dtype"}, cfg.mode,
                 params.coding)
    return cfg.model, cfg.mode, params


def for_source(params: CodecParams, mode: str, frames: np.ndarray,
               overrides: dict | None) -> CodecParams:
    """``params`` adapted by the mode to the source's size (the anchored modes' resolution
    rule for the shift), leaving alone what the user set."""
    if frames.ndim != 4:
        return params
    return registry.mode(mode)().adapt(params, frames.shape[1], frames.shape[2],
                                       frozenset(overrides or {}))


def rates(nbytes: int, frames: int, height: int, width: int, fps) -> tuple[float, float]:
    """(bpp, kbps) of ``nbytes``: bpp = bits / (frames·H·W) of the source, kbps at the source
    frame rate (docs/codec.md, "Rates"); the one definition every report uses."""
    bits = 8 * nbytes
    return bits / (frames * height * width), bits / (frames / float(fps)) / 1000.0


def rate_report(header: dict, data: bytes) -> dict:
    """Honest rate: every byte of the file counts."""
    src = header["source"]
    t, h, w = src["frames"], src["height"], src["width"]
    fps = src["fps"][0] / src["fps"][1]
    bpp, kbps = rates(len(data), t, h, w, fps)
    return {"bits_total": 8 * len(data), "bytes_file": len(data), "bpp": bpp,
            "kbps": kbps, "frames": t, "height": h, "width": w,
            "fps": fps, "fps_rational": list(src["fps"]),
            "breakdown": container.breakdown(data)}


def index_bits_per_gop(header: dict, model: CodecModel, params: CodecParams) -> list[int]:
    """Payload bits of each GOP (top-M indices and signs, or rcc choices): known from the codec
    parameters and the geometry."""
    geom, coding = model.geometry, registry.coding(params.coding)
    return [coding.payload_bits(params, model,
                                geom.latent_frames(geom.coded_length(g["frames"])))
            for g in header["gops"]]


def bound_report(model: CodecModel, header: dict, bits: int) -> dict:
    """PSNR of Shannon's D(R) and of the perfect-realism bound D_p(R) at the same
    total rate, for models that know their exact statistics (the Gaussian prior)."""
    if model.name != "gaussian":
        return {}
    from gvc_jax.bounds import gaussian_model_bounds

    coded = header["coded"]
    b = gaussian_model_bounds(model.module, coded["frames"], coded["height"], coded["width"], bits)
    return {"psnr_shannon": b["psnr_shannon"], "psnr_realism": b["psnr_realism"],
            "bounds_note": "D(R) and D_p(R) of the model's own Gaussian source at the file's "
                           "total bits over the coded (padded) geometry"}


def _frames_of(video):
    """``(frames, (fps known, fps))`` of a :class:`gvc_jax.io.Video` or a plain uint8 array
    (taken as 25 fps)."""
    if isinstance(video, np.ndarray):
        return video, (False, Fraction(25))
    return video.frames, (getattr(video, "fps_known", True), video.fps)


# Codebook throughput, atom samples scored per second, as measured (docs/codec.md, "Cost"):
# XLA:CPU on the 2-core CI machine, and select_topm at 720p on one H200.
ATOM_SAMPLES_PER_S = {"cpu": 1.0e8, "gpu": 4.2e11}


def cost_estimate(session) -> dict:
    """The encoder's work before it starts, from the planned stream: the coding's candidate
    scoring (atom samples) and model evaluations over every GOP."""
    import jax

    geom, coded = session.model.geometry, session.header["coded"]
    samples = evals = 0
    for g in session.gops:
        shape = geom.latent_shape(g.coded, coded["height"], coded["width"])
        c = session.coding.cost(session.params, session.model, shape)
        samples += c["atom_samples"]
        evals += c["model_evaluations"]
    backend = jax.default_backend()
    rate = ATOM_SAMPLES_PER_S.get("cpu" if backend == "cpu" else "gpu")
    return {"gops": len(session.gops), "atom_samples": samples, "model_evaluations": evals,
            "codebook_seconds_estimate": samples / rate, "backend": backend}


def _describe_cost(c: dict) -> str:
    secs = c["codebook_seconds_estimate"]
    when = f"{secs:.0f} s" if secs < 120 else f"{secs / 60:.0f} min"
    return (f"{c['gops']} GOP(s): {c['atom_samples'] / 1e9:.1f} G atom samples of codebook "
            f"search (about {when} on this {c['backend'].upper()}) and "
            f"{c['model_evaluations']} model evaluations")


RECOGNISABLE_DB = 20.0    # a D_p bound below this: the output cannot be recognisable
AUTO_TARGET_DB = 30.0     # the embedded default aims its bound here (measured top-M PSNR lies
                          # 2-9 dB under it on this prior: docs/gaussian_prior.md)
AUTO_SCALES = (1.0, 0.5, 0.25, 0.125)
AUTO_M_MAX = 64


def quality_bound(session, bits: int | None = None) -> float | None:
    """PSNR of the perfect-realism bound D_p(R) at ``bits`` (default: the planned payload bits,
    the part of the file that describes the source), for models that know their own statistics
    (the Gaussian prior); None otherwise. No decoder whose output follows the source
    distribution does better (docs/gaussian_prior.md)."""
    if bits is None:
        geom = session.model.geometry
        bits = sum(session.coding.payload_bits(session.params, session.model,
                                               geom.latent_frames(g.coded))
                   for g in session.gops)
    return bound_report(session.model, session.header, bits).get("psnr_realism")


def _auto_quality(frames, fps, model, params, mode):
    """The embedded default: the largest of :data:`AUTO_SCALES`, and the smallest M (from the
    preset's up to :data:`AUTO_M_MAX`) at it, whose bound reaches :data:`AUTO_TARGET_DB`;
    ``(frames, session, choice)``. Scaling costs no encoder time, M almost none."""
    from gvc_jax.io.resize import resize_clip

    first = stream.plan(frames, fps, model, params, mode)
    bound0 = quality_bound(first)
    if bound0 is None or bound0 >= AUTO_TARGET_DB:
        return frames, first, None
    ms = [m for m in (params.M, 8, 16, 32, 64) if params.M <= m <= min(params.K, AUTO_M_MAX)]
    for s in AUTO_SCALES:
        f = resize_clip(frames, scale=s) if s != 1 else frames
        for m in dict.fromkeys(ms):
            session = stream.plan(f, fps, model, params.replace(M=m), mode)
            bound = quality_bound(session)
            if bound >= AUTO_TARGET_DB:
                break
        if bound >= AUTO_TARGET_DB:
            break
    choice = {"from": [frames.shape[2], frames.shape[1]], "to": [f.shape[2], f.shape[1]],
              "M": session.params.M, "bound_db": [bound0, bound]}
    return f, session, choice


def _auto_note(frames, params, c: dict) -> str:
    (w0, h0), (w, h) = c["from"], c["to"]
    size = f"{w}x{h}" if (w, h) != (w0, h0) else "full size"
    return (f"the embedded Gaussian prior reaches at most {c['bound_db'][0]:.1f} dB PSNR on "
            f"{w0}x{h0} at the preset's rate (its D_p bound); coding at {size} with "
            f"M={c['M']} (bound {c['bound_db'][1]:.1f} dB) instead. Set --scale/--size, --M or "
            "--kbps/--bpp to choose; --weights DIR codes with a Wan model")


def _plan(frames, fps, model, params, mode, *, kbps, bpp, auto, log):
    """``(frames, session, target, choice)``: the stream as it will be coded; ``auto``: the
    embedded default's quality target (:func:`_auto_quality`)."""
    if kbps is not None or bpp is not None:
        from gvc_jax.codec import ratecontrol

        nbytes = ratecontrol.target_bytes(kbps, bpp, frames.shape[0], frames.shape[1],
                                          frames.shape[2], float(fps))
        plan = ratecontrol.plan(frames, fps, model, params, mode, nbytes)
        p = plan.params
        target = {"kbps": kbps, "bpp": bpp, "bytes": nbytes, "chosen": {
            "M": p.M, "M_tail": p.M_tail, "anchor_codec": p.anchor_codec or None,
            "residual_bytes": plan.reserve}}
        if log:
            log(f"rate control: target {nbytes} bytes -> M={p.M}"
                + (f", anchors {p.anchor_codec}" if p.anchor_codec else ""))
        return frames, plan.session, target, None
    if auto:
        f, session, choice = _auto_quality(frames, fps, model, params, mode)
        if choice and log:
            log(_auto_note(frames, params, choice))
        return f, session, None, choice
    return frames, stream.plan(frames, fps, model, params, mode), None, None


def _notices(frames, fps_known: bool, fps, session, log) -> None:
    """One line each for what the encoder assumed: padding, the frame rate of a bare array."""
    if not log:
        return
    t, h, w = frames.shape[:3]
    coded = session.header["coded"]
    if (coded["height"], coded["width"]) != (h, w):
        share = 1 - h * w / (coded["height"] * coded["width"])
        log(f"{w}x{h} is coded as {coded['width']}x{coded['height']} (the model's pixel "
            f"multiple): {share:.0%} of the coded pixels are padding, cropped away on "
            "decoding; their bits count in the rate")
    if not fps_known:
        log(f"frame rate taken as {float(fps):g} fps (the input carries none; --fps sets it): "
            "kbps and --kbps depend on it")


def compress_video(video, *, config: str | None = "gaussian", weights: str | None = None,
                   overrides: dict | None = None, model: CodecModel | None = None,
                   prompt: Prompt = Prompt(), cache_dir=None, on_gop=None, on_step=None,
                   log=None, progress=False, kbps: float | None = None,
                   bpp: float | None = None, placement: Placement | None = None,
                   size: tuple[int, int] | None = None, scale=None, fps=None):
    """Encodes a clip; returns ``(core.Encoded, report dict)``.

    ``kbps`` or ``bpp`` sets a target the file lands at or under
    (:mod:`gvc_jax.codec.ratecontrol`: the coding's rate knob, the mode's side information and
    its residual budget are chosen for it). ``size=(W, H)`` or a float ``scale`` resizes the clip
    before coding (Lanczos); the stream records the coded size, which is what decodes.
    ``scale="auto"`` (the command line's default when no size or rate is set) lets a model
    that knows its own bound (the Gaussian prior) pick the scale and M that bring the bound to
    :data:`AUTO_TARGET_DB` (:func:`_auto_quality`); otherwise a bound under
    :data:`RECOGNISABLE_DB` is warned of. ``fps`` sets the source frame rate (kbps are counted at it). ``placement``: the
    devices and the offload of the velocity model's weights (:mod:`gvc_jax.codec.placement`;
    nothing of it is in the stream)."""
    from gvc_jax.io.resize import resize_clip

    model_name, mode, params = params_for(config, overrides, weights)
    frames, fps_known = _frames_of(video)
    fps_known, fps = (True, Fraction(fps)) if fps is not None else fps_known
    frames = resize_clip(frames, size=size, scale=None if scale == "auto" else scale)
    params = for_source(params, mode, frames, overrides)
    model = model or load_model(model_name, weights, prompt, params, cache_dir=cache_dir,
                                log=log, progress=progress, placement=placement)
    frames, session, target, scaled = _plan(
        frames, fps, model, params, mode, kbps=kbps, bpp=bpp,
        auto=scale == "auto" and size is None, log=log)
    params = session.params
    _notices(frames, fps_known, fps, session, log)
    bound = quality_bound(session)
    if bound is not None and bound < RECOGNISABLE_DB and log:
        log(f"warning: the embedded Gaussian prior reaches at most {bound:.1f} dB PSNR on "
            f"{frames.shape[2]}x{frames.shape[1]} at this rate (its D_p bound): the output "
            "will be unrecognisable; --scale, --kbps/--bpp or --weights DIR help")
    cost = cost_estimate(session)
    if log:
        log(_describe_cost(cost))
    enc = core.compress(frames, fps, model, params, mode=mode, on_gop=on_gop, on_step=on_step,
                        session=session)
    report = rate_report(enc.header, enc.data)
    if target is not None:
        target["met"] = len(enc.data) <= target["bytes"]
        report["target"] = target
    if scaled is not None:
        report["auto_quality"] = scaled
    codec = enc.header["codec"]
    report.update({
        "config": config or detect_config(weights), "model": model.name, "mode": mode,
        "codec": {k: v for k, v in codec.items() if k not in ("mode", "M", "latent_frames")},
        "M": params.M, "gops": len(enc.gops), "prompt": prompt.text,
        "index_bits_per_gop": index_bits_per_gop(enc.header, model, params),
        "psnr": psnr_mean(frames, enc.recon),
        "psnr_sequence": psnr_sequence(frames, enc.recon),
        "encode_seconds": enc.encode_seconds, "decode_seconds": enc.decode_seconds,
        "model_fingerprint": model.fingerprint, "cost_estimate": cost,
        "weights_parked": model.offloading, "devices": model.n_devices,
    })
    report.update(session.mode.report(params))
    if model.info:
        report["model_load"] = model.info
    report.update(bound_report(model, enc.header, report["bits_total"]))
    return enc, report


def compress_file(video, output: str, *, recon_path=None, **kw) -> dict:
    """Compresses ``video`` (a :class:`gvc_jax.io.Video` or uint8 ``[T,H,W,3]``) into the .gvc
    file ``output`` (written atomically); returns the JSON report. ``recon_path`` also writes
    the decoder's reconstruction (mp4, y4m or npy). Keywords are :func:`compress_video`'s."""
    check_gvc_ext(output)
    if recon_path:
        check_video_ext(recon_path)
    enc, report = compress_video(video, **kw)
    write_bytes_atomic(output, enc.data)
    if recon_path:
        from gvc_jax.io import write_video
        write_video(recon_path, enc.recon, Fraction(*enc.header["source"]["fps"]))
    report["output"] = output
    return report


def _read_stream_file(path: str) -> bytes:
    from gvc_jax.bitstream.errors import BitstreamError

    try:
        with open(path, "rb") as f:
            return f.read()
    except IsADirectoryError:
        raise UsageError(f"{path}: is a folder, expected a .gvc file") from None
    except FileNotFoundError:
        raise BitstreamError(f"{path}: no such file") from None
    except OSError as e:
        raise BitstreamError(f"{path}: cannot read ({e.strerror or type(e).__name__})") \
            from None


def _named(path: str, fn):
    """Runs ``fn()``; a bitstream error names the file it concerns."""
    from gvc_jax.bitstream.errors import BitstreamError

    try:
        return fn()
    except BitstreamError as e:
        raise BitstreamError(f"{path}: {e}") from None


def check_gvc_ext(path: str) -> None:
    if os.path.splitext(path)[1].lower() != ".gvc":
        raise UsageError(f"{path}: a compressed stream must end in .gvc")


def check_video_ext(path: str) -> None:
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".mp4", ".y4m", ".npy"):
        raise UsageError(f"{path}: output must end in .mp4, .y4m or .npy")


def decode_bytes(data: bytes, *, weights: str | None = None, dtype: str | None = None,
                 cache_dir=None, on_gop=None, on_step=None, log=None, progress=False, models=None,
                 placement=None):
    """``(frames, fps, header)`` of .gvc bytes. ``dtype`` overrides the header's compute dtype
    (the output then drifts from the encoder's); ``models`` is an optional ``{name: model}``
    of already loaded models to reuse."""

    def load(name, prompt, params):
        p = params.replace(dtype=dtype) if dtype else params
        m = (models or {}).get(name)
        if m is not None and m.prompt == prompt and m.dtype == p.dtype and \
                m.text_len == p.text_len:
            return m
        return load_model(name, weights, prompt, p, cache_dir=cache_dir, log=log,
                          progress=progress, placement=placement)

    def check_weights(want: dict):
        if want["config"] in (models or {}):
            return                  # a loaded model: load() returns it, check_model compares
        try:
            got = model_fingerprint(want["config"], weights, cache_dir=cache_dir, log=log)
        except UsageError as e:      # the file names a model this build cannot run
            raise ModelMismatchError(str(e)) from None
        stream.check_model(want, want["config"], got)

    return core.decompress(data, load, on_gop=on_gop, on_step=on_step,
                           check_weights=check_weights)


def decompress_file(path: str, output: str, *, weights: str | None = None, dtype=None,
                    cache_dir=None, on_gop=None, on_step=None, log=None,
                    progress=False, placement=None) -> np.ndarray:
    """Decodes the .gvc file ``path`` into ``output`` (mp4, y4m or npy, written atomically);
    returns the frames, uint8 ``[T,H,W,3]``. Decoding needs no codec flags: the header has
    them; ``weights`` is the folder of the model the stream names."""
    from gvc_jax.io import write_video

    check_video_ext(output)
    data = _read_stream_file(path)
    frames, fps, _ = _named(path, lambda: decode_bytes(
        data, weights=weights, dtype=dtype, cache_dir=cache_dir, on_gop=on_gop,
        on_step=on_step, log=log, progress=progress, placement=placement))
    write_video(output, frames, fps)
    return frames


def progress_steps(params: CodecParams) -> int | None:
    """Progress ticks of one GOP pass for a progress bar (None: unknown up front)."""
    return registry.coding(params.coding).progress_steps(params)


def stream_progress_steps(path: str) -> int | None:
    """:func:`progress_steps` of a .gvc file's parameters."""
    data = _read_stream_file(path)
    return progress_steps(_named(path, lambda: stream.read_stream(data))[1])


def info(path: str) -> dict:
    """The header of a .gvc file as a dict, with its prompt and rate report."""
    data = _read_stream_file(path)
    from gvc_jax.codec.presets import matching

    header, params, prompt, _ = _named(path, lambda: stream.read_stream(data))
    out = dict(header)
    out["preset"] = matching(header["model"]["config"], header["codec"]["mode"], params)
    if prompt.payload():
        out["prompt"] = {"text": prompt.text, "negative": prompt.negative}
    out["file"] = rate_report(header, data)
    return out
