"""``gvc batch``: many videos, one .gvc each, coded as jitted batches of GOPs (docs/batch.md).

GOPs of every input with the same latent shape are stacked into batches of ``batch_gops`` and
run through :func:`gvc_jax.sampler.batched.encode_gops` (data parallel over the local devices).
Each finished GOP's packed ``IDX`` payload is written durably into the job directory
``OUT/.gvc-job/<name>-<key>/gop-NNNNN.idx``; the key hashes the input (path, size, mtime), the
codec parameters, the prompt and the model fingerprint, so a rerun reuses exactly the GOPs that
are still valid and skips videos whose .gvc is finished. A video's .gvc is assembled with the
same helpers as ``gvc compress`` and is byte-identical to its output.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import time

import numpy as np

from gvc_jax import codebook
from gvc_jax.bitstream import container
from gvc_jax.bitstream.errors import BitstreamError
from gvc_jax.codec import api, registry, stream
from gvc_jax.codec.codec_model import detect_config, load_model
from gvc_jax.codec.errors import UsageError
from gvc_jax.codec.geometry import Gop, pad_clip
from gvc_jax.codec.placement import Placement
from gvc_jax.codec.prompt import Prompt
from gvc_jax.fileutil import write_bytes_atomic
from gvc_jax.eval.inputs import LIST_EXTS, read_list
from gvc_jax.io import FFMPEG_EXTS, VideoIOError, read_video
from gvc_jax.progress import CodecProgress
from gvc_jax.sampler import progress as sampler_progress
from gvc_jax.sampler.batched import replicate

JOB_DIR = ".gvc-job"
VIDEO_EXTS = FFMPEG_EXTS + (".y4m", ".npy")
KEY_VERSION = 1


# ------------------------------------------------------------------ inputs and keys
def expand_inputs(paths: list[str]) -> list[str]:
    """Videos of ``paths``: files, folders (their videos, sorted; a folder holding only PNGs is
    one video) and ``.txt`` lists (one path a line, relative to the list, '#' comments)."""
    out: list[str] = []
    for p in paths:
        ext = os.path.splitext(p)[1].lower()
        if os.path.isdir(p):
            names = sorted(os.listdir(p))
            found = [os.path.join(p, n) for n in names
                     if os.path.splitext(n)[1].lower() in VIDEO_EXTS]
            if found:
                out += found
            elif any(n.lower().endswith(".png") for n in names):
                out.append(p)
            else:
                raise VideoIOError(f"{p}: no videos ({', '.join(VIDEO_EXTS)}) or PNGs in this "
                                   "folder")
        elif ext in LIST_EXTS and os.path.isfile(p):
            out += expand_inputs(read_list(p))
        elif not os.path.exists(p):
            raise VideoIOError(f"{p}: no such file or folder")
        else:
            out.append(p)
    return out


def output_name(path: str) -> str:
    """``NAME.gvc`` for an input ``.../NAME.ext`` (or a PNG folder ``.../NAME``)."""
    return os.path.splitext(os.path.basename(os.path.normpath(path)))[0] + ".gvc"


def _stat(path: str) -> list:
    """What identifies an input's contents cheaply: size and mtime (of each PNG of a folder)."""
    if os.path.isdir(path):
        return [[n, *_stat(os.path.join(path, n))] for n in sorted(os.listdir(path))
                if n.lower().endswith(".png")]
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


def video_key(path: str, model, mode: str, params, prompt: Prompt, max_frames) -> str:
    """sha256 over the input's path, size and mtime, the codec parameters that reach the
    stream, the prompt and the model fingerprint (docs/batch.md, "The job directory")."""
    fields = dataclasses.asdict(params)
    fields.pop("chunk", None)             # a memory knob: the same bits whatever its value
    ident = {"v": KEY_VERSION, "format": stream.FORMAT_VERSION, "input": os.path.abspath(path),
             "stat": _stat(path), "config": model.name, "fingerprint": model.fingerprint,
             "mode": mode, "params": fields, "prompt": [prompt.text, prompt.negative],
             "max_frames": max_frames}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:48] or "video"


