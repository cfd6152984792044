"""The headline speed figures on the H200 in one file, read from the runs' own JSON.

    python bench/perf_summary.py          # writes bench/results/perf_h200.json

Each key of ``FIGURES`` names the JSON a run committed under ``bench/results/``, the path of
the figure inside it and what the figure means. A key whose run is missing, or whose JSON was
written on another device, is ``null`` with the reason beside it: nothing here is typed in by
hand. Each entry carries the command of its run (the JSON's own ``command``, or the one the
table names where an older JSON did not record it).
"""
from __future__ import annotations

import argparse
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
DEVICE = "H200"

# key -> (json under bench/results, path in it, scale, meaning, command if the JSON has none)
FIGURES = {
    "dit_1.3b_480p_s": (
        "h200/dit_gpu.json", ["wan_1.3b_480p_81f", "jax_bf16_median_s"], 1.0,
        "Wan 1.3B DiT forward, 480p x 81 frames (32,760 tokens), bf16, median", None),
    "diffusers_dit_1.3b_480p_s": (
        "h200/dit_gpu.json", ["wan_1.3b_480p_81f", "diffusers_bf16_median_s"], 1.0,
        "diffusers WanTransformer3DModel, same inputs and weights, bf16, median", None),
    "dit_1.3b_480p_rel_l2_vs_diffusers_fp32": (
        "h200/dit_gpu_fp32check.json", ["wan_1.3b_480p_81f", "rel_l2_jax_bf16_vs_diffusers_fp32"],
        1.0, "our bf16 forward against diffusers in fp32 (target <= 0.004)", None),
    "dit_14b_720p_s": (
        "h200/dit_gpu.json", ["wan_14b_720p_33f", "median_s"], 1.0,
        "Wan 14B DiT forward, 720p x 33 frames (32,400 tokens), bf16, median", None),
    "codebook_9f_720p_ms": (
        "h200/codebook_gpu.json", ["timings", "rows", {"what": "select_topm", "F": 9}, "seconds"],
        1e3, "select_topm (scores and top-M sort) over 9 latent frames of 16x90x160, K=16384, "
        "M=64, through the default method: the Mosaic GPU kernel on CUDA (pytest -m gpu checks "
        "that it is the default there)", None),
    "codebook_9f_720p_xla_ms": (
        "h200/codebook_gpu.json", ["timings", "rows", {"what": "scores", "F": 9,
                                                       "method": "fused"}, "seconds"],
        1e3, "the XLA path (\"fused\", the default before the kernel) in the same run: scores "
        "only, its sort adds ~0.1 ms", None),
    "codebook_9f_720p_mosaic_splits_ms": (
        "h200/profile_codebook_mosaic.json", ["codebook", "rows", {"what": "mosaic_s32"},
                                              "seconds"],
        1e3, "the kernel's scores alone under the profiler, 32 splits", None),
    "gop_1.3b_720p_encode_s": (
        "wan_t2v_h200/wan_t2v_1.3b_mosaic.json", ["encode_warm_s"], 1.0,
        "one 33-frame 720p GOP, warm: VAE encode and the 20-step search (Mosaic codebook kernel)",
        None),
    "gop_1.3b_720p_decode_s": (
        "wan_t2v_h200/wan_t2v_1.3b_mosaic.json", ["decode_warm_s_0"], 1.0,
        "the same GOP decoded, warm: 20-step replay and VAE decode", None),
    "gop_14b_720p_encode_s": (
        "h200/sharded_14b_2gpu.json", ["cases", "1dev", "encode_s"], 1.0,
        "one 33-frame 720p GOP on 1 GPU, warm: the 20-step search (DiT steps and codebook) "
        "without the VAE encode (0.91 s at 720p, bench/results/vae_gpu.json); from the "
        "sharded bench's 1-GPU case", None),
    "gop_14b_720p_encode_first_s": (
        "wan_t2v_h200/wan_t2v_14b.json", ["encode_first_s"], 1.0,
        "the same GOP end to end through the codec, FIRST call (JIT included)", None),
    "gop_14b_720p_decode_s": (
        "wan_t2v_h200/wan_t2v_14b.json", ["decode_warm_s_0"], 1.0,
        "the same GOP decoded, warm", None),
    "gop_14b_i2v_720p_encode_warm_s": (
        "wan_image_h200/i2v_14b_720p_3gop.json", ["per_gop", {"gop": 1, "phase": "encode"},
                                                   "seconds"], 1.0,
        "14B I2V, GOP 1 of a 3-GOP chain: VAE encode, conditioning and the search", None),
    "gop_14b_i2v_720p_decode_warm_s": (
        "wan_image_h200/i2v_14b_720p_3gop.json", ["per_gop", {"gop": 1, "phase": "decode"},
                                                   "seconds"], 1.0,
        "14B I2V, GOP 1: the decoder's replay, residual and VAE decode", None),
    "first_step_1.3b_second_process_s": (
        "h200/first_step_1.3b.json", ["second_process_first_step_s"], 1.0,
        "a second 1.3B process, caches warm: spawn to its first sampler step (target <= 15)",
        None),
    "gop_14b_2gpu_speedup": (
        "h200/sharded_14b_2gpu.json", ["comparison", "wan-seq", "encode_speedup"], 1.0,
        "one 14B GOP over 2 GPUs against 1 (target >= 1.7)", None),
    "sharded_decoded_psnr_diff_db": (
        "h200/sharded_14b_2gpu.json", ["comparison", "wan-seq", "decoded_latent_psnr_diff_db"],
        1.0, "PSNR of the decoded latent against the target, 2-GPU stream minus 1-GPU stream "
        "(latent space, random weights; target within 0.05 dB)", None),
    "dit_1.3b_480p_attention_share": (
        "h200/profile_gpu.json", ["dit", "rows", "cudnn", "trace", "by_kind_share", "attention"],
        1.0, "share of the traced 1.3B forward's GPU time in cuDNN flash attention", None),
    "gop_batch_2gpu_speedup": (
        "h200/batch_2gpu.json", ["encode_throughput_speedup"], 1.0,
        "GOPs per second, data parallel over 2 GPUs against 1 (target >= 1.9)", None),
}


