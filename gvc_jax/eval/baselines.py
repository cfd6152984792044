"""Classical baselines through imageio-ffmpeg's ffmpeg: x264, x265, VVC (libvvenc), AV1 (SVT-AV1).

Each codes uint8 RGB frames [T,H,W,3] at a ladder point ({"crf": x} / {"qp": x}) or at a target
bitrate ({"kbps": x}) into an elementary stream file whose real size is the rate; the stream is
decoded back to RGB. Colour: BT.709 matrix, limited range, 4:2:0. Given 8-bit 4:2:0 planes
(:class:`~gvc_jax.io.yuv.YuvPlanes`) instead, the encoder codes those planes as they are and the
result is the decoded planes (with their RGB view); no colour conversion touches the coded
samples. docs/baselines.md has the settings and the measured figures.
"""
from __future__ import annotations

import dataclasses
import fractions
import math
import os
import shutil
import tempfile
import time

import numpy as np

from gvc_jax.io.ffmpeg import FFmpegError, ffmpeg_version, has_encoder, run_ffmpeg
from gvc_jax.io.video import guess_fps
from gvc_jax.io.yuv import YuvPlanes

__all__ = ["BASELINES", "KEYINT", "BaselineError", "BaselineResult", "BaselineSpec",
           "check_setting", "default_ladder", "ffmpeg_version", "match_label", "run_baseline",
           "run_matched", "setting_label"]

# A baseline fails when ffmpeg does (missing, no such encoder, failed, wrong output): eval and
# its callers catch that under this name; it is the class of gvc_jax.io.ffmpeg.
BaselineError = FFmpegError

KEYINT = 32  # intra period in frames for every baseline (one I/key frame every 32 frames)
_SCALE_FLAGS = "bicubic+accurate_rnd+full_chroma_int"
_COLOUR_TAGS = ["-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709",
                "-color_range", "tv"]


@dataclasses.dataclass(frozen=True)
class BaselineSpec:
    """How one baseline is run. ``knob`` is the ladder's quality parameter (lower = better)."""

    name: str
    codec: str                    # standard, for reports
    encoder: str                  # ffmpeg encoder
    decoder: str                  # ffmpeg decoder used to read the stream back
    knob: str                     # 'crf' or 'qp'
    knob_range: tuple[float, float]
    knob_integer: bool
    ladder: tuple[int, ...]       # default ladder, low rate -> high rate
    preset: str
    pix_fmt: str                  # coded pixel format
    stream_format: str            # ffmpeg muxer/demuxer of the elementary stream
    ext: str
    gop_args: tuple[str, ...]     # sets the intra period to KEYINT
    extra_args: tuple[str, ...] = ()
    bsf: str | None = None        # bitstream filter on the final pass (drops non-decoding NALs)
    two_pass: bool = True         # {"kbps": x}: two-pass ABR, else one-pass VBR
    env: tuple[tuple[str, str], ...] = ()


BASELINES: dict[str, BaselineSpec] = {
    "x264": BaselineSpec(
        name="x264", codec="H.264/AVC", encoder="libx264", decoder="h264", knob="crf",
        knob_range=(0, 51), knob_integer=False, ladder=(51, 45, 39, 33, 27), preset="medium",
        pix_fmt="yuv420p", stream_format="h264", ext="264", gop_args=("-g", str(KEYINT)),
        bsf="filter_units=remove_types=6"),            # SEI: x264's ~700-byte settings text
    "x265": BaselineSpec(
        name="x265", codec="H.265/HEVC", encoder="libx265", decoder="hevc", knob="crf",
        knob_range=(0, 51), knob_integer=False, ladder=(51, 45, 39, 33, 27), preset="medium",
        pix_fmt="yuv420p", stream_format="hevc", ext="265", gop_args=("-g", str(KEYINT)),
        extra_args=("-x265-params", "log-level=error:info=0")),  # info=0: no settings SEI
    "vvc": BaselineSpec(
        name="vvc", codec="H.266/VVC", encoder="libvvenc", decoder="vvc", knob="qp",
        knob_range=(0, 63), knob_integer=True, ladder=(63, 56, 49, 42, 35), preset="faster",
        pix_fmt="yuv420p10le", stream_format="vvc", ext="266",
        gop_args=("-vvenc-params", f"IntraPeriod={KEYINT}"),
        bsf="filter_units=remove_types=20"),           # access unit delimiters the wrapper forces
    "av1": BaselineSpec(
        name="av1", codec="AV1", encoder="libsvtav1", decoder="libdav1d", knob="crf",
        knob_range=(1, 63), knob_integer=True, ladder=(63, 56, 49, 42, 35), preset="8",
        pix_fmt="yuv420p", stream_format="obu", ext="obu", gop_args=("-g", str(KEYINT)),
        two_pass=False, env=(("SVT_LOG", "1"),)),       # the ffmpeg wrapper has no 2-pass
}


