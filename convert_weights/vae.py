"""``gvc-convert vae``: the command line of :mod:`gvc_jax.weights.vae`."""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

from gvc_jax.weights import vae as _lib
from gvc_jax.weights.vae import LAYOUTS, convert_vae, detect_layout

def cli_convert(argv=None) -> int:
    """``gvc-convert vae SRC OUT.safetensors [--config wan2.1] [--layout auto|official|diffusers]``."""
    ap = argparse.ArgumentParser(prog="gvc-convert vae",
                                 description="Convert a Wan 2.1 VAE checkpoint to one .safetensors file.")
    ap.add_argument("src", help="Wan2.1_VAE.pth, a diffusers vae/ folder (or repo root), or a file")
    ap.add_argument("out", help="output .safetensors")
    ap.add_argument("--config", default="wan2.1", help="wan2.1 or tiny")
    ap.add_argument("--layout", default="auto", choices=("auto", *LAYOUTS))
    args = ap.parse_args(argv)
    from safetensors.numpy import save_file

    cfg = _lib._cfg(args.config)
    layout = detect_layout(args.src) if args.layout == "auto" else args.layout
    arrays, fp = convert_vae(args.src, layout, cfg)
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, args.out,
              metadata={"family": "wan_vae", "config": cfg.name, "layout": layout,
                        "fingerprint": fp})
    print(json.dumps({"config": cfg.name, "layout": layout, "fingerprint": fp,
                      "tensors": len(arrays), "out": os.path.abspath(args.out)}))
    return 0
