"""RD of the two coding schemes on Gaussian priors: GVCC's top-M and reverse channel coding (docs/rcc.md §5).

For each source (synthetic power-law and 7-decade spectra at d = 1024 per frame, and the fitted
`gaussian` prior at 768 x 2 x 2 per latent frame) and each top-M point (K, M) it runs, on the
same draws x0 ~ prior (one per latent frame):

* ``topm``: :func:`gvc_jax.sampler.scan.encode_gop` (17 SDE steps of 20, 3 Euler ODE steps);
* ``topm_accurate_tail``: the same 17 SDE steps and indices, then the accurate ODE tail of rcc;
* ``rcc``: :func:`gvc_jax.sampler.rcc.rcc_encode_gop` planned for at most the same bits per frame.

It reports bits per dimension (every payload bit: top-M's enumerative index+sign bits, rcc's
fixed-width choices; neither needs side info), MSE, gap to D_p(R) and D(R) in dB at each scheme's
own rate, the output/prior variance ratio, and cost (CPU wall seconds after compilation and
element draws per bit). The decoder is run too and must equal the encoder bit for bit.

    python bench/gaussian_rd_rcc.py --out bench/results/gaussian_rd_rcc.json
    # shifted candidates, one 36-bit choice per step and group of 8 frames (GPU; the other
    # runs behind bench/results/h200/rcc/ are listed in docs/rcc.md §5)
    python bench/gaussian_rd_rcc.py --family shift --group 8 --bits 36 --chunk 4096 \
        --sources harsh_7dec,power_law --out gaussian_rd_rcc_shift_b36_synth.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gvc_jax import codebook
from gvc_jax.bitstream.indices import index_bits
from gvc_jax.bounds import realism_distortion, shannon_distortion
from gvc_jax.models.gaussian import GaussianPrior
from gvc_jax.sampler import rcc
from gvc_jax.sampler.scan import SamplerSpec, _noise, _velocity, decode_gop, encode_gop
from gvc_jax.sampler.sde import sde_step

D_SYNTH = 1024
# (K, M) per source: 17 SDE steps x (ceil(log2 C(K, M)) + M) bits span about 0.05-0.5 bits/dim
POINTS_SYNTH = "4:1,16:1,256:1,4096:1,4096:2,16384:2"
POINTS_PRIOR = "256:1,4096:1,4096:2,4096:4,4096:8"


class DiagGaussian(nnx.Module):
    """x0 ~ N(0, diag(var_c)) over channels of [C, F, 1, 1]; exact velocity (docs/gaussian_prior.md)."""

    def __init__(self, var_c):
        self.var = nnx.Variable(jnp.asarray(var_c, jnp.float32))

    def velocity(self, x, t, cond=None):
        s2 = self.var[...][:, None, None, None]
        t = jnp.asarray(t, x.dtype)
        return (t - (1.0 - t) * s2) * x / ((1.0 - t) ** 2 * s2 + t * t)


def synth_spectrum(kind: str, d: int = D_SYNTH) -> np.ndarray:
    i = np.arange(d, dtype=np.float64)
    s2 = (1.0 + i) ** -1.2 if kind == "power_law" else 10.0 ** (-7.0 * i / d)
    return s2 / s2.mean()


def sources(frames: int, frames_prior: int, seed: int):
    """(name, module, x0 [C,F,H,W] float32, per-dim variances [C,H,W] flattened per frame, mean)."""
    rng = np.random.default_rng(seed)
    for kind in ("power_law", "harsh_7dec"):
        s2 = synth_spectrum(kind)
        x0 = rng.standard_normal((D_SYNTH, frames, 1, 1)) * np.sqrt(s2)[:, None, None, None]
        yield kind, DiagGaussian(s2), x0.astype(np.float32), s2, np.zeros_like(s2)
    prior = GaussianPrior()
    x0 = np.asarray(prior.sample_prior(jax.random.key(seed), frames_prior, 2, 2), np.float32)
    var = np.repeat(np.asarray(prior.var[...], np.float64), 4)
    mean = np.repeat(np.asarray(prior.mean[...], np.float64), 4)
    yield "fitted_prior", prior, x0, var, mean


def _timed(fn, *args, **kw):
    """(result, compile seconds, run seconds) of a jitted function, compiled ahead of time."""
    t0 = time.perf_counter()
    lowered = fn.lower(*args, **kw)
    compiled = lowered.compile()
    t1 = time.perf_counter()
    dyn = [a for a in args if not isinstance(a, nnx.GraphDef)]
    out = jax.block_until_ready(compiled(*dyn))
    return out, t1 - t0, time.perf_counter() - t1


def _realism(x_out, var, mean) -> dict:
    """Per-dimension output variance (around the prior mean, over frames) / prior variance."""
    c, f, h, w = x_out.shape
    z = np.moveaxis(np.asarray(x_out, np.float64), 1, 0).reshape(f, -1) - mean
    ratio = np.mean(z * z, axis=0) / var
    groups = [float(ratio[g].mean()) for g in np.array_split(np.argsort(var), 8)]
    return {"variance_ratio_mean": float(ratio.mean()),
            "variance_ratio_energy": float(np.sum(z * z) / f / np.sum(var)),
            "variance_ratio_groups": groups,
            "variance_ratio_group_range": [min(groups), max(groups)]}


def _quality(x_out, x0, var, mean, bits_per_frame) -> dict:
    f = x0.shape[1]
    d = var.size
    err = float(np.sum((np.asarray(x_out, np.float64) - x0) ** 2)) / f       # per frame
    dp = realism_distortion(var, bits_per_frame)
    ds = shannon_distortion(var, bits_per_frame)
    return {"bits_per_frame": int(bits_per_frame), "bits_per_dim": bits_per_frame / d,
            "mse": err / d, "gap_db": 10 * math.log10(err / dp),
            "gap_shannon_db": 10 * math.log10(err / ds), **_realism(x_out, var, mean)}


def _topm_accurate(graphdef, state, x_T, idx, sign, seed, spec: SamplerSpec, tail: rcc.RccSpec):
    """The top-M SDE steps replayed from (idx, sign), then rcc's accurate ODE tail."""
    @jax.jit
    def run(state, x_T, idx, sign):
        velocity = _velocity(graphdef, state, None)
        times = jnp.asarray(spec.times())

        def body(x, inp):
            i, idx_fm, sign_fm = inp
            t, t_next = times[i], times[i + 1]
            z = _noise(jnp.uint32(seed), jnp.uint32(0), i, idx_fm, sign_fm, spec, x_T.shape)
            return sde_step(x, velocity(x, t), t, t_next, z, spec.g_scale), None

        x, _ = jax.lax.scan(body, x_T, (jnp.arange(spec.sde_steps), idx, sign))
        return rcc.ode_tail(velocity, x, tail)
    return np.asarray(run(state, x_T, idx, sign))


