"""rcc against top-M with Wan 2.1 1.3B at 720p, random weights of the real shapes (GPU).

Codes the first 33 frames of Big Buck Bunny (1280x720, 9 latent frames of 16 x 90 x 160) with the
T2V preset's top-M and with ``--coding rcc`` at the same bits per latent frame (docs/rcc.md §5),
in one process, and records for each setting: the first and a warm compress (encode, and the
decode of the encoder's reconstruction), a decode from the bytes (equal to the reconstruction?),
the payload bits, the model calls per GOP, and the candidate search alone per step (timed apart
on a random residual of the GOP's shape). rcc settings are ``b:P:T`` = bits per choice, parts
per frame (``--rcc-parts``), tail intervals (``--rcc-tail-steps``) and optionally the tail's
solver (``--rcc-tail-solver``, default rk4); shifted candidates.

Random weights make the pictures and the RD meaningless; the times, bits and exactness are real.

    python bench/wan_rcc_gpu.py --work /tmp/w13 --clip .benchdata/bigbuckbunny.mp4 \\
        --rcc 24:32:16,24:32:8 --out bench/results/h200/rcc/wan_rcc_1.3b.json
    python bench/wan_rcc_gpu.py --work /tmp/w13 --clip .benchdata/bigbuckbunny.mp4 --no-topm \\
        --rcc 24:32:16:dpm2m,24:32:32:dpm2m --out bench/results/h200/rcc/wan_rcc_1.3b_dpm2m.json
    python bench/wan_rcc_gpu.py --tiny --work /tmp/wt --rcc 8:2:2 --out /tmp/wt/r.json  # CPU
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.codebook_gpu import _time  # noqa: E402
from bench.wan_t2v_gpu import log, peak_gib  # noqa: E402
from gvc_jax.bitstream.indices import index_bits  # noqa: E402


def _search_seconds(spec, shape_cthw) -> float:
    """The encoder's choices of one step alone (rcc._pick) on a random residual of the GOP."""
    import jax
    import jax.numpy as jnp

    from gvc_jax.sampler import rcc

    c, f, h, w = shape_cthw
    r = jnp.asarray(np.random.default_rng(0).standard_normal((f, c * h * w)), jnp.float32)
    fn = jax.jit(lambda r: rcc._pick(jnp.uint32(0), jnp.uint32(0), jnp.uint32(3), r,
                                     jnp.float32(0.3), spec))
    return _time(fn, r, reps=3)[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dit", default="t2v-1.3b")
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--clip", default=None)
    ap.add_argument("--frames", type=int, default=33)
    ap.add_argument("--rcc", default="24:32:16,24:32:16:dpm2m",
                    help="b:P:T[:solver] settings, comma separated")
    ap.add_argument("--no-topm", action="store_true", help="skip the top-M reference")
    ap.add_argument("--tiny", action="store_true",
                    help="CPU smoke test: a tiny random folder and a random 5x64x64 clip")
    a = ap.parse_args()

    import jax

    from gvc_jax.codec import api, core
    from gvc_jax.codec.codec_model import load_model
    from gvc_jax.codec.codings.rcc import spec_for
    from gvc_jax.codec.codings.topm import m_per_frame
    from gvc_jax.codec.prompt import Prompt
    from gvc_jax.io import find_sample_clip, read_video

    res = {"command": "python bench/" + os.path.basename(__file__) + " " + shlex.join(sys.argv[1:]),
           "device": str(jax.devices()[0].device_kind), "jax": jax.__version__,
           "note": "random weights of the real shapes (DiT stored bf16): pictures and RD "
                   "meaningless; times, bits and exactness real", "settings": []}
    folder = os.path.join(a.work, "weights")
    if not os.path.isfile(os.path.join(folder, "config.json")):
        t0 = time.perf_counter()
        which = ["--size", "tiny"] if a.tiny else ["--size", "full", "--variant", a.dit]
        subprocess.run([sys.executable, "-m", "gvc_jax.testing.random_wan", folder, *which],
                       check=True, cwd=ROOT)
        res["write_weights_s"] = time.perf_counter() - t0
    if a.tiny:
        from fractions import Fraction
        from types import SimpleNamespace

        rng = np.random.default_rng(0)
        video = SimpleNamespace(frames=rng.integers(0, 256, (5, 64, 64, 3), np.uint8),
                                fps=Fraction(25))
        a.frames = 5
    else:
        video = read_video(a.clip or find_sample_clip("bigbuckbunny.mp4"), max_frames=a.frames)
    res["clip"] = {"shape": list(video.frames.shape), "fps": float(video.fps)}
    model_name, mode, base = api.params_for(None, {}, folder)
    t0 = time.perf_counter()
    model = load_model(model_name, folder, Prompt(), base,
                       cache_dir=os.path.join(a.work, "cache"), log=log)
    res["load_s"] = time.perf_counter() - t0
    shape = model.geometry.latent_shape(a.frames, *video.frames.shape[1:3])
    n_lat = shape[1]
    settings = [] if a.no_topm else [("topm", base, None)]
    per_frame = index_bits(base.sde_steps, list(m_per_frame(base, n_lat)), base.K) // n_lat
    for s in a.rcc.split(","):
        b, p, t, *solver = s.split(":")
        solver = solver[0] if solver else "rk4"
        prm = base.replace(coding="rcc", rcc_bits=per_frame, rcc_choice_bits=int(b),
                           rcc_candidates="shift", rcc_parts=int(p), rcc_tail_steps=int(t),
                           rcc_tail_solver=solver)
        settings.append((f"rcc b={b} P={p} tail={t} {solver}", prm,
                         spec_for(model, prm, shape)))
    res["latent_shape"], res["topm_bits_per_latent_frame"] = list(shape), per_frame
    for name, prm, spec in settings:
        row = {"name": name,
               "model_calls_per_gop": prm.steps if spec is None else spec.model_calls()}
        if spec is not None:
            row.update(bits=spec.bits, parts=spec.parts, steps=spec.n_steps,
                       tail_steps=spec.tail_steps, tail_solver=spec.tail_solver,
                       stop_t=spec.times[-1],
                       rows_per_step=spec.n_rows(n_lat), row_len=spec.row_len(
                           shape[0] * shape[2] * shape[3]))
            row["search_s_per_step"] = _search_seconds(spec, shape)
            row["search_s_per_gop"] = row["search_s_per_step"] * spec.n_steps
        log(f"{name}: {row}")
        enc = core.compress(video.frames, video.fps, model, prm, mode=mode)
        row["encode_first_s"], row["decode_first_s"] = enc.encode_seconds, enc.decode_seconds
        enc2 = core.compress(video.frames, video.fps, model, prm, mode=mode)
        row["encode_warm_s"], row["decode_warm_s"] = enc2.encode_seconds, enc2.decode_seconds
        row["warm_stream_identical"] = enc2.data == enc.data
        t0 = time.perf_counter()
        frames, _, _ = api.decode_bytes(enc.data, weights=folder, models={model_name: model})
        row["decode_from_bytes_s"] = time.perf_counter() - t0
        row["decode_equals_recon"] = bool(np.array_equal(frames, enc.recon))
        rep = api.rate_report(enc.header, enc.data)
        row.update(bytes=rep["bytes_file"], bpp=rep["bpp"], kbps=rep["kbps"],
                   payload_bits_per_gop=api.index_bits_per_gop(enc.header, model, prm))
        bits = sum(row["payload_bits_per_gop"])
        row["encode_warm_ms_per_bit"] = 1e3 * row["encode_warm_s"] / bits
        row["decode_warm_ms_per_bit"] = 1e3 * row["decode_warm_s"] / bits
        row["peak_gpu_gib"] = peak_gib()
        res["settings"].append(row)
        log(f"{name}: encode {row['encode_warm_s']:.1f} s, decode {row['decode_warm_s']:.1f} s "
            f"warm, {bits} bits, {row['model_calls_per_gop']} model calls, decode = recon "
            f"{row['decode_equals_recon']}")
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out + ".tmp", "w") as f:                # each setting as soon as it is done
            json.dump(res, f, indent=1, default=str)
        os.replace(a.out + ".tmp", a.out)
    log(f"wrote {a.out}")


if __name__ == "__main__":
    main()
