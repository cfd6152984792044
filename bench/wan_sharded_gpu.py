"""One GOP of the Wan DiT across GPUs: 1 device vs sharded over N (docs/sharding.md).

Random bf16 weights of the real shapes are initialised directly on the devices by a jitted
init (sharded inits place each shard where it belongs; the whole model is never on one
device). Each case runs in its own process, so every peak-memory figure is that case's own:

* ``1dev``: the unsharded path on the first device;
* one case per rules table in ``--rules`` (``configs/sharding.py``), on ``--devices`` devices.

Per case: a DiT forward (batch 1: first call with compilation, then the median of ``--iters``)
and one ``encode_gop`` with the codec's T2V preset (K=16384, M=64, 20 steps of which 17 SDE,
shift 3; first call, then one warm call), and per-device peak memory from
``jax.Device.memory_stats()`` where the backend has it. The parent compares each sharded case
to ``1dev``: forward speedup, encode speedup, rel. L2 of the forward output, the share of
indices that are equal (bf16 sharded sums round differently, so a few selections may differ), and the difference
in PSNR of the decoded latent against the target (issue #12: within 0.05 dB).

    # 2 GPUs, Wan 14B at 720p x 33 frames (latent 16x9x90x160, 32,400 tokens)
    python bench/wan_sharded_gpu.py --config t2v-14b --rules wan-seq,wan-fsdp,wan-ulysses \\
        --devices 2 --out bench/results/wan_sharded_14b_h200x2.json
    # CPU smoke test: tiny config on 8 host devices
    python bench/wan_sharded_gpu.py --tiny --out /tmp/wan_sharded_tiny.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

TINY_DEVICES = 8


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


def _tuple(s: str) -> tuple[int, ...]:
    return tuple(int(v) for v in s.split(","))


def _settings(a) -> dict:
    """The run's sizes, with the --tiny defaults."""
    if a.tiny:
        return dict(config="tiny-t2v", latent=(16, 2, 8, 8), K=256, M=4, steps=4, sde_steps=3)
    return dict(config=a.config, latent=_tuple(a.latent), K=a.K, M=a.M, steps=a.steps,
                sde_steps=a.sde_steps)


def _memory(devices) -> list[dict]:
    out = []
    for d in devices:
        s = d.memory_stats() or {}
        out.append({"device": str(d), "peak_gib": (s["peak_bytes_in_use"] / 2**30
                                                    if "peak_bytes_in_use" in s else None),
                    "in_use_gib": (s["bytes_in_use"] / 2**30 if "bytes_in_use" in s else None),
                    "limit_gib": (s["bytes_limit"] / 2**30 if "bytes_limit" in s else None)})
    return out


