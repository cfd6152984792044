"""``gvc eval``: our configs and the baselines on a list of videos, one row per
(video, protocol, codec, setting), appended to ``rows.jsonl`` as each finishes so that an
interrupted run resumes where it stopped.

Every row's metrics come from :func:`gvc_jax.eval.compare.compare` (docs/metrics.md); the frames
and the reference from the row's protocol (:mod:`gvc_jax.eval.protocols`, docs/eval.md).
Rates (docs/design.md, "Numbers"): bpp = 8·bytes / (frames·H·W) of the evaluated frames;
kbps = 8·bytes / (frames / source fps) / 1000. Every byte of the coded file counts. Rows of the
``gvcc`` protocol add GVCC's count (``bits_gvcc``, ``kbps_gvcc`` at 16 fps,
:mod:`gvc_jax.eval.gvcc`).
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
from gvc_jax.eval import gvcc, inputs
from gvc_jax.eval.compare import SCALAR_KEYS, compare
from gvc_jax.eval.protocols import HEADLINE, PROTOCOLS, load_source
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
    vgg: str | None = None
    dists: bool = True
    protocols: list[str] = dataclasses.field(default_factory=lambda: ["ours"])
    bd_anchor: str | None = None
    bd_method: str = "pchip"
    published: list[dict] = dataclasses.field(default_factory=list)   # reference rows, no bytes

    def identity(self) -> dict:
        """What makes rows of two runs comparable; a resumed run must match it."""
        return {"frames": self.frames, "size": list(self.size) if self.size else None,
                "weights": os.path.abspath(self.weights) if self.weights else None}


def protocol_of(row: dict) -> str:
    """A row's protocol; rows written before protocols existed are ``ours``."""
    return row.get("protocol") or "ours"


def row_key(row: dict) -> tuple[str, str, str, str]:
    return row["video"], protocol_of(row), row["codec"], row["setting"]


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
METRIC_KEYS = tuple(k for base in SCALAR_KEYS
                    for k in ((base, base + "_seq") if base.startswith("psnr") else (base,)))


class _Scorer:
    """Every metric of a row through :func:`compare`, with the learned models loaded once."""

    def __init__(self, plan: EvalPlan, log):
        from gvc_jax.eval.learned import load_learned

        self.learned = load_learned(alexnet=plan.alexnet, use_lpips=plan.lpips, vgg=plan.vgg,
                                    use_dists=plan.dists, log=log, who="gvc eval")

    def __call__(self, ref, dist) -> tuple[dict, dict, dict, str]:
        """-> (metric values, per-frame lists, notes that apply to this row, yuv source)."""
        out = compare(ref, dist, lpips=self.learned.lpips, dists=self.learned.dists)
        notes = dict(out["notes"])
        for k, v in self.learned.notes.items():   # the loader knows why a model is missing
            if k not in notes or out.get(k) is None:
                notes[k] = v
        return {k: out[k] for k in METRIC_KEYS}, out["per_frame"], notes, out["yuv_source"]


def _rate(nbytes: int, t: int, h: int, w: int, fps) -> dict:
    from gvc_jax.codec.api import rates

    bpp, kbps = rates(nbytes, t, h, w, fps)
    return {"bytes": nbytes, "bits": 8 * nbytes, "bpp": bpp, "kbps": kbps}


# ------------------------------------------------------------------ runs
def _gvcc_count(enc, model, params, mode: str) -> dict:
    """GVCC's count of our stream (:func:`gvc_jax.eval.gvcc.stream_bits`)."""
    from gvc_jax.bitstream import container
    from gvc_jax.eval import gvcc

    geom = model.geometry
    latent = [geom.latent_frames(geom.coded_length(g["frames"])) for g in enc.header["gops"]]
    return gvcc.stream_bits(mode, params.coding, getattr(params, "K", 0),
                            getattr(params, "M", 0), getattr(params, "sde_steps", 0), latent,
                            container.breakdown(enc.data))


def _run_gvc(run: GvcRun, src, name: str, protocol: str, plan: EvalPlan, models: dict,
             on_gop, on_step):
    """One of our rate points through the public API: compress, write, decode what is on
    disk and check it equals the encoder's reconstruction."""
    from gvc_jax.codec import api
    from gvc_jax.codec.codec_model import load_model

    video = src.video
    model_name, mode, params = api.params_for(run.config, dict(run.overrides))
    if model_name not in models:
        models[model_name] = load_model(model_name, plan.weights, params=params)
    enc, report = api.compress_video(video, config=run.config, weights=plan.weights,
                                     overrides=dict(run.overrides), model=models[model_name],
                                     on_gop=on_gop, on_step=on_step)
    params = api.for_source(params, mode, video.frames, dict(run.overrides))
    label = run.label(params)
    sub = [name] if protocol == "ours" else [name, protocol]
    stream_dir = os.path.join(plan.out, "streams", *sub)
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
    extra = {}
    if protocol == "gvcc":
        count = _gvcc_count(enc, models[model_name], params, mode)
        extra = {"bits_gvcc": count["bits_gvcc"], "gvcc_parts": count["parts"],
                 "gvcc_note": count["note"]}
    return label, decoded, len(data), settings, enc.encode_seconds, dec_s, extra


def _label(kind: str, arg) -> str:
    from gvc_jax.eval import baselines

    if kind == "gvc":
        from gvc_jax.codec.api import params_for
        return arg.label(params_for(arg.config, dict(arg.overrides))[2])
    if kind == "matched":
        return baselines.match_label(arg)
    return baselines.setting_label(arg)


