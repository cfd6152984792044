"""Data parallel over GOPs: throughput of batches of GOPs on 1 device vs N devices (docs/batch.md).

Target (issue #12): batches of GOPs sharded over 2 GPUs give >= 1.9x the GOPs per second of one.
Random bf16 weights of the real Wan DiT shapes are initialised directly on the devices by a
jitted init (replicated over the N devices), so the times are real and the pictures meaningless.
Each case runs in its own process, so every peak-memory figure is that case's own:

* ``1dev``: the first device, batches of B = ``--gops-per-device`` GOPs;
* ``Ndev``: ``--devices`` devices (default: all local ones), B = N x ``--gops-per-device``,
  the GOP axis sharded over the ``"data"`` mesh (:mod:`gvc_jax.sampler.batched`).

Per case: the same model (same seed), one shared conditioning (a random umT5-shaped context),
distinct GOP numbers (``batch * 1000 + i``, so the 1dev batches are the first GOPs of the Ndev
ones), x0 targets drawn per GOP number, x_T from ``codebook.init_noise``. One
:func:`encode_gops` warm-up batch (compilation) is timed apart, then ``--batches`` warm ones;
the same for :func:`decode_gops` on those indices. Codec settings: the T2V preset (K=16384,
M=64, 20 steps of which 17 SDE, g_scale 3, shift 3). The parent reports the encode and decode
throughput speedups Ndev/1dev and the share of equal indices and signs of the common GOPs
(bf16 on GPU may round differently under another batch layout: reported, not asserted).
Batch times include placing the batch's inputs on the devices, as ``gvc batch`` does.

    # 2 GPUs, Wan 1.3B at 720p x 33 frames (latent 16x9x90x160), 2 GOPs per device
    python bench/wan_batch_gpu.py --out bench/results/h200/batch_2gpu.json
    # CPU smoke test: tiny config on 8 host devices
    python bench/wan_batch_gpu.py --tiny --out /tmp/wan_batch_tiny.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from importlib import metadata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.wan_sharded_gpu import (TINY_DEVICES, _memory, _settings, case_env,  # noqa: E402
                                   log, run_child)

SEED = 0            # codebook / x_T seed and weight seed, the same in every case
GOP_STRIDE = 1000   # GOP number of GOP i of batch j: j * GOP_STRIDE + i
G_SCALE, SHIFT = 3.0, 3.0


def _gops(j: int, b: int):
    import numpy as np
    return (j * GOP_STRIDE + np.arange(b)).astype(np.uint32)


# ------------------------------------------------------------------ one case (a child process)
def run_case(a, case: str, work: str) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx
    from jax.sharding import NamedSharding, PartitionSpec

    from configs.wan_dit import get_config
    from gvc_jax.codec.codings import topm
    from gvc_jax import codebook
    from gvc_jax.codec.params import CodecParams
    from gvc_jax.models.wan.dit import WanDiT
    from gvc_jax.models.wan.velocity import WanVelocity
    from gvc_jax.sampler.batched import decode_gops, encode_gops, mesh

    st = _settings(a)
    cfg = get_config(st["config"])
    local = jax.local_devices()
    n_dev = 1 if case == "1dev" else (a.devices or len(local))
    if n_dev > len(local):
        raise SystemExit(f"{case}: {n_dev} devices asked for, {len(local)} present")
    devices = local[:n_dev]
    b = n_dev * a.gops_per_device
    if b > GOP_STRIDE:
        raise SystemExit(f"batch of {b} GOPs exceeds {GOP_STRIDE}")
    lat = st["latent"]
    params = CodecParams(K=st["K"], M=st["M"], steps=st["steps"], sde_steps=st["sde_steps"],
                         g_scale=G_SCALE, shift=SHIFT, seed=SEED)
    params.validate()
    spec = topm.spec(params, topm.m_per_frame(params, lat[1]))
    res = dict(case=case, n_devices=n_dev, devices=[str(d) for d in devices],
               device_kind=devices[0].device_kind, backend=jax.default_backend(),
               config=cfg.name, latent=list(lat), batch_gops=b)

    def build():
        return WanVelocity(WanDiT(cfg, rngs=nnx.Rngs(SEED)))   # bf16 params and matmuls

    graphdef, _ = nnx.split(nnx.eval_shape(build))
    m = mesh(devices)
    t0 = time.perf_counter()
    if m is None:
        with jax.default_device(devices[0]):
            state = jax.jit(lambda: nnx.split(build())[1])()
    else:                                        # replicated: each device builds its own copy
        state = jax.jit(lambda: nnx.split(build())[1],
                        out_shardings=NamedSharding(m, PartitionSpec()))()
    state = jax.block_until_ready(state)
    res["init_s"] = time.perf_counter() - t0
    leaves = jax.tree.leaves(state)
    res["params_b"] = sum(x.size for x in leaves) / 1e9
    res["weights_checksum"] = float(jax.jit(lambda ls: sum(
        jnp.sum(jnp.square(x.astype(jnp.float32))) for x in ls))(leaves))
    log(f"{case}: {res['params_b']:.4g}B params on {n_dev} device(s) in {res['init_s']:.1f}s, "
        f"batches of {b} GOP(s)")

    rng = np.random.default_rng(SEED)
    ctx = np.zeros((cfg.text_len, cfg.text_dim), np.float32)
    n_tok = min(120, cfg.text_len)
    ctx[:n_tok] = rng.standard_normal((n_tok, cfg.text_dim))
    cond = {"context": jnp.asarray(ctx, jnp.bfloat16)}   # encode_gops shards it with the GOPs

    def inputs(j):
        gops = _gops(j, b)
        x0 = np.stack([np.random.default_rng([SEED, int(g)]).standard_normal(lat)
                       .astype(np.float32) for g in gops])
        with jax.default_device(devices[0]):
            x_T = np.stack([np.asarray(codebook.init_noise(SEED, int(g), lat)) for g in gops])
        return gops, x_T, x0

    enc_t, dec_t, idx_all, sign_all, gops_all, dec_err = [], [], [], [], [], 0.0
    for j in range(1 + a.batches):
        gops, x_T, x0 = inputs(j)
        t0 = time.perf_counter()
        idx, sign, x_enc = jax.block_until_ready(encode_gops(
            graphdef, state, cond, x_T, x0, SEED, gops, spec=spec, devices=devices))
        enc_t.append(time.perf_counter() - t0)
        idx, sign = np.asarray(idx), np.asarray(sign)
        msg = f"{case}: batch {j}{' (compile)' if j == 0 else ''}: encode {enc_t[-1]:.2f}s"
        if not a.skip_decode:
            t0 = time.perf_counter()
            x_dec = jax.block_until_ready(decode_gops(
                graphdef, state, cond, x_T, idx, sign, SEED, gops, spec=spec, devices=devices))
            dec_t.append(time.perf_counter() - t0)
            xe, xd = np.asarray(x_enc, np.float64), np.asarray(x_dec, np.float64)
            dec_err = max(dec_err, float(np.linalg.norm(xd - xe) / max(np.linalg.norm(xe),
                                                                       1e-30)))
            msg += f", decode {dec_t[-1]:.2f}s"
        log(msg)
        gops_all.append(gops)
        idx_all.append(idx)
        sign_all.append(sign)

    def figures(name, ts):
        warm = ts[1:] or ts          # with --batches 0 the compile batch is all there is
        per = sum(warm) / len(warm)
        res[f"{name}_first_s"] = ts[0]
        res[f"{name}_batch_s"] = warm
        res[f"{name}_s_per_batch"] = per
        res[f"{name}_gops_per_s"] = b / per

    figures("encode", enc_t)
    if dec_t:
        figures("decode", dec_t)
        res["decode_vs_encode_rel_l2"] = dec_err
    res["memory"] = _memory(devices)
    np.savez(os.path.join(work, f"{case}.npz"), gops=np.stack(gops_all), idx=np.stack(idx_all),
             sign=np.stack(sign_all))
    return res


# ------------------------------------------------------------------ the parent
def compare(base: dict, case: dict, work: str) -> dict:
    """Throughput speedups of ``case`` over ``base`` and agreement on their common GOPs."""
    import numpy as np
    out = {"n_devices": case["n_devices"]}
    for k in ("encode", "decode"):
        if base.get(f"{k}_gops_per_s") and case.get(f"{k}_gops_per_s"):
            s = case[f"{k}_gops_per_s"] / base[f"{k}_gops_per_s"]
            out[f"{k}_throughput_speedup"] = s
            out[f"{k}_scaling_efficiency"] = s / case["n_devices"]
    out["weights_checksum_rel_diff"] = abs(case["weights_checksum"] - base["weights_checksum"]) \
        / max(abs(base["weights_checksum"]), 1e-30)
    zb, zc = (np.load(os.path.join(work, f"{c['case']}.npz")) for c in (base, case))
    idx_eq, sign_eq, n = [], [], 0
    for j in range(min(len(zb["gops"]), len(zc["gops"]))):
        row = {int(g): i for i, g in enumerate(zc["gops"][j])}
        for i, g in enumerate(zb["gops"][j]):
            if int(g) in row:
                n += 1
                idx_eq.append((zb["idx"][j, i] == zc["idx"][j, row[int(g)]]).ravel())
                sign_eq.append((zb["sign"][j, i] == zc["sign"][j, row[int(g)]]).ravel())
    out["common_gops"] = n
    if n:
        out["indices_equal_share"] = float(np.concatenate(idx_eq).mean())
        out["signs_equal_share"] = float(np.concatenate(sign_eq).mean())
        out["common_gops_identical"] = bool(all(e.all() for e in idx_eq + sign_eq))
    return out


def _write(path: str, res: dict) -> None:
    """JSON written atomically: a temp file in the same folder, then os.replace."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
    with os.fdopen(fd, "w") as f:
        json.dump(res, f, indent=1)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="t2v-1.3b", help="DiT config (configs/wan_dit.py)")
    ap.add_argument("--latent", default="16,9,90,160", help="C,T,H,W (720p x 33 frames)")
    ap.add_argument("--gops-per-device", type=int, default=2)
    ap.add_argument("--batches", type=int, default=2, help="timed batches after the warm-up")
    ap.add_argument("--devices", type=int, default=None,
                    help="devices of the N-device case (default: all local devices)")
    ap.add_argument("--K", type=int, default=16384)
    ap.add_argument("--M", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--sde-steps", type=int, default=17)
    ap.add_argument("--skip-decode", action="store_true")
    ap.add_argument("--tiny", action="store_true",
                    help=f"tiny config on CPU with {TINY_DEVICES} host devices (smoke test)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--work", default=None, help="folder for the per-case results")
    ap.add_argument("--case", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.gops_per_device < 1 or a.batches < 0:
        ap.error("need --gops-per-device >= 1 and --batches >= 0")

    if a.case is not None:                   # a child: one case
        return run_child(a, run_case)
    work = a.work or tempfile.mkdtemp(prefix="wan_batch_")
    os.makedirs(work, exist_ok=True)
    env = case_env(a.tiny)
    st = _settings(a)
    res = dict(command="python bench/wan_batch_gpu.py " + shlex.join(sys.argv[1:]),
               host=platform.node(), jax=metadata.version("jax"), config=st["config"],
               latent=list(st["latent"]),
               params=dict(K=st["K"], M=st["M"], steps=st["steps"], sde_steps=st["sde_steps"],
                           g_scale=G_SCALE, shift=SHIFT, seed=SEED,
                           gops_per_device=a.gops_per_device, batches=a.batches,
                           decode=not a.skip_decode),
               cases={}, comparison={})
    child = [sys.executable, os.path.abspath(__file__), *sys.argv[1:], "--work", work]
    for case in ("1dev", "Ndev"):
        log(f"case {case}")
        t0 = time.perf_counter()
        p = subprocess.run(child + ["--case", case], env=env, cwd=ROOT)
        path = os.path.join(work, f"{case}.json")
        if p.returncode != 0 or not os.path.exists(path):
            res["cases"][case] = {"failed": f"exit {p.returncode}"}
            log(f"case {case} failed (exit {p.returncode})")
        else:
            with open(path) as f:
                res["cases"][case] = json.load(f)
            res["device"] = f"{res['cases'][case]['n_devices']} x " \
                            f"{res['cases'][case]['device_kind']}"
        res["cases"][case]["wall_s"] = time.perf_counter() - t0
        if a.out:                            # partial results survive a later failure
            _write(a.out, res)
    if not any("failed" in c for c in res["cases"].values()):
        res["comparison"] = compare(res["cases"]["1dev"], res["cases"]["Ndev"], work)
        for k in ("encode_throughput_speedup", "decode_throughput_speedup"):
            if k in res["comparison"]:
                res[k] = res["comparison"][k]
    print(json.dumps(res["comparison"], indent=1))
    if a.out:
        _write(a.out, res)
        log(f"wrote {a.out}")
    if any("failed" in c for c in res["cases"].values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
