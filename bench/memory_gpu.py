"""Wan 1.3B T2V GOPs in a capped GPU memory pool, and the bf16-vs-fp32 decode PSNR (GPU).

Each run is a child process whose JAX pool is preallocated and capped
(``XLA_PYTHON_CLIENT_PREALLOCATE=true``, ``XLA_PYTHON_CLIENT_MEM_FRACTION`` = pool / card: the
cap holds only with preallocation). It builds random weights of the real shapes on the device
(``bench/fp8_models.py``: no download, no umT5), codes one 33-frame GOP of a synthetic clip
with GVCC's T2V preset (``core.compress``), then decodes the stream (``core.decompress``) and
checks it equals the encoder's reconstruction. The parent samples ``nvidia-smi`` every 0.5 s
for what the card shows (the process's footprint, CUDA context included).

Runs (``--runs``):

* ``480p-blocked``: 832x480x33 with ``GVC_ATTENTION=blocked`` (the memory-bounded attention a
  GPU without cuDNN flash attention gets) in a 14 GiB pool (a 16 GB T4 less its context);
* ``720p``: 1280x720x33, automatic attention (cuDNN flash on Hopper), in a 22 GiB pool (a
  24 GB card);
* ``fp32-decode``: the 720p stream decoded once more with the DiT in float32 (cuDNN refuses
  float32, so the blocked attention runs), uncapped; PSNR of that decode against the bf16 one.

The pools follow ``gvc fit --target gpu`` on an H100 (``bench/results/gpu_h100/``): its largest
program is the VAE decode, 8.5 GiB at 480p and 18.9 GiB at 720p, plus the DiT's 2.7 GiB of
weights. Earlier runs in 8 and 12 GiB pools ran out of memory in the sampler's GOP scan
(``jit_encode_gop``), asking for 5.87 and 11.97 GiB at once, where ``gvc fit`` compiled that
program with 0.67 and 1.50 GiB of temporaries: the disagreement is not explained yet.

Times include JIT compilation of the first call in each process (``encode_s``: the first
compress, encoder side; ``decode_s``: the decoder alone after it, its programs compiled by the
compress's reconstruction). Random weights make the pictures meaningless; memory and times are
real.

    python bench/memory_gpu.py --out bench/results/memory_gpu.json
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from fractions import Fraction

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# name -> (width, height, frames, attention forced or None, pool GiB or None, dtype)
RUNS = {
    "480p-blocked": (832, 480, 33, "blocked", 14.0, "bfloat16"),
    "720p": (1280, 720, 33, None, 22.0, "bfloat16"),
    "fp32-decode": (1280, 720, 33, None, None, "float32"),
}


def log(msg):
    print(f"[memory {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def gpu_name_and_gib() -> tuple[str, float]:
    out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total",
                          "--format=csv,noheader,nounits"], capture_output=True, text=True,
                         check=True).stdout.strip().splitlines()[0]
    name, mib = (s.strip() for s in out.split(","))
    return name, float(mib) / 1024


class Sampler:
    """Peak of ``nvidia-smi``'s memory.used for the card, sampled every 0.5 s."""

    def __init__(self):
        self.peak_mib, self._stop = 0.0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used",
                                      "--format=csv,noheader,nounits"], capture_output=True,
                                     text=True, timeout=5).stdout
                self.peak_mib = max(self.peak_mib, float(out.split()[0]))
            except Exception:  # noqa: BLE001 - a missed sample is not a result
                pass
            self._stop.wait(0.5)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def child(spec: dict) -> dict:
    """One run in this process (its pool already capped by the parent's environment)."""
    from configs.wan_dit import get_config
    from fp8_models import codec_model, psnr, random_dit, random_vae, synthetic_clip
    from gvc_jax.codec import api, core

    w, h, t = spec["width"], spec["height"], spec["frames"]
    tiny = spec.get("tiny", False)
    name, dtype = ("wan2.1-t2v" if tiny else "wan2.1-t2v-1.3b"), spec["dtype"]
    cfg = get_config("tiny-t2v" if tiny else "t2v-1.3b")
    t0 = time.perf_counter()
    vae = random_vae(tiny, 0)
    model = codec_model(name, cfg, random_dit(cfg, dtype, 0), vae, dtype, "auto", 0)
    out = {"init_s": time.perf_counter() - t0}
    log(f"{spec['name']}: random {dtype} model in {out['init_s']:.1f} s")
    work = spec["work"]
    if spec["name"] == "fp32-decode":
        data = open(os.path.join(work, "720p.gvc"), "rb").read()
        t0 = time.perf_counter()
        dec, _, _ = core.decompress(data, lambda *_: model)
        out["decode_s"] = time.perf_counter() - t0
        bf16 = np.load(os.path.join(work, "720p.npy"))
        out["stream_bytes"] = len(data)
        out["psnr_bf16_vs_fp32_db"] = psnr(dec, bf16)
        out["completed"] = True
        log(f"fp32 decode {out['decode_s']:.1f} s, PSNR vs bf16 {out['psnr_bf16_vs_fp32_db']:.2f}")
        return out
    over = {"dtype": dtype}
    if tiny:
        over.update(K=64, M=2, steps=3, sde_steps=2, gop_frames=t)
    _, mode, params = api.params_for(name, over)
    frames = synthetic_clip(t, h, w, 0)
    enc = core.compress(frames, Fraction(25), model, params, mode=mode)
    out.update(encode_s=enc.encode_seconds, recon_decode_s=enc.decode_seconds,
               bytes=len(enc.data), K=params.K, M=params.M, steps=params.steps)
    log(f"{spec['name']}: encode {enc.encode_seconds:.1f} s, {len(enc.data)} bytes")
    t0 = time.perf_counter()
    dec, _, _ = core.decompress(enc.data, lambda *_: model)
    out["decode_s"] = time.perf_counter() - t0
    out["decode_equals_recon"] = bool(np.array_equal(dec, enc.recon))
    out["completed"] = out["decode_equals_recon"]
    import jax
    stats = jax.devices()[0].memory_stats() or {}
    out["jax_peak_bytes_in_use_gib"] = stats.get("peak_bytes_in_use", 0) / 2 ** 30
    out["jax_bytes_limit_gib"] = stats.get("bytes_limit", 0) / 2 ** 30
    with open(os.path.join(work, f"{spec['name']}.gvc"), "wb") as f:
        f.write(enc.data)
    np.save(os.path.join(work, f"{spec['name']}.npy"), dec)
    log(f"{spec['name']}: decode {out['decode_s']:.1f} s, equals recon {out['completed']}")
    return out


