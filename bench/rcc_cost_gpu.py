"""rcc's encoder cost per bit at Wan 1.3B's 720p latent frame size, against top-M (docs/rcc.md §5).

Times one step's choices for the 9 latent frames of a 33-frame 720p GOP (D = 16 x 90 x 160 per
frame), one choice per frame (group 1) and one per 9 frames (group 9), for shifted candidates at
several bits per choice, and i.i.d. candidates at 12 bits; top-M's ``select_topm`` (K=16384,
M=64, 664 bits per frame and step) is timed in the same run. Cost only: the directions are
random unit vectors (no model; the Wan models have no denoising-error curve to plan with).

    python bench/rcc_cost_gpu.py --out bench/results/h200/rcc_cost_720p.json
    python bench/rcc_cost_gpu.py --tiny          # CPU smoke test
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from bench.codebook_gpu import _time as _time_all  # noqa: E402
from gvc_jax.bitstream.indices import index_bits  # noqa: E402
from gvc_jax.codebook import candidates as cand  # noqa: E402
from gvc_jax.codebook import ops, shifted  # noqa: E402


def _time(fn, *args, reps: int) -> float:
    """Median seconds of ``fn(*args)`` after one warm-up call (bench/codebook_gpu.py)."""
    return _time_all(fn, *args, reps=reps)[0]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bits", default="12,16,20,24,28")
    ap.add_argument("--chunk", type=int, default=64, help="bases per pass (shift)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--tiny", action="store_true", help="D = 16 x 9 x 16, K = 256 (CPU smoke)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    F, D = (9, 16 * 9 * 16) if a.tiny else (9, 16 * 90 * 160)
    K, M = (256, 8) if a.tiny else (16384, 64)
    rng = np.random.default_rng(0)
    e = rng.standard_normal((F, D)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    e = jnp.asarray(e)
    rows = []
    topm_bits = index_bits(1, [M], K)                  # per frame and step
    t = _time(jax.jit(lambda r: ops.select_topm(3, 0, 5, r, K, M)), e, reps=a.reps)
    rows.append(dict(scheme="topm", K=K, M=M, method=ops.forced_method() or ops.default_method(),
                     seconds_per_step=t, bits_per_step=topm_bits * F,
                     us_per_bit=1e6 * t / (topm_bits * F)))
    print(rows[-1], file=sys.stderr, flush=True)
    want = jnp.full((F,), 3.0, jnp.float32)
    b = 12
    t = _time(jax.jit(lambda r: cand.scores(3, 0, 5, 0, r, 1 << b, min(1 << b, 1024))), e,
              reps=a.reps)
    rows.append(dict(scheme="rcc", family="iid", group=1, bits=b, seconds_per_step=t,
                     bits_per_step=b * F, us_per_bit=1e6 * t / (b * F)))
    print(rows[-1], file=sys.stderr, flush=True)
    for b in [int(x) for x in a.bits.split(",")]:
        for group in (1, F):
            er = e.reshape(F // group, group * D) / math.sqrt(group)
            n_p, _, nb = shifted.layout(b, group * D)
            fn = jax.jit(lambda r, w, b=b: shifted.search(3, 0, 5, 0, r, w, b, a.chunk))
            t = _time(fn, er, want[:F // group], reps=a.reps)
            bits = b * (F // group)
            rows.append(dict(scheme="rcc", family="shift", group=group, bits=b, n_p=n_p,
                             bases=nb, seconds_per_step=t, bits_per_step=bits,
                             us_per_bit=1e6 * t / bits))
            print(rows[-1], file=sys.stderr, flush=True)
    out = {"command": " ".join(["python", "bench/rcc_cost_gpu.py",
                                *(sys.argv[1:] if argv is None else argv)]),
           "device": str(jax.devices()[0].device_kind), "platform": jax.devices()[0].platform,
           "frames": F, "values_per_frame": D, "rows": rows,
           "note": "cost only: random unit directions, no model"}
    text = json.dumps(out, indent=1)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
