"""``gvc eval``: our configs and the baselines on a list of videos, one row per
(video, codec, setting), appended to ``rows.jsonl`` as each finishes so that an
interrupted run resumes where it stopped.

Rates (docs/design.md, "Numbers"): bpp = 8·bytes / (frames·H·W) of the evaluated frames;
kbps = 8·bytes / (frames / source fps) / 1000. Every byte of the coded file counts.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
import time
from typing import Callable

import numpy as np

from gvc_jax.codec.errors import UsageError
from gvc_jax.eval import inputs
from gvc_jax.fileutil import write_bytes_atomic

ROWS_FILE, RUN_FILE = "rows.jsonl", "run.json"
GVC_PREFIX = "gvc-"


@dataclasses.dataclass(frozen=True)
class GvcRun:
    """One of our rate points: a codec preset plus parameter overrides."""
    config: str
    overrides: tuple[tuple[str, object], ...] = ()

    @property
    def codec(self) -> str:
        return GVC_PREFIX + self.config

    def label(self, params) -> str:
        """The coding's rate fields (top-M: the effective K and M), plus every other override,
        e.g. 'K=4096,M=16'."""
        from gvc_jax.codec import registry

        parts = {k: getattr(params, k) for k in registry.coding(params.coding).label_keys}
        parts.update({k: v for k, v in self.overrides if k not in parts})
        return ",".join(f"{k}={v}" for k, v in parts.items())


def parse_gvc_spec(spec: str) -> list[GvcRun]:
    """'config[:key=v1,v2[:key=...]]' -> runs over the Cartesian product of the values."""
    from gvc_jax.codec import params as params_mod

    config, *fields = spec.split(":")
    if not config:
        raise UsageError(f"--gvc {spec!r}: missing config name")
    axes = []
    for f in fields:
        key, eq, vals = f.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or not vals:
            raise UsageError(f"--gvc {spec!r}: expected key=value, got {f!r}")
        types = {f.name: {"int": int, "float": float, "str": str}[str(f.type)]
                 for f in params_mod.flag_fields()}
        if key not in types:
            raise UsageError(f"--gvc {spec!r}: unknown codec parameter {key!r}")
        conv = types[key]
        try:
            axes.append([(key, conv(v)) for v in vals.split(",")])
        except ValueError:
            raise UsageError(f"--gvc {spec!r}: bad value in {f!r}") from None
    return [GvcRun(config, tuple(combo)) for combo in itertools.product(*axes)]


@dataclasses.dataclass
class EvalPlan:
    videos: list[str]
    out: str
    gvc: list[GvcRun]
    baselines: list[str]
    ladders: dict[str, list[dict]] = dataclasses.field(default_factory=dict)
    match_rate: bool = False
    kbps: list[float] = dataclasses.field(default_factory=list)
    frames: int | None = None
    size: tuple[int, int] | None = None
    preset: str | None = None
    weights: str | None = None
    alexnet: str | None = None
    lpips: bool = True

    def identity(self) -> dict:
        """What makes rows of two runs comparable; a resumed run must match it."""
        return {"frames": self.frames, "size": list(self.size) if self.size else None,
                "weights": os.path.abspath(self.weights) if self.weights else None}


# ------------------------------------------------------------------ rows store
def load_rows(out: str) -> list[dict]:
    """Finished rows; a torn last line (a crash mid-write) is ignored."""
    path = os.path.join(out, ROWS_FILE)
    rows = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(row, dict) and all(k in row for k in ("video", "codec", "setting")):
                    rows.append(row)
    return rows


def _append_row(out: str, row: dict) -> None:
    path = os.path.join(out, ROWS_FILE)
    line = json.dumps(row, sort_keys=True) + "\n"
    with open(path, "a+b") as f:  # a torn previous line must not swallow this one
        f.seek(0, os.SEEK_END)
        if f.tell():
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
        f.write(line.encode())
        f.flush()
        os.fsync(f.fileno())


def _prepare_out(plan: EvalPlan) -> None:
    parent = os.path.dirname(os.path.abspath(plan.out))
    if not os.path.isdir(parent):
        raise UsageError(f"{plan.out}: parent folder {parent} does not exist")
    if os.path.exists(plan.out) and not os.path.isdir(plan.out):
        raise UsageError(f"{plan.out}: exists and is not a folder")
    os.makedirs(plan.out, exist_ok=True)
    run_path = os.path.join(plan.out, RUN_FILE)
    ident = plan.identity()
    if os.path.exists(run_path):
        try:
            with open(run_path, encoding="utf-8") as f:
                old = json.load(f)
            old = old if isinstance(old, dict) else {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UsageError(f"{run_path}: unreadable ({e}); use another --out folder") from None
        if old.get("identity") != ident:
            raise UsageError(f"{plan.out} holds results for {old.get('identity')}, this run is "
                             f"{ident}; use another --out folder")
    else:
        write_bytes_atomic(run_path, json.dumps({"identity": ident}, indent=2).encode())


# ------------------------------------------------------------------ metrics
class _Metrics:
    """Per-frame PSNR (RGB, Y), MS-SSIM and LPIPS, with one note per missing metric."""

    def __init__(self, alexnet: str | None, use_lpips: bool, log):
        self.notes: dict[str, str] = {}
        self._lpips = None
        if not use_lpips:
            self.notes["lpips"] = "LPIPS not computed (--no-lpips)"
            return
        from gvc_jax.metrics import MetricUnavailable
        from gvc_jax.weights.lpips import load as load_lpips

        from gvc_jax.weights.sources import CheckpointError
        from gvc_jax.weights.table import ConversionError

        try:
            self._lpips = load_lpips(alexnet=alexnet)
        except (ConversionError, CheckpointError) as e:   # a file, but not AlexNet weights
            raise CheckpointError(f"LPIPS weights: {e}") from None
        except MetricUnavailable as e:
            hint = "" if alexnet else "; give the file with --lpips-alexnet"
            self.notes["lpips"] = f"LPIPS column left empty: {e}{hint}"
            log(f"gvc eval: {self.notes['lpips']}")
            return
        if not self._lpips.official_trunk():
            self.notes["lpips_trunk"] = (f"{self._lpips.trunk_path} is not torchvision's "
                                         "released AlexNet (SHA-256 prefix differs): LPIPS values "
                                         "are not comparable with published ones")
            log(f"gvc eval: warning: {self.notes['lpips_trunk']}")

    def __call__(self, ref: np.ndarray, dist: np.ndarray) -> tuple[dict, dict, dict]:
        """-> (means, per-frame lists, notes that apply to this row)."""
        from gvc_jax import metrics as M

        notes = dict(self.notes)
        per = {"psnr_rgb": M.psnr(ref, dist), "psnr_y": M.psnr_y(ref, dist)}
        summary = {"psnr_rgb": float(np.mean(per["psnr_rgb"])),
                   "psnr_rgb_seq": M.psnr_sequence(ref, dist),
                   "psnr_y": float(np.mean(per["psnr_y"])),
                   "psnr_y_seq": M.psnr_y_sequence(ref, dist),
                   "ms_ssim": None, "lpips": None}
        if M.ms_ssim_supported(*ref.shape[1:3]):
            per["ms_ssim"] = M.ms_ssim(ref, dist)
            summary["ms_ssim"] = float(np.mean(per["ms_ssim"]))
        else:
            notes["ms_ssim"] = (f"MS-SSIM needs frames of at least 161 px a side, "
                                f"these are {ref.shape[2]}x{ref.shape[1]}")
        if self._lpips is not None:
            try:
                per["lpips"] = self._lpips(ref, dist)
                summary["lpips"] = float(np.mean(per["lpips"]))
            except M.MetricUnavailable as e:     # frames too small for AlexNet
                notes["lpips"] = str(e)
        return summary, {k: [float(x) for x in v] for k, v in per.items()}, notes


def _rate(nbytes: int, t: int, h: int, w: int, fps) -> dict:
    from gvc_jax.codec.api import rates

    bpp, kbps = rates(nbytes, t, h, w, fps)
    return {"bytes": nbytes, "bits": 8 * nbytes, "bpp": bpp, "kbps": kbps}


# ------------------------------------------------------------------ runs
def _run_gvc(run: GvcRun, video, name: str, plan: EvalPlan, models: dict, on_gop, on_step):
    """One of our rate points through the public API: compress, write, decode what is on
    disk and check it equals the encoder's reconstruction."""
    from gvc_jax.codec import api
    from gvc_jax.codec.codec_model import load_model

    model_name, mode, params = api.params_for(run.config, dict(run.overrides))
    if model_name not in models:
        models[model_name] = load_model(model_name, plan.weights, params=params)
    enc, report = api.compress_video(video, config=run.config, weights=plan.weights,
                                     overrides=dict(run.overrides), model=models[model_name],
                                     on_gop=on_gop, on_step=on_step)
    params = api.for_source(params, mode, video.frames, dict(run.overrides))
    label = run.label(params)
    stream_dir = os.path.join(plan.out, "streams", name)
    os.makedirs(stream_dir, exist_ok=True)
    path = os.path.join(stream_dir, f"{run.codec}_{label.replace(',', '_')}.gvc")
    write_bytes_atomic(path, enc.data)
    with open(path, "rb") as f:          # decode what is on disk, and time it
        data = f.read()
    t0 = time.perf_counter()
    decoded, _, _ = api.decode_bytes(data, weights=plan.weights, models=models, on_gop=on_gop,
                                     on_step=on_step)
    dec_s = time.perf_counter() - t0
    if not np.array_equal(decoded, enc.recon):
        raise RuntimeError(f"{path}: the decoder's output differs from the encoder's reconstruction")
    settings = {"config": run.config, "model": model_name, "mode": mode,
                **dataclasses.asdict(params), "stream": os.path.relpath(path, plan.out)}
    return label, decoded, len(data), settings, enc.encode_seconds, dec_s


