"""``gvc-convert dit``: the command line of :mod:`gvc_jax.weights.dit`."""
from __future__ import annotations

import argparse
import json
import os

from gvc_jax.weights.dit import LAYOUTS, convert_dit, detect_layout, save_orbax

# ------------------------------------------------------------------ CLI
def cli_convert(argv=None) -> int:
    """``gvc-convert dit SRC OUT --config NAME [--layout auto|official|diffusers]``."""
    from configs.wan_dit import NAMES, get_config

    ap = argparse.ArgumentParser(prog="gvc-convert dit",
                                 description="Convert a Wan 2.1 DiT checkpoint to orbax.")
    ap.add_argument("src", help="checkpoint file/folder, or a diffusers repo root")
    ap.add_argument("out", help="output folder (orbax checkpoint in OUT/params)")
    ap.add_argument("--config", required=True, help="one of " + ", ".join(NAMES))
    ap.add_argument("--layout", default="auto", choices=("auto", *LAYOUTS))
    args = ap.parse_args(argv)
    cfg = get_config(args.config)
    layout = detect_layout(args.src) if args.layout == "auto" else args.layout
    arrays, fp = convert_dit(args.src, cfg, layout)
    save_orbax(arrays, args.out, meta={"family": "wan_dit", "config": cfg.name,
                                       "layout": layout, "fingerprint": fp})
    print(json.dumps({"config": cfg.name, "layout": layout, "fingerprint": fp,
                      "tensors": len(arrays), "out": os.path.abspath(args.out)}))
    return 0
