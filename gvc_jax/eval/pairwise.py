"""``gvc metrics``: every metric of one distorted video against its reference, through
:func:`gvc_jax.eval.compare.compare` (docs/metrics.md, "gvc metrics")."""
from __future__ import annotations

import os

from gvc_jax.eval.compare import SCALAR_KEYS, compare, read_for_metrics
from gvc_jax.io import VideoIOError
from gvc_jax.io.yuv import YuvPlanes

JSON_KEYS = tuple(k for base in SCALAR_KEYS
                  for k in ((base, base + "_seq") if base.startswith("psnr") else (base,)))
_LABELS = {"psnr_rgb": "PSNR RGB", "psnr_y": "PSNR Y", "psnr_u": "PSNR U", "psnr_v": "PSNR V",
           "psnr_yuv_611": "PSNR YUV (6Y+U+V)/8", "psnr_yuv_411": "PSNR YUV (4Y+U+V)/6",
           "ms_ssim": "MS-SSIM (RGB)", "lpips": "LPIPS-Alex", "dists": "DISTS"}


def _describe(x) -> str:
    if isinstance(x, YuvPlanes):
        rng = "full" if x.full_range else "limited"
        return f"4:2:0 planes, {x.bits}-bit {rng} range"
    return "RGB"


def _read(path: str, role: str, *, size, fps, pix_fmt, frames):
    x = read_for_metrics(path, size=size, fps=fps, pix_fmt=pix_fmt, max_frames=frames)
    if frames is not None and x.shape[0] < frames:
        raise VideoIOError(f"{path}: the {role} has {x.shape[0]} frames, --frames asks for "
                           f"{frames}")
    return x


def measure(ref_path: str, dist_path: str, *, size=None, fps=None, pix_fmt=None,
            frames: int | None = None, alexnet: str | None = None, use_lpips: bool = True,
            vgg: str | None = None, use_dists: bool = True, log=lambda s: None) -> dict:
    """The JSON-ready result of ``gvc metrics``: ``ref``, ``dist``, ``frames``, ``width``,
    ``height``, every key of :data:`JSON_KEYS` (None where a metric could not be computed),
    ``inputs`` (how each side was read), ``yuv_source`` and ``notes`` (why a value is None).

    Inputs that cannot be read, or differ in frame count, size, bit depth or range, raise a
    one-line :class:`~gvc_jax.io.VideoIOError`; a weight file that exists but is not the
    expected network raises ``CheckpointError``."""
    from gvc_jax.eval.learned import load_learned

    ref = _read(ref_path, "reference", size=size, fps=fps, pix_fmt=pix_fmt, frames=frames)
    dist = _read(dist_path, "distorted video", size=size, fps=fps, pix_fmt=pix_fmt,
                 frames=frames)
    (rt, rh, rw), (dt, dh, dw) = ref.shape, dist.shape
    if (rt, rh, rw) != (dt, dh, dw):
        raise VideoIOError(f"{os.path.basename(ref_path)} is {rt} frames of {rw}x{rh}, "
                           f"{os.path.basename(dist_path)} {dt} frames of {dw}x{dh}: they must "
                           "match (--frames N compares the first N)")
    learned = load_learned(alexnet=alexnet, use_lpips=use_lpips, vgg=vgg, use_dists=use_dists,
                           log=log, who="gvc metrics")
    try:
        out = compare(ref, dist, lpips=learned.lpips, dists=learned.dists)
    except ValueError as e:        # e.g. planes of different bit depths or ranges
        raise VideoIOError(str(e).splitlines()[0]) from None
    notes = dict(out["notes"])
    for k, v in learned.notes.items():
        if k not in notes or out.get(k) is None:
            notes[k] = v
    result = {"ref": ref_path, "dist": dist_path, "frames": out["frames"],
              "width": out["width"], "height": out["height"],
              **{k: out[k] for k in JSON_KEYS},
              "inputs": {"ref": _describe(ref), "dist": _describe(dist)},
              "yuv_source": out["yuv_source"], "notes": notes}
    return result


def _value(key: str, v) -> str:
    if v is None:
        return "—"
    return f"{v:.4f}" if key in ("ms_ssim", "lpips", "dists") else f"{v:.4f} dB"


def table(result: dict) -> str:
    """The readable form of :func:`measure`'s result."""
    lines = [f"ref:  {result['ref']} ({result['inputs']['ref']})",
             f"dist: {result['dist']} ({result['inputs']['dist']})",
             f"{result['frames']} frames of {result['width']}x{result['height']}; planes: "
             f"{result['yuv_source']}", "",
             f"{'metric':<22}{'mean of frames':>18}{'sequence':>18}"]
    for base in SCALAR_KEYS:
        seq = result.get(base + "_seq")
        seq_text = _value(base, seq) if base.startswith("psnr") else ""
        lines.append(f"{_LABELS[base]:<22}{_value(base, result[base]):>18}{seq_text:>18}")
    if result["notes"]:
        lines += [""] + [f"note: {k}: {v}" for k, v in sorted(result["notes"].items())]
    return "\n".join(lines)
