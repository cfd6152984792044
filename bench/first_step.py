"""Seconds from a process's start to its first sampler step, first and second process.

Target (issue #12): a second Wan 1.3B process, its weights already converted, reaches its first
step in <= 15 s through JAX's persistent compilation cache (gvc_jax/jitcache.py). Each run is a
fresh Python process that does what ``gvc compress`` does (imports, enables the compilation
cache under ``--cache-dir``, loads the model through the weights cache, encodes the source's
first GOP) and reports when each stage ended, counted from the moment the parent spawned it.
Run 1 converts the weights and compiles; run 2 and later find both caches warm.

Random weights of the real shapes (``python -m gvc_jax.testing.random_wan``): the times are real.

    python bench/first_step.py --dit t2v-1.3b --work /tmp/fs --clip bigbuckbunny.mp4 \\
        --out bench/results/h200/first_step_1.3b.json
    python bench/first_step.py --dit tiny-t2v --work /tmp/fs_tiny --size 64x64 \\
        --out /tmp/first_step_tiny.json            # CPU smoke test
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
T_SPAWN = "GVC_BENCH_T_SPAWN"


def child(a) -> None:
    """One measured process: prints one JSON line of stage end times (s since spawn)."""
    t_spawn = float(os.environ[T_SPAWN])
    since = lambda: time.time() - t_spawn  # noqa: E731
    marks = {"python_started": since()}
    import jax
    import numpy as np

    from gvc_jax import jitcache
    from gvc_jax.codec import api, core
    from gvc_jax.codec.codec_model import load_model
    from gvc_jax.codec.prompt import Prompt
    marks["imported"] = since()
    jitcache.enable(a.cache)
    folder = os.path.join(a.work, "weights")
    frames = np.load(os.path.join(a.work, "src.npy"))
    name, mode, params = api.params_for(None, {}, folder)
    model = load_model(name, folder, Prompt(), params, cache_dir=a.cache)
    marks["loaded"] = since()
    steps = []

    def on_step(i):
        if not steps:
            steps.append(since())
    core.compress(frames, 25, model, params, mode=mode, on_step=on_step)
    marks["first_step"] = steps[0] if steps else None
    marks["gop_encoded"] = since()
    print(json.dumps({"marks": marks, "config": name, "backend": jax.default_backend(),
                      "device": str(jax.devices()[0].device_kind)}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dit", default="t2v-1.3b")
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--clip", default=None, help="video (default: a random clip of --size)")
    ap.add_argument("--size", default="720x1280", help="HxW of the random clip")
    ap.add_argument("--frames", type=int, default=33)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a)

    import numpy as np

    os.makedirs(a.work, exist_ok=True)
    folder = os.path.join(a.work, "weights")
    res = {"command": "python bench/first_step.py " + shlex.join(sys.argv[1:]), "runs": []}
    if not os.path.isfile(os.path.join(folder, "config.json")):
        t0 = time.perf_counter()
        which = ["--size", "tiny"] if a.dit == "tiny-t2v" else \
            ["--size", "full", "--variant", a.dit]
        subprocess.run([sys.executable, "-m", "gvc_jax.testing.random_wan", folder, *which],
                       check=True, cwd=ROOT)
        res["write_weights_s"] = time.perf_counter() - t0
    if a.clip:
        from gvc_jax.io import read_video
        frames = read_video(a.clip, max_frames=a.frames).frames
    else:
        h, w = (int(v) for v in a.size.split("x"))
        frames = np.random.default_rng(0).integers(0, 256, (a.frames, h, w, 3), np.uint8)
    np.save(os.path.join(a.work, "src.npy"), frames)
    cache = os.path.join(a.work, "cache")            # fresh caches: run 1 is cold
    subprocess.run(["rm", "-rf", cache], check=True)
    for run in range(a.runs):
        env = dict(os.environ, **{T_SPAWN: repr(time.time())})
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", "--work",
                            a.work, "--cache", cache, "--out", a.out], cwd=ROOT, env=env, capture_output=True,
                           text=True)
        if p.returncode != 0:
            raise SystemExit(f"run {run + 1} failed: {p.stderr[-3000:]}")
        rec = json.loads(p.stdout.strip().splitlines()[-1])
        res["runs"].append(rec["marks"])
        res.update(device=rec["device"], backend=rec["backend"], config=rec["config"])
        print(f"run {run + 1}: " + ", ".join(f"{k} {v:.1f} s" for k, v in rec["marks"].items()
                                             if v is not None), flush=True)
    res["frames"] = list(frames.shape)
    res["second_process_first_step_s"] = res["runs"][-1]["first_step"] if a.runs > 1 else None
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out + ".tmp", "w") as f:
        json.dump(res, f, indent=1)
    os.replace(a.out + ".tmp", a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