def _run_baseline(name: str, kind: str, arg, src):
    from gvc_jax.eval import baselines

    x, fps = src.baseline_input, src.video.fps
    if kind == "matched":
        r = baselines.run_matched(name, x, fps, kbps=arg)
    else:
        r = baselines.run_baseline(name, x, fps, setting=arg)
    return (_label(kind, arg), r.decoded, r.bytes, r.settings, r.encode_seconds,
            r.decode_seconds, {"bits_gvcc": 8 * r.bytes})


def _jobs_for_video(plan: EvalPlan, name: str, protocol: str, done_rows: list[dict]):
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
        ours = [r for r in done_rows if r["video"] == name and protocol_of(r) == protocol
                and r["codec"].startswith(GVC_PREFIX) and not r.get("failed")]
        matched = [round(r["kbps"], 3) for r in ours]
    for b in plan.baselines:
        for k in dict.fromkeys(float(k) for k in plan.kbps):
            yield b, "baseline", {"kbps": k}
    for b in plan.baselines:
        for k in dict.fromkeys(matched):
            yield b, "matched", k


def codecs_of(plan: EvalPlan) -> list[str]:
    """The codec names of the plan's rows, ours first."""
    return list(dict.fromkeys([r.codec for r in plan.gvc] + list(plan.baselines)))


def _preflight(plan: EvalPlan) -> None:
    """Usage errors before any video is read or coded."""
    from gvc_jax.codec.api import params_for
    from gvc_jax.eval import baselines, bdrate

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
    bad = [p for p in plan.protocols if p not in PROTOCOLS]
    if bad or not plan.protocols:
        raise UsageError(f"--protocol: unknown {bad[0] if bad else 'empty list'!r}; known: "
                         f"{', '.join(PROTOCOLS)}")
    if plan.bd_anchor is not None and plan.bd_anchor not in codecs_of(plan):
        raise UsageError(f"--bd-anchor {plan.bd_anchor!r} is not one of this run's codecs: "
                         f"{', '.join(codecs_of(plan))}")
    if plan.bd_method not in bdrate.METHODS:
        raise UsageError(f"--bd-method must be one of {', '.join(bdrate.METHODS)}")


def _failed_row(name, protocol, codec, label, error) -> dict:
    return {"video": name, "protocol": protocol, "codec": codec, "setting": label,
            "failed": str(error)}


def run(plan: EvalPlan, *, log: Callable[[str], None] = lambda s: None,
        on_gop=None, on_step=None) -> list[dict]:
    """Runs every missing row, appending each to rows.jsonl; returns all rows."""
    _preflight(plan)
    _prepare_out(plan)
    rows = load_rows(plan.out)
    done = {row_key(r) for r in rows}
    scorer = _Scorer(plan, log)
    models: dict = {}
    for vi, path in enumerate(plan.videos):
        name = inputs.video_name(path)
        for protocol in plan.protocols:
            src = None
            for codec, kind, arg in _jobs_for_video(plan, name, protocol, rows):
                label_hint = _label(kind, arg)
                if (name, protocol, codec, label_hint) in done:
                    continue
                if src is None:
                    src = load_source(path, protocol, frames=plan.frames, size=plan.size)
                t, h, w = src.shape
                log(f"gvc eval: [{vi + 1}/{len(plan.videos)}] {name} ({protocol}) {t}x{h}x{w}: "
                    f"{codec} {label_hint} ...")
                t0 = time.perf_counter()
                if kind == "gvc":
                    label, decoded, nbytes, settings, enc_s, dec_s, extra = _run_gvc(
                        arg, src, name, protocol, plan, models, on_gop, on_step)
                else:
                    from gvc_jax.eval.baselines import BaselineError
                    try:
                        label, decoded, nbytes, settings, enc_s, dec_s, extra = _run_baseline(
                            codec, kind, arg, src)
                    except BaselineError as e:
                        # e.g. a target below what the encoder can reach: recorded, not
                        # retried, listed in the summary; the other rows go on
                        row = _failed_row(name, protocol, codec, label_hint, e)
                        _append_row(plan.out, row)
                        rows.append(row)
                        done.add(row_key(row))
                        log(f"gvc eval:   failed, skipped: {e}")
                        continue
                metrics, per_frame, notes, yuv_source = scorer(src.ref, decoded)
                fps = src.video.fps
                row = {"video": name, "protocol": protocol, "source": os.path.abspath(path),
                       "codec": codec, "setting": label, "frames": t, "height": h, "width": w,
                       "fps": float(fps), "fps_rational": [fps.numerator, fps.denominator],
                       **_rate(nbytes, t, h, w, fps), **metrics,
                       "encode_seconds": enc_s, "decode_seconds": dec_s,
                       "settings": settings, "per_frame": per_frame, "notes": notes,
                       "yuv_source": yuv_source}
                if protocol == "gvcc":
                    row.update(gvcc.rates(extra.pop("bits_gvcc"), t, h, w), **extra)
                _append_row(plan.out, row)
                rows.append(row)
                done.add(row_key(row))
                head = HEADLINE[protocol]
                log(f"gvc eval:   {row['bpp']:.5f} bpp, {row['kbps']:.2f} kbps, "
                    f"{head} {row[head]:.2f} dB ({time.perf_counter() - t0:.1f} s)")
    return rows
