"""Structured (circularly shifted) rcc candidates vs i.i.d. candidates, real D-dim vectors (CPU).

Same greedy scheme as oracle.py (planner rcc.plan, exact x0_hat, exact Gaussian PF-ODE tail, gap vs
D_p), but per step and frame the encoder really scores 2^b candidates z in R^D and the step noise is
the chosen candidate itself (no p*e + fresh w_perp).  Families (same b = index bits per choice):
  iid       : 2^b i.i.d. N(0, I_D) vectors; projections by a (2^b x D) @ e product.
  shift     : n_base = 2^b / D' bases ~ N(0, I_D), D' = min(D, 2^b); candidate (j, k) = roll(base_j, k),
              k < D'; all projections <roll(base_j, k), e> by FFT circular cross-correlation.
  shiftsign : shift plus the negations: 2^b candidates from 2^(b-1) shifts (n_base = 2^(b-1)/D').
Candidates are regenerated from (seed, source, budget, step, frame): a decoder with the index (j, k)
rebuilds the chosen vector; --check verifies this bit-exactly and the FFT projections vs direct dots.
usage (repository root): python -m research.rcc_oracle.shift_candidates --families iid,shift --bits 12 --frames 32 --out research/results/rcc_oracle/x.json
"""
from __future__ import annotations
import argparse, json, math, time
import numpy as np
from .oracle import spectrum, budgets, plan, gaussian_error_fn, step_target, realism_distortion, D

SRC_ID = {"power_law": 0, "harsh_7dec": 1}


def cand_rng(seed, kind, bud, fam, step, frame):
    return np.random.default_rng([seed, SRC_ID[kind], bud, {"iid": 0, "shift": 1, "shiftsign": 2}[fam], step, frame])


def shift_geometry(fam, b, d):
    nshift_total = 2 ** (b - 1) if fam == "shiftsign" else 2 ** b
    dp = min(d, nshift_total)
    assert dp & (dp - 1) == 0
    n_base = nshift_total // dp
    assert n_base * dp * (2 if fam == "shiftsign" else 1) == 2 ** b     # b bits index exactly
    return n_base, dp


def bases(rng, n_base, d):
    return rng.standard_normal((n_base, d))


def shift_projections(base, e, dp):
    """P[j, k] = <roll(base_j, k), e> for k < dp, via rfft (circular cross-correlation)."""
    d = e.size
    c = np.fft.irfft(np.conj(np.fft.rfft(base, axis=1)) * np.fft.rfft(e)[None, :], n=d, axis=1)
    return c[:, :dp]


def choose(fam, b, e, tau, rng, d, stats):
    """Returns (z, index, projection) for one frame."""
    if fam == "iid":
        Z = rng.standard_normal((2 ** b, d), dtype=np.float32)
        p = Z @ e.astype(np.float32)
        i = int(np.argmin(np.abs(p - tau)))
        return Z[i].astype(np.float64), (i,), float(p[i])
    n_base, dp = shift_geometry(fam, b, d)
    B = bases(rng, n_base, d)
    P = shift_projections(B, e, dp)
    if fam == "shiftsign":
        P = np.concatenate([P, -P], axis=0)              # rows n_base.. are the negations
    f = int(np.argmin(np.abs(P - tau)))
    j, k = divmod(f, dp)
    sgn = 1.0
    if j >= n_base:
        j -= n_base; sgn = -1.0
    z = sgn * np.roll(B[j], k)
    return z, (j, k, int(sgn)), float(P.flat[f])


def decode_candidate(fam, b, idx, seed, kind, bud, step, frame, d):
    rng = cand_rng(seed, kind, bud, fam, step, frame)
    if fam == "iid":
        return rng.standard_normal((2 ** b, d), dtype=np.float32)[idx[0]].astype(np.float64)
    n_base, dp = shift_geometry(fam, b, d)
    B = bases(rng, n_base, d)
    j, k, sgn = idx
    return sgn * np.roll(B[j], k)