def _label(kind: str, arg) -> str:
    from gvc_jax.eval import baselines

    if kind == "gvc":
        from gvc_jax.codec.api import params_for
        return arg.label(params_for(arg.config, dict(arg.overrides))[2])
    if kind == "matched":
        return baselines.match_label(arg)
    return baselines.setting_label(arg)


def _run_baseline(name: str, kind: str, arg, video):
    from gvc_jax.eval import baselines

    if kind == "matched":
        r = baselines.run_matched(name, video.frames, video.fps, kbps=arg)
    else:
        r = baselines.run_baseline(name, video.frames, video.fps, setting=arg)
    return _label(kind, arg), r.decoded, r.bytes, r.settings, r.encode_seconds, \
        r.decode_seconds


def _jobs_for_video(plan: EvalPlan, name: str, done_rows: list[dict]):
    """(codec, kind, arg) in order: our points, then each baseline's ladder, then the
    baselines at the --kbps targets (encoder rate control), then at our points' kbps
    (quality-knob search; known once ours are done)."""
    from gvc_jax.eval import baselines

    for run in plan.gvc:
        yield run.codec, "gvc", run
    for b in plan.baselines:
        for s in plan.ladders.get(b) or baselines.default_ladder(b):
            yield b, "baseline", s
    matched = []
    if plan.match_rate:
        ours = [r for r in done_rows if r["video"] == name and r["codec"].startswith(GVC_PREFIX)
                and not r.get("failed")]
        matched = [round(r["kbps"], 3) for r in ours]
    for b in plan.baselines:
        for k in dict.fromkeys(float(k) for k in plan.kbps):
            yield b, "baseline", {"kbps": k}
    for b in plan.baselines:
        for k in dict.fromkeys(matched):
            yield b, "matched", k


