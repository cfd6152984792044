"""Projection oracle of rcc's greedy shift matching (docs/rcc.md §1) on the synthetic Gaussian spectra.

Per step and frame the encoder's choice among N = 2^b i.i.d. N(0, I_d) candidates depends only on
their projections p_i = <z_i, e>, which are i.i.d. N(0, 1); the chosen candidate given its
projection p* is p* e + w_perp with w_perp ~ N(0, I - e e^T).  So we draw p* (the value nearest
to the target tau among N normals) and a fresh w_perp.  p* is sampled exactly without drawing N
values ("exact" mode): with G(r) = Phi(tau+r) - Phi(tau-r), P(|p*-tau| > r) = (1 - G(r))^N, so
r = G^{-1}(1 - U^{1/N}); given r, p* = tau + r with probability phi(tau+r)/(phi(tau+r)+phi(tau-r))
= 1/(1+exp(2 tau r)), else tau - r.  "direct" mode draws the N normals (b <= ~20).

Everything else follows the project: planner rcc.plan / gaussian_error_fn / step_coefs (imported),
x0-conditioned transition, exact posterior mean x0_hat, shortfall roll-over (the next x0_hat sees
it), and a tail from t_S to 0 that is either exact (per-dim closed form of the Gaussian
probability-flow ODE: x_0 = x_t * sigma / sqrt((1-t)^2 sigma^2 + t^2)) or a NumPy replica of the
project's RK4 tail (rk4, RccSpec.tail_times, last interval Euler).
"""
from __future__ import annotations
import argparse, json, math, time
import numpy as np
from scipy.special import log_ndtr, expit
from gvc_jax.sampler.rcc import plan, gaussian_error_fn, step_coefs
from gvc_jax.bounds import realism_distortion, shannon_distortion

D = 1024


def spectrum(kind, d=D):
    i = np.arange(d, dtype=np.float64)
    s2 = (1.0 + i) ** -1.2 if kind == "power_law" else 10.0 ** (-7.0 * i / d)
    return s2 / s2.mean()


def nearest_exact(tau, b, rng):
    """p* = value nearest to tau (array, >= 0) among 2^b i.i.d. N(0,1); exact in distribution."""
    tau = np.asarray(tau, np.float64)
    u = rng.random(tau.shape)
    logg = np.log(-np.expm1(np.log(u) / float(2.0 ** b)))          # G(r) = 1 - U^(1/N)
    def log_G(r):
        lq = log_ndtr(r - tau)                                      # log Q(tau - r)
        ratio = np.exp(log_ndtr(-tau - r) - lq)                     # Q(tau + r)/Q(tau - r) < 1
        return lq + np.log1p(-np.minimum(ratio, 1.0))
    lo = np.zeros_like(tau); hi = tau + 60.0
    for _ in range(120):
        mid = 0.5 * (lo + hi)
        big = log_G(mid) > logg
        hi = np.where(big, mid, hi); lo = np.where(big, lo, mid)
    r = 0.5 * (lo + hi)
    plus = rng.random(tau.shape) < expit(-2.0 * tau * r)
    return np.where(plus, tau + r, tau - r)


def nearest_direct(tau, b, rng, chunk=1 << 20):
    out = np.empty_like(tau); n = 1 << b
    for f, t in enumerate(tau):
        best, bd = 0.0, np.inf
        for s in range(0, n, chunk):
            p = rng.standard_normal(min(chunk, n - s))
            i = np.argmin(np.abs(p - t))
            if abs(p[i] - t) < bd:
                bd, best = abs(p[i] - t), p[i]
        out[f] = best
    return out


def step_target(x0, x, s2, t, s, group=1):
    """Step t -> s of the x0-conditioned transition (docs/rcc.md §1): its coefficients (A, B, v),
    the exact posterior mean x0_hat, and the unit shift direction e with its length tau in noise
    units, one per ``group`` consecutive frames (rows)."""
    A, B, v = step_coefs(t, s)
    x0h = (1 - t) * s2 * x / ((1 - t) ** 2 * s2 + t * t)
    delta = (A * (x0 - x0h)).reshape(-1, group * x.shape[1])
    nrm = np.linalg.norm(delta, axis=1)
    return A, B, v, x0h, delta / np.maximum(nrm, 1e-300)[:, None], nrm / math.sqrt(v)


