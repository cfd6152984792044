"""fp8 against bf16 for the Wan DiT and the codec on one Hopper GPU (docs/fp8.md).

One command, one process (the capped 14B run in a subprocess); random weights of the real
shapes made on the device (``bench/fp8_models.py``), so nothing is downloaded or converted.
Parts (``--parts``, each fits a 10-minute command on an H100/H200; estimates in docs/fp8.md):

* ``dit``: Wan 1.3B forward at 480p x 81 frames (32,760 tokens), fp8 and bf16 on the same
  weights: median seconds of ``--iters`` timed calls after one warm-up call; rel. L2 of each
  against float32 (matmul precision "highest") at 480p x 21 frames (``--ref-frames``, 9,360
  tokens: XLA's float32 attention materialises its scores);
* ``diffusers``: diffusers' ``WanTransformer3DModel`` bf16 (random weights, the fp32 modules
  it keeps) on the same shape, same timing (needs torch with CUDA and diffusers);
* ``gop13``: one 33-frame 720p GOP through the codec (GVCC's T2V preset) with the 1.3B DiT in
  fp8: encode seconds (warm: the encoder side once more after a first compress) and decode
  seconds (the decoder alone, after it), bit-exactness of the decode against the encoder's
  reconstruction;
* ``gop14``: the same with the 14B DiT in fp8, in a subprocess capped at ``--cap-gib``
  (``XLA_PYTHON_CLIENT_MEM_FRACTION``, no preallocation) with the weights parked in host memory
  while the VAE runs (``--offload always``); peak memory from the device's memory_stats and
  ``nvidia-smi`` sampled every 0.5 s;
* ``drift``: the gop13 clip coded with bf16 too: PSNR between the bf16 stream's bf16 decode and
  its decode by the fp8 DiT (teacher forced: the same indices), the PSNR between the two
  encoders' reconstructions, and the share of codebook choices they have in common.

    python bench/fp8_gpu.py --parts dit,diffusers,gop13,gop14,drift \\
        --out bench/results/fp8_h200.json

Results merge into ``--out`` (parts run in separate commands add their keys); a figure not
measured is null. ``--tiny`` runs every part with tiny configs on a CPU (a smoke test).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction

import numpy as np

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")   # torch and a child share it
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

KEYS = ("dit_1.3b_480p_s_fp8", "dit_1.3b_480p_s_bf16", "dit_1.3b_480p_s_diffusers",
        "gop_1.3b_720p_encode_s", "gop_1.3b_720p_decode_s", "gop_14b_720p_encode_s",
        "gop_14b_720p_decode_s", "peak_gib_14b_720p_capped", "rel_l2_fp8_vs_fp32",
        "rel_l2_bf16_vs_fp32", "psnr_fp8_vs_bf16_decode_db", "index_agreement_fp8_vs_bf16")
PARTS = ("dit", "diffusers", "gop13", "gop14", "drift")


def log(msg):
    print(f"[fp8 {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def median_s(fn, iters: int) -> tuple[float, list[float]]:
    import statistics

    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), ts


def jax_peak_gib():
    import jax
    v = (jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use")
    return None if v is None else v / 2 ** 30


class NvSmi:
    """Samples nvidia-smi's used memory (MiB) every 0.5 s, in total and for one pid."""

    def __init__(self, pid=None):
        self.pid, self.total, self.proc, self._stop = pid, [], [], threading.Event()

    def _query(self, args):
        try:
            out = subprocess.run(["nvidia-smi", *args, "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=10).stdout
            return [ln.split(",") for ln in out.strip().splitlines() if ln.strip()]
        except (OSError, subprocess.SubprocessError):
            return []

    def _loop(self):
        while not self._stop.wait(0.5):
            rows = self._query(["--query-gpu=memory.used"])
            if rows:
                self.total.append(float(rows[0][0]))
            if self.pid is not None:
                for r in self._query(["--query-compute-apps=pid,used_memory"]):
                    if r[0].strip() == str(self.pid):
                        self.proc.append(float(r[1]))

    def __enter__(self):
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()

    def report(self) -> dict:
        return {"nvidia_smi_peak_used_mib": max(self.total) if self.total else None,
                "nvidia_smi_peak_process_mib": max(self.proc) if self.proc else None}


def gpu_info() -> dict:
    rows = NvSmi()._query(["--query-gpu=name,memory.total,driver_version"])
    if rows:
        return {"gpu": rows[0][0].strip(), "gpu_memory_mib": float(rows[0][1]),
                "driver": rows[0][2].strip()}
    return {"gpu": None, "gpu_memory_mib": None}


# ------------------------------------------------------------------ parts
def part_dit(a, res):
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from configs.wan_dit import get_config
    from fp8_models import random_dit, rel_l2
    from gvc_jax.models.wan.dit import make_forward

    cfg = get_config("tiny-t2v" if a.tiny else "t2v-1.3b")
    lat = (16, 3, 8, 8) if a.tiny else (16, 21, 60, 104)       # 480p x 81 frames
    ref_t = lat[1] if a.tiny else 1 + (a.ref_frames - 1) // 4
    rng = np.random.default_rng(11)
    x = jnp.asarray(rng.standard_normal((1, *lat)), jnp.float32)
    c = rng.standard_normal((1, cfg.text_len, cfg.text_dim))
    c[:, 120:] = 0.0
    ctx, t = jnp.asarray(c, jnp.float32), jnp.asarray([700.0])
    fwd = make_forward()
    out, times = {}, {}
    for dt in ("fp8", "bfloat16"):
        gd, st = nnx.split(random_dit(cfg, dt, a.seed))
        t0 = time.perf_counter()
        jax.block_until_ready(fwd(gd, st, x, t, ctx))
        first = time.perf_counter() - t0
        med, ts = median_s(lambda: jax.block_until_ready(fwd(gd, st, x, t, ctx)), a.iters)
        times[dt] = {"median_s": med, "times_s": ts, "first_call_s": first}
        out[dt] = np.asarray(fwd(gd, st, x[:, :, :ref_t], t, ctx))
        log(f"dit {dt}: median {med:.3f} s (first call {first:.1f} s)")
        if dt == "fp8":        # what XLA made of it: fp8 GEMMs and fp8 attention calls
            hlo = fwd.lower(gd, st, x, t, ctx).compile().as_text()
            calls = [ln for ln in hlo.splitlines() if "custom-call" in ln]
            times[dt]["hlo_fp8_gemm_calls"] = sum("matmul$f8" in ln for ln in calls)
            times[dt]["hlo_fp8_attention_calls"] = sum("SoftmaxF8" in ln for ln in calls)
            times[dt]["hlo_f8_custom_calls"] = sum("f8e4m3fn" in ln for ln in calls)
            log(f"fp8 HLO: {times[dt]['hlo_fp8_gemm_calls']} fp8 GEMM call sites, "
                f"{times[dt]['hlo_fp8_attention_calls']} fp8 attention call sites")
        del st
    gd, st = nnx.split(random_dit(cfg, "float32", a.seed))
    with jax.default_matmul_precision("highest"):
        ref = np.asarray(fwd(gd, st, x[:, :, :ref_t], t, ctx))
    del st
    res.update({"dit_1.3b_480p_s_fp8": times["fp8"]["median_s"],
                "dit_1.3b_480p_s_bf16": times["bfloat16"]["median_s"],
                "rel_l2_fp8_vs_fp32": rel_l2(out["fp8"], ref),
                "rel_l2_bf16_vs_fp32": rel_l2(out["bfloat16"], ref)})
    res["details"]["dit"] = {"config": cfg.name, "latent": list(lat), "times": times,
                             "rel_l2_latent": [16, ref_t, *lat[2:]],
                             "jax_process_peak_gib": jax_peak_gib()}
    log(f"rel L2 vs fp32: fp8 {res['rel_l2_fp8_vs_fp32']:.4f}, "
        f"bf16 {res['rel_l2_bf16_vs_fp32']:.4f}")


def part_diffusers(a, res):
    import math

    try:
        import torch
        from diffusers import WanTransformer3DModel
    except ImportError as e:
        res["details"]["diffusers"] = {"skipped": f"{type(e).__name__}: {e}"}
        log(f"diffusers skipped: {e}")
        return
    from configs.wan_dit import get_config
    from gvc_jax.testing.refs import diffusers_kwargs

    dev = "cuda" if torch.cuda.is_available() and not a.tiny else "cpu"
    cfg = get_config("tiny-t2v" if a.tiny else "t2v-1.3b")
    lat = (16, 3, 8, 8) if a.tiny else (16, 21, 60, 104)
    torch.manual_seed(a.seed)
    with torch.device(dev):
        m = WanTransformer3DModel(**diffusers_kwargs(cfg)).eval()
    keep = tuple(m._keep_in_fp32_modules)          # as from_pretrained(torch_dtype=bf16)
    g = torch.Generator(dev).manual_seed(a.seed)
    with torch.no_grad():
        for name, p in m.named_parameters():
            r = torch.randn(p.shape, generator=g, device=dev)
            if p.ndim >= 2:
                r = r / math.sqrt(math.prod(p.shape[1:]))
            elif name.endswith("weight") and "norm" in name:
                r = 1 + 0.1 * r
            else:
                r = 0.02 * r
            p.data = r.to(torch.float32 if any(k in name.split(".") for k in keep)
                          else torch.bfloat16)
    x = torch.randn((1, *lat), generator=g, device=dev).to(torch.bfloat16)
    ctx = torch.zeros((1, cfg.text_len, cfg.text_dim), device=dev, dtype=torch.bfloat16)
    t = torch.tensor([700.0], device=dev)

    def run():
        with torch.no_grad():
            m(hidden_states=x, timestep=t, encoder_hidden_states=ctx, return_dict=False)
        if dev == "cuda":
            torch.cuda.synchronize()
    run()
    med, ts = median_s(run, a.iters)
    res["dit_1.3b_480p_s_diffusers"] = med
    res["details"]["diffusers"] = {"times_s": ts, "torch": torch.__version__, "device": dev}
    log(f"diffusers bf16 median {med:.3f} s")
    del m
    if dev == "cuda":
        torch.cuda.empty_cache()


def _encode_only(frames, model, params, mode, enc) -> tuple[float, bool]:
    """The encoder side of ``core.compress`` once more (autoencoder, then the coding, per
    GOP), without the reconstruction: ``(seconds, payloads equal to enc's)``."""
    from gvc_jax.codec import core, stream
    from gvc_jax.codec.geometry import pad_clip

    session = stream.plan(frames, Fraction(25), model, params, mode)
    ch, cw = session.header["coded"]["height"], session.header["coded"]["width"]
    payloads = []
    t0 = time.perf_counter()
    for g in session.gops:
        x0 = model.encode(pad_clip(frames[g.start:g.start + g.frames], g.coded, ch, cw))
        payloads.append(core.encode_gop(session, g, x0))
    seconds = time.perf_counter() - t0
    header, p, _, by_tag = stream.read_stream(enc.data)
    _, want = stream.open_stream(header, p, model, by_tag)
    return seconds, payloads == [want[g.index] for g in session.gops]


def _gop(a, big: bool, dtype: str, offload: str, repeats: int, reuse=None):
    """Codes the clip with a random model; returns (measurements, Encoded, codec model)."""
    from configs.wan_dit import get_config
    from fp8_models import codec_model, random_dit, random_vae, synthetic_clip
    from gvc_jax.codec import api, core

    name = ("wan2.1-t2v" if a.tiny else "wan2.1-t2v-14b" if big else "wan2.1-t2v-1.3b")
    cfg = get_config("tiny-t2v" if a.tiny else "t2v-14b" if big else "t2v-1.3b")
    over = {"dtype": dtype}
    if a.tiny:
        over.update(K=64, M=2, steps=3, sde_steps=2, gop_frames=5)
    _, mode, params = api.params_for(name, over)
    t, h, w = (5, 32, 32) if a.tiny else (33, 720, 1280)
    frames = synthetic_clip(t, h, w, a.seed)
    t0 = time.perf_counter()
    vae = reuse[0] if reuse else random_vae(a.tiny, a.seed)
    model = codec_model(name, cfg, random_dit(cfg, dtype, a.seed), vae, dtype, offload, a.seed)
    out = {"config": cfg.name, "dtype": dtype, "clip": [t, h, w], "offload": offload,
           "init_s": time.perf_counter() - t0, "K": params.K, "M": params.M,
           "steps": params.steps}
    log(f"gop {cfg.name} {dtype}: model ready in {out['init_s']:.1f} s")
    enc = core.compress(frames, Fraction(25), model, params, mode=mode)
    out.update(encode_first_s=enc.encode_seconds, recon_decode_first_s=enc.decode_seconds,
               bytes=len(enc.data))
    log(f"first compress: encode {enc.encode_seconds:.1f} s, decode {enc.decode_seconds:.1f} s")
    for i in range(repeats):
        out["encode_warm_s"], same = _encode_only(frames, model, params, mode, enc)
        out["warm_payloads_identical"] = same
        log(f"warm encode {out['encode_warm_s']:.1f} s, same payloads: {same}")
    t0 = time.perf_counter()
    dec, _, _ = core.decompress(enc.data, lambda *_: model)
    out["decode_s"] = time.perf_counter() - t0
    out["decode_equals_recon"] = bool(np.array_equal(dec, enc.recon))
    out["encode_s"] = out.get("encode_warm_s", out["encode_first_s"])
    out["jax_process_peak_gib"] = jax_peak_gib()
    log(f"decode {out['decode_s']:.1f} s, equals the encoder's recon: "
        f"{out['decode_equals_recon']}; peak {out['jax_process_peak_gib']} GiB")
    return out, enc, model, frames, vae


def part_gop13(a, res, keep):
    out, enc, model, frames, vae = _gop(a, False, "fp8", "never", a.gop_repeats)
    res.update({"gop_1.3b_720p_encode_s": out["encode_s"],
                "gop_1.3b_720p_decode_s": out["decode_s"]})
    res["details"]["gop13"] = out
    keep["fp8"] = (enc, model, frames, vae)


def part_drift(a, res, keep):
    from fp8_models import chosen_indices, index_agreement, psnr
    from gvc_jax.codec import core

    if "fp8" not in keep:
        out, enc, model, frames, vae = _gop(a, False, "fp8", "never", 0)
        keep["fp8"] = (enc, model, frames, vae)
    enc8, model8, frames, vae = keep.pop("fp8")
    out, enc16, model16, _, _ = _gop(a, False, "bfloat16", "never", 0, reuse=(vae,))
    # Teacher forced: the bf16 stream (its indices) decoded with the fp8 DiT.
    forced, _, _ = core.decompress(enc16.data, lambda *_: model8)
    res["psnr_fp8_vs_bf16_decode_db"] = psnr(forced, enc16.recon)
    res["index_agreement_fp8_vs_bf16"] = index_agreement(chosen_indices(enc8.data, model8),
                                                         chosen_indices(enc16.data, model16))
    res["details"]["drift"] = {
        "bf16_gop": out, "psnr_fp8_vs_source_db": psnr(enc8.recon, frames),
        "psnr_bf16_vs_source_db": psnr(enc16.recon, frames),
        "psnr_fp8_vs_bf16_decode": "the bf16 stream decoded by the fp8 DiT (same indices) "
                                   "against its bf16 decode",
        "psnr_independent_encodes_db": psnr(enc8.recon, enc16.recon)}
    log(f"drift: PSNR fp8 vs bf16 decode of the bf16 stream "
        f"{res['psnr_fp8_vs_bf16_decode_db']:.2f} dB (independent encodes "
        f"{res['details']['drift']['psnr_independent_encodes_db']:.2f} dB), index agreement "
        f"{res['index_agreement_fp8_vs_bf16']:.3f}")


def part_gop14(a, res):
    """The 14B GOP in a child process under a memory cap."""
    env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false")
    total = res.get("gpu_memory_mib")
    if total and not a.tiny:
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{a.cap_gib * 1024 / total:.4f}"
    fd, child_out = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    cmd = [sys.executable, os.path.abspath(__file__), "--child-gop14", child_out,
           "--seed", str(a.seed), "--gop-repeats", str(a.gop14_repeats)] + \
        (["--tiny"] if a.tiny else [])
    log(f"gop14 child: {' '.join(cmd)} (XLA_PYTHON_CLIENT_MEM_FRACTION="
        f"{env.get('XLA_PYTHON_CLIENT_MEM_FRACTION')})")
    p = subprocess.Popen(cmd, env=env, cwd=ROOT)
    with NvSmi(p.pid) as smi:
        rc = p.wait()
    try:
        with open(child_out) as f:
            out = json.load(f)
    except (OSError, ValueError):
        out = {}
    os.remove(child_out)
    out.update(smi.report(), returncode=rc, cap_gib=a.cap_gib,
               mem_fraction=env.get("XLA_PYTHON_CLIENT_MEM_FRACTION"))
    res["details"]["gop14"] = out
    res["gop_14b_720p_encode_s"] = out.get("encode_s")
    res["gop_14b_720p_decode_s"] = out.get("decode_s")
    res["peak_gib_14b_720p_capped"] = out.get("jax_process_peak_gib")
    log(f"gop14: rc {rc}, peak {res['peak_gib_14b_720p_capped']} GiB (jax), "
        f"nvidia-smi {out.get('nvidia_smi_peak_process_mib')} MiB")


def child_gop14(a):
    out = {}
    try:
        out, *_ = _gop(a, True, "fp8", "always", a.gop_repeats)
    except Exception as e:  # noqa: BLE001 - the parent records why
        out["error"] = f"{type(e).__name__}: {str(e)[:2000]}"
        out["jax_process_peak_gib"] = jax_peak_gib()
        raise
    finally:
        with open(a.child_gop14, "w") as f:
            json.dump(out, f, indent=1, default=str)


# ------------------------------------------------------------------ main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default=",".join(PARTS),
                    help=f"comma-separated, of {', '.join(PARTS)} (default all)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench/results/fp8_h200.json"))
    ap.add_argument("--tiny", action="store_true", help="tiny configs on a CPU (smoke test)")
    ap.add_argument("--iters", type=int, default=5, help="timed DiT forwards (median)")
    ap.add_argument("--ref-frames", type=int, default=21, help="frames of the fp32 reference")
    ap.add_argument("--gop-repeats", type=int, default=1, help="warm encodes (gop13)")
    ap.add_argument("--gop14-repeats", type=int, default=1, help="warm encodes (gop14)")
    ap.add_argument("--cap-gib", type=float, default=22.0, help="gop14's GPU memory cap")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child-gop14", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.tiny:
        a.iters = min(a.iters, 2)
    if a.child_gop14:
        return child_gop14(a)
    parts = [p for p in a.parts.split(",") if p]
    bad = sorted(set(parts) - set(PARTS))
    if bad:
        ap.error(f"unknown part(s) {', '.join(bad)}")
    res = {k: None for k in KEYS}
    if os.path.isfile(a.out):                  # earlier parts of the same measurement
        with open(a.out) as f:
            res.update(json.load(f))
    res.setdefault("details", {})
    res.setdefault("commands", [])
    res["commands"].append("python " + os.path.relpath(os.path.abspath(__file__), ROOT) + " "
                           + shlex.join(sys.argv[1:] if argv is None else argv))
    res.update(gpu_info(), tiny=a.tiny,
               fp8_attention_env=os.environ.get("GVC_FP8_ATTENTION", "1"))

    def save():
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        tmp = a.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(res, f, indent=1, default=str)
        os.replace(tmp, a.out)

    # The capped child first: this process holds no GPU memory yet.
    order = [p for p in ("gop14", "dit", "diffusers", "gop13", "drift") if p in parts]
    keep: dict = {}
    for part in order:
        t0 = time.perf_counter()
        if part != "gop14":
            import jax
            res.update(jax=jax.__version__, device=str(jax.devices()[0].device_kind),
                       backend=jax.default_backend())
        with NvSmi(os.getpid()) as smi:
            {"gop14": lambda: part_gop14(a, res), "dit": lambda: part_dit(a, res),
             "diffusers": lambda: part_diffusers(a, res),
             "gop13": lambda: part_gop13(a, res, keep),
             "drift": lambda: part_drift(a, res, keep)}[part]()
        res["details"].setdefault(part, {})["part_wall_s"] = time.perf_counter() - t0
        if part != "gop14":
            res["details"][part].update(smi.report())
        save()
        log(f"part {part} done in {time.perf_counter() - t0:.0f} s")
    log(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