@dataclasses.dataclass
class BaselineResult:
    """A coded and decoded clip. ``bytes`` is the real size of the elementary stream file."""

    decoded: np.ndarray | YuvPlanes   # uint8 [T,H,W,3] RGB, or planes (with ``rgb``) for planes
    bytes: int
    settings: dict
    encode_seconds: float
    decode_seconds: float

    @property
    def bpp(self) -> float:
        """8 * bytes / (T * H * W)."""
        t, h, w = self.decoded.shape[:3]
        return 8.0 * self.bytes / (t * h * w)


def _spec(name: str) -> BaselineSpec:
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
    return BASELINES[name]


def default_ladder(name: str) -> list[dict]:
    """The default ladder of ``name``, low rate first, e.g. [{"crf": 51}, ..., {"crf": 27}]."""
    spec = _spec(name)
    return [{spec.knob: v} for v in spec.ladder]


def _number(v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValueError(f"setting value must be a number, got {v!r}")
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"setting value must be finite, got {v!r}")
    return v


def _one_item(setting) -> tuple[str, float]:
    if not isinstance(setting, dict) or len(setting) != 1:
        raise ValueError(f"setting must be one of {{'crf': x}}, {{'qp': x}}, {{'kbps': x}}; "
                         f"got {setting!r}")
    (key, value), = setting.items()
    if key not in ("crf", "qp", "kbps"):
        raise ValueError(f"setting must be one of {{'crf': x}}, {{'qp': x}}, {{'kbps': x}}; "
                         f"got {setting!r}")
    return key, _number(value)


def setting_label(setting: dict) -> str:
    """Short label: 'crf=28', 'qp=37', 'crf=28.5', 'kbps=120.0'."""
    key, v = _one_item(setting)
    if key == "kbps":
        return f"kbps={v!r}"
    return f"{key}={int(v)}" if v.is_integer() else f"{key}={v!r}"


def _check_setting(spec: BaselineSpec, setting) -> tuple[str, float]:
    key, v = _one_item(setting)
    if key == "kbps":
        if v <= 0:
            raise ValueError(f"{spec.name}: kbps must be positive, got {v!r}")
        return key, v
    if key != spec.knob:
        raise ValueError(f"{spec.name}: the ladder knob is {spec.knob!r}, not {key!r}")
    lo, hi = spec.knob_range
    if not lo <= v <= hi or (spec.knob_integer and not v.is_integer()):
        kind = "an integer" if spec.knob_integer else "a number"
        raise ValueError(f"{spec.name}: {key} must be {kind} in [{lo:g}, {hi:g}], got {v!r}")
    return key, v


def check_setting(name: str, setting) -> None:
    """Raises ValueError unless ``setting`` is valid for baseline ``name``."""
    _check_setting(_spec(name), setting)


def _check_inputs(frames, fps):
    if isinstance(frames, YuvPlanes):
        if frames.bits != 8 or frames.full_range:
            raise ValueError("planes given to a baseline must be 8-bit limited range, got "
                             f"{frames.bits}-bit {'full' if frames.full_range else 'limited'}")
        x = frames
    else:
        x = np.asarray(frames)
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3 or min(x.shape[:3]) == 0:
            raise ValueError(f"frames must be uint8 [T, H, W, 3] with T, H, W >= 1; "
                             f"got {x.dtype} {list(x.shape)}")
    if isinstance(fps, (bool, np.bool_)):
        raise ValueError(f"fps must be a positive rational (fractions.Fraction), got {fps!r}")
    try:  # a float (e.g. 29.97) becomes the exact rate it rounds (30000/1001)
        f = guess_fps(float(fps)) if isinstance(fps, (float, np.floating)) else fractions.Fraction(fps)
    except (TypeError, ValueError, ZeroDivisionError):
        raise ValueError(f"fps must be a positive rational (fractions.Fraction), got {fps!r}") from None
    if f <= 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    return x, f


