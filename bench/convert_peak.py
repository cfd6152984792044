"""Peak host memory of DiT conversion on a synthetic full-size Wan 1.3B checkpoint.

Writes a random official-layout ``diffusion_pytorch_model.safetensors`` (fp32, like the released
1.3B file; key set from the official ``WanModel`` on the meta device) tensor by tensor, then
converts it in a fresh subprocess (``convert_dit`` -> bf16 arrays + fingerprint, optionally
also the orbax write of ``gvc-convert``) and reports that process's ``ru_maxrss``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def official_shapes(name: str) -> dict:
    import torch

    from configs.wan_dit import get_config
    from gvc_jax.testing.refs import wan22_kwargs
    from gvc_jax.testing.wan22 import load_wan22

    mod = load_wan22("model")
    with torch.device("meta"):
        m = mod.WanModel(**wan22_kwargs(get_config(name)))
    return {k: tuple(v.shape) for k, v in m.state_dict().items()}


def write_safetensors(path: str, shapes: dict, seed: int = 0) -> int:
    """Streams random fp32 tensors into a safetensors file; never holds more than one."""
    header, off = {}, 0
    for k, s in shapes.items():
        n = 4 * math.prod(s)
        header[k] = {"dtype": "F32", "shape": list(s), "data_offsets": [off, off + n]}
        off += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        for k, s in shapes.items():
            a = rng.standard_normal(s, dtype=np.float32) * np.float32(0.02)
            f.write(a.tobytes())
    return os.path.getsize(path)


def child(src: str, name: str, orbax_out: str | None) -> None:
    from configs.wan_dit import get_config
    from gvc_jax.weights.dit import convert_dit, save_orbax

    t0 = time.perf_counter()
    arrays, fp = convert_dit(src, get_config(name))
    t_conv = time.perf_counter() - t0
    nbytes = sum(a.nbytes for a in arrays.values())
    if orbax_out:
        save_orbax(arrays, orbax_out, meta={"fingerprint": fp})
    print(json.dumps(dict(fingerprint=fp, converted_bytes=nbytes, convert_s=t_conv,
                          total_s=time.perf_counter() - t0,
                          ru_maxrss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                          * 1024)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="t2v-1.3b")
    ap.add_argument("--dir", default="/tmp/convert_peak")
    ap.add_argument("--out", default=None)
    ap.add_argument("--orbax", action="store_true", help="also write the orbax checkpoint")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    src = os.path.join(args.dir, "diffusion_pytorch_model.safetensors")
    if args.child:
        return child(src, args.config, os.path.join(args.dir, "orbax") if args.orbax else None)
    os.makedirs(args.dir, exist_ok=True)
    shapes = official_shapes(args.config)
    n_params = sum(math.prod(s) for s in shapes.values())
    t0 = time.perf_counter()
    size = write_safetensors(src, shapes)
    print(f"wrote {size / 2**30:.2f} GiB ({n_params / 1e9:.3f}B params) in "
          f"{time.perf_counter() - t0:.0f}s", flush=True)
    res = dict(command="python " + " ".join(sys.argv), config=args.config, n_params=n_params,
               checkpoint_bytes=size, checkpoint_dtype="float32", target_dtype="bfloat16")
    for mode in (["convert", "convert+orbax"] if args.orbax else ["convert"]):
        cmd = [sys.executable, os.path.abspath(__file__), "--child", "--config", args.config,
               "--dir", args.dir] + (["--orbax"] if mode != "convert" else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
        r = json.loads(out.strip().splitlines()[-1])
        r["ru_maxrss_over_converted"] = r["ru_maxrss_bytes"] / r["converted_bytes"]
        res[mode] = r
        print(mode, json.dumps(r), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
