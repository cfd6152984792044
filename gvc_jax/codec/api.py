"""File-level codec API used by the CLI, the demo, eval and the benchmarks."""
from __future__ import annotations

import os

import numpy as np

from gvc_jax.bitstream import container, indices as bs_indices
from gvc_jax.codec import core
from gvc_jax.codec.errors import UsageError
from gvc_jax.codec.models import CodecModel, Prompt, detect_config, load_model
from gvc_jax.codec.placement import Placement
from gvc_jax.codec.params import CodecParams
from gvc_jax.codec.presets import PRESETS, get_config
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

    With no ``config``, the preset follows ``weights`` (see :func:`detect_config`)."""
    config = config or detect_config(weights)
    if config not in PRESETS:
        raise UsageError(f"unknown config {config!r}; available: {', '.join(sorted(PRESETS))}")
    cfg = get_config(config)
    values = dict(cfg.codec)
    values.update(overrides or {})
    if "dtype" not in (overrides or {}):
        values["dtype"] = default_dtype(cfg.model)
    return cfg.model, cfg.mode, CodecParams.from_values(values)


def resolution_shift(mode: str, height: int, width: int) -> float | None:
    """GVCC's time shift for the anchored modes: 5 above 480p, 3 at or below (None: the
    preset's own shift stands)."""
    if mode not in ("i2v", "flf2v"):
        return None
    return 5.0 if min(height, width) > 480 else 3.0