def flops_per_choice(fam, b, d):
    """Encoder flops (multiply-add = 2 flops; real FFT of size n ~ 2.5 n log2 n), excl. RNG."""
    if fam == "iid":
        return 2.0 * 2 ** b * d, 2 ** b * d                   # (flops, normals drawn)
    n_base, dp = shift_geometry(fam, b, d)
    fft = 2.5 * d * math.log2(d)
    fl = fft + n_base * (2 * fft + 6 * (d // 2 + 1)) + (2 ** b) * 1.0   # + argmin scan
    return fl, n_base * d


def autocorr_max(e):
    """max over nonzero circular lags of |sum_n e[n] e[n+k]| for unit e."""
    E = np.fft.rfft(e)
    ac = np.fft.irfft(np.abs(E) ** 2, n=e.size)
    return float(np.max(np.abs(ac[1:])))


def run(kind, fam, b, bud, eta, frames, seed, check=0):
    s2 = spectrum(kind); d = s2.size
    spec = plan(gaussian_error_fn(s2), bud, bits=b, eta=eta)
    rng = np.random.default_rng(seed)                   # same x0, x_T stream as oracle.py for equal seed
    x0 = rng.standard_normal((frames, d)) * np.sqrt(s2)
    x = rng.standard_normal((frames, d))
    times = [float(t) for t in spec.times]
    t_choice = 0.0; ac_steps = []; zz = []; zperp = []; reach = []; checks = {"decoded_equal": 0, "n": 0, "max_proj_err": 0.0}
    for si, (t, s) in enumerate(zip(times[:-1], times[1:])):
        A, B, v, x0h, e, tau = step_target(x0, x, s2, t, s)
        z = np.empty_like(x)
        for f in range(frames):
            t0 = time.perf_counter()
            zf, idx, p = choose(fam, b, e[f], tau[f], cand_rng(seed, kind, bud, fam, si, f), d, None)
            t_choice += time.perf_counter() - t0
            z[f] = zf
            reach.append(abs(p - tau[f]) < 0.05 * tau[f])
            if f < check:                                  # decoder-side rebuild + projection check
                zd = decode_candidate(fam, b, idx, seed, kind, bud, si, f, d)
                checks["n"] += 1; checks["decoded_equal"] += int(np.array_equal(zd, zf))
                checks["max_proj_err"] = max(checks["max_proj_err"], abs(float(zd @ e[f]) - p))
        pz = np.sum(z * e, axis=1)
        wp = z - pz[:, None] * e
        zz.append(float(np.mean(np.sum(z * z, axis=1)) / d))
        zperp.append(float(np.mean(np.sum(wp * wp, axis=1)) / (d - 1)))
        ac_steps.append(float(np.mean([autocorr_max(e[f]) for f in range(min(frames, 8))])))
        x = A * x0h + B * x + math.sqrt(v) * z
    ts = times[-1]
    xo = x * np.sqrt(s2) / np.sqrt((1 - ts) ** 2 * s2 + ts * ts)
    bits = spec.n_steps * b
    err_f = np.sum((xo - x0) ** 2, axis=1); err = err_f.mean()
    dp_ = realism_distortion(s2, bits)
    ratio = np.mean(xo ** 2, axis=0) / s2
    groups = [float(ratio[g].mean()) for g in np.array_split(np.argsort(s2), 8)]
    fl, normals = flops_per_choice(fam, b, d)
    return {"source": kind, "family": fam, "b": b, "eta": eta, "frames": frames, "seed": seed, "budget": bud,
            "steps": spec.n_steps, "stop_t": ts, "bits_per_frame": bits, "bits_per_dim": bits / d,
            "gap_db": 10 * math.log10(err / dp_),
            "gap_se_db": 10 / math.log(10) * err_f.std(ddof=1) / math.sqrt(frames) / err,
            "err_per_frame": err_f.tolist(),
            "var_ratio": float(ratio.mean()), "var_ratio_groups": groups,
            "z_sq_per_dim_mean": float(np.mean(zz)), "zperp_sq_per_dim_mean": float(np.mean(zperp)),
            "frac_steps_matched": float(np.mean(reach)),
            "ehat_max_abs_autocorr_per_step": ac_steps,
            "flops_per_choice": fl, "flops_per_bit": fl / b, "normals_per_choice": normals,
            "normals_per_bit": normals / b, "choice_wall_s": t_choice,
            "choice_wall_s_per_choice": t_choice / (frames * spec.n_steps), "check": checks}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", default="iid,shift"); ap.add_argument("--bits", type=int, default=12)
    ap.add_argument("--eta", type=float, default=1.0); ap.add_argument("--sources", default="power_law,harsh_7dec")
    ap.add_argument("--budgets", default=None, help="comma list; default oracle.budgets(b)")
    ap.add_argument("--frames", type=int, default=32); ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check", type=int, default=2, help="frames per step whose candidate is rebuilt")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    buds = [int(x) for x in a.budgets.split(",")] if a.budgets else budgets(a.bits)
    rows = []; T0 = time.time()
    for kind in a.sources.split(","):
        for bud in buds:
            for fam in a.families.split(","):
                t0 = time.time()
                r = run(kind, fam, a.bits, bud, a.eta, a.frames, a.seed, a.check)
                r["wall_s"] = time.time() - t0
                rows.append(r)
                print(f"{kind:10s} {fam:9s} b={a.bits} R={r['bits_per_dim']:.3f} S={r['steps']:2d} gap {r['gap_db']:+.3f}±{r['gap_se_db']:.3f} "
                      f"vr {r['var_ratio']:.3f} ({min(r['var_ratio_groups']):.2f}-{max(r['var_ratio_groups']):.2f}) "
                      f"|z|2/D {r['z_sq_per_dim_mean']:.3f} ac {max(r['ehat_max_abs_autocorr_per_step']):.3f} "
                      f"flops/bit {r['flops_per_bit']:.3g} chk {r['check']['decoded_equal']}/{r['check']['n']} "
                      f"perr {r['check']['max_proj_err']:.1e} ({r['wall_s']:.1f}s)", flush=True)
                if a.out:
                    json.dump({"args": vars(a), "rows": rows, "wall_s": time.time() - T0}, open(a.out, "w"), indent=1)
