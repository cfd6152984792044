"""Oracle variant: ONE choice of b bits shared by a group of G frames (joint direction in G*d dims).

Same scheme as oracle.py (greedy projection matching, x0-conditioned transition, exact x0_hat,
shortfall roll-over, exact ODE tail) except that per step the shift delta of G frames is matched
as one G*d-dim vector with one choice among 2^b candidates (projection oracle, exact sampler).
The planner is rcc.plan on the group's error G*err(t) with the group's budget G*bits_per_frame,
so each frame's step carries eta*(b/G)*ln2 nats of expected KL: the step size is set by b/G,
the per-choice overhead by b.  Rate per frame = S*b/G (exact).  mode=perfect: p* = tau.
"""
import argparse, json, math, time
import numpy as np
from .oracle import spectrum, nearest_exact, step_target, TARGETS
from gvc_jax.sampler.rcc import plan, gaussian_error_fn
from gvc_jax.bounds import realism_distortion, shannon_distortion


def run_group(kind, b, G, bits_per_frame, eta, frames, seed, mode="exact"):
    s2 = spectrum(kind); d = s2.size
    assert frames % G == 0
    e1 = gaussian_error_fn(s2)
    lv = next(l for l in range(1, 65) if b % l == 0 and b // l <= 24)
    spec = plan(lambda t: G * e1(t), G * bits_per_frame, bits=b // lv, levels=lv, eta=eta)
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal((frames, d)) * np.sqrt(s2)
    x = rng.standard_normal((frames, d))
    times = [float(t) for t in spec.times]
    ng = frames // G
    p2 = []
    for t, s in zip(times[:-1], times[1:]):
        A, B, v, x0h, e, tau = step_target(x0, x, s2, t, s, group=G)
        p = tau.copy() if mode == "perfect" else nearest_exact(tau, b, rng)
        w = rng.standard_normal((ng, G * d))
        w -= np.sum(w * e, axis=1, keepdims=True) * e
        z = (p[:, None] * e + w).reshape(frames, d)
        x = A * x0h + B * x + math.sqrt(v) * z
        p2.append(np.mean(p * p / 2))
    ts = times[-1]
    xo = x * np.sqrt(s2) / np.sqrt((1 - ts) ** 2 * s2 + ts * ts)      # exact PF-ODE tail
    bits = spec.n_steps * b / G                                         # per frame
    err_f = np.sum((xo - x0) ** 2, axis=1)
    err = err_f.mean()
    eg = err_f.reshape(ng, G).mean(1)                                   # groups are the iid units
    ratio = np.mean(xo ** 2, axis=0) / s2
    groups = [float(ratio[g].mean()) for g in np.array_split(np.argsort(s2), 8)]
    return {"source": kind, "b": b, "G": G, "eta": eta, "mode": mode, "frames": frames,
            "steps": spec.n_steps, "stop_t": ts, "bits_per_frame": bits, "bits_per_dim": bits / d,
            "gap_db": 10 * math.log10(err / realism_distortion(s2, bits)),
            "gap_se_db": 10 / math.log(10) * eg.std(ddof=1) / math.sqrt(ng) / err,
            "gap_shannon_db": 10 * math.log10(err / shannon_distortion(s2, bits)),
            "var_ratio": float(ratio.mean()), "var_ratio_groups": groups,
            "p2_bits_per_choice": float(np.mean(p2) / math.log(2))}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="32:1,32:2,32:4,32:8", help="b:G pairs")
    ap.add_argument("--eta", default="1.0"); ap.add_argument("--sources", default="power_law,harsh_7dec")
    ap.add_argument("--frames", type=int, default=256); ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mode", default="exact"); ap.add_argument("--out", default=None)
    a = ap.parse_args()
    rows = []
    for kind in a.sources.split(","):
        for cfg in a.configs.split(","):
            b, G = (int(v) for v in cfg.split(":"))
            for eta in [float(v) for v in a.eta.split(",")]:
                for tgt in TARGETS:
                    S = max(1, round(tgt * G / b))
                    r = run_group(kind, b, G, S * b / G, eta, a.frames, a.seed, a.mode)
                    rows.append(r)
                    print(f"{kind:10s} b={b:2d} G={G:2d} b/G={b/G:5.2f} eta={eta:.2f} R={r['bits_per_dim']:.3f} "
                          f"S={r['steps']:3d} tS={r['stop_t']:.3f} gap {r['gap_db']:+.2f}±{r['gap_se_db']:.2f} dB "
                          f"vr {r['var_ratio']:.3f} ({min(r['var_ratio_groups']):.2f}-{max(r['var_ratio_groups']):.2f}) "
                          f"p2/2 {r['p2_bits_per_choice']:.1f} b/choice", flush=True)
    if a.out:
        json.dump({"args": vars(a), "rows": rows}, open(a.out, "w"), indent=1)
