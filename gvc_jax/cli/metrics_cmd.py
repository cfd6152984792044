"""``gvc metrics``: its flags and command (docs/metrics.md, "gvc metrics")."""
from __future__ import annotations

import json

from gvc_jax.cli.common import EXIT_OK, Usage, add_common


def add_parser(sub):
    m = sub.add_parser("metrics", help="every quality metric of a video against its reference",
                       description="PSNR (RGB; Y, U, V and weighted YUV on the 4:2:0 planes; mean "
                                   "of frames and sequence), MS-SSIM, LPIPS and DISTS of DIST "
                                   "against REF. Raw .yuv and 4:2:0 .y4m are compared on their "
                                   "planes; RGB inputs through BT.709 limited range.")
    m.add_argument("ref", help="reference: mp4/mkv/y4m/npy, a PNG folder or raw .yuv")
    m.add_argument("dist", help="distorted video, same kinds")
    m.add_argument("--json", action="store_true", help="print the result as JSON")
    m.add_argument("--size", metavar="WxH", help="frame size of raw .yuv inputs whose name "
                                                 "does not give it (UVG-style)")
    m.add_argument("--fps", type=float, help="frame rate of raw .yuv inputs (informative)")
    m.add_argument("--pix-fmt", choices=("yuv420p", "yuv420p10le"),
                   help="pixel format of raw .yuv inputs whose name does not give it")
    m.add_argument("--frames", type=int, help="compare the first N frames only")
    m.add_argument("--lpips-alexnet", help="torchvision alexnet-owt-7be5be79.pth for LPIPS "
                                           "(default: looked for in torch's hub cache)")
    m.add_argument("--dists-vgg", help="torchvision vgg16-397923af.pth for DISTS (default: "
                                       "looked for in torch's hub cache)")
    m.add_argument("--no-lpips", action="store_true", help="leave LPIPS out")
    m.add_argument("--no-dists", action="store_true", help="leave DISTS out")
    add_common(m)


def cmd_metrics(a) -> int:
    from gvc_jax.io.resize import parse_size

    size = None
    if a.size is not None:
        try:
            size = parse_size(a.size)
        except ValueError as e:
            raise Usage(str(e)) from None
    if a.fps is not None and not a.fps > 0:
        raise Usage(f"--fps must be positive, got {a.fps}")
    if a.frames is not None and a.frames < 1:
        raise Usage(f"--frames must be >= 1, got {a.frames}")
    from gvc_jax.eval.pairwise import measure, table

    # why a metric is missing is in the result's notes, printed with it
    result = measure(a.ref, a.dist, size=size, fps=a.fps, pix_fmt=a.pix_fmt, frames=a.frames,
                     alexnet=a.lpips_alexnet, use_lpips=not a.no_lpips, vgg=a.dists_vgg,
                     use_dists=not a.no_dists)
    print(json.dumps(result, indent=1) if a.json else table(result))
    return EXIT_OK
