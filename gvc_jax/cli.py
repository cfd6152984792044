"""The ``gvc`` command line (docs/design.md §5).

Exit codes: 0 ok · 1 internal error · 2 usage · 3 bad input (unreadable
video, corrupt bitstream, wrong weights). Errors are one line on stderr
starting with ``gvc: error:``; ``--debug`` adds the traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import threading
import traceback

from gvc_jax import cli_batch

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_BAD_INPUT = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        raise _Usage(message)


class _Usage(Exception):
    pass


def _add_common(p):
    p.add_argument("--debug", action="store_true", help="show tracebacks on error")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--progress", action="store_true",
                   help="progress bars even when stderr is not a terminal")


def _placement(a):
    from gvc_jax.codec.placement import Placement
    return Placement(offload=a.offload, shard=a.shard)


def _cache_dir(a):
    return False if a.no_cache else a.cache_dir


def _log(a):
    return None if a.quiet else (lambda s: print(f"gvc: {s}", file=sys.stderr, flush=True))


def build_parser() -> argparse.ArgumentParser:
    from gvc_jax.codec.params import add_cli_flags
    from gvc_jax.codec.presets import PRESETS

    p = _Parser(prog="gvc", description="GVC generative video codec (JAX)")
    sub = p.add_subparsers(dest="cmd", parser_class=_Parser)

    c = sub.add_parser("compress", help="encode a video into a .gvc file")
    c.add_argument("input", help="mp4/mkv/avi/y4m video, .npy uint8 [T,H,W,3] or a PNG folder")
    c.add_argument("-o", "--output", required=True, help="output .gvc path")
    c.add_argument("--config", default=None,
                   help=f"codec preset: {', '.join(sorted(PRESETS))} (default: the Wan "
                        "preset that --weights holds, else gaussian on GPU/TPU and "
                        "gaussian-fast on CPU)")
    c.add_argument("--weights", help="the model folder: a Wan 2.1 download (official or "
                                     "diffusers layout), or a gaussian prior .npz")
    c.add_argument("--recon", help="also write the decoder's reconstruction (mp4/y4m/npy)")
    c.add_argument("--json", action="store_true", help="print the JSON report on stdout")
    c.add_argument("--max-frames", type=int, help="code only the first N frames")
    c.add_argument("--prompt", default="", help="text prompt (sent in the stream; default empty)")
    c.add_argument("--negative-prompt", default="",
                   help="negative prompt for --guidance (sent in the stream)")
    rate = c.add_mutually_exclusive_group()
    rate.add_argument("--kbps", type=float, help="target rate at the source frame rate: M, the "
                      "anchor setting and the residual steps are chosen so the file lands at "
                      "or under it")
    rate.add_argument("--bpp", type=float, help="target bits per source pixel (as --kbps)")
    add_cli_flags(c)
    _add_model_options(c)
    _add_common(c)

    d = sub.add_parser("decompress", help="decode a .gvc file")
    d.add_argument("input", help=".gvc file")
    d.add_argument("-o", "--output", required=True, help="output video: .mp4, .y4m or .npy")
    d.add_argument("--weights", help="the model folder the stream was made with")
    _add_model_options(d)
    _add_common(d)

    i = sub.add_parser("info", help="print a .gvc header as JSON")
    i.add_argument("input")
    _add_common(i)

    _add_eval_parser(sub)
    cli_batch.add_parser(sub)

    m = sub.add_parser("demo", help="compress a real clip shipped in a registry package")
    m.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    m.add_argument("--frames", type=int, default=None,
                   help="frames of the clip to code (default 32; with --weights 5 on a CPU, "
                        "33 on an accelerator)")
    m.add_argument("--weights", help="a Wan 2.1 T2V folder (official or diffusers layout): run "
                                     "the demo with it instead of the embedded Gaussian prior")
    m.add_argument("--cache-dir", help="cache of converted weights and prompt contexts "
                                       "(default $GVC_CACHE_DIR or ~/.cache/gvc_jax)")
    _add_common(m)
    return p


def _add_model_options(p, placement: bool = True):
    """--dtype and the caches; ``placement``: also --offload/--shard (one GOP on this process's
    devices: not for ``gvc batch``, which replicates the model per device)."""
    from configs.sharding import NAMES as SHARDING_TABLES
    from gvc_jax.codec.params import DTYPES
    from gvc_jax.codec.placement import OFFLOAD

    p.add_argument("--dtype", choices=DTYPES, help="compute dtype of the model (default: "
                   "bfloat16 on GPU/TPU, float32 on CPU; decoding: the stream's)")
    p.add_argument("--cache-dir", help="cache of converted weights and prompt contexts "
                                       "(default $GVC_CACHE_DIR or ~/.cache/gvc_jax)")
    p.add_argument("--no-cache", action="store_true", help="convert the weights afresh and "
                                                           "write no cache")
    if not placement:
        return
    p.add_argument("--offload", choices=OFFLOAD, default="auto",
                   help="park the DiT's weights in host memory while the VAE and CLIP run, "
                        "for smaller GPUs (auto: when they take over half the GPU's memory)")
    p.add_argument("--shard", metavar="TABLE", choices=SHARDING_TABLES,
                   help="run each GOP across all local devices with this sharding table "
                        f"({', '.join(SHARDING_TABLES)}; docs/sharding.md)")


def _add_eval_parser(sub):
    e = sub.add_parser("eval", help="rate-distortion evaluation against classical codecs",
                       description="Runs our configs and the ffmpeg baselines on videos and "
                                   "writes results.csv/json, summary.md and RD plots. A rerun "
                                   "with the same --out skips finished rows.")
    e.add_argument("inputs", nargs="+",
                   help="videos (mp4/mkv/y4m/npy, UVG-named raw .yuv), folders of them, or "
                        ".txt lists")
    e.add_argument("--out", required=True, help="results folder (created; reused to resume)")
    e.add_argument("--preset", help="evaluation preset: uvg-720p-gvcc, uvg-720p-gaussian")
    e.add_argument("--gvc", action="append", metavar="SPEC",
                   help="our config and rate settings, e.g. gaussian:M=4,16,64:K=1024 "
                        "(repeatable; default gaussian, or the preset's; none: baselines only)")
    e.add_argument("--baselines", help="comma list of x264,x265,vvc,av1, or none "
                                       "(default all four)")
    e.add_argument("--ladder", action="append", metavar="NAME=KNOB:V1,V2",
                   help="replace a baseline's rate ladder, e.g. x265=crf:30,36,42")
    e.add_argument("--kbps", help="comma list of target bitrates for every baseline")
    e.add_argument("--match-rate", action="store_true", default=None,
                   help="also run each baseline at the kbps of each of our points "
                        "(best crf/qp within that rate)")
    e.add_argument("--no-match-rate", action="store_false", dest="match_rate",
                   help="do not, even if the preset does")
    e.add_argument("--frames", type=int, help="frames per video (default all, preset 99)")
    e.add_argument("--size", help="resize to WxH with Lanczos (e.g. 1280x720)")
    e.add_argument("--weights", help="weights folder for model configs that need them")
    e.add_argument("--lpips-alexnet", help="torchvision alexnet-owt-7be5be79.pth for LPIPS "
                                           "(default: looked for in torch's hub cache)")
    e.add_argument("--no-lpips", action="store_true", help="leave the LPIPS column empty")
    _add_common(e)


def _check_output(path: str) -> None:
    from gvc_jax.codec.errors import UsageError

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"{path}: output folder {folder} does not exist")
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a folder, expected a file name")


def cmd_compress(a) -> int:
    from gvc_jax.codec import api
    from gvc_jax.codec.models import Prompt
    from gvc_jax.codec.params import overrides_from_args
    from gvc_jax.io import read_video
    from gvc_jax.progress import CodecProgress

    overrides = overrides_from_args(a)
    if a.dtype:
        overrides["dtype"] = a.dtype
    if a.max_frames is not None and a.max_frames < 1:
        raise _Usage(f"--max-frames must be >= 1, got {a.max_frames}")
    prompt = Prompt(a.prompt, a.negative_prompt)
    _, _, params = api.params_for(a.config, overrides, a.weights)  # usage errors before any work
    if a.negative_prompt and params.guidance == 1.0:
        raise _Usage("--negative-prompt needs --guidance other than 1")
    api.check_gvc_ext(a.output)
    _check_output(a.output)
    if a.recon:
        api.check_video_ext(a.recon)
        _check_output(a.recon)
    video = read_video(a.input, max_frames=a.max_frames)
    prog = CodecProgress.for_cli(a.quiet, a.progress, params.steps)
    on_gop, on_step = prog.callbacks
    try:
        report = api.compress_file(video, a.output, config=a.config, weights=a.weights,
                                   overrides=overrides, recon_path=a.recon, prompt=prompt,
                                   cache_dir=_cache_dir(a), on_gop=on_gop, on_step=on_step,
                                   log=_log(a), progress=prog.mode == "bar",
                                   kbps=a.kbps, bpp=a.bpp, placement=_placement(a))
    finally:
        prog.close()
    if a.json:
        print(json.dumps(report, indent=2))
    elif not a.quiet:
        print(f"{a.output}: {report['bytes_file']} bytes, {report['bpp']:.5f} bpp, "
              f"{report['kbps']:.2f} kbps, PSNR {report['psnr']:.2f} dB")
        if "target" in report:
            t = report["target"]
            print(f"target {t['bytes']} bytes ({'met' if t['met'] else 'missed'}), "
                  f"M={t['chosen']['M']}")
    return EXIT_OK


def cmd_decompress(a) -> int:
    from gvc_jax.codec import api
    from gvc_jax.progress import CodecProgress

    _check_output(a.output)
    api.check_video_ext(a.output)
    steps = api.info(a.input)["codec"]["steps"]
    prog = CodecProgress.for_cli(a.quiet, a.progress, steps)
    on_gop, on_step = prog.callbacks
    try:
        api.decompress_file(a.input, a.output, weights=a.weights, dtype=a.dtype,
                            cache_dir=_cache_dir(a), on_gop=on_gop, on_step=on_step,
                            log=_log(a), progress=prog.mode == "bar",
                            placement=_placement(a))
    finally:
        prog.close()
    return EXIT_OK


def cmd_info(a) -> int:
    from gvc_jax.codec import api

    print(json.dumps(api.info(a.input), indent=2))
    return EXIT_OK


def cmd_eval(a) -> int:
    from gvc_jax.eval import cli_plan, report, runner

    from gvc_jax.progress import CodecProgress

    plan = cli_plan.plan_from_args(a)
    log = (lambda s: None) if a.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    prog = CodecProgress.for_cli(a.quiet, a.progress)
    on_gop, on_step = prog.callbacks
    try:
        rows = runner.run(plan, log=log, on_gop=on_gop, on_step=on_step)
    finally:
        prog.close()
    notes = {}
    for r in rows:
        notes.update(r.get("notes") or {})
    command = "gvc " + shlex.join(a.argv)
    for p in report.write_all(rows, plan.out, notes, log=log, command=command):
        if not a.quiet:
            print(p)
    return EXIT_OK


def cmd_demo(a) -> int:
    from gvc_jax import demo
    from gvc_jax.codec import api
    from gvc_jax.progress import CodecProgress

    if a.frames is not None and a.frames < 1:
        raise _Usage(f"--frames must be >= 1, got {a.frames}")
    s = demo.settings(a.weights, a.frames)
    _, _, params = api.params_for("gaussian" if not a.weights else None, s["overrides"],
                                  a.weights)  # usage errors (and the step count) before any work
    prog = CodecProgress.for_cli(a.quiet, a.progress, params.steps)
    on_gop, on_step = prog.callbacks
    try:
        demo.run(a.out, frames=a.frames, on_gop=on_gop, on_step=on_step,
                 log=None if a.quiet else (lambda s: print(s, file=sys.stderr)),
                 weights=a.weights, cache_dir=a.cache_dir, progress=prog.mode == "bar")
    finally:
        prog.close()
    return EXIT_OK


def _classify(exc: BaseException) -> int:
    from gvc_jax.weights.sources import CheckpointError
    from gvc_jax.weights.table import ConversionError
    from gvc_jax.bitstream.errors import BitstreamError
    from gvc_jax.codec.errors import ModelMismatchError, UsageError
    from gvc_jax.io import VideoIOError

    if isinstance(exc, UsageError):
        return EXIT_USAGE
    if isinstance(exc, (BitstreamError, ModelMismatchError, VideoIOError, CheckpointError,
                        ConversionError)):
        return EXIT_BAD_INPUT
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, PermissionError)):
        return EXIT_BAD_INPUT
    return EXIT_INTERNAL


def _is_tool_failure(exc: BaseException) -> bool:
    """An external tool (ffmpeg) or the system (a full or read-only disk) failed: exit 1, but
    the message says what happened; it is not the program's internal error."""
    from gvc_jax.eval.ffmpeg import BaselineError

    return isinstance(exc, (BaselineError, OSError))


