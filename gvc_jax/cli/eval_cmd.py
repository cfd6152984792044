"""``gvc eval``: its flags and command (docs/eval.md)."""
from __future__ import annotations

import shlex
import sys

from gvc_jax.cli.common import EXIT_OK, add_common


def add_parser(sub):
    e = sub.add_parser("eval", help="rate-distortion evaluation against classical codecs",
                       description="Runs our configs and the ffmpeg baselines on videos and "
                                   "writes results.csv/json, summary.md and RD plots. A rerun "
                                   "with the same --out skips finished rows.")
    e.add_argument("inputs", nargs="+",
                   help="videos (mp4/mkv/y4m/npy, UVG-named raw .yuv), folders of them, or "
                        ".txt lists")
    e.add_argument("--out", required=True, help="results folder (created; reused to resume)")
    e.add_argument("--preset", help="evaluation preset: uvg-720p-gvcc, uvg-720p-gvcc-i2v, "
                                    "uvg-720p-gvcc-flf2v, uvg-720p-gaussian, uvg-1080p-dcvc "
                                    "(docs/eval.md)")
    e.add_argument("--protocol", metavar="NAME[,NAME]",
                   help="how frames are built and rate is counted: ours (default), gvcc "
                        "(GVCC's frames and its rate count beside ours), dcvc (4:2:0 planes in, "
                        "PSNR on the planes); a comma list runs each as its own rows")
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
    e.add_argument("--dists-vgg", help="torchvision vgg16-397923af.pth for DISTS (default: "
                                       "looked for in torch's hub cache)")
    e.add_argument("--no-dists", action="store_true", help="leave the DISTS column empty")
    e.add_argument("--bd-anchor", metavar="CODEC",
                   help="BD-rates of every codec against this one (e.g. vvc, x265, "
                        "gvc-gaussian; none: no BD table): bd.json and a summary table")
    e.add_argument("--bd-method", choices=("pchip", "akima", "cubic"), default="pchip",
                   help="BD interpolation (default pchip, as JVET's sheet)")
    add_common(e)


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
    for p in report.write_all(rows, plan.out, notes, log=log, command=command,
                              published=plan.published, bd_anchor=plan.bd_anchor,
                              bd_method=plan.bd_method):
        if not a.quiet:
            print(p)
    return EXIT_OK