def _sha256(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


# ------------------------------------------------------------------ one video's state
@dataclasses.dataclass(eq=False)
class Video:
    path: str
    key: str
    workdir: str
    output: str
    session: object = None                        # the planned stream (gvc_jax.codec.stream)
    frames: np.ndarray | None = None              # kept for --verify's PSNR only
    payloads: dict[int, bytes] = dataclasses.field(default_factory=dict)
    label: str = ""
    coded: int = 0
    reused: int = 0
    report: dict = dataclasses.field(default_factory=dict)

    @property
    def gops(self) -> list[Gop]:
        return self.session.gops

    @property
    def name(self) -> str:
        return os.path.basename(self.output)[:-4]

    def gop_file(self, i: int) -> str:
        return os.path.join(self.workdir, f"gop-{i:05d}.idx")

    def done_file(self) -> str:
        return os.path.join(self.workdir, "done.json")

    def finished(self) -> dict | None:
        """The done record when the output exists and is the file this job wrote."""
        try:
            with open(self.done_file(), encoding="utf-8") as f:
                rec = json.load(f)
        except (OSError, ValueError):
            return None
        return rec if rec.get("sha256") == _sha256(self.output) else None


# ------------------------------------------------------------------ the job
class Job:
    """One ``gvc batch`` run over this process's share of the inputs."""

    def __init__(self, model, mode: str, params, out: str, batch_gops: int,
                 progress: CodecProgress,
                 verify: bool = False, max_frames: int | None = None, devices=None):
        self.model, self.mode, self.params, self.out = model, mode, params, out
        self.coding = registry.coding(params.coding)
        self.batch_gops, self.progress, self.verify = batch_gops, progress, verify
        self.max_frames, self.devices = max_frames, devices
        self.state = replicate(model.state, devices)   # placed once for every batch
        self.cond = model.cond          # encode_gops repeats it per GOP and shards it with them
        self.queues: dict[tuple, list] = {}             # latent shape -> [(video, gop, x0)]
        self.pending: dict[str, Video] = {}
        self.batches = 0

    # -- GOP files
    def _load_payload(self, v: Video, g: Gop) -> bytes | None:
        try:
            with open(v.gop_file(g.index), "rb") as f:
                data = f.read()
            self.coding.check_payload(self.params, data,
                                      self.model.geometry.latent_frames(g.coded))
            return data
        except (OSError, BitstreamError, ValueError):
            return None

    def start(self, v: Video) -> None:
        """Reads the video, reuses its finished GOPs and queues the others."""
        video = read_video(v.path, max_frames=self.max_frames)
        frames, fps = video.frames, video.fps
        v.session = stream.plan(frames, fps, self.model, self.params, self.mode)
        v.frames = frames if self.verify else None
        os.makedirs(v.workdir, exist_ok=True)
        for g in v.gops:
            data = self._load_payload(v, g)
            if data is not None:
                v.payloads[g.index] = data
                v.reused += 1
        todo = [g for g in v.gops if g.index not in v.payloads]
        self.progress.line(f"{v.label}: {len(v.gops)} GOP(s), "
                           f"{v.reused} finished earlier, {len(todo)} to code")
        self.pending[v.key] = v
        ch, cw = v.session.header["coded"]["height"], v.session.header["coded"]["width"]
        for g in todo:
            x0 = np.asarray(self.model.encode(pad_clip(frames[g.start:g.start + g.frames],
                                                       g.coded, ch, cw)))
            q = self.queues.setdefault(x0.shape, [])
            q.append((v, g, x0))
            if len(q) >= self.batch_gops:
                self._run_batch(x0.shape)
        self._maybe_finish(v)

    def flush(self) -> None:
        for shape in list(self.queues):
            while self.queues.get(shape):
                self._run_batch(shape)

    def _run_batch(self, shape) -> None:
        q = self.queues[shape]
        items, self.queues[shape] = q[:self.batch_gops], q[self.batch_gops:]
        self.batches += 1
        p = self.params
        names = ", ".join(f"{v.name}#{g.index}" for v, g, _ in items)
        self.progress.phase(f"batch {self.batches}: {len(items)} GOP(s) [{names}] encode")
        x_T = np.stack([np.asarray(codebook.init_noise(p.seed, g.index, shape))
                        for _, g, _ in items])
        x0 = np.stack([x for _, _, x in items])
        with sampler_progress.reporting(self.progress.on_step):
            payloads = self.coding.encode_batch(self.model, self.state, self.cond, x_T, x0, p,
                                                [g.index for _, g, _ in items],
                                                devices=self.devices)
        self.progress.close()
        touched = []
        for (v, g, _), payload in zip(items, payloads):
            write_bytes_atomic(v.gop_file(g.index), payload)   # durable: temp, fsync, rename
            v.payloads[g.index] = payload
            v.coded += 1
            if v not in touched:
                touched.append(v)
        for v in touched:
            self._maybe_finish(v)

    # -- a finished video
    def _maybe_finish(self, v: Video) -> None:
        if len(v.payloads) != len(v.gops) or v.key not in self.pending:
            return
        del self.pending[v.key]
        data = stream.assemble(v.session, v.payloads)
        write_bytes_atomic(v.output, data)
        rec = {"output": os.path.basename(v.output), "sha256": hashlib.sha256(data).hexdigest(),
               "bytes": len(data), "gops": len(v.gops)}
        write_bytes_atomic(v.done_file(), json.dumps(rec, indent=1).encode())
        v.report = self._report(v, data, "coded")
        v.frames = None
        self.progress.line(f"{v.output}: {len(data)} bytes, {len(v.gops)} GOP(s) "
                           f"({v.coded} coded now, {v.reused} earlier)")

    def _report(self, v: Video, data: bytes, status: str) -> dict:
        header, _ = container.read_gvc(data)
        r = api.rate_report(header, data)
        out = {"input": v.path, "output": v.output, "key": v.key, "status": status,
               "gops": len(header["gops"]), "gops_coded": v.coded, "gops_reused": v.reused,
               **{k: r[k] for k in ("bytes_file", "bpp", "kbps", "frames", "height", "width")}}
        if self.verify:
            out.update(self._verify(v, data))
        return out

    def _verify(self, v: Video, data: bytes) -> dict:
        """Decodes the finished stream: ``--verify`` (docs/batch.md, "Usage")."""
        from gvc_jax.metrics import psnr_mean

        try:
            frames, _, header = api.decode_bytes(data, models={self.model.name: self.model})
        except BitstreamError as e:
            raise BitstreamError(f"{v.output}: {e}") from None
        src = header["source"]
        if frames.shape != (src["frames"], src["height"], src["width"], 3):
            raise BitstreamError(f"{v.output}: decodes to {frames.shape}, header says {src}")
        out = {"verified": True}
        if v.frames is not None:
            out["psnr"] = psnr_mean(v.frames, frames)
        return out


def share(keys: list[str], index: int, count: int) -> list[int]:
    """Positions (in input order) of the videos process ``index`` of ``count`` codes: the keys
    sorted, dealt round-robin (docs/batch.md, "Several hosts")."""
    order = sorted(range(len(keys)), key=lambda i: keys[i])
    return sorted(order[index::count])


def run(inputs: list[str], out: str, *, config: str | None = None, weights: str | None = None,
        overrides: dict | None = None, prompt: Prompt = Prompt(), max_frames: int | None = None,
        batch_gops: int | None = None, verify: bool = False, cache_dir=None,
        progress: CodecProgress | None = None, log=None, process_index: int = 0,
        process_count: int = 1, devices=None) -> dict:
    """Codes this process's share of ``inputs`` into ``out``; returns the JSON summary."""
    import jax

    t0 = time.perf_counter()
    progress = progress or CodecProgress("off")
    model_name, mode, params = api.params_for(config, overrides, weights)
    if not registry.mode(mode).independent_gops:
        independent = [m for m, c in registry.MODES.items() if c.independent_gops]
        raise UsageError(f"gvc batch codes only modes whose GOPs are independent "
                         f"({', '.join(independent)}), not {mode} "
                         f"(config {config or model_name})")
    if not registry.coding(params.coding).batch:
        batchable = [f"{k.summary} (--coding {c})" for c, k in registry.CODINGS.items()
                     if k.batch]
        raise UsageError(f"gvc batch codes only streams of {', '.join(batchable)}; use gvc "
                         f"compress for --coding {params.coding}")
    n_dev = len(devices) if devices else len(jax.local_devices())
    if batch_gops is None:            # 8, or a multiple of the device count
        batch_gops = -(-8 // n_dev) * n_dev
    if batch_gops < 1:
        raise UsageError(f"--batch-gops must be >= 1, got {batch_gops}")
    if params.guidance == 1.0 and prompt.negative:
        raise UsageError("--negative-prompt needs --guidance other than 1")
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"{out}: is a file, expected an output folder")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise UsageError(f"{out}: its parent folder {parent} does not exist")
    paths = expand_inputs(list(inputs))
    names: dict[str, str] = {}
    for p in paths:
        n = output_name(p)
        if n in names:
            raise UsageError(f"{p} and {names[n]} would both be written to {n}; rename one")
        names[n] = p
    os.makedirs(out, exist_ok=True)
    model = load_model(model_name, weights, prompt, params, cache_dir=cache_dir, log=log,
                       progress=progress.mode == "bar",
                       placement=Placement(offload="never"))   # replicated per device below
    model.check_params(params)
    progress.steps = params.steps
    keys = [video_key(p, model, mode, params, prompt, max_frames) for p in paths]
    job = Job(model, mode, params, out, batch_gops, progress, verify, max_frames, devices)
    videos = []
    mine = share(keys, process_index, process_count)
    for n, i in enumerate(mine):
        p, k = paths[i], keys[i]
        v = Video(p, k, os.path.join(out, JOB_DIR, f"{_safe(output_name(p)[:-4])}-{k[:16]}"),
                  os.path.join(out, output_name(p)), label=f"[{n + 1}/{len(mine)}] {p}")
        videos.append(v)
        if v.finished() is not None:
            progress.line(f"{v.label}: {v.output} finished earlier, skipped")
            with open(v.output, "rb") as f:
                v.report = job._report(v, f.read(), "skipped")
            continue
        job.start(v)
    job.flush()
    reps = [v.report for v in videos]
    return {"out": out, "job_dir": os.path.join(out, JOB_DIR),
            "config": config or detect_config(weights), "model": model.name,
            "mode": mode, "model_fingerprint": model.fingerprint,
            "process_index": process_index, "process_count": process_count, "devices": n_dev,
            "batch_gops": batch_gops, "batches": job.batches, "videos_total": len(reps),
            "videos_skipped": sum(r["status"] == "skipped" for r in reps),
            "gops_total": sum(r["gops"] for r in reps),
            "gops_coded": sum(r["gops_coded"] for r in reps),
            "gops_reused": sum(r["gops_reused"] for r in reps),
            "seconds": time.perf_counter() - t0, "videos": reps}