def main(argv=None) -> int:
    """The ``gvc`` command. As a process entry (``argv`` None) it also turns on JAX's persistent
    compilation cache (:mod:`gvc_jax.jitcache`); called in-process it leaves JAX's settings
    alone."""
    entry = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        parser = build_parser()
        a = parser.parse_args(argv)
        if entry and hasattr(a, "cache_dir"):
            from gvc_jax import jitcache
            jitcache.enable(False if getattr(a, "no_cache", False) else a.cache_dir)
        if a.cmd is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        a.argv = argv
        fn = {"compress": cmd_compress, "decompress": cmd_decompress, "info": cmd_info,
              "eval": cmd_eval, "demo": cmd_demo, "batch": cli_batch.cmd_batch}[a.cmd]
        if a.cmd in ("compress", "eval", "demo", "batch"):      # the commands that search
            from gvc_jax.codebook import ops
            try:
                ops.forced_method()
            except ValueError as e:
                raise _Usage(str(e)) from None
        if threading.current_thread() is threading.main_thread():
            from gvc_jax.interrupt import run_interruptible
            return run_interruptible(lambda: fn(a))
        return fn(a)
    except _Usage as e:
        print(f"gvc: error: {e} (see gvc --help)", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `gvc info x.gvc | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK
    except KeyboardInterrupt:
        print("gvc: error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the CLI's last line of defence
        code = _classify(e)
        if debug:
            traceback.print_exc()
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if code == EXIT_INTERNAL and not _is_tool_failure(e):
            msg = f"internal error: {type(e).__name__}: {msg} (rerun with --debug)"
        print(f"gvc: error: {msg}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