def _pad_even(x: np.ndarray) -> np.ndarray:
    """4:2:0 needs even H and W: replicate the last row / column where odd."""
    ph, pw = x.shape[1] % 2, x.shape[2] % 2
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    return np.ascontiguousarray(x)


_MATRIX_TAG = {"bt709": "bt709", "bt601": "smpte170m"}


def _planes_input(p: YuvPlanes, pix_fmt: str) -> tuple[bytes, tuple[int, int], str]:
    """Raw frames of ``p`` for ffmpeg's stdin in the coded pixel format (8-bit samples shifted
    left by 2 for 10 bits: the same values, no rescaling), luma padded to an even size by edge
    replication; -> (bytes, (H, W) coded, matrix tag)."""
    t, h, w = p.shape
    y = np.pad(p.y, ((0, 0), (0, h % 2), (0, w % 2)), mode="edge")
    planes = [y, p.u, p.v]
    if pix_fmt.endswith("10le"):
        planes = [(a.astype("<u2") << 2) for a in planes]
    frame = [np.ascontiguousarray(a).reshape(t, -1) for a in planes]
    data = np.concatenate(frame, axis=1).tobytes()
    return data, y.shape[1:], _MATRIX_TAG[p.matrix]


def _planes_output(raw: bytes, pix_fmt: str, t: int, hp: int, wp: int, like: YuvPlanes,
                   rgb: np.ndarray, what: str) -> YuvPlanes:
    """Decoded raw 4:2:0 frames -> 8-bit planes cropped to ``like``'s size (10-bit samples
    rounded back: ``(x + 2) >> 2``), carrying ``rgb``."""
    sample = 2 if pix_fmt.endswith("10le") else 1
    ch, cw = hp // 2, wp // 2
    per = (hp * wp + 2 * ch * cw) * sample
    if len(raw) != t * per:
        raise BaselineError(f"{what}: decoded {len(raw) / per:g} frames of {wp}x{hp}, "
                            f"expected {t}")
    a = np.frombuffer(raw, "<u2" if sample == 2 else np.uint8).reshape(t, -1)
    if sample == 2:
        a = np.clip((a.astype(np.int32) + 2) >> 2, 0, 255).astype(np.uint8)
    _, h, w = like.shape
    y = a[:, :hp * wp].reshape(t, hp, wp)[:, :h, :w]
    u = a[:, hp * wp:hp * wp + ch * cw].reshape(t, ch, cw)
    v = a[:, hp * wp + ch * cw:].reshape(t, ch, cw)
    return YuvPlanes(np.ascontiguousarray(y), u.copy(), v.copy(), bits=8, matrix=like.matrix,
                     full_range=False, fps=like.fps, rgb=rgb)


def _fmt_kbps(v: float) -> str:
    return f"{v * 1000:.0f}"  # bits/s for -b:v (ffmpeg takes an integer count)


def _commands(spec: BaselineSpec, key: str, value: float, size: tuple[int, int],
              fps: fractions.Fraction, threads: int | None, stream: str,
              planes_matrix: str | None = None) -> list[list[str]]:
    """The ffmpeg encode command(s) (relative paths; run in the work folder). ``planes_matrix``:
    the input is raw 4:2:0 planes in the coded pixel format (no conversion), tagged with it."""
    h, w = size
    if planes_matrix is None:
        src = ["-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "pipe:0",
               "-vf", (f"scale=out_color_matrix=bt709:out_range=tv:flags={_SCALE_FLAGS},"
                       f"format={spec.pix_fmt}"), *_COLOUR_TAGS]
    else:
        # tagged on the input: tags on the output make ffmpeg convert the samples
        tags = ["-colorspace", planes_matrix, "-color_range", "tv"]
        src = ["-pix_fmt", spec.pix_fmt, "-s", f"{w}x{h}", "-r", str(fps), *tags, "-i", "pipe:0"]
    head = ["-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-f", "rawvideo",
            *src, "-c:v", spec.encoder, "-preset", spec.preset, *spec.gop_args,
            *spec.extra_args]
    if threads is not None:
        head += ["-threads", str(threads)]
    tail = (["-bsf:v", spec.bsf] if spec.bsf else []) + ["-f", spec.stream_format, "-y", stream]
    if key != "kbps":
        q = str(int(value)) if value.is_integer() else repr(value)
        return [head + [f"-{key}", q] + tail]
    rate = ["-b:v", _fmt_kbps(value)]
    if not spec.two_pass:
        return [head + rate + tail]
    log = ["-passlogfile", "passlog"]
    return [head + rate + ["-pass", "1", *log, "-f", "null", "-y", os.devnull],
            head + rate + ["-pass", "2", *log] + tail]


