"""Where the time of a DiT forward and of a codebook search goes, on one GPU (issue #12).

Random weights of the real shapes (Wan 1.3B at 480p x 81 frames; 14B attention shapes), made
on the device. Three parts, each recorded even if another fails:

* ``attention``: self-attention alone at the Wan token counts, cuDNN flash attention against
  the Mosaic GPU kernel (:mod:`gvc_jax.models.wan.hopper_attention`), median seconds, TFLOP/s
  and the rel. L2 between them.
* ``dit``: the 1.3B forward with each attention implementation; for each, one forward traced
  with ``jax.profiler`` and its GPU kernel time summed by kind (attention, matmul, other
  fusions), with the top kernels.
* ``codebook``: ``scoring.scores`` at one 720p step (F=9, D=230,400, K=16,384) for each lookup
  mode, exact re-formulations, the Mosaic kernel, and two inexact probes that isolate the cost of the
  table gather and of Threefry (never used for coding); plus a trace of the default.

    python bench/profile_gpu.py --out bench/results/h200/profile_gpu.json
    python bench/profile_gpu.py --tiny --out /tmp/profile_tiny.json     # CPU smoke test
"""
from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import math
import os
import platform
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


from bench.codebook_gpu import _time as timed  # noqa: E402  (median seconds, all times)


# ------------------------------------------------------------------ trace summary
KINDS = (("attention", ("fmha", "flash", "cudnn", "attention", "mosaic", "fa3")),
         ("matmul", ("gemm", "cutlass", "xmma", "nvjet", "wgmma", "matmul", "dot")),
         ("reduce/sort", ("reduce", "sort")),
         ("copy", ("memcpy", "memset", "copy", "transpose")))


def kind_of(name: str) -> str:
    low = name.lower()
    for kind, keys in KINDS:
        if any(k in low for k in keys):
            return kind
    return "fusion/other"


