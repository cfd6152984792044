"""Codebook on an accelerator: bit-exactness against NumPy / the CPU backend, and selection timings.

Usage: python bench/codebook_gpu.py [--tiny] --out bench/results/codebook_gpu.json
(1) atoms / init_noise on the default device == atoms_numpy bit for bit; select_topm on the default
device == on the CPU backend; combine on the device vs combine_numpy (bits and ulps).
(2) select_topm for K atoms against F latent frames of D = 16*90*160 (one 720p step) and one frame,
chunk sizes, fused generate-and-reduce vs matmul, int16 table vs float32 table (same bits).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import numpy as np

import jax
import jax.numpy as jnp

from gvc_jax import codebook as cb
from gvc_jax.codebook import generate, ops


def _ulps(a, b):
    ia = a.view(np.int32).astype(np.int64)
    ib = b.view(np.int32).astype(np.int64)
    return int(np.abs(ia - ib).max()) if a.size else 0


def _time(fn, *args, reps):
    jax.block_until_ready(fn(*args))                  # compile + warm up
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)), [round(x, 6) for x in ts]


def exactness(tiny: bool) -> dict:
    res = {}
    d = 16 * 6 * 10 if tiny else 16 * 90 * 160
    idx = np.array([0, 1, 2, 3, 1000, 16383, 40000, 65535] + list(range(100, 100 + (8 if tiny else 56))))
    ok = True
    for addr in [(0, 0, 0, 0), (7, 3, 16, 8), (2 ** 32 - 1, 5, 2, 2 ** 32 - 1)]:
        want = cb.atoms_numpy(*addr, idx, d)
        for mode in generate.LOOKUPS:
            f = jax.jit(lambda s, g, st, fr, k, mode=mode: generate.atoms_c4(
                generate.frame_key(s, g, st, fr), k, -(-d // 4), mode).reshape(k.shape[0], -1)[:, :d])
            got = np.asarray(f(*[jnp.uint32(v) for v in addr], jnp.asarray(idx, jnp.uint32)))
            eq = bool(np.array_equal(got.view(np.uint32), want.view(np.uint32)))
            res[f"atoms_{mode}_{addr}"] = eq
            ok &= eq
        got = np.asarray(cb.atoms(*addr, idx, d))
        eq = bool(np.array_equal(got.view(np.uint32), want.view(np.uint32)))
        res[f"atoms_default_{addr}"] = eq
        ok &= eq
    res["atoms_values_compared"] = int(len(idx) * d * 3)
    shape = (16, 3, 6, 10) if tiny else (16, 9, 90, 160)
    res["init_noise_equal"] = bool(np.array_equal(np.asarray(cb.init_noise(11, 2, shape)),
                                                  cb.init_noise_numpy(11, 2, shape)))
    res["atoms_all_equal"] = bool(ok)

    # select_topm: device vs CPU backend (same program, different backend).
    F, D, K, m = (2, 960, 1024, 16) if tiny else (3, 16 * 30 * 40, 4096, 64)
    r = np.random.default_rng(0).standard_normal((F, D)).astype(np.float32)
    sel = jax.jit(lambda st, r: cb.select_topm(5, 1, st, r, K, m, chunk=256))
    dev_i, dev_s = [np.asarray(x) for x in sel(jnp.uint32(4), jnp.asarray(r))]
    cpu = jax.devices("cpu")[0]
    with jax.default_device(cpu):
        cpu_i, cpu_s = [np.asarray(x) for x in sel(jax.device_put(jnp.uint32(4), cpu),
                                                   jax.device_put(r, cpu))]
        sc_cpu = np.asarray(jax.jit(lambda r: ops.scores(5, 1, 4, r, K, 256))(jax.device_put(r, cpu)))
    sc_dev = np.asarray(jax.jit(lambda r: ops.scores(5, 1, 4, r, K, 256))(jnp.asarray(r)))
    res["select_topm_device_eq_cpu"] = bool(np.array_equal(dev_i, cpu_i) and np.array_equal(dev_s, cpu_s))
    res["select_topm_first_mismatch_rank"] = (int(np.argmax(np.any(dev_i != cpu_i, 0)))
                                              if not np.array_equal(dev_i, cpu_i) else None)
    res["scores_device_vs_cpu_max_abs_diff"] = float(np.abs(sc_dev - sc_cpu).max())
    res["scores_rms"] = float(np.sqrt(np.mean(sc_cpu ** 2)))

    # combine on the device vs the NumPy reference.
    F, M, D = (3, 8, 960) if tiny else (4, 64, 16 * 90 * 160)
    rng = np.random.default_rng(1)
    idx = rng.integers(0, 16384, (F, M)).astype(np.int32)
    sign = rng.random((F, M)) < 0.5
    ms = tuple([M] * (F - 2) + [M // 2, M])
    for norm in ("rms", "sqrt_m"):
        z = np.asarray(jax.jit(lambda i, s, norm=norm: cb.combine(3, 0, 7, i, s, ms, D, norm=norm))(idx, sign))
        zn = cb.combine_numpy(3, 0, 7, idx, sign, ms, D, norm=norm)
        res[f"combine_{norm}_equal"] = bool(np.array_equal(z.view(np.uint32), zn.view(np.uint32)))
        res[f"combine_{norm}_mismatching_elements"] = int(np.sum(z != zn))
        res[f"combine_{norm}_max_ulps"] = _ulps(z, zn)
    # Integer-exact sqrt / reciprocal vs NumPy, and XLA's own f32 sqrt and 1/x for comparison.
    from gvc_jax.codebook.exact_math import reciprocal_rn, sqrt_rn
    x = (rng.uniform(0, 1, 1 << 20) * 2.0 ** rng.integers(-60, 60, 1 << 20)).astype(np.float32)
    x = x[x >= np.finfo(np.float32).tiny]
    res["exact_sqrt_rn_mismatches"] = int(np.sum(np.asarray(jax.jit(sqrt_rn)(x)) != np.sqrt(x)))
    res["exact_reciprocal_rn_mismatches"] = int(np.sum(np.asarray(jax.jit(reciprocal_rn)(x)) != np.float32(1) / x))
    res["xla_sqrt_mismatches"] = int(np.sum(np.asarray(jax.jit(jnp.sqrt)(x)) != np.sqrt(x)))
    res["xla_divide_mismatches"] = int(np.sum(np.asarray(jax.jit(lambda v: 1.0 / v)(x)) != np.float32(1) / x))
    res["exact_math_values"] = int(x.size)
    return res


def timings(tiny: bool, reps: int, quick: bool = False) -> dict:
    K, F, D, m = (1024, 2, 960, 16) if tiny else (16384, 9, 16 * 90 * 160, 64)
    r = jnp.asarray(np.random.default_rng(2).standard_normal((F, D)).astype(np.float32))
    auto = ops.auto_chunk(K, F, D)
    rows = []
    variants = [("fused", "i16", auto)] if quick else [("fused", "i16", auto), ("fused", "i16", 64), ("fused", "i16", 128),
                ("fused", "i16", 256), ("fused", "f32", auto), ("fused", "f32", 128),
                ("matmul", "i16", auto), ("matmul", "f32", 128)]
    for method, mode, chunk in variants:
        chunk = min(chunk, K)

        def fn(st, r, method=method, mode=mode, chunk=chunk):
            s = ops.scores(3, 0, st, r, K, chunk, method=method, mode=mode)
            return s

        try:
            t, ts = _time(jax.jit(fn), jnp.uint32(5), r, reps=reps)
            rows.append(dict(what="scores", F=F, K=K, D=D, method=method, lookup=mode, chunk=chunk,
                             seconds=t, all=ts, atoms_per_s=K * F * D / t))
        except Exception as e:  # noqa: BLE001  (record and go on)
            rows.append(dict(what="scores", method=method, lookup=mode, chunk=chunk, error=repr(e)[:300]))
        print(rows[-1], flush=True)
    for Fx, chunk in ((F, None), (1, None)) if quick else ((F, None), (1, None), (1, 256)):
        rx = r[:Fx]
        f = jax.jit(lambda st, r, chunk=chunk: cb.select_topm(3, 0, st, r, K, m, chunk=chunk))
        t, ts = _time(f, jnp.uint32(5), rx, reps=reps)
        rows.append(dict(what="select_topm", F=Fx, K=K, D=D, m=m,
                         method=ops.forced_method() or ops.default_method(),
                         chunk=chunk or ops.auto_chunk(K, Fx, D), seconds=t, all=ts))
        print(rows[-1], flush=True)
    idx, sign = cb.select_topm(3, 0, 5, r, K, m)
    f = jax.jit(lambda st, i, s: cb.combine(3, 0, st, i, s, (m,) * F, D))
    t, ts = _time(f, jnp.uint32(5), idx, sign, reps=reps)
    rows.append(dict(what="combine", F=F, m=m, D=D, seconds=t, all=ts))
    print(rows[-1], flush=True)
    return dict(rows=rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--out", default="bench/results/codebook_gpu.json")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--skip-timing", action="store_true")
    ap.add_argument("--quick", action="store_true", help="time only the default variant")
    a = ap.parse_args()
    dev = jax.devices()[0]
    out = dict(command="python " + " ".join(sys.argv), device=str(getattr(dev, "device_kind", dev)),
               platform=dev.platform, jax=jax.__version__, python=platform.python_version())
    t0 = time.time()
    out["exactness"] = exactness(a.tiny)
    print(json.dumps(out["exactness"], indent=1), flush=True)
    if not a.skip_timing:
        out["timings"] = timings(a.tiny, a.reps, a.quick)
    out["wall_s"] = round(time.time() - t0, 1)
    with open(a.out, "w") as fh:
        json.dump(out, fh, indent=1)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
