"""``gvc fit``: does a configuration fit an accelerator, before any weight is downloaded
(docs/fit.md). Compiles one GOP's programs for the target with abstract weights."""
from __future__ import annotations

import json
import sys

from gvc_jax.cli.common import EXIT_OK, Usage, add_common, log

TARGET_HELP = ("tpu-v5e-1, tpu-v5e-4, tpu-v5e-8, tpu-v6e-1, tpu-v6e-8, tpu-v5p-8 (compiled by "
               "libtpu on any machine: pip install \"gvc-jax[tpu]\"), or gpu (this machine's GPU)")
PROGRAM_NAMES = "dit_encode, dit_decode, vae_encode, vae_decode, umt5, clip"


def add_parser(sub):
    f = sub.add_parser(
        "fit", help="does a configuration fit an accelerator (compiled, not run)",
        description="Compiles the codec's programs for one GOP (the DiT encoder and decoder "
                    "scans with the codebook search, the VAE, umT5, CLIP) for TARGET with "
                    "abstract weights, and reports per-chip memory, whether it fits and a "
                    "roofline time estimate. Nothing runs and no weight is read: TPU figures "
                    "are compiled and fitted, not run.")
    f.add_argument("--target", required=True, metavar="TARGET", help=TARGET_HELP)
    f.add_argument("--config", help="a Wan preset (e.g. wan2.1-t2v-1.3b, wan2.1-t2v-14b, "
                                    "wan2.1-i2v-14b-720p); default: the one --weights holds")
    f.add_argument("--weights", metavar="DIR",
                   help="a Wan folder whose config files give the architecture (no weight "
                        "is read)")
    f.add_argument("--size", required=True, metavar="WxH", help="frame size, e.g. 832x480")
    f.add_argument("--frames", type=int, help="frames per GOP (default: the preset's)")
    f.add_argument("--mode", choices=("t2v", "i2v", "flf2v"),
                   help="checked against the preset's mode")
    f.add_argument("--shard", metavar="TABLE",
                   help="sharding table of configs/sharding.py for the DiT (default wan-fsdp "
                        "on several chips)")
    f.add_argument("--offload", choices=("auto", "always", "never"), default="auto",
                   help="the codec's --offload: whether the DiT's weights stay on the chip while "
                        "the VAE and CLIP run (default auto)")
    f.add_argument("--programs", metavar="LIST",
                   help=f"comma-separated subset of: {PROGRAM_NAMES}")
    f.add_argument("--json", action="store_true", help="print the report as JSON")
    add_common(f)


def cmd_fit(a) -> int:
    if a.config is None and a.weights is None:
        raise Usage("gvc fit needs --config NAME or --weights DIR")
    if a.frames is not None and a.frames < 1:
        raise Usage(f"--frames must be >= 1, got {a.frames}")
    from gvc_jax.fit import FitError, fit, format_table

    config = a.config
    if config is None:
        from gvc_jax.codec.codec_model import detect_config
        config = detect_config(a.weights)
    programs = [p for p in a.programs.split(",") if p] if a.programs else None
    say = log(a)
    try:
        report = fit(a.target, config, a.size, a.frames, mode=a.mode, shard=a.shard,
                     weights=a.weights, programs=programs, log=say,
                     offload=a.offload)
    except FitError as e:
        raise Usage(str(e)) from None
    print(json.dumps(report, indent=1) if a.json else format_table(report))
    sys.stdout.flush()
    return EXIT_OK
