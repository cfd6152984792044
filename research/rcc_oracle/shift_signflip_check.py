"""Smooth directions e vs shifted candidates, with and without a fixed shared random sign mask s
(candidate (j,k) = s * roll(base_j, k); projections = circular cross-correlation of base_j with s*e).
Reports E|p*-tau| vs the exact i.i.d. value (numerical integral). usage (repository root): python -m research.rcc_oracle.shift_signflip_check"""
import os, math, json
HERE = os.path.dirname(os.path.abspath(__file__))
import numpy as np
from scipy.stats import norm
from scipy.integrate import quad
from .shift_candidates import shift_projections, autocorr_max
D = 1024; b = 12; nb = 2 ** b // D; draws = 1500
tau = math.sqrt(2 * math.log(2) * b)
exact = quad(lambda r: math.exp(2.0 ** b * math.log1p(-(norm.cdf(tau + r) - norm.cdf(tau - r)))), 0, 10, limit=200)[0]
n = np.arange(D); s = np.random.default_rng(99).choice([-1.0, 1.0], D)
dirs = {"smooth_bump_w8": np.exp(-0.5 * ((n - D / 2) / 8.0) ** 2), "cosine_k3": np.cos(2 * np.pi * 3 * n / D),
        "lowpass_noise": np.convolve(np.random.default_rng(3).standard_normal(D), np.ones(32), "same")}
rows = []
for name, e in dirs.items():
    e = e / np.linalg.norm(e)
    for mask in (False, True):
        ee = s * e if mask else e
        rng = np.random.default_rng(11); dev = np.empty(draws)
        for i in range(draws):
            P = shift_projections(rng.standard_normal((nb, D)), ee, D)
            dev[i] = np.min(np.abs(P - tau))
        r = {"dir": name, "sign_mask": mask, "max_abs_autocorr": autocorr_max(ee), "mean_absdev": float(dev.mean()),
             "se": float(dev.std(ddof=1) / math.sqrt(draws)), "exact_iid": exact}
        rows.append(r); print(r, flush=True)
json.dump({"b": b, "tau": tau, "draws": draws, "rows": rows}, open(os.path.join(HERE, "..", "results", "rcc_oracle", "shift_signflip.json"), "w"), indent=1)