def trace_summary(fn, *args, top: int = 15) -> dict:
    """GPU (or, on CPU, XLA op) time of one traced call of ``fn`` summed by kernel kind."""
    jax.block_until_ready(fn(*args))
    d = tempfile.mkdtemp(prefix="gvc_trace_")
    with jax.profiler.trace(d, create_perfetto_trace=True):
        jax.block_until_ready(fn(*args))
    path = sorted(glob.glob(os.path.join(d, "**", "perfetto_trace.json.gz"), recursive=True))[-1]
    with gzip.open(path) as fh:
        data = json.load(fh)
    events = data["traceEvents"] if isinstance(data, dict) else data
    procs, threads = {}, {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "process_name":
            procs[e["pid"]] = e["args"]["name"]
        if e.get("ph") == "M" and e.get("name") == "thread_name":
            threads[(e["pid"], e["tid"])] = e["args"]["name"]
    gpu = {p for p, n in procs.items() if "GPU" in n or "gpu" in n}
    # Kernel events sit on the GPU's stream lines; the derived "XLA Ops"/"XLA Modules" lines repeat them.
    lines = {k for k in threads if k[0] in gpu and threads[k].lower().startswith("stream")}
    if not lines:
        lines = {k for k in threads if k[0] in gpu} or set(threads)
    by_name, by_kind, per_line = (collections.Counter() for _ in range(3))
    for e in events:
        if e.get("ph") == "X" and e["pid"] in gpu:
            per_line[threads.get((e["pid"], e.get("tid")), "?")] += e["dur"]
        if e.get("ph") == "X" and (e["pid"], e.get("tid")) in lines:
            by_name[e["name"]] += e["dur"]
            by_kind[kind_of(e["name"])] += e["dur"]
    total = sum(by_kind.values())
    return dict(lines=sorted({threads[k] for k in lines})[:8], busy_ms=total / 1e3,
                gpu_lines_ms={k: round(v / 1e3, 3) for k, v in per_line.most_common(12)},
                by_kind_ms={k: round(v / 1e3, 3) for k, v in by_kind.most_common()},
                by_kind_share={k: round(v / max(total, 1e-9), 4) for k, v in by_kind.most_common()},
                top=[dict(name=n[:160], ms=round(v / 1e3, 3), kind=kind_of(n))
                     for n, v in by_name.most_common(top)])


# ------------------------------------------------------------------ parts
def part_attention(a) -> dict:
    from gvc_jax.models.wan.attention import _local_attention
    shapes = ([("tiny", 1, 200, 2, 64)] if a.tiny else
              [("1.3b_480p_81f", 1, 32760, 12, 128), ("14b_720p_33f", 1, 32400, 40, 128)])
    impls = ["xla"] if a.tiny else ["cudnn", "mgpu", "mgpu_kv64"]
    out = []
    for name, b, l, n, h in shapes:
        ks = jax.random.split(jax.random.key(0), 3)
        q, k, v = (jax.random.normal(kk, (b, l, n, h), jnp.bfloat16) for kk in ks)
        ref = None
        for impl in impls:
            row = dict(shape=name, B=b, L=l, N=n, H=h, impl=impl)
            try:
                if impl == "mgpu_kv64":
                    from gvc_jax.models.wan.hopper_attention import hopper_flash_attention
                    f = jax.jit(lambda q, k, v: hopper_flash_attention(q, k, v, block_kv=64))
                else:
                    f = jax.jit(lambda q, k, v, impl=impl: _local_attention(q, k, v, impl))
                t, ts = timed(f, q, k, v, reps=a.reps)
                o = np.asarray(f(q, k, v), np.float32)
                if ref is None:
                    ref = o
                row.update(seconds=t, all=ts, tflops=4 * b * l * l * n * h / t / 1e12,
                           rel_l2_vs_first=float(np.linalg.norm(o - ref) / np.linalg.norm(ref)))
            except Exception as e:  # noqa: BLE001  (recorded, the run goes on)
                row["error"] = f"{type(e).__name__}: {str(e)[:400]}"
            log(row)
            out.append(row)
    return dict(rows=out)


def part_dit(a) -> dict:
    from flax import nnx
    from configs.wan_dit import get_config
    from gvc_jax.models.wan.dit import WanDiT
    cfg = get_config("tiny-t2v" if a.tiny else "t2v-1.3b")
    lat = (16, 3, 8, 8) if a.tiny else (16, 21, 60, 104)
    state = jax.jit(lambda: nnx.split(WanDiT(cfg, rngs=nnx.Rngs(0)))[1])()
    graphdef = nnx.split(nnx.eval_shape(lambda: WanDiT(cfg, rngs=nnx.Rngs(0))))[0]
    x = jax.random.normal(jax.random.key(3), (1, *lat), jnp.float32)
    ctx = jax.random.normal(jax.random.key(4), (1, cfg.text_len, cfg.text_dim), jnp.float32)
    t = jnp.asarray([700.0])
    res, ref = {}, None
    for impl in (["xla"] if a.tiny else ["cudnn", "mgpu"]):
        fwd = jax.jit(lambda g, s, x, t, c, impl=impl: nnx.merge(g, s)(x, t, c, implementation=impl))
        row = {}
        try:
            sec, ts = timed(fwd, graphdef, state, x, t, ctx, reps=a.reps)
            u = np.asarray(fwd(graphdef, state, x, t, ctx), np.float32)
            ref = u if ref is None else ref
            row.update(seconds=sec, all=ts, rel_l2_vs_first=float(
                np.linalg.norm(u - ref) / np.linalg.norm(ref)))
            row["trace"] = trace_summary(fwd, graphdef, state, x, t, ctx)
        except Exception as e:  # noqa: BLE001
            row["error"] = f"{type(e).__name__}: {str(e)[:400]}"
        log(impl, json.dumps(row)[:1500])
        res[impl] = row
    return dict(config=cfg.name, latent=list(lat), rows=res)


def _probe_scores(kind: str):
    """Inexact probes (timing only): Threefry words without the table, or a table gather of
    cheap hashed indices without Threefry."""
    from gvc_jax.codebook.generate import lookup
    from gvc_jax.codebook.threefry import threefry2x32
    U32 = jnp.uint32

    def scores(r_fd, K, chunk):
        F, D = r_fd.shape
        nc = -(-D // 4)
        r = jnp.pad(r_fd, ((0, 0), (0, nc * 4 - D))).reshape(F, 1, nc, 4)

        def one(start):
            k = start + jax.lax.broadcasted_iota(U32, (F, chunk), 1)[..., None]
            c = jax.lax.broadcasted_iota(U32, (F, chunk, nc), 2)
            if kind == "no_table":
                w0, w1 = threefry2x32(U32(1), U32(2), c, k, U32)
                b = jnp.stack([w0 >> 16, w0 & U32(0xFFFF), w1 >> 16, w1 & U32(0xFFFF)], -1)
                a = b.astype(jnp.int32).astype(jnp.float32) - 32768.0
            else:                                               # "no_threefry"
                h = (c * U32(2654435761)) ^ (k * U32(40503))
                b = jnp.stack([h >> 16, h & U32(0xFFFF), (h >> 8) & U32(0xFFFF), h & U32(0xFF)], -1)
                a = lookup(b)
            return jnp.sum(a * r, axis=(2, 3))

        s = jax.lax.map(one, jnp.arange(-(-K // chunk), dtype=U32) * U32(chunk))
        return jnp.moveaxis(s, 0, 1).reshape(F, -1)

    return scores


def _scores_form(form: str):
    """Exact re-formulations of ``scoring.scores`` (same atoms; float sums in another order) that
    differ only in how the Threefry words reach the table gather, to see which XLA fuses whole."""
    from gvc_jax.codebook.generate import TABLE_I16, frame_key
    from gvc_jax.codebook.threefry import threefry2x32
    U32 = jnp.uint32
    table = jnp.asarray(TABLE_I16)
    unit = jnp.float32(2.0 ** -12)

    def look(h):
        return table[h.astype(jnp.int32)].astype(jnp.float32)

    def scores(seed, gop, step, r_fd, K, chunk):
        F, D = r_fd.shape
        nc = -(-D // 4)
        r4 = jnp.pad(r_fd, ((0, 0), (0, nc * 4 - D))).reshape(F, nc, 4) * unit
        keys = jax.vmap(lambda f: frame_key(seed, gop, step, f))(jnp.arange(F, dtype=U32))
        k0, k1 = keys[0][:, None, None], keys[1][:, None, None]
        if form in ("bitcast", "bitcast_pair"):
            # bitcast u32 -> u16[2] is little-endian: [..., 0] = low half = element 4c+1 / 4c+3
            r_lohi = r4[..., jnp.array([1, 0, 3, 2])].reshape(F, 1, nc, 2, 2)

        def one(start):
            k = start + jax.lax.broadcasted_iota(U32, (F, chunk, 1), 1)
            c = jax.lax.broadcasted_iota(U32, (F, chunk, nc), 2)
            w0, w1 = threefry2x32(k0, k1, c, k, U32)

            def word_sum(w, j):      # Σ_c over the two halves of word w (elements 4c+j, 4c+j+1)
                return jnp.sum(look(w >> 16) * r4[:, None, :, j]
                               + look(w & U32(0xFFFF)) * r4[:, None, :, j + 1], axis=2)

            if form == "sum4":
                m = U32(0xFFFF)
                t = (look(w0 >> 16) * r4[:, None, :, 0] + look(w0 & m) * r4[:, None, :, 1]
                     + look(w1 >> 16) * r4[:, None, :, 2] + look(w1 & m) * r4[:, None, :, 3])
                return jnp.sum(t, axis=2)
            if form in ("split", "split_tf"):
                # one reduction per word, so no multi-output producer feeds both; "split_tf"
                # builds the Threefry graph twice (no shared subexpression to CSE)
                if form == "split_tf":
                    w0 = threefry2x32(k0, k1, c, k, U32)[0]
                    w1 = threefry2x32(k0, k1, c + U32(0), k, U32)[1]
                return word_sum(w0, 0) + word_sum(w1, 2)
            if form == "u64":
                # one output word per counter: a single-output producer XLA can fuse into the
                # reduction; the bitcast to u16[4] is one use of it (little-endian halves)
                with jax.enable_x64(True):
                    w = (w0.astype(jnp.uint64) << jnp.uint64(32)) | w1.astype(jnp.uint64)
                    h = jax.lax.bitcast_convert_type(w, jnp.uint16)          # [F,chunk,nc,4]
                a = look(h)
                return jnp.sum(a * r4[:, None, :, ::-1], axis=(2, 3))
            if form == "complex":
                z = jax.lax.complex(jax.lax.bitcast_convert_type(w0, jnp.float32),
                                    jax.lax.bitcast_convert_type(w1, jnp.float32))
                v0 = jax.lax.bitcast_convert_type(jnp.real(z), U32)
                v1 = jax.lax.bitcast_convert_type(jnp.imag(z), U32)
                m = U32(0xFFFF)
                b = jnp.stack([v0 >> 16, v0 & m, v1 >> 16, v1 & m], axis=-1)
                return jnp.sum(look(b) * r4[:, None], axis=(2, 3))
            if form == "bitcast":
                a0 = look(jax.lax.bitcast_convert_type(w0, jnp.uint16))       # [F,chunk,nc,2]
                a1 = look(jax.lax.bitcast_convert_type(w1, jnp.uint16))
                return jnp.sum(a0 * r_lohi[..., 0, :] + a1 * r_lohi[..., 1, :], axis=(2, 3))
            if form == "bitcast_pair":
                w = jnp.stack([w0, w1], axis=-1)                                 # [F,chunk,nc,2]
                a = look(jax.lax.bitcast_convert_type(w, jnp.uint16))          # [...,2,2]
                return jnp.sum(a * r_lohi, axis=(2, 3, 4))
            raise ValueError(form)

        s = jax.lax.map(one, jnp.arange(-(-K // chunk), dtype=U32) * U32(chunk))
        return jnp.moveaxis(s, 0, 1).reshape(F, -1)

    return scores


def part_codebook(a) -> dict:
    from gvc_jax.codebook import generate, ops, scoring
    K, F, D = (256, 2, 960) if a.tiny else (16384, 9, 16 * 90 * 160)
    r = jnp.asarray(np.random.default_rng(2).standard_normal((F, D)).astype(np.float32))
    chunk = scoring.auto_chunk(K, F, D)
    rows, ref = [], None
    variants = [(m, c) for m in generate.LOOKUPS for c in (chunk,)] + [("i16", 32), ("i16", 512)]
    cases = [(f"scores_{m}_chunk{c}", lambda st, r, m=m, c=c: scoring.scores(3, 0, st, r, K, c, mode=m))
             for m, c in variants]
    for form in ("sum4", "bitcast", "bitcast_pair", "split", "split_tf", "u64", "complex"):
        for c in (chunk, 32):
            cases.append((f"form_{form}_chunk{c}", lambda st, r, form=form, c=c:
                          _scores_form(form)(3, 0, st, r, K, c)))
    if not a.tiny:
        from gvc_jax.codebook.mosaic_scores import scores_mosaic
        for sp in (8, 4, 16, 32):
            cases.append((f"mosaic_s{sp}", lambda st, r, sp=sp: scores_mosaic(
                3, 0, st, r, K, splits=sp)))
    cases += [(f"probe_{p}", lambda st, r, p=p: _probe_scores(p)(r, K, chunk))
              for p in ("no_table", "no_threefry")]
    if a.codebook_only:
        keep = tuple(a.codebook_only.split(","))
        cases = [c for c in cases if c[0].startswith(keep)]
    for name, fn in cases:
        row = dict(what=name, F=F, K=K, D=D)
        try:
            f = jax.jit(fn)
            sec, ts = timed(f, jnp.uint32(5), r, reps=a.reps)
            s = np.asarray(f(jnp.uint32(5), r))[:, :K]
            if ref is None:
                ref = s
            row.update(seconds=sec, all=ts, atoms_per_s=K * F * D / sec)
            if a.trace_all:
                tr = trace_summary(f, jnp.uint32(5), r, top=4)
                row["trace"] = dict(busy_ms=tr["busy_ms"], top=tr["top"])
            if not name.startswith("probe"):
                row["max_rel_diff_vs_first"] = float(np.abs(s - ref).max() / np.abs(ref).max())
                top = lambda x: np.argsort(-np.abs(x), axis=1, kind="stable")[:, :64]  # noqa: E731
                row["top64_equal_vs_first"] = bool(np.array_equal(top(s), top(ref)))
        except Exception as e:  # noqa: BLE001
            row["error"] = f"{type(e).__name__}: {str(e)[:400]}"
        log(row)
        rows.append(row)
    out = dict(rows=rows)
    try:
        f = jax.jit(lambda st, r: ops.select_topm(3, 0, st, r, K, 64 if not a.tiny else 8))
        out["select_topm_s"] = timed(f, jnp.uint32(5), r, reps=a.reps)[0]
        out["select_topm_trace"] = trace_summary(f, jnp.uint32(5), r)
        log("select_topm", out["select_topm_s"], json.dumps(out["select_topm_trace"])[:1500])
    except Exception as e:  # noqa: BLE001
        out["select_topm_error"] = f"{type(e).__name__}: {str(e)[:400]}"
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--out", required=True)
    ap.add_argument("--parts", default="attention,dit,codebook")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--trace-all", action="store_true", help="trace every codebook variant")
    ap.add_argument("--codebook-only", default=None,
                    help="comma-separated name prefixes of the codebook variants to run")
    a = ap.parse_args()
    dev = jax.devices()[0]
    out = dict(command="python " + " ".join(sys.argv), device=getattr(dev, "device_kind", str(dev)),
               platform=dev.platform, jax=jax.__version__, python=platform.python_version(),
               weights="random, real shapes")
    parts = dict(attention=part_attention, dit=part_dit, codebook=part_codebook)
    for p in a.parts.split(","):
        t0 = time.time()
        try:
            out[p] = parts[p](a)
        except Exception:  # noqa: BLE001  (a failed part is recorded; the others still run)
            out[p] = dict(error=traceback.format_exc()[-2000:])
            log(p, "FAILED", out[p]["error"])
        out[p]["wall_s"] = round(time.time() - t0, 1)
        tmp = a.out + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(out, fh, indent=1)
        os.replace(tmp, a.out)
    log("wrote", a.out)


if __name__ == "__main__":
    main()