def run_source(name, module, x0, var, mean, points, args) -> list[dict]:
    graphdef, state = nnx.split(module)
    f = x0.shape[1]
    d = var.size
    x_T = codebook.init_noise(args.seed, 0, x0.shape)
    x0_j = jnp.asarray(x0)
    err_fn = rcc.gaussian_error_fn(var)
    rows = []
    for K, M in points:
        sspec = SamplerSpec(n_steps=20, sde_steps=17, g_scale=3.0, K=K, m_per_frame=(M,))
        bits = index_bits(sspec.sde_steps, [M], K)                     # per frame
        (idx, sign, xo), tc, te = _timed(encode_gop, graphdef, state, None, x_T, x0_j,
                                         args.seed, 0, spec=sspec)
        xd, _, td = _timed(decode_gop, graphdef, state, None, x_T, idx, sign, args.seed, 0,
                           spec=sspec)
        topm = _quality(xo, x0, var, mean, bits)
        topm.update(K=K, M=M, encode_s=te, decode_s=td, compile_s=tc,
                    encode_s_per_bit=te / (bits * f), decode_s_per_bit=td / (bits * f),
                    encoder_draws_per_bit=K * d / (bits / sspec.sde_steps),
                    decoder_draws_per_bit=M * d / (bits / sspec.sde_steps),
                    decoder_exact=bool(np.array_equal(np.asarray(xd), np.asarray(xo))))
        t17 = float(sspec.times()[sspec.sde_steps])
        tail = rcc.RccSpec(times=(1.0, t17), tail_steps=args.tail_steps,
                           tail_solver=args.tail_solver)
        acc = _quality(_topm_accurate(graphdef, state, x_T, idx, sign, args.seed, sspec, tail),
                       x0, var, mean, bits)
        group = min(args.group, f)
        spec = rcc.plan(err_fn, bits, bits=args.bits, levels=args.levels, eta=args.eta,
                        group=group, parts=args.parts, family=args.family,
                        tail_steps=args.tail_steps, tail_solver=args.tail_solver,
                        chunk=min(args.chunk, 1 << args.bits) if args.family == "iid"
                        else args.chunk)
        n = spec.row_len(d)                            # values per choice (a row)
        rb = rcc.rcc_bits(spec, x0.shape) // f
        (ch, ro), rc, re = _timed(rcc.rcc_encode_gop, graphdef, state, None, x_T, x0_j,
                                  args.seed, 0, spec=spec)
        rd, _, rdt = _timed(rcc.rcc_decode_gop, graphdef, state, None, x_T, ch, args.seed, 0,
                            spec=spec)
        r = _quality(ro, x0, var, mean, rb)
        if args.family == "shift":     # bases of n values, the mask; docs/rcc.md §2
            from gvc_jax.codebook.shifted import layout
            n_p, _, nb = layout(spec.bits, n)
            enc_draws = (nb + 1) * n_p / spec.bits
            dec_draws = 2 * n_p / spec.bits
        else:
            enc_draws, dec_draws = (1 << spec.bits) * n / spec.bits, n / spec.bits
        r.update(steps=spec.n_steps, levels=spec.levels, bits=spec.bits, stop_t=spec.times[-1],
                 family=spec.family, group=spec.group, parts=spec.parts,
                 encode_s=re, decode_s=rdt, compile_s=rc, encode_s_per_bit=re / (rb * f),
                 decode_s_per_bit=rdt / (rb * f),
                 encoder_draws_per_bit=enc_draws, decoder_draws_per_bit=dec_draws,
                 decoder_exact=bool(np.array_equal(np.asarray(rd), np.asarray(ro))))
        row = {"source": name, "topm": topm, "topm_accurate_tail": acc, "rcc": r,
               "rcc_beats_topm": bool(r["mse"] < topm["mse"] and rb <= bits),
               "rcc_beats_topm_accurate_tail": bool(r["mse"] < acc["mse"] and rb <= bits)}
        rows.append(row)
        print(f"{name} K={K} M={M}: topm {topm['bits_per_dim']:.3f} b/d gap {topm['gap_db']:+.2f} dB "
              f"vr {topm['variance_ratio_mean']:.2f} | +tail gap {acc['gap_db']:+.2f} vr "
              f"{acc['variance_ratio_mean']:.2f} | rcc {r['bits_per_dim']:.3f} b/d gap "
              f"{r['gap_db']:+.2f} vr {r['variance_ratio_mean']:.2f} ({re:.1f} s)", file=sys.stderr)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=8, help="independent draws (latent frames)")
    ap.add_argument("--frames-prior", type=int, default=4, help="draws for the fitted prior")
    ap.add_argument("--bits", type=int, default=12, help="rcc bits per choice")
    ap.add_argument("--levels", type=int, default=1)
    ap.add_argument("--eta", type=float, default=1.0)
    ap.add_argument("--tail-steps", type=int, default=16)
    ap.add_argument("--tail-solver", default="rk4", choices=rcc.SOLVERS)
    ap.add_argument("--chunk", type=int, default=1024,
                    help="candidates (iid) or bases (shift) scored per pass")
    ap.add_argument("--family", default="iid", choices=rcc.FAMILIES, help="rcc candidates")
    ap.add_argument("--group", type=int, default=1,
                    help="latent frames per rcc choice (capped at the source's frames)")
    ap.add_argument("--parts", type=int, default=1,
                    help="interleaved rows per group of frames, a choice each")
    ap.add_argument("--points-synth", default=POINTS_SYNTH)
    ap.add_argument("--points-prior", default=POINTS_PRIOR)
    ap.add_argument("--sources", default="power_law,harsh_7dec,fitted_prior")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    parse = lambda s: [tuple(int(v) for v in p.split(":")) for p in s.split(",")]
    keep = args.sources.split(",")
    rows = []
    for name, module, x0, var, mean in sources(args.frames, args.frames_prior, args.seed):
        if name in keep:
            pts = parse(args.points_prior if name == "fitted_prior" else args.points_synth)
            rows += run_source(name, module, x0, var, mean, pts, args)
    out = {"command": " ".join(["python", "bench/gaussian_rd_rcc.py",
                                *(sys.argv[1:] if argv is None else argv)]),
           "device": str(jax.devices()[0]), "cpu_count": os.cpu_count(),
           "settings": vars(args), "rows": rows,
           "all_rcc_beat_topm": all(r["rcc_beats_topm"] for r in rows),
           "seconds_total": time.perf_counter() - t0}
    text = json.dumps(out, indent=1)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
