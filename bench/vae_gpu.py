"""Wan 2.1 VAE on one GPU: JAX (this repo) vs diffusers ``AutoencoderKLWan``, random weights, fp32.

Steps (one command):
1. build a diffusers VAE with random weights (gains, biases and the attention
   projections randomised too), ``save_pretrained`` it, convert it with
   ``gvc-convert vae`` (our converter) to one .safetensors;
2. torch: encode/decode time and ``torch.cuda.max_memory_allocated`` per size;
   latents and frames saved for the error check;
3. JAX: one fresh subprocess per case (so ``peak_bytes_in_use`` is per case),
   first call (compile + run) and a second timed call; rel. L2 vs diffusers.

Both sides use their default fp32 GPU numerics (TF32 convolutions: cuDNN's
``allow_tf32`` in torch, XLA's default precision in JAX); the JSON records it.

    python bench/vae_gpu.py --out bench/results/vae_gpu.json [--tiny] [--part 1|2|all]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

FULL = {"config": "wan2.1", "base_dim": 96,
        "sizes": {"480p": (81, 480, 832), "720p": (33, 720, 1280)},
        "tiled": {"1080p": (33, 1080, 1920)}, "tile": (80, 80), "margin": 8, "blend": 8}
TINY = {"config": "tiny", "base_dim": 8,
        "sizes": {"480p": (9, 48, 64), "720p": (5, 64, 96)},
        "tiled": {"1080p": (5, 96, 160)}, "tile": (10, 10), "margin": 2, "blend": 2}


def _video(t, h, w, seed=0):
    import numpy as np
    return np.random.default_rng(seed).uniform(-1, 1, (1, 3, t, h, w)).astype(np.float32)


def _rel(a, b):
    import numpy as np
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# ------------------------------------------------------------------ torch side
def build_reference(spec, work):
    import torch
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    m = AutoencoderKLWan(base_dim=spec["base_dim"]).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("gamma"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
            elif name.endswith("proj.weight"):
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5)
    m.save_pretrained(os.path.join(work, "vae"))
    from convert_weights.vae import cli_convert
    cli_convert([os.path.join(work, "vae"), os.path.join(work, "vae.safetensors"),
                 "--config", spec["config"]])
    return m


def torch_bench(spec, work, dev):
    import numpy as np
    import torch

    m = build_reference(spec, work)
    if dev == "cpu":
        return {}
    m = m.to(dev)
    mean = torch.tensor(m.config.latents_mean, device=dev).view(1, 16, 1, 1, 1)
    std = torch.tensor(m.config.latents_std, device=dev).view(1, 16, 1, 1, 1)
    out = {"cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
           "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32}
    with torch.no_grad():  # warm up cuDNN on a small clip
        m.decode(m.encode(torch.zeros(1, 3, 5, 64, 64, device=dev)).latent_dist.mean)
        for name, (t, h, w) in spec["sizes"].items():
            x = torch.from_numpy(_video(t, h, w)).to(dev)
            torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            mu = m.encode(x).latent_dist.mean
            torch.cuda.synchronize()
            enc_s = time.perf_counter() - t0
            enc_peak = torch.cuda.max_memory_allocated()
            z = (mu - mean) / std
            del x
            torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            y = m.decode(z * std + mean).sample
            torch.cuda.synchronize()
            dec_s = time.perf_counter() - t0
            dec_peak = torch.cuda.max_memory_allocated()
            np.save(os.path.join(work, f"torch_z_{name}.npy"), z.cpu().numpy())
            np.save(os.path.join(work, f"torch_y_{name}.npy"), y.cpu().numpy())
            out[name] = {"shape_tchw": [t, h, w], "encode_s": enc_s, "encode_peak_gb": enc_peak / 2**30,
                         "decode_s": dec_s, "decode_peak_gb": dec_peak / 2**30,
                         "decode_frac_clamped": float((y.abs() >= 1).float().mean())}
            del y, z, mu
            torch.cuda.empty_cache()
            print("torch", name, out[name], flush=True)
    return out


def _load_vae(path: str, config: str):
    """A ``WanVAE`` converted from ``path`` (float32 parameters)."""
    from configs.wan_vae import get_config
    from gvc_jax.models.wan.vae import WanVAE
    from gvc_jax.weights import vae as wvae
    from gvc_jax.weights.table import load_into

    cfg = get_config(config)
    arrays, _ = wvae.conversion(wvae.read(path), cfg, dtype="float32").run()
    return WanVAE(cfg, load_into(wvae.vae_factory(cfg), arrays))


# ------------------------------------------------------------------ JAX side (subprocess)
def jax_case(spec, work, op, name, tiled):
    import jax
    import jax.numpy as jnp
    import numpy as np

    jax.config.update("jax_compilation_cache_dir", os.path.join(work, "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    vae = _load_vae(os.path.join(work, "vae.safetensors"), spec["config"])
    t, h, w = (spec["tiled"] if tiled else spec["sizes"])[name]
    kw = dict(tile=tuple(spec["tile"]), margin=spec["margin"], blend=spec["blend"]) if tiled else {}
    res = {"op": op, "size": name, "shape_tchw": [t, h, w], "tiled": kw or None}
    if op == "encode":
        inp = jnp.asarray(_video(t, h, w))
        fn = vae.encode_bcthw
    else:
        zp = os.path.join(work, f"torch_z_{name}.npy")
        z = np.load(zp) if os.path.exists(zp) else np.random.default_rng(2).standard_normal(
            (1, 16, 1 + (t - 1) // 4, h // 8, w // 8)).astype(np.float32)
        inp = jnp.asarray(z)
        fn = vae.decode_bcthw
    t0 = time.perf_counter()
    y = jax.block_until_ready(fn(inp, **kw))
    res["first_call_s"] = time.perf_counter() - t0
    del y
    t0 = time.perf_counter()
    y = jax.block_until_ready(fn(inp, **kw))
    res["time_s"] = time.perf_counter() - t0
    stats = jax.devices()[0].memory_stats() or {}
    res["peak_gb"] = stats.get("peak_bytes_in_use", float("nan")) / 2**30
    ref = os.path.join(work, f"torch_{'z' if op == 'encode' else 'y'}_{name}.npy")
    if os.path.exists(ref) and not tiled:
        res["rel_l2_vs_diffusers"] = _rel(np.asarray(y), np.load(ref))
    if op == "decode":
        res["frac_clamped"] = float(jnp.mean(jnp.abs(y) >= 1))
    return res


def tiling_error(spec, work, name):
    """Tiled vs untiled (random weights, attention on) at one untiled-feasible size."""
    import jax.numpy as jnp
    import numpy as np

    vae = _load_vae(os.path.join(work, "vae.safetensors"), spec["config"])
    t, h, w = spec["sizes"][name]
    kw = dict(tile=tuple(spec["tile"]), margin=spec["margin"], blend=spec["blend"])
    x = jnp.asarray(_video(t, h, w))
    z = vae.encode_bcthw(x)
    zt = vae.encode_bcthw(x, **kw)
    zr = np.load(os.path.join(work, f"torch_z_{name}.npy")) if os.path.exists(
        os.path.join(work, f"torch_z_{name}.npy")) else np.asarray(z)
    y = vae.decode_bcthw(jnp.asarray(zr))
    yt = vae.decode_bcthw(jnp.asarray(zr), **kw)
    return {"op": "tiling_error", "size": name, "tiled": kw,
            "encode_rel_l2_tiled_vs_untiled": _rel(zt, z),
            "decode_rel_l2_tiled_vs_untiled": _rel(yt, y),
            "decode_max_abs_tiled_vs_untiled": float(jnp.max(jnp.abs(jnp.asarray(yt) - y)))}


def run_twice(args, extra):
    """Runs a case in a fresh process, then again in another one that loads the compiled
    executable from JAX's persistent cache: its ``peak_bytes_in_use`` then excludes
    compile-time autotuning scratch (which the first process's peak includes)."""
    r1 = run_sub(args, extra)
    r2 = run_sub(args, extra)
    if "error" in r1 or "error" in r2:
        return {"first": r1, "second": r2}
    r = dict(r1)
    r["peak_gb_first_process"] = r1["peak_gb"]
    r["peak_gb"] = r2["peak_gb"]
    r["first_call_s_cached_process"] = r2["first_call_s"]
    r["time_s_cached_process"] = r2["time_s"]
    return r


def run_sub(args, extra):
    cmd = [sys.executable, os.path.abspath(__file__), "--work", args.work, "--case", *extra] + (
        ["--tiny"] if args.tiny else [])
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        print(p.stdout[-2000:], p.stderr[-4000:], flush=True)
        return {"case": extra, "error": p.stderr.strip().splitlines()[-1:] or ["?"],
                "wall_s": time.perf_counter() - t0}
    line = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")][-1]
    r = json.loads(line[7:])
    r["subprocess_wall_s"] = time.perf_counter() - t0
    print("jax", r, flush=True)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--part", default="all", choices=("1", "2", "all"))
    ap.add_argument("--work", default="/tmp/vae_bench")
    ap.add_argument("--case", nargs="*")
    args = ap.parse_args()
    spec = TINY if args.tiny else FULL
    if args.case:  # subprocess mode
        op, name = args.case[0], args.case[1]
        if op == "tiling_error":
            r = tiling_error(spec, args.work, name)
        else:
            r = jax_case(spec, args.work, op, name, tiled=len(args.case) > 2)
        print("RESULT " + json.dumps(r), flush=True)
        return
    os.makedirs(args.work, exist_ok=True)
    import jax
    import torch
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    res = {"command": "python " + " ".join([os.path.relpath(__file__, ROOT)] + sys.argv[1:]),
           "device": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
           "jax_version": jax.__version__, "torch_version": torch.__version__, "config": spec["config"],
           "dtype": "float32", "weights": "random (diffusers init, gains/biases/attn proj randomised)",
           "jax_precision": "XLA default (TF32 convs on GPU)"}
    t0 = time.perf_counter()

    def dump():  # partial results survive a timeout
        res["total_wall_s"] = time.perf_counter() - t0
        if args.out:
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            with open(args.out, "w") as f:
                json.dump(res, f, indent=1)

    if args.part in ("1", "all"):
        res["torch"] = torch_bench(spec, args.work, dev)
        dump()
        jx = res["jax"] = []
        for name in spec["sizes"]:
            for op in ("encode", "decode"):
                jx.append(run_sub(args, [op, name]))
                dump()
    if args.part in ("2", "all"):
        if not os.path.exists(os.path.join(args.work, "vae.safetensors")):
            build_reference(spec, args.work)
        jt = res["jax_tiled"] = []
        for name in spec["tiled"]:
            for op in ("encode", "decode"):
                jt.append(run_twice(args, [op, name, "tiled"]))
                dump()
        jt.append(run_sub(args, ["tiling_error", list(spec["sizes"])[-1]]))
        dump()
        jp = res["jax_untiled_peak"] = []
        for name in spec["sizes"]:
            jp.append(run_twice(args, ["decode", name]))
            dump()
    dump()
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
