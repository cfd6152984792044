"""Full-size Wan DiT on one GPU with random weights (issue 3, item 4).

1. Wan 1.3B (t2v) at 480p x 81 frames (latent 16x21x60x104, 32,760 tokens): a random bf16
   diffusers ``WanTransformer3DModel`` is converted through ``gvc_jax.weights.dit`` (state dict
   streamed from memory, diffusers layout) into ``WanDiT``; both run bf16 on the same inputs.
   Reports rel. L2 of JAX vs diffusers, both vs a diffusers fp32 run, and median s/forward.
2. Wan 14B (t2v) at 720p x 33 frames (latent 16x9x90x160, 32,400 tokens): params initialised
   directly on the GPU in bf16 (jitted init); one forward's time and JAX peak memory.

``--tiny`` runs the same code path with tiny configs on CPU (a smoke test).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # torch shares the GPU
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_dtypes  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from configs.wan_dit import get_config  # noqa: E402
from gvc_jax.weights.dit import conversion, dit_factory  # noqa: E402
from gvc_jax.weights.sources import Checkpoint, TensorRef  # noqa: E402
from gvc_jax.weights.table import load_into  # noqa: E402
from gvc_jax.models.wan.dit import WanDiT, make_forward  # noqa: E402


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


def flops(cfg, grid, text_len=512) -> float:
    """Analytic matmul + attention FLOPs of one forward (batch 1)."""
    L, d, f = math.prod(grid), cfg.dim, cfg.ffn_dim
    per_block = (2 * L * 4 * d * d + 2 * L * 2 * d * d + 2 * text_len * 2 * d * d
                 + 2 * L * 2 * d * f + 4 * L * L * d + 4 * L * text_len * d)
    return cfg.num_layers * per_block


def rel_l2(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def to_numpy(t):
    import torch
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def median_time(fn, iters: int) -> tuple[float, list[float]]:
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), ts


def bench_small(args, dev: str) -> dict:
    import torch
    from diffusers import WanTransformer3DModel

    from gvc_jax.testing.refs import diffusers_kwargs

    cfg = get_config("tiny-t2v" if args.tiny else "t2v-1.3b")
    lat = (16, 3, 8, 8) if args.tiny else (16, 21, 60, 104)
    grid = (lat[1], lat[2] // 2, lat[3] // 2)
    torch.manual_seed(0)
    with torch.device(dev):
        ref = WanTransformer3DModel(**diffusers_kwargs(cfg)).eval()
    # bf16 as from_pretrained(torch_dtype=bf16) gives it: the modules diffusers lists in
    # _keep_in_fp32_modules (rope tables, time embedder, modulation tables, norms) stay fp32.
    keep = tuple(ref._keep_in_fp32_modules)
    for name, mod in ref.named_modules():
        for pname, p in mod.named_parameters(recurse=False):
            full = f"{name}.{pname}" if name else pname
            if not any(k in full.split(".") for k in keep):
                p.data = p.data.to(torch.bfloat16)
    n_fp32 = sum(p.numel() for p in ref.parameters() if p.dtype == torch.float32)
    g = torch.Generator(dev).manual_seed(1)
    with torch.no_grad():  # random weights of sensible scale everywhere
        for name, p in ref.named_parameters():
            r = torch.randn(p.shape, generator=g, device=dev, dtype=torch.float32)
            if "scale_shift_table" in name:
                r = r / math.sqrt(p.shape[-1])
            elif p.ndim >= 2:
                r = r / math.sqrt(math.prod(p.shape[1:]))
            elif name.endswith("weight") and "norm" in name:
                r = 1 + 0.2 * r
            else:
                r = 0.1 * r
            p.copy_(r.to(p.dtype))
    log("diffusers model ready", sum(p.numel() for p in ref.parameters()) / 1e9, "B params,",
        n_fp32 / 1e6, "M kept fp32; rope", ref.rope.freqs_cos.dtype)

    t0 = time.perf_counter()
    sd = ref.state_dict()
    items = [(k, TensorRef(v.shape, to_numpy(v.reshape(-1)[:0]).dtype, lambda v=v: to_numpy(v)))
             for k, v in sd.items()]
    arrays, fp = conversion(Checkpoint("state dict", "diffusers", items), cfg,
                            dtype="bfloat16").run()
    model = load_into(dit_factory(cfg), arrays)
    del arrays
    graphdef, state = nnx.split(model)
    del model
    t_convert = time.perf_counter() - t0
    log(f"converted in {t_convert:.1f}s, fingerprint {fp[:16]}")

    x = torch.randn((1, *lat), generator=g, device=dev).to(torch.bfloat16)
    ctx = torch.zeros((1, cfg.text_len, cfg.text_dim), device=dev)
    ctx[:, :120] = torch.randn((1, 120, cfg.text_dim), generator=g, device=dev)
    ctx = ctx.to(torch.bfloat16)
    t = torch.tensor([700.0], device=dev)

    def run_ref():
        with torch.no_grad():
            out = ref(hidden_states=x, timestep=t, encoder_hidden_states=ctx,
                      return_dict=False)[0]
        if dev == "cuda":
            torch.cuda.synchronize()
        return out

    want = to_numpy(run_ref()).astype(np.float32)
    ref_med, ref_ts = median_time(run_ref, args.iters)
    log(f"diffusers bf16 median {ref_med:.3f}s {['%.3f' % v for v in ref_ts]}")

    fwd = make_forward()
    jx = jnp.asarray(to_numpy(x).astype(np.float32))
    jctx = jnp.asarray(to_numpy(ctx).astype(np.float32))
    jt = jnp.asarray(to_numpy(t))
    t0 = time.perf_counter()
    got = np.asarray(fwd(graphdef, state, jx, jt, jctx).block_until_ready())
    t_compile = time.perf_counter() - t0
    jax_med, jax_ts = median_time(lambda: fwd(graphdef, state, jx, jt, jctx).block_until_ready(),
                                  args.iters)
    log(f"jax bf16 first call {t_compile:.1f}s, median {jax_med:.3f}s")

    res = dict(config=cfg.name, latent=list(lat), tokens=math.prod(grid),
               analytic_tflop=flops(cfg, grid) / 1e12,
               rel_l2_jax_vs_diffusers_bf16=rel_l2(got, want),
               jax_bf16_median_s=jax_med, jax_bf16_times_s=jax_ts,
               jax_first_call_s=t_compile,
               diffusers_bf16_median_s=ref_med, diffusers_bf16_times_s=ref_ts,
               jax_tflops=flops(cfg, grid) / 1e12 / jax_med,
               convert_s=t_convert, fingerprint=fp, diffusers_fp32_params=n_fp32,
               jax_peak_gib=((jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use", 0)
                             / 2**30))
    del state
    if not args.skip_fp32:
        ref = ref.float()
        with torch.no_grad():
            exact = ref(hidden_states=x.float(), timestep=t, encoder_hidden_states=ctx.float(),
                        return_dict=False)[0]
        exact = to_numpy(exact)
        res.update(rel_l2_jax_bf16_vs_diffusers_fp32=rel_l2(got, exact),
                   rel_l2_diffusers_bf16_vs_diffusers_fp32=rel_l2(want, exact))
        log("fp32 reference:", res["rel_l2_jax_bf16_vs_diffusers_fp32"],
            res["rel_l2_diffusers_bf16_vs_diffusers_fp32"])
    del ref
    if dev == "cuda":
        torch.cuda.empty_cache()
    return res


def bench_big(args) -> dict:
    cfg = get_config("tiny-t2v" if args.tiny else "t2v-14b")
    lat = (16, 3, 8, 8) if args.tiny else (16, 9, 90, 160)
    grid = (lat[1], lat[2] // 2, lat[3] // 2)
    abstract = nnx.eval_shape(lambda: WanDiT(cfg, rngs=nnx.Rngs(0)))
    graphdef, _ = nnx.split(abstract)

    @jax.jit
    def init():  # random bf16 params made on the device, never on the host
        return nnx.split(WanDiT(cfg, rngs=nnx.Rngs(0)))[1]

    t0 = time.perf_counter()
    state = jax.block_until_ready(init())
    t_init = time.perf_counter() - t0
    n_params = sum(a.size for a in jax.tree.leaves(state))
    log(f"{cfg.name}: {n_params / 1e9:.2f}B params initialised on device in {t_init:.1f}s")
    key = jax.random.key(3)
    x = jax.random.normal(key, (1, *lat), jnp.float32)
    ctx = jax.random.normal(jax.random.key(4), (1, cfg.text_len, cfg.text_dim), jnp.float32)
    ctx = ctx.at[:, 120:].set(0.0)
    t = jnp.asarray([700.0])
    fwd = make_forward()
    t0 = time.perf_counter()
    u = fwd(graphdef, state, x, t, ctx).block_until_ready()
    t_first = time.perf_counter() - t0
    med, ts = median_time(lambda: fwd(graphdef, state, x, t, ctx).block_until_ready(),
                          args.iters_big)
    stats = jax.devices()[0].memory_stats() or {}
    res = dict(config=cfg.name, latent=list(lat), tokens=math.prod(grid),
               params_b=n_params / 1e9, init_s=t_init, first_call_s=t_first,
               median_s=med, times_s=ts, analytic_tflop=flops(cfg, grid) / 1e12,
               tflops=flops(cfg, grid) / 1e12 / med, finite=bool(jnp.isfinite(u).all()),
               peak_bytes_in_use=stats.get("peak_bytes_in_use"),
               peak_gib=(stats["peak_bytes_in_use"] / 2**30) if "peak_bytes_in_use" in stats
               else None, bytes_limit=stats.get("bytes_limit"))
    log(json.dumps(res))
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true", help="tiny configs on CPU (smoke test)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--iters-big", type=int, default=3)
    ap.add_argument("--skip-fp32", action="store_true")
    ap.add_argument("--skip-14b", action="store_true")
    args = ap.parse_args()
    import torch

    dev = "cuda" if (torch.cuda.is_available() and not args.tiny) else "cpu"
    res = dict(command="python3 " + " ".join(sys.argv), device=jax.devices()[0].device_kind,
               jax_backend=jax.default_backend(), jax=jax.__version__, torch=torch.__version__,
               host=platform.node(), torch_device=(torch.cuda.get_device_name()
                                                  if dev == "cuda" else "cpu"))
    res["wan_1.3b_480p_81f"] = bench_small(args, dev)
    if args.out:  # keep partial results if the big run fails
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)
    if not args.skip_14b:
        res["wan_14b_720p_33f"] = bench_big(args)
    print(json.dumps(res, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
