"""Direct check of the shifted-candidate extreme: distribution of p* (the projection nearest to tau among
2^b candidates) for shift / shiftsign vs the exact i.i.d. law (oracle.nearest_exact), KS test.
Directions e: real ones taken from a run of the scheme (first/last step, both spectra), plus two
deliberately smooth ones (a Gaussian bump, all positive; a slow cosine) where the shifted projections
are strongly correlated.  usage (repository root): python -m research.rcc_oracle.shift_tail_check --draws 3000 --out research/results/rcc_oracle/shift_tail.json"""
import argparse, json, math
import numpy as np
from scipy.stats import ks_2samp
from .oracle import spectrum, nearest_exact, plan, gaussian_error_fn, step_coefs, D
from .shift_candidates import shift_geometry, shift_projections, autocorr_max

ap = argparse.ArgumentParser(); ap.add_argument("--draws", type=int, default=3000)
ap.add_argument("--bits", default="12,16"); ap.add_argument("--out", default=None)
a = ap.parse_args()


def real_dirs(kind, bud=493, b=12):
    s2 = spectrum(kind); spec = plan(gaussian_error_fn(s2), bud, bits=b, eta=1.0)
    rng = np.random.default_rng(5); x0 = rng.standard_normal(D) * np.sqrt(s2)
    out = {}; times = [float(t) for t in spec.times]
    for si in (0, len(times) - 2):                          # first and last coded step, x_t drawn from the
        t, s = times[si], times[si + 1]                      # true forward marginal (model-free stand-in)
        A, B, v = step_coefs(t, s)
        x = (1 - t) * x0 + t * rng.standard_normal(D)
        x0h = (1 - t) * s2 * x / ((1 - t) ** 2 * s2 + t * t)
        dl = A * (x0 - x0h); out[f"{kind}_step{si}"] = dl / np.linalg.norm(dl)
    return out


dirs = {}
dirs.update(real_dirs("power_law")); dirs.update(real_dirs("harsh_7dec"))
n = np.arange(D)
g = np.exp(-0.5 * ((n - D / 2) / 8.0) ** 2); dirs["smooth_bump_w8"] = g / np.linalg.norm(g)
c = np.cos(2 * np.pi * 3 * n / D); dirs["cosine_k3"] = c / np.linalg.norm(c)
rows = []
for b in [int(x) for x in a.bits.split(",")]:
    tau = math.sqrt(2 * math.log(2) * b)                    # near the reach of one choice
    for name, e in dirs.items():
        for fam in ("shift", "shiftsign"):
            nb, dp = shift_geometry(fam, b, D)
            rng = np.random.default_rng(11); ps = np.empty(a.draws)
            for i in range(a.draws):
                P = shift_projections(rng.standard_normal((nb, D)), e, dp)
                if fam == "shiftsign":
                    P = np.concatenate([P, -P])
                ps[i] = P.flat[np.argmin(np.abs(P - tau))]
            ref = nearest_exact(np.full(a.draws, tau), b, np.random.default_rng(12))
            ks = ks_2samp(ps, ref)
            r = {"b": b, "dir": name, "family": fam, "tau": tau, "ehat_max_abs_autocorr": autocorr_max(e),
                 "mean_p": float(ps.mean()), "mean_p_iid": float(ref.mean()),
                 "mean_absdev": float(np.mean(np.abs(ps - tau))), "mean_absdev_iid": float(np.mean(np.abs(ref - tau))),
                 "ks_stat": float(ks.statistic), "ks_p": float(ks.pvalue)}
            rows.append(r)
            print(f"b={b} {name:18s} {fam:9s} ac {r['ehat_max_abs_autocorr']:.3f} tau {tau:.2f} "
                  f"E|p-tau| {r['mean_absdev']:.4f} vs iid {r['mean_absdev_iid']:.4f}  E p {r['mean_p']:.3f} vs {r['mean_p_iid']:.3f} "
                  f"KS p={r['ks_p']:.3f}", flush=True)
if a.out:
    json.dump({"args": vars(a), "rows": rows}, open(a.out, "w"), indent=1)