def _decode_command(spec: BaselineSpec, stream: str, planes: bool = False,
                    matrix: str = "bt709") -> list[str]:
    """Decode to RGB (BT.709 limited -> full range), or with ``planes`` to the raw coded
    4:2:0 samples (no conversion)."""
    head = ["-hide_banner", "-nostdin", "-nostats", "-loglevel", "error",
            "-f", spec.stream_format, "-c:v", spec.decoder, "-i", stream]
    if planes:
        return head + ["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", spec.pix_fmt,
                       "pipe:1"]
    vf = f"scale=in_color_matrix={matrix}:in_range=tv:flags={_SCALE_FLAGS},format=rgb24"
    return head + ["-vf", vf, "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24",
                   "pipe:1"]


def _rate_mode(spec: BaselineSpec, key: str) -> str:
    if key != "kbps":
        return key
    return "two-pass ABR" if spec.two_pass else "one-pass VBR"


def run_baseline(name: str, frames, fps, *, setting: dict, workdir: str | os.PathLike | None = None,
                 threads: int | None = None) -> BaselineResult:
    """Codes ``frames`` with baseline ``name`` at ``setting`` and decodes it.

    ``frames``: uint8 RGB [T,H,W,3] (converted to BT.709 limited 4:2:0 by ffmpeg, decoded back
    to RGB), or 8-bit limited-range 4:2:0 :class:`~gvc_jax.io.yuv.YuvPlanes` (coded as they are;
    ``decoded`` is then the decoded planes, carrying their RGB view from ffmpeg's conversion with
    the planes' matrix). ``workdir``: keep the stream (``<name>.<ext>``) and pass logs there; by
    default a private temporary folder is used and always removed. ``threads``: ffmpeg
    ``-threads`` (None: ffmpeg's default). Raises ValueError on bad arguments, BaselineError when
    ffmpeg fails.
    """
    spec = _spec(name)
    key, value = _check_setting(spec, setting)
    x, fps = _check_inputs(frames, fps)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    if not has_encoder(spec.encoder):
        raise BaselineError(f"{name}: this ffmpeg build ({ffmpeg_version()}) has no encoder "
                            f"{spec.encoder}")
    is_planes = isinstance(x, YuvPlanes)
    t, h, w = x.shape[:3]
    if is_planes:
        raw, (hp, wp), matrix = _planes_input(x, spec.pix_fmt)
    else:
        xp = _pad_even(x)
        hp, wp = xp.shape[1:3]
        raw, matrix = memoryview(xp).cast("B"), "bt709"
    stream = f"{name}.{spec.ext}"
    commands = _commands(spec, key, value, (hp, wp), fps, threads, stream,
                         planes_matrix=matrix if is_planes else None)
    decode = _decode_command(spec, stream, planes=is_planes)
    to_rgb = _decode_command(spec, stream, matrix=x.matrix) if is_planes else None
    env = dict(spec.env)
    own = workdir is None
    folder = tempfile.mkdtemp(prefix=f"gvc-{name}-") if own else os.fspath(workdir)
    what = f"{name} {setting_label(setting)}"
    try:
        if not own:
            os.makedirs(folder, exist_ok=True)
        t0 = time.perf_counter()
        for i, cmd in enumerate(commands):
            step = f"encode pass {i + 1}" if len(commands) > 1 else "encode"
            run_ffmpeg(cmd, cwd=folder, stdin=raw, env=env, what=f"{what} {step}")
        encode_s = time.perf_counter() - t0
        nbytes = os.path.getsize(os.path.join(folder, stream))
        t0 = time.perf_counter()
        out = run_ffmpeg(decode, cwd=folder, env=env, what=f"{what} decode")
        decode_s = time.perf_counter() - t0
        rgb_out = run_ffmpeg(to_rgb, cwd=folder, env=env, what=f"{what} decode to RGB") \
            if is_planes else out
    finally:
        if own:
            shutil.rmtree(folder, ignore_errors=True)
    frame_bytes = hp * wp * 3
    if len(rgb_out) != t * frame_bytes:
        raise BaselineError(f"{what}: decoded {len(rgb_out) / frame_bytes:g} frames of "
                            f"{wp}x{hp}, expected {t}")
    rgb = np.frombuffer(rgb_out, np.uint8).reshape(t, hp, wp, 3)[:, :h, :w].copy()
    decoded = _planes_output(out, spec.pix_fmt, t, hp, wp, x, rgb, what) if is_planes else rgb
    settings = {
        "baseline": name, "codec": spec.codec, "encoder": spec.encoder, "decoder": spec.decoder,
        "ffmpeg_version": ffmpeg_version(), "preset": spec.preset, "pix_fmt": spec.pix_fmt,
        "input": "4:2:0 planes, coded as given" if is_planes else "RGB, converted by ffmpeg",
        "color_matrix": matrix, "color_range": "tv (limited)", "color_primaries": "bt709",
        "color_trc": "bt709", "scale_flags": _SCALE_FLAGS, "keyint": KEYINT,
        "gop_args": list(spec.gop_args), "rate_mode": _rate_mode(spec, key),
        "rate_value": int(value) if key != "kbps" and value.is_integer() else value,
        "passes": len(commands), "threads": threads, "stream_format": spec.stream_format,
        "stream_file": stream, "bitstream_filter": spec.bsf, "env": env,
        "coded_size": [hp, wp], "padded": [hp - h, wp - w], "fps": str(fps),
        "encode_args": [["ffmpeg", *c] for c in commands], "decode_args": ["ffmpeg", *decode],
    }
    if is_planes:
        settings["rgb_view_args"] = ["ffmpeg", *to_rgb]
    return BaselineResult(decoded=decoded, bytes=nbytes, settings=settings,
                          encode_seconds=encode_s, decode_seconds=decode_s)