def run_one(name: str, work: str, card_gib: float, timeout: float) -> dict:
    w, h, t, attention, pool, dtype = RUNS[name]
    row = {"config": "wan2.1-t2v-1.3b", "name": name, "width": w, "height": h, "frames": t,
           "dtype": dtype, "attention": attention or "auto (cuDNN flash where it takes the "
                                                      "call, else blocked)",
           "pool_gib": pool, "card_gib": None, "encode_s": None, "decode_s": None,
           "completed": False}
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("GVC_ATTENTION", None)
    if attention:
        env["GVC_ATTENTION"] = attention
    if pool:
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "true"
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{pool / card_gib:.4f}"
    else:
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    spec = dict(name=name, width=w, height=h, frames=t, dtype=dtype, work=work)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)]
    log(f"{name}: {w}x{h}x{t} {dtype}, attention {attention or 'auto'}, pool "
        f"{pool or 'uncapped'} GiB")
    t0 = time.perf_counter()
    with Sampler() as s:
        try:
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
            rc, text = p.returncode, p.stdout + p.stderr
        except subprocess.TimeoutExpired as e:
            rc, text = "timeout", (e.stdout or b"").decode() + (e.stderr or b"").decode()
    row["wall_s"] = time.perf_counter() - t0
    row["card_gib"] = s.peak_mib / 1024
    sys.stdout.write(text[-4000:])
    res = [ln for ln in text.splitlines() if ln.startswith("RESULT ")]
    if rc == 0 and res:
        row.update(json.loads(res[-1][7:]))
    else:
        tail = [ln for ln in text.splitlines() if ln.strip()][-3:]
        row["error"] = f"exit {rc}: " + " | ".join(tail)[-600:]
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=",".join(RUNS))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench/results/memory_gpu.json"))
    ap.add_argument("--work", default="/tmp/memory_gpu")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per run")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print("RESULT " + json.dumps(child(json.loads(a.child))), flush=True)
        return 0
    names = [n for n in a.runs.split(",") if n]
    if set(names) - set(RUNS):
        ap.error(f"unknown runs {sorted(set(names) - set(RUNS))}; known: {', '.join(RUNS)}")
    os.makedirs(a.work, exist_ok=True)
    gpu, card = gpu_name_and_gib()
    res = {"command": "python bench/memory_gpu.py " + " ".join(map(shlex.quote, argv or
                                                                     sys.argv[1:])),
           "gpu": gpu, "card_total_gib": card, "weights": "random, of the real shapes",
           "runs": [], "psnr_bf16_vs_fp32_db": None}
    if os.path.isfile(a.out):                  # runs of earlier commands on the same GPU
        with open(a.out) as f:
            old = json.load(f)
        if old.get("gpu") == gpu:
            res["command"] = old["command"] + " && " + res["command"]
            res["runs"] = [r for r in old["runs"] if r.get("name") not in names]
            res["psnr_bf16_vs_fp32_db"] = old.get("psnr_bf16_vs_fp32_db")
    for name in names:
        row = run_one(name, a.work, card, a.timeout)
        if name == "fp32-decode":
            res["psnr_bf16_vs_fp32_db"] = row.get("psnr_bf16_vs_fp32_db")
        res["runs"].append(row)
        with open(a.out + ".tmp", "w") as f:
            json.dump(res, f, indent=1)
        os.replace(a.out + ".tmp", a.out)
        log(f"{name}: completed {row['completed']}, card {row['card_gib']:.1f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
