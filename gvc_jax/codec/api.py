"""File-level codec API used by the CLI, the demo and the benchmarks."""
from __future__ import annotations

import os

import numpy as np

from gvc_jax.bitstream import container
from gvc_jax.codec import t2v
from gvc_jax.codec.errors import UsageError
from gvc_jax.codec.models import CodecModel, load_model
from gvc_jax.codec.presets import PRESETS, get_config
from gvc_jax.metrics import psnr_mean, psnr_sequence

_PARAM_KEYS = ("K", "M", "steps", "sde_steps", "g_scale", "shift", "seed", "gop_frames",
               "schedule")


def params_for(config: str, overrides: dict | None = None) -> tuple[str, t2v.CodecParams]:
    if config not in PRESETS:
        raise UsageError(f"unknown config {config!r}; available: {', '.join(sorted(PRESETS))}")
    cfg = get_config(config)
    values = {k: cfg.codec[k] for k in _PARAM_KEYS}
    for k, v in (overrides or {}).items():
        if k not in values and k != "chunk":
            raise UsageError(f"unknown codec parameter {k!r}")
        values[k] = v
    params = t2v.CodecParams(**values)
    params.validate()
    return cfg.model, params


def rates(nbytes: int, frames: int, height: int, width: int, fps) -> tuple[float, float]:
    """(bpp, kbps) of ``nbytes``: bpp = bits / (frames·H·W) of the source, kbps at the source
    frame rate (DESIGN 'Numbers'); the one definition every report uses."""
    bits = 8 * nbytes
    return bits / (frames * height * width), bits / (frames / float(fps)) / 1000.0


def rate_report(header: dict, data: bytes) -> dict:
    """Honest rate: every byte of the file counts (DESIGN 'Numbers')."""
    src = header["source"]
    t, h, w = src["frames"], src["height"], src["width"]
    fps = src["fps"][0] / src["fps"][1]
    bpp, kbps = rates(len(data), t, h, w, fps)
    return {"bits_total": 8 * len(data), "bytes_file": len(data), "bpp": bpp,
            "kbps": kbps, "frames": t, "height": h, "width": w,
            "fps": fps, "fps_rational": list(src["fps"]),
            "breakdown": container.breakdown(data)}


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


def compress_video(video, *, config: str = "gaussian", weights: str | None = None,
                   overrides: dict | None = None, model: CodecModel | None = None,
                   on_gop=None, on_step=None):
    model_name, params = params_for(config, overrides)
    model = model or load_model(model_name, weights)
    enc = t2v.compress(video.frames, video.fps, model, params, on_gop=on_gop, on_step=on_step)
    report = rate_report(enc.header, enc.data)
    report.update({
        "config": config, "mode": enc.header["codec"]["mode"],
        "codec": {k: enc.header["codec"][k] for k in ("K", "steps", "sde_steps", "g_scale",
                                                      "shift", "seed", "gop_frames",
                                                      "schedule")},
        "M": params.M, "gops": len(enc.gops),
        "psnr": psnr_mean(video.frames, enc.recon),
        "psnr_sequence": psnr_sequence(video.frames, enc.recon),
        "encode_seconds": enc.encode_seconds, "decode_seconds": enc.decode_seconds,
    })
    report.update(bound_report(model, enc.header, report["bits_total"]))
    return enc, report


def compress_file(video, output: str, *, config="gaussian", weights=None, overrides=None,
                  recon_path=None, on_gop=None, on_step=None, model=None) -> dict:
    if recon_path:
        check_video_ext(recon_path)
    enc, report = compress_video(video, config=config, weights=weights, overrides=overrides,
                                 model=model, on_gop=on_gop, on_step=on_step)
    container.write_gvc(output, enc.header, enc.chunks)
    if recon_path:
        from gvc_jax.io import write_video
        write_video(recon_path, enc.recon, video.fps)
    report["output"] = output
    return report


def check_video_ext(path: str) -> None:
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".mp4", ".y4m", ".npy"):
        raise UsageError(f"{path}: output must end in .mp4, .y4m or .npy")


def decompress_file(path: str, output: str, *, weights: str | None = None,
                    on_gop=None, on_step=None) -> np.ndarray:
    from gvc_jax.io import write_video

    check_video_ext(output)
    with open(path, "rb") as f:
        data = f.read()
    frames, fps, _ = t2v.decompress(data, lambda name: load_model(name, weights),
                                    on_gop=on_gop, on_step=on_step)
    write_video(output, frames, fps)
    return frames


def info(path: str) -> dict:
    with open(path, "rb") as f:
        data = f.read()
    header, _ = container.read_gvc(data)
    out = dict(header)
    out["file"] = rate_report(header, data)
    return out