def match_label(kbps: float) -> str:
    """Label of a matched-rate run, e.g. 'match_kbps=9.662'."""
    return f"match_kbps={float(kbps)!r}"


def run_matched(name: str, frames, fps, *, kbps: float, threads: int | None = None
                ) -> BaselineResult:
    """The best-quality ladder knob whose stream is at most ``kbps`` (a bisection over the
    knob's integer values, each probe a full encode), for matched-rate comparisons: encoder
    rate control misses small targets on short clips by up to 3x (docs/baselines.md).

    If even the lowest-quality knob overshoots, that knob is used and ``settings['match']``
    says the target is below the encoder's floor."""
    spec = _spec(name)
    target = _number(kbps)
    if target <= 0:
        raise ValueError(f"{name}: kbps must be positive, got {kbps!r}")
    x, fr = _check_inputs(frames, fps)
    seconds = x.shape[0] / float(fr)
    probes: dict[int, BaselineResult] = {}
    t0 = time.perf_counter()

    def rate(q: int) -> float:
        if q not in probes:
            probes[q] = run_baseline(name, x, fr, setting={spec.knob: q}, threads=threads)
        return 8.0 * probes[q].bytes / seconds / 1000.0

    # `best` starts one below the range, standing for 'over the target' without a probe
    best, worst = int(math.ceil(spec.knob_range[0])) - 1, int(spec.knob_range[1])
    if rate(worst) > target:
        chosen, outcome = worst, "target below the encoder's floor; lowest-quality knob used"
    else:  # invariant: rate(best) > target >= rate(worst)
        while worst - best > 1:
            mid = (best + worst) // 2
            if rate(mid) <= target:
                worst = mid
            else:
                best = mid
        chosen, outcome = worst, "best-quality knob within the target"
    r = probes[chosen]
    r.settings = dict(r.settings, rate_mode=f"{spec.knob} search (at most the target rate)",
                      match={"target_kbps": target, "outcome": outcome,
                             "chosen": {spec.knob: chosen},
                             "probes": [[q, 8.0 * p.bytes / seconds / 1000.0]
                                        for q, p in sorted(probes.items())],
                             "search_seconds": time.perf_counter() - t0})
    return r