def run(kind, b, bits_per_frame, eta, frames, seed, mode="exact", tail="exact", s2=None):
    s2 = spectrum(kind) if s2 is None else s2
    d = s2.size
    # RccSpec caps bits at 24; for b > 24 plan with (bits, levels) = (b/lv, lv): same goal
    # eta*levels*bits*ln2 and same S = bpf // (levels*bits), hence the same time grid for L = 1.
    lv = next(l for l in range(1, 65) if b % l == 0 and b // l <= 24)
    spec = plan(gaussian_error_fn(s2), bits_per_frame, bits=b // lv, levels=lv, eta=eta)
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal((frames, d)) * np.sqrt(s2)
    x = rng.standard_normal((frames, d))                            # x_T at t = 1
    times = [float(t) for t in spec.times]
    kl_deliv, kl_goal, p2, reach = [], [], [], []
    for t, s in zip(times[:-1], times[1:]):
        A, B, v, x0h, e, tau = step_target(x0, x, s2, t, s)
        if mode == "perfect":        # b -> infinity limit: exact match, rate charged = planned KL
            p = tau.copy()
        else:
            p = nearest_exact(tau, b, rng) if mode == "exact" else nearest_direct(tau, b, rng)
        w = rng.standard_normal((frames, d))
        w -= np.sum(w * e, axis=1, keepdims=True) * e
        z = p[:, None] * e + w
        x = A * x0h + B * x + math.sqrt(v) * z
        p2.append(np.mean(p * p / 2)); reach.append(np.mean(np.abs(p - tau) < 0.05 * tau))
        kl_goal.append(np.mean(tau ** 2 / 2)); kl_deliv.append(np.mean(p * (2 * tau - p) / 2))
    ts = times[-1]
    if tail == "exact":
        xo = x * np.sqrt(s2) / np.sqrt((1 - ts) ** 2 * s2 + ts * ts)
    else:                                                           # replica of rcc.ode_tail rk4
        tt = spec.tail_times().astype(np.float64)
        u = lambda x, t: (t - (1 - t) * s2) * x / ((1 - t) ** 2 * s2 + t * t)
        for i in range(spec.tail_steps - 1):
            t, s_ = tt[i], tt[i + 1]; h = t - s_; tm = t - h / 2
            u1 = u(x, t); u2 = u(x - h / 2 * u1, tm); u3 = u(x - h / 2 * u2, tm); u4 = u(x - h * u3, s_)
            x = x - h / 6 * (u1 + 2 * u2 + 2 * u3 + u4)
        t = tt[spec.tail_steps - 1]; xo = x - t * u(x, t)
    bits = spec.n_steps * b
    err_f = np.sum((xo - x0) ** 2, axis=1)                         # per frame
    err = err_f.mean()
    dp = realism_distortion(s2, bits)
    ratio = np.mean(xo ** 2, axis=0) / s2
    groups = [float(ratio[g].mean()) for g in np.array_split(np.argsort(s2), 8)]
    return {"source": kind, "b": b, "eta": eta, "frames": frames, "mode": mode, "tail": tail,
            "steps": spec.n_steps, "stop_t": times[-1], "bits_per_frame": bits,
            "bits_per_dim": bits / d, "gap_db": 10 * math.log10(err / dp),
            "gap_se_db": 10 / math.log(10) * err_f.std(ddof=1) / math.sqrt(frames) / err,
            "gap_shannon_db": 10 * math.log10(err / shannon_distortion(s2, bits)),
            "var_ratio": float(ratio.mean()), "var_ratio_groups": groups,
            # sum over steps of E[KL asked] = tau^2/2 and of the KL removed by the chosen p*:
            # tau^2/2 - (tau - p)^2/2 = p (2 tau - p)/2 (nats per frame)
            "kl_asked_nats": float(np.sum(kl_goal)), "kl_delivered_nats": float(np.sum(kl_deliv)),
            "rate_nats": bits * math.log(2),
            # mean over steps of E[p*^2/2] in bits: what one choice 'delivers' along e
            "p2_bits_per_choice": float(np.mean(p2) / math.log(2)),
            "frac_steps_matched": float(np.mean(reach))}


TARGETS = [48, 84, 144, 216, 420, 492]      # bench rcc bits/frame at b = 12 (= the 6 rates)
BUDGETS12 = [51, 85, 153, 221, 425, 493]    # bench's budgets (top-M index bits)


def budgets(b):
    if b == 12:
        return BUDGETS12
    return [max(1, round(t / b)) * b for t in TARGETS]


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--bits", default="12"); ap.add_argument("--eta", default="1.0")
    ap.add_argument("--sources", default="power_law,harsh_7dec")
    ap.add_argument("--frames", type=int, default=256); ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mode", default="exact"); ap.add_argument("--tail", default="exact")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    rows = []
    for kind in a.sources.split(","):
        for b in [int(x) for x in a.bits.split(",")]:
            for eta in [float(x) for x in a.eta.split(",")]:
                for bud in budgets(b):
                    t0 = time.time()
                    r = run(kind, b, bud, eta, a.frames, a.seed, a.mode, a.tail)
                    rows.append(r)
                    print(f"{kind:10s} b={b:2d} eta={eta:.2f} R={r['bits_per_dim']:.3f} S={r['steps']:2d} "
                          f"tS={r['stop_t']:.3f} gap {r['gap_db']:+.2f}±{r['gap_se_db']:.2f} dB "
                          f"vr {r['var_ratio']:.3f} ({min(r['var_ratio_groups']):.2f}-{max(r['var_ratio_groups']):.2f}) "
                          f"p2/2 {r['p2_bits_per_choice']:.1f} bits/choice, matched {r['frac_steps_matched']:.2f} ({time.time()-t0:.1f}s)", flush=True)
    if a.out:
        json.dump({"args": vars(a), "rows": rows}, open(a.out, "w"), indent=1)
