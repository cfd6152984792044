"""Real-candidate rcc (the project's JAX rcc_encode_gop) on the synthetic spectra, more frames.
Imports the project's code; writes only its --out JSON.
usage (repository root): python -m research.rcc_oracle.real_rcc --frames 32 --seed 1 --bits 12 --eta 1.0 --out real_b12.json"""
import argparse, json, time, math
import numpy as np, jax, jax.numpy as jnp
from flax import nnx
from bench.gaussian_rd_rcc import DiagGaussian, synth_spectrum, _quality, D_SYNTH
from gvc_jax import codebook
from gvc_jax.sampler import rcc

BUDGETS = [51, 85, 153, 221, 425, 493]     # index_bits of the bench's top-M points = rcc budgets

ap = argparse.ArgumentParser()
ap.add_argument("--frames", type=int, default=32); ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--bits", type=int, default=12); ap.add_argument("--eta", type=float, default=1.0)
ap.add_argument("--sources", default="power_law,harsh_7dec"); ap.add_argument("--out", default=None)
a = ap.parse_args()
rng = np.random.default_rng(a.seed)
rows = []
for kind in a.sources.split(","):
    s2 = synth_spectrum(kind)
    x0 = (rng.standard_normal((D_SYNTH, a.frames, 1, 1)) * np.sqrt(s2)[:, None, None, None]).astype(np.float32)
    gd, st = nnx.split(DiagGaussian(s2))
    x_T = codebook.init_noise(a.seed, 0, x0.shape)
    for bud in BUDGETS:
        spec = rcc.plan(rcc.gaussian_error_fn(s2), bud, bits=a.bits, eta=a.eta, chunk=min(1024, 1 << a.bits))
        t0 = time.time()
        ch, xo = rcc.rcc_encode_gop(gd, st, None, x_T, jnp.asarray(x0), a.seed, 0, spec=spec)
        xo = np.asarray(xo)
        q = _quality(xo, x0, s2, np.zeros_like(s2), spec.n_steps * a.bits)
        q.update(source=kind, budget=bud, steps=spec.n_steps, stop_t=spec.times[-1], secs=time.time() - t0)
        rows.append(q)
        print(f"{kind} {q['bits_per_dim']:.3f} gap {q['gap_db']:+.3f} vr {q['variance_ratio_mean']:.3f} S={spec.n_steps} ({q['secs']:.0f}s)", flush=True)
if a.out:
    json.dump({"args": vars(a), "rows": rows}, open(a.out, "w"), indent=1)