def _preflight(plan: EvalPlan) -> None:
    """Usage errors before any video is read or coded."""
    from gvc_jax.codec.api import params_for
    from gvc_jax.eval import baselines

    for run in plan.gvc:
        model_name, _, _ = params_for(run.config, dict(run.overrides))
        if model_name != "gaussian" and not plan.weights:
            raise UsageError(f"--gvc {run.config} needs --weights: the Wan 2.1 folder")
    for b in plan.baselines:
        if b not in baselines.BASELINES:
            raise UsageError(f"unknown baseline {b!r}; known: {', '.join(baselines.BASELINES)}")
        for s in (plan.ladders.get(b) or []) + [{"kbps": k} for k in plan.kbps]:
            try:
                baselines.check_setting(b, s)
            except ValueError as e:
                raise UsageError(str(e)) from None
    if not plan.gvc and not plan.baselines:
        raise UsageError("nothing to evaluate: no --gvc configs and no baselines")


def run(plan: EvalPlan, *, log: Callable[[str], None] = lambda s: None,
        on_gop=None, on_step=None) -> list[dict]:
    """Runs every missing row, appending each to rows.jsonl; returns all rows."""
    _preflight(plan)
    _prepare_out(plan)
    rows = load_rows(plan.out)
    done = {(r["video"], r["codec"], r["setting"]) for r in rows}
    metrics = _Metrics(plan.alexnet, plan.lpips, log)
    models: dict = {}
    for vi, path in enumerate(plan.videos):
        name = inputs.video_name(path)
        video = None
        for codec, kind, arg in _jobs_for_video(plan, name, rows):
            label_hint = _label(kind, arg)
            if (name, codec, label_hint) in done:
                continue
            if video is None:
                video = inputs.load_video(path, frames=plan.frames, size=plan.size)
            t, h, w = video.shape
            log(f"gvc eval: [{vi + 1}/{len(plan.videos)}] {name} {t}x{h}x{w}: {codec} "
                f"{label_hint} ...")
            t0 = time.perf_counter()
            if kind == "gvc":
                label, decoded, nbytes, settings, enc_s, dec_s = _run_gvc(
                    arg, video, name, plan, models, on_gop, on_step)
            else:
                from gvc_jax.eval.baselines import BaselineError
                try:
                    label, decoded, nbytes, settings, enc_s, dec_s = _run_baseline(
                        codec, kind, arg, video)
                except BaselineError as e:
                    # e.g. a target below what the encoder can reach: recorded, not retried,
                    # listed in the summary; the other rows go on
                    row = {"video": name, "codec": codec, "setting": label_hint,
                           "failed": str(e)}
                    _append_row(plan.out, row)
                    rows.append(row)
                    done.add((name, codec, label_hint))
                    log(f"gvc eval:   failed, skipped: {e}")
                    continue
            summary, per_frame, notes = metrics(video.frames, decoded)
            row = {"video": name, "source": os.path.abspath(path), "codec": codec,
                   "setting": label, "frames": t, "height": h, "width": w,
                   "fps": float(video.fps), "fps_rational": [video.fps.numerator,
                                                             video.fps.denominator],
                   **_rate(nbytes, t, h, w, video.fps), **summary,
                   "encode_seconds": enc_s, "decode_seconds": dec_s,
                   "settings": settings, "per_frame": per_frame,
                   "notes": notes}
            _append_row(plan.out, row)
            rows.append(row)
            done.add((name, codec, label))
            log(f"gvc eval:   {row['bpp']:.5f} bpp, {row['kbps']:.2f} kbps, "
                f"PSNR {row['psnr_rgb']:.2f} dB ({time.perf_counter() - t0:.1f} s)")
    return rows