def _dig(obj, path):
    for p in path:
        if isinstance(p, dict):      # the first list item whose fields match
            obj = next(x for x in obj if all(x.get(k) == v for k, v in p.items()))
        else:
            obj = obj[p]
    return obj


def figure(key: str) -> dict:
    rel, path, scale, meaning, command = FIGURES[key]
    out = {"value": None, "meaning": meaning, "source": f"bench/results/{rel}"}
    try:
        with open(os.path.join(RESULTS, rel)) as f:
            run = json.load(f)
    except FileNotFoundError:
        return {**out, "missing": "not measured yet: no such run is committed"}
    device = str(run.get("device", ""))
    if DEVICE not in device:
        return {**out, "missing": f"that run is from {device or 'an unnamed device'}, "
                                  f"not an {DEVICE}"}
    try:
        value = _dig(run, path)
    except (KeyError, IndexError, StopIteration, TypeError):
        return {**out, "missing": f"the run has no {'/'.join(map(str, path))}"}
    out["value"] = None if value is None else float(f"{float(value) * scale:.4g}")
    out["command"] = run.get("command") or command
    out["device"] = device
    return out


def summary() -> dict:
    figs = {k: figure(k) for k in FIGURES}
    devices = sorted({f["device"] for f in figs.values() if "device" in f})
    return {"device": devices[0] if len(devices) == 1 else devices,
            "command": "python bench/perf_summary.py",
            "note": "random weights of the real shapes wherever a model is involved",
            **{k: f["value"] for k, f in figs.items()},
            "figures": figs}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(RESULTS, "perf_h200.json"))
    a = ap.parse_args()
    s = summary()
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(s, f, indent=1)
        f.write("\n")
    os.replace(tmp, a.out)
    for k, f in s["figures"].items():
        print(f"{k:34s} {f['value'] if f['value'] is not None else '-':>10}  "
              f"{f.get('missing', '')}")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