# ------------------------------------------------------------------ one case (a child process)
def run_case(a, case: str, work: str) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx
    from jax.sharding import NamedSharding

    from configs.sharding import get_config as sharding_config
    from configs.wan_dit import get_config
    from gvc_jax import sharding
    from gvc_jax.models.wan.dit import WanDiT
    from gvc_jax.models.wan.velocity import WanVelocity
    from gvc_jax.sampler.scan import SamplerSpec, encode_gop

    st = _settings(a)
    cfg = get_config(st["config"])
    n_dev = 1 if case == "1dev" else (a.devices or len(jax.devices()))
    devices = jax.devices()[:n_dev]
    res = dict(case=case, n_devices=n_dev, device_kind=devices[0].device_kind,
               backend=jax.default_backend(), config=cfg.name, latent=list(st["latent"]))

    def build():
        return WanVelocity(WanDiT(cfg, rngs=nnx.Rngs(0)))   # bf16 params and matmuls

    abstract = nnx.eval_shape(build)
    graphdef, abs_state = nnx.split(abstract)
    t0 = time.perf_counter()
    if case == "1dev":
        mesh = None
        with jax.default_device(devices[0]):
            state = jax.jit(lambda: nnx.split(build())[1])()
    else:
        scfg = sharding_config(case)
        shape = dict(zip(scfg.mesh_axes, scfg.mesh_shape))
        for kv in (a.mesh.split(",") if a.mesh else []):
            k, v = kv.split("=")
            shape[k] = int(v)
        mesh = sharding.make_mesh(shape, devices)
        rules = sharding.validate(scfg, mesh, num_heads=cfg.num_heads, state=abs_state)
        specs = sharding.partition_specs(abs_state, rules)
        out_sh = jax.tree.map(lambda v: v.replace(NamedSharding(mesh, v.get_value())), specs,
                              is_leaf=lambda x: isinstance(x, nnx.Variable))
        state = jax.jit(lambda: nnx.split(build())[1], out_shardings=out_sh)()
        state = sharding.shard_state(state, mesh, rules, num_heads=cfg.num_heads)  # + metadata
        res["mesh"] = dict(mesh.shape)
    state = jax.block_until_ready(state)
    res["init_s"] = time.perf_counter() - t0
    res["params_b"] = sum(x.size for x in jax.tree.leaves(state)) / 1e9
    log(f"{case}: {res['params_b']:.2f}B params on {n_dev} device(s) in {res['init_s']:.1f}s")

    rng = np.random.default_rng(0)
    lat = st["latent"]
    x = jnp.asarray(rng.standard_normal((1, *lat)), jnp.float32)
    ctx = np.zeros((cfg.text_len, cfg.text_dim), np.float32)
    ctx[:120] = rng.standard_normal((120, cfg.text_dim))
    ctx = jnp.asarray(ctx)
    t = jnp.asarray([700.0], jnp.float32)

    fwd = jax.jit(lambda g, s, x, t, c: nnx.merge(g, s).dit(x, t, c))
    ctx_b = ctx[None]
    t0 = time.perf_counter()
    u = jax.block_until_ready(fwd(graphdef, state, x, t, ctx_b))
    res["forward_first_s"] = time.perf_counter() - t0
    ts = []
    for _ in range(a.iters):
        t0 = time.perf_counter()
        jax.block_until_ready(fwd(graphdef, state, x, t, ctx_b))
        ts.append(time.perf_counter() - t0)
    res["forward_median_s"], res["forward_times_s"] = statistics.median(ts), ts
    u = np.asarray(u, np.float32)
    res["forward_finite"] = bool(np.isfinite(u).all())
    log(f"{case}: forward first {res['forward_first_s']:.1f}s, median "
        f"{res['forward_median_s']:.3f}s")
    arrays = {"u": u}

    if not a.skip_encode:
        spec = SamplerSpec(n_steps=st["steps"], sde_steps=st["sde_steps"], g_scale=3.0,
                           shift=3.0, K=st["K"], m_per_frame=(st["M"],))
        cond = {"context": ctx.astype(jnp.bfloat16)}
        x_T = jnp.asarray(rng.standard_normal(lat), jnp.float32)
        x0 = jnp.asarray(0.5 * rng.standard_normal(lat), jnp.float32)
        t0 = time.perf_counter()
        idx, sign, xs = jax.block_until_ready(
            encode_gop(graphdef, state, cond, x_T, x0, 0, 0, spec=spec))
        res["encode_first_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        jax.block_until_ready(encode_gop(graphdef, state, cond, x_T, x0, 0, 0, spec=spec))
        res["encode_s"] = time.perf_counter() - t0
        res["encode_spec"] = dict(steps=spec.n_steps, sde_steps=spec.sde_steps, K=spec.K,
                                  M=spec.m_max)
        arrays.update(idx=np.asarray(idx), sign=np.asarray(sign), x=np.asarray(xs, np.float32),
                      x0=np.asarray(x0, np.float32))
        log(f"{case}: encode first {res['encode_first_s']:.1f}s, warm {res['encode_s']:.1f}s")
    res["memory"] = _memory(devices)
    np.savez(os.path.join(work, f"{case}.npz"), **arrays)
    return res


# ------------------------------------------------------------------ the parent
def _rel(a, b) -> float:
    import numpy as np
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def compare(base: dict, case: dict, work: str) -> dict:
    import numpy as np
    out = {}
    if base.get("forward_median_s") and case.get("forward_median_s"):
        out["forward_speedup"] = base["forward_median_s"] / case["forward_median_s"]
    if base.get("encode_s") and case.get("encode_s"):
        out["encode_speedup"] = base["encode_s"] / case["encode_s"]
    pb, pc = (os.path.join(work, f"{c['case']}.npz") for c in (base, case))
    if os.path.exists(pb) and os.path.exists(pc):
        zb, zc = np.load(pb), np.load(pc)
        out["forward_rel_l2_vs_1dev"] = _rel(zc["u"], zb["u"])
        if "idx" in zb and "idx" in zc:
            same = zb["idx"] == zc["idx"]
            out["indices_equal_share"] = float(same.mean())
            out["first_step_indices_equal"] = bool(same[0].all())
            out["encode_latent_rel_l2_vs_1dev"] = _rel(zc["x"], zb["x"])
        if "x0" in zb and "x0" in zc:
            # The decoder replays the encoder's trajectory (decoder == encoder is tested on CPU),
            # so the encoder's final latent is the decoded one: its PSNR against the target,
            # sharded minus 1-device, in dB (latent space; random weights, no VAE).
            mse = [float(np.mean((z["x"].astype(np.float64) - z["x0"]) ** 2)) for z in (zb, zc)]
            out["latent_mse_1dev"], out["latent_mse_case"] = mse
            out["decoded_latent_psnr_diff_db"] = 10 * np.log10(mse[0] / mse[1])
    return out


def run_child(a, run_case) -> None:
    """A case's own process: ``run_case(a, case, work)`` written to ``<work>/<case>.json``."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    res = run_case(a, a.case, a.work)
    with open(os.path.join(a.work, f"{a.case}.json"), "w") as f:
        json.dump(res, f, indent=1)


def case_env(tiny: bool) -> dict:
    """The environment of the case processes (``tiny``: CPU with TINY_DEVICES host devices)."""
    env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false")
    if tiny:
        flags = env.get("XLA_FLAGS", "")
        if "xla_force_host_platform_device_count" not in flags:
            flags += f" --xla_force_host_platform_device_count={TINY_DEVICES}"
        env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=flags.strip())
    return env


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="t2v-14b", help="DiT config (configs/wan_dit.py)")
    ap.add_argument("--latent", default="16,9,90,160", help="C,T,H,W (720p x 33 frames)")
    ap.add_argument("--rules", default="wan-seq,wan-fsdp",
                    help="comma-separated sharding tables (configs/sharding.py)")
    ap.add_argument("--devices", type=int, default=None, help="devices for the sharded cases")
    ap.add_argument("--mesh", default=None, help="mesh size overrides, e.g. fsdp=2,context=4")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--sde-steps", type=int, default=17)
    ap.add_argument("--K", type=int, default=16384)
    ap.add_argument("--M", type=int, default=64)
    ap.add_argument("--skip-encode", action="store_true")
    ap.add_argument("--skip-1dev", action="store_true")
    ap.add_argument("--tiny", action="store_true",
                    help=f"tiny config on CPU with {TINY_DEVICES} host devices (smoke test)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--work", default=None, help="folder for the per-case results")
    ap.add_argument("--case", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.case is not None:                   # a child: one case
        return run_child(a, run_case)
    work = a.work or tempfile.mkdtemp(prefix="wan_sharded_")
    os.makedirs(work, exist_ok=True)
    env = case_env(a.tiny)
    cases = ([] if a.skip_1dev else ["1dev"]) + [r for r in a.rules.split(",") if r]
    res = dict(command="python bench/wan_sharded_gpu.py " + " ".join(sys.argv[1:]),
               device=None, host=platform.node(), settings={k: list(v) if isinstance(v, tuple) else v
                                               for k, v in _settings(a).items()},
               cases={}, comparison={})
    child = [sys.executable, os.path.abspath(__file__), *sys.argv[1:], "--work", work]
    for case in cases:
        log(f"case {case}")
        t0 = time.perf_counter()
        p = subprocess.run(child + ["--case", case], env=env, cwd=ROOT)
        path = os.path.join(work, f"{case}.json")
        if p.returncode != 0 or not os.path.exists(path):
            res["cases"][case] = {"failed": f"exit {p.returncode}",
                                  "wall_s": time.perf_counter() - t0}
            log(f"case {case} failed (exit {p.returncode})")
        else:
            with open(path) as f:
                res["cases"][case] = json.load(f)
            res["device"] = res["device"] or res["cases"][case].get("device_kind")
            res["cases"][case]["wall_s"] = time.perf_counter() - t0
            if "1dev" in res["cases"] and case != "1dev" and \
                    "failed" not in res["cases"]["1dev"]:
                res["comparison"][case] = compare(res["cases"]["1dev"], res["cases"][case], work)
        if a.out:                            # partial results survive a later failure
            os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
            with open(a.out, "w") as f:
                json.dump(res, f, indent=1)
    try:
        import jax
        res["jax"] = jax.__version__
    except Exception:  # noqa: BLE001
        pass
    print(json.dumps(res["comparison"], indent=1))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)
        log(f"wrote {a.out}")


if __name__ == "__main__":
    main()
