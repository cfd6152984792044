"""Time and memory of the umT5-XXL encoder (and the CLIP ViT-H/14 tower) on one GPU.

Random weights initialised on the device in bf16 (no checkpoint needed).
Measures, for one prompt padded to 512 tokens: compile time, steady-state
forward time (median of N), weight bytes, XLA's temp/output bytes for the
forward, and the device's peak bytes in use; then frees the encoder and shows
the memory it returns (the codec can encode the context once, cache it, free
the encoder, then load the DiT). Same for CLIP with 1 and 2 images.

    python bench/t5_gpu.py --out bench/results/t5_gpu.json
    python bench/t5_gpu.py --tiny --out /tmp/t5_tiny.json     # CPU smoke test
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from configs import wan_clip, wan_text  # noqa: E402
from gvc_jax.models.wan import clip as mclip  # noqa: E402
from gvc_jax.models.wan import t5 as mt5  # noqa: E402

GB = 1e9


def mem():
    s = jax.devices()[0].memory_stats() or {}
    return {k: s.get(k) for k in ("bytes_in_use", "peak_bytes_in_use", "bytes_limit")}


def init_on_device(factory):
    """Builds the params inside jit so they are created on the device directly."""
    graphdef, abstract_state = nnx.split(nnx.eval_shape(factory))
    state = jax.jit(lambda: nnx.split(factory())[1])()
    jax.block_until_ready(state)
    return graphdef, state


def nbytes(state):
    return int(sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state)))


def timed(fn, args, reps):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        ts.append(time.perf_counter() - t0)
    return out, first, ts


def bench_t5(cfg, prompt_tokens, reps, fp32_check=False):
    res = {"config": cfg.name, "params": None}
    m0 = mem()
    t0 = time.perf_counter()
    graphdef, state = init_on_device(lambda: mt5.UMT5Encoder(cfg, rngs=nnx.Rngs(0)))
    res["init_s"] = time.perf_counter() - t0
    res["params"] = int(sum(x.size for x in jax.tree.leaves(state)))
    res["weight_bytes"] = nbytes(state)
    res["mem_after_init"] = mem()
    apply = mt5.make_apply(graphdef)
    L = cfg.text_len
    n = min(prompt_tokens, L)
    g = np.random.default_rng(0)
    ids = np.zeros((1, L), np.int32)
    ids[0, :n - 1] = g.integers(2, cfg.vocab, n - 1)
    ids[0, n - 1] = 1
    mask = np.zeros((1, L), np.int32)
    mask[0, :n] = 1
    ids, mask = jnp.asarray(ids), jnp.asarray(mask)
    t0 = time.perf_counter()
    compiled = apply.lower(state, ids, mask).compile()
    res["compile_s"] = time.perf_counter() - t0
    ma = compiled.memory_analysis()
    if ma is not None:
        res["xla_forward"] = {k: int(getattr(ma, k)) for k in
                              ("temp_size_in_bytes", "output_size_in_bytes", "argument_size_in_bytes")
                              if hasattr(ma, k)}
    out, first, ts = timed(apply, (state, ids, mask), reps)
    res.update(prompt_tokens=n, text_len=L, first_call_after_compile_s=first, forward_s=ts,
               forward_median_s=float(np.median(ts)), out_shape=list(out.shape), out_dtype=str(out.dtype),
               out_finite=bool(jnp.all(jnp.isfinite(out.astype(jnp.float32)))),
               mem_after_forward=mem())
    if fp32_check:
        # Same weights (bf16 values cast exactly to fp32), fp32 compute: the bf16 error of the context.
        c32 = cfg.copy_and_resolve_references()
        c32.dtype = c32.param_dtype = "float32"
        g32, _ = nnx.split(nnx.eval_shape(lambda: mt5.UMT5Encoder(c32, rngs=nnx.Rngs(0))))
        s32 = jax.tree.map(lambda x: x.astype(jnp.float32), state)
        ref = mt5.make_apply(g32)(s32, ids, mask)
        d = (out.astype(jnp.float32) - ref)[0, :n]
        res["bf16_vs_fp32_rel_l2"] = float(jnp.linalg.norm(d) / jnp.linalg.norm(ref[0, :n]))
        del s32, ref
    del out, state, apply
    gc.collect()
    res["mem_after_free"] = mem()
    res["freed_bytes"] = (res["mem_after_forward"]["bytes_in_use"] or 0) - (res["mem_after_free"]["bytes_in_use"] or 0) \
        if res["mem_after_free"]["bytes_in_use"] is not None else None
    res["mem_before"] = m0
    return res


def bench_clip(cfg, reps):
    res = {"config": cfg.name}
    graphdef, state = init_on_device(lambda: mclip.CLIPVision(cfg, rngs=nnx.Rngs(0)))
    res["params"] = int(sum(x.size for x in jax.tree.leaves(state)))
    res["weight_bytes"] = nbytes(state)
    apply = mclip.make_apply(graphdef)
    for b in (1, 2):  # I2V: one image; FLF2V: first and last frame
        x = jnp.asarray(np.random.default_rng(b).normal(size=(b, cfg.image_size, cfg.image_size, 3)),
                        jnp.float32)
        out, first, ts = timed(apply, (state, x), reps)
        res[f"batch{b}"] = {"first_call_incl_compile_s": first, "forward_s": ts, "forward_median_s": float(np.median(ts)),
                            "out_shape": list(out.shape)}
    res["mem_after"] = mem()
    del state, out
    gc.collect()
    return res


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true", help="tiny configs (CPU smoke test)")
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--no-clip", action="store_true")
    ap.add_argument("--fp32-check", action="store_true", help="also run the encoder in fp32 and compare")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    tcfg = wan_text.get_config("tiny" if a.tiny else "umt5-xxl")
    ccfg = wan_clip.get_config("tiny" if a.tiny else "vit-h-14")
    dev = jax.devices()[0]
    report = {
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "device": getattr(dev, "device_kind", str(dev)), "platform": dev.platform,
        "jax": jax.__version__, "host": platform.node(),
        "dtype": {"params": tcfg.param_dtype, "compute": tcfg.dtype},
    }
    report["t5"] = bench_t5(tcfg, a.prompt_tokens, a.reps, a.fp32_check)
    print(json.dumps(report["t5"], indent=1), flush=True)
    if not a.no_clip:
        report["clip"] = bench_clip(ccfg, a.reps)
        print(json.dumps(report["clip"], indent=1), flush=True)
    report["peak_bytes_in_use_total"] = mem()["peak_bytes_in_use"]
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(report, f, indent=1)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
