"""Wan 2.1 I2V / FLF2V 14B through the codec at 720p, random weights of the real shapes (GPU).

Writes a random official-layout folder (``python -m gvc_jax.testing.random_wan --size full``: bf16
DiT with the image branch, real umT5-XXL, VAE and CLIP ViT-H/14 shapes), loads it without the
weight cache (the 64 GiB disk of one H200 machine holds one folder, not a converted copy too), and
codes the first ``--frames`` frames of Big Buck Bunny (1280x720) with the named preset: 33 frames
are one GOP, 97 frames a 3-GOP chain. Records per GOP the encode seconds and the decoder's replay
seconds (the encoder reconstructs with the decoder's own functions) with the peak GPU memory so
far, the bytes by chunk kind, and that the stream decodes again to the encoder's reconstruction
when ``--decode`` is given. ``--offload`` is the codec's weight offload (``gvc --offload``);
``--jax-cache DIR`` points JAX's persistent compilation cache there, so a second process compiles
nothing and its peak is the runtime peak (a compiling process's peak also holds XLA's autotuning
scratch). The JSON is rewritten after every GOP phase.

Random weights make the pictures meaningless; the times, memory and bytes are real.

    python bench/wan_image_gpu.py --dit i2v-14b-720p --config wan2.1-i2v-14b-720p \\
        --frames 97 --work /tmp/wi --out bench/results/wan_image_h200/i2v_14b.json
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


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def peak_gib():
    import jax
    s = jax.devices()[0].memory_stats() or {}
    v = s.get("peak_bytes_in_use")
    return None if v is None else v / 2 ** 30


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dit", required=True, choices=("i2v-14b-720p", "flf2v-14b-720p"))
    ap.add_argument("--config", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--clip", required=True)
    ap.add_argument("--frames", type=int, default=97)
    ap.add_argument("--decode", action="store_true", help="decode the stream again and compare")
    ap.add_argument("--anchor-codec", default=None, help="override the preset's anchor codec")
    ap.add_argument("--offload", default="auto", choices=("auto", "always", "never"))
    ap.add_argument("--jax-cache", default=None, help="persistent compilation cache folder")
    a = ap.parse_args()

    import jax

    if a.jax_cache:
        from gvc_jax import jitcache
        jitcache.enable(a.jax_cache)

    from gvc_jax.codec import api, core
    from gvc_jax.codec.codec_model import load_model
    from gvc_jax.codec.prompt import Prompt
    from gvc_jax.codec.placement import Placement
    from gvc_jax.io import read_video

    res = {"command": "python bench/" + os.path.basename(__file__) + " " + shlex.join(sys.argv[1:]),
           "device": str(jax.devices()[0].device_kind), "jax": jax.__version__,
           "note": "random weights of the real shapes (DiT stored bf16); pictures meaningless, "
                   "times, memory and bytes real"}
    folder = os.path.join(a.work, "weights")
    os.makedirs(a.work, exist_ok=True)
    if not os.path.isfile(os.path.join(folder, "config.json")):   # a folder written before
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gvc_jax.testing.random_wan", folder, "--size",
                        "full", "--variant", a.dit], check=True, cwd=ROOT)
        res["write_weights_s"] = time.perf_counter() - t0
        log(f"weights written in {res['write_weights_s']:.0f} s")
    video = read_video(a.clip, max_frames=a.frames)
    res["clip"] = {"file": os.path.basename(a.clip), "shape": list(video.frames.shape),
                   "fps": float(video.fps)}
    _, mode, params = api.params_for(a.config, {})
    params = api.for_source(params, mode, video.frames, {})
    if a.anchor_codec:
        params = params.replace(anchor_codec=a.anchor_codec)
    res["params"] = {k: getattr(params, k) for k in (
        "K", "M", "M_tail", "steps", "sde_steps", "g_scale", "shift", "gop_frames",
        "residual_step", "anchor_codec", "dtype")}
    t0 = time.perf_counter()
    model = load_model(a.config, folder, Prompt(), params, cache_dir=False, log=log,
                       placement=Placement(offload=a.offload))
    res["offload"] = {"flag": a.offload, "parking": model.offloading}
    res["load_s"] = time.perf_counter() - t0
    res["load_info"] = model.info
    res["peak_after_load_gib"] = peak_gib()
    log(f"loaded in {res['load_s']:.0f} s, peak {res['peak_after_load_gib']} GiB")

    marks = []

    def save():
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out + ".tmp", "w") as f:
            json.dump(res, f, indent=1, default=str)
        os.replace(a.out + ".tmp", a.out)

    def per_gop():   # each phase's seconds and the peak GPU memory at its end
        return [{"gop": g, "phase": w, "seconds": marks[i + 1][2] - t,
                 "peak_gib_at_end": marks[i + 1][3]} for i, (g, w, t, _) in enumerate(marks[:-1])]

    def on_gop(g, n, what):
        marks.append((g, what, time.perf_counter(), peak_gib()))
        res["per_gop"] = per_gop()
        save()
        log(f"GOP {g + 1}/{n} {what}, peak so far {marks[-1][3]} GiB")

    enc = core.compress(video.frames, video.fps, model, params, mode=mode, on_gop=on_gop)
    marks.append((None, "end", time.perf_counter(), peak_gib()))
    res["per_gop"] = per_gop()
    res["encode_s"], res["decode_replay_s"] = enc.encode_seconds, enc.decode_seconds
    rep = api.rate_report(enc.header, enc.data)
    res.update({"gops": len(enc.gops), "bytes": rep["bytes_file"], "bpp": rep["bpp"],
                "kbps": rep["kbps"], "breakdown": rep["breakdown"],
                "index_bits_per_gop": api.index_bits_per_gop(enc.header, model, params),
                "psnr_vs_source_random_weights": float(api.psnr_mean(video.frames, enc.recon))})
    res["peak_gpu_gib"] = peak_gib()
    log(f"{len(enc.gops)} GOPs: encode {enc.encode_seconds:.1f} s, replay "
        f"{enc.decode_seconds:.1f} s, {rep['bytes_file']} bytes, peak {res['peak_gpu_gib']} GiB")
    save()
    if a.decode:
        t0 = time.perf_counter()
        frames, _, _ = api.decode_bytes(enc.data, models={model.name: model})
        res["decode_s"] = time.perf_counter() - t0
        res["decode_equals_recon"] = bool(np.array_equal(frames, enc.recon))
        res["peak_gpu_gib_after_decode"] = peak_gib()
        log(f"decode {res['decode_s']:.1f} s, equals recon {res['decode_equals_recon']}")
        save()
    log(f"wrote {a.out}")


if __name__ == "__main__":
    main()
