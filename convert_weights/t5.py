"""``gvc-convert t5``: the command line of :mod:`gvc_jax.weights.t5`."""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from gvc_jax.weights.sources import CheckpointError
from gvc_jax.weights.t5 import convert_t5, resolve
from gvc_jax.weights.table import ConversionError, fingerprint

def run_cli(argv, *, family: str, prog: str, what: str, convert_fn, get_config, default_config: str) -> int:
    """Shared CLI of the T5 and CLIP converters, shaped like ``gvc-convert dit``:
    ``SRC OUT [--config NAME] [--layout auto|official|diffusers]``. ``OUT`` is an
    orbax folder (``OUT/params`` + ``meta.json``, as the DiT converter writes)
    or, if it ends in ``.safetensors``, one safetensors file (fingerprint in its
    metadata). Prints a JSON line; exit 3 on a bad checkpoint."""
    ap = argparse.ArgumentParser(prog=prog, description=f"Convert a {what} checkpoint.")
    ap.add_argument("src", help="checkpoint file, model folder, or diffusers subfolder")
    ap.add_argument("out", help="output orbax folder, or a .safetensors file")
    ap.add_argument("--config", default=default_config)
    ap.add_argument("--layout", default="auto", choices=("auto", "official", "diffusers"))
    a = ap.parse_args(argv)
    cfg = get_config(a.config)
    try:
        arrays, layout = convert_fn(a.src, cfg, a.layout)
    except (CheckpointError, ConversionError) as e:
        print(f"gvc-convert: error: {e}", file=sys.stderr)
        return 3
    fp = fingerprint(arrays, name=f"{family}:{cfg.name}")
    meta = {"family": family, "config": cfg.name, "layout": layout, "fingerprint": fp}
    if a.out.endswith(".safetensors"):
        from safetensors.numpy import save_file
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, a.out,
                  metadata={k: str(v) for k, v in meta.items()})
    else:
        from gvc_jax.weights.dit import save_orbax
        save_orbax(arrays, a.out, meta=meta)
    print(json.dumps({**meta, "tensors": len(arrays), "out": os.path.abspath(a.out)}))
    return 0


def cli_convert(argv=None) -> int:
    """``gvc-convert t5 SRC OUT [--config umt5-xxl] [--layout auto]``."""
    from configs.wan_text import get_config

    def conv(src, cfg, layout):
        layout = resolve(src, layout)[1]
        return convert_t5(src, cfg, layout), layout

    return run_cli(argv, family="umt5", prog="gvc-convert t5", what="umT5 text-encoder",
                   convert_fn=conv, get_config=get_config, default_config="umt5-xxl")