def with_resolution_shift(params: CodecParams, mode: str, frames: np.ndarray,
                          overrides: dict | None) -> CodecParams:
    """``params`` with the anchored modes' resolution rule applied, unless the user set the
    shift."""
    shift = resolution_shift(mode, frames.shape[1], frames.shape[2]) if frames.ndim == 4 else None
    if shift is None or "shift" in (overrides or {}):
        return params
    return params.replace(shift=shift)


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
    """Payload bits of each GOP's indices and signs (or rcc choices): known from the codec
    parameters and the geometry."""
    geom = model.geometry
    if params.coding == "rcc":
        return [params.rcc_payload_bits(geom.latent_frames(geom.coded_length(g["frames"])))
                for g in header["gops"]]
    return [bs_indices.index_bits(params.sde_steps,
                                  params.m_per_frame(geom.latent_frames(geom.coded_length(
                                      g["frames"]))), params.K)
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
    """``(frames, fps)`` of a :class:`gvc_jax.io.Video` or a plain uint8 array (25 fps)."""
    from fractions import Fraction

    if isinstance(video, np.ndarray):
        return video, Fraction(25)
    return video.frames, video.fps


# Codebook throughput, atom samples scored per second, as measured (docs/codec.md, "Cost"):
# XLA:CPU on the 2-core CI machine, and select_topm at 720p on one H200.
ATOM_SAMPLES_PER_S = {"cpu": 1.0e8, "gpu": 4.2e11}


def cost_estimate(frames: int, height: int, width: int, params: CodecParams, model: CodecModel,
                  mode: str = "t2v") -> dict:
    """The encoder's codebook work before it starts: SDE steps x latent frames x K x D atom
    samples, and the model evaluations (2 x steps per GOP: the encode and the reconstruction)."""
    import jax

    from gvc_jax.codec import modes

    geom = model.geometry
    ch, cw = geom.padded_size(height, width)
    gops = modes.get(mode).plan(frames, params, geom)
    samples = 0
    for g in gops:
        c, f, h, w = geom.latent_shape(g.coded, ch, cw)
        samples += params.sde_steps * f * params.K * c * h * w
    backend = jax.default_backend()
    rate = ATOM_SAMPLES_PER_S.get("cpu" if backend == "cpu" else "gpu")
    return {"gops": len(gops), "atom_samples": samples, "model_evaluations":
            2 * params.steps * len(gops), "codebook_seconds_estimate": samples / rate,
            "backend": backend}


def _describe_cost(c: dict) -> str:
    secs = c["codebook_seconds_estimate"]
    when = f"{secs:.0f} s" if secs < 120 else f"{secs / 60:.0f} min"
    return (f"{c['gops']} GOP(s): {c['atom_samples'] / 1e9:.1f} G atom samples of codebook "
            f"search (about {when} on this {c['backend'].upper()}) and "
            f"{c['model_evaluations']} model evaluations")


def compress_video(video, *, config: str | None = "gaussian", weights: str | None = None,
                   overrides: dict | None = None, model: CodecModel | None = None,
                   prompt: Prompt = Prompt(), cache_dir=None, on_gop=None, on_step=None,
                   log=None, progress=False, kbps: float | None = None,
                   bpp: float | None = None, placement: Placement | None = None):
    """Encodes a clip; returns ``(core.Encoded, report dict)``. ``kbps`` or ``bpp`` sets a
    target the file lands at or under (:mod:`gvc_jax.codec.ratecontrol`: M, the anchor setting
    and the residual steps are chosen for it). ``placement``: the devices and the offload of
    the velocity model's weights (:mod:`gvc_jax.codec.placement`; nothing of it is in the
    stream)."""
    model_name, mode, params = params_for(config, overrides, weights)
    frames, fps = _frames_of(video)
    params = with_resolution_shift(params, mode, frames, overrides)
    model = model or load_model(model_name, weights, prompt, params, cache_dir=cache_dir,
                                log=log, progress=progress, placement=placement)
    target, residual_budget = None, None
    if (kbps is not None or bpp is not None) and params.coding != "topm":
        raise UsageError("--kbps/--bpp plan top-M coding; with --coding rcc set --rcc-bits")
    if kbps is not None or bpp is not None:
        from gvc_jax.codec import ratecontrol

        nbytes = ratecontrol.target_bytes(kbps, bpp, frames.shape[0], frames.shape[1],
                                          frames.shape[2], float(fps))
        plan = ratecontrol.plan(frames, fps, model, params, mode, nbytes)
        params = plan.params
        residual_budget = plan.residual_budget if params.residual_step else None
        target = {"kbps": kbps, "bpp": bpp, "bytes": nbytes, "chosen": {
            "M": params.M, "M_tail": params.M_tail, "anchor_codec": params.anchor_codec or None,
            "residual_bytes": plan.residual_budget}}
        if log:
            log(f"rate control: target {nbytes} bytes -> M={params.M}"
                + (f", anchors {params.anchor_codec}" if params.anchor_codec else ""))
    cost = cost_estimate(frames.shape[0], frames.shape[1], frames.shape[2], params, model, mode)
    if log:
        log(_describe_cost(cost))
    enc = core.compress(frames, fps, model, params, mode=mode, on_gop=on_gop, on_step=on_step,
                        residual_budget=residual_budget)
    report = rate_report(enc.header, enc.data)
    if target is not None:
        target["met"] = len(enc.data) <= target["bytes"]
        report["target"] = target
    codec = enc.header["codec"]
    report.update({
        "config": model.name, "mode": mode,
        "codec": {k: v for k, v in codec.items() if k not in ("mode", "M", "latent_frames")},
        "M": params.M, "gops": len(enc.gops), "prompt": prompt.text,
        "index_bits_per_gop": index_bits_per_gop(enc.header, model, params),
        "psnr": psnr_mean(frames, enc.recon),
        "psnr_sequence": psnr_sequence(frames, enc.recon),
        "encode_seconds": enc.encode_seconds, "decode_seconds": enc.decode_seconds,
        "model_fingerprint": model.fingerprint, "cost_estimate": cost,
        "weights_parked": model.offloading, "devices": model.n_devices,
    })
    if mode in ("i2v", "flf2v"):
        from gvc_jax.codec.modes.anchored import anchor_spec
        report["anchor_codec"] = str(anchor_spec(params))
    if model.info:
        report["model_load"] = model.info
    report.update(bound_report(model, enc.header, report["bits_total"]))
    return enc, report


def compress_file(video, output: str, *, config: str | None = "gaussian", weights=None,
                  overrides=None, recon_path=None, prompt: Prompt = Prompt(), cache_dir=None,
                  on_gop=None, on_step=None, model=None, log=None, progress=False,
                  kbps=None, bpp=None, placement=None) -> dict:
    """Compresses ``video`` (a :class:`gvc_jax.io.Video` or uint8 ``[T,H,W,3]``) into the .gvc
    file ``output`` (written atomically); returns the JSON report. ``recon_path`` also writes
    the decoder's reconstruction (mp4, y4m or npy)."""
    check_gvc_ext(output)
    if recon_path:
        check_video_ext(recon_path)
    enc, report = compress_video(video, config=config, weights=weights, overrides=overrides,
                                 model=model, prompt=prompt, cache_dir=cache_dir,
                                 on_gop=on_gop, on_step=on_step, log=log, progress=progress,
                                 kbps=kbps, bpp=bpp, placement=placement)
    container.write_gvc(output, enc.header, enc.chunks)
    if recon_path:
        from gvc_jax.io import write_video
        write_video(recon_path, enc.recon, _frames_of(video)[1])
    report["output"] = output
    return report


def _read_stream_file(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except IsADirectoryError:
        raise UsageError(f"{path}: is a folder, expected a .gvc file") from None


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
        if m is not None and m.prompt == prompt and m.dtype == p.dtype:
            return m
        return load_model(name, weights, prompt, p, cache_dir=cache_dir, log=log,
                          progress=progress, placement=placement)

    return core.decompress(data, load, on_gop=on_gop, on_step=on_step)


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


def info(path: str) -> dict:
    """The header of a .gvc file as a dict, with its prompt and rate report."""
    data = _read_stream_file(path)
    header, prompt, _ = _named(path, lambda: core.read_stream(data))
    out = dict(header)
    if prompt.payload():
        out["prompt"] = {"text": prompt.text, "negative": prompt.negative}
    out["file"] = rate_report(header, data)
    return out
