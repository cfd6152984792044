"""Cross-check of the grouped projection oracle against real D-dim Gaussian candidates.
mode 'vectors': per step and group, draw 2^b candidates of G*d i.i.d. N(0,1) elements, pick the one whose
projection on e is nearest to tau and use that whole vector as z (no oracle).  Small b, few frames."""
import math, numpy as np
from . import oracle_group as og
from .oracle import nearest_exact

def nearest_vectors_factory(rng_holder):
    pass

def run_vectors(kind, b, G, bpf, eta, frames, seed):
    s2 = og.spectrum(kind); d = s2.size
    e1 = og.gaussian_error_fn(s2)
    spec = og.plan(lambda t: G * e1(t), G * bpf, bits=b, levels=1, eta=eta)
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal((frames, d)) * np.sqrt(s2)
    x = rng.standard_normal((frames, d))
    times = [float(t) for t in spec.times]; ng = frames // G
    for t, s in zip(times[:-1], times[1:]):
        A, B, v = og.step_coefs(t, s)
        m = (1 - t) ** 2 * s2 + t * t
        x0h = (1 - t) * s2 * x / m
        delta = (A * (x0 - x0h)).reshape(ng, G * d)
        nrm = np.linalg.norm(delta, axis=1); e = delta / nrm[:, None]; tau = nrm / math.sqrt(v)
        z = np.empty((ng, G * d))
        for g in range(ng):
            c = rng.standard_normal((1 << b, G * d)).astype(np.float32)
            p = c @ e[g].astype(np.float32)
            z[g] = c[np.argmin(np.abs(p - tau[g]))]
        x = A * x0h + B * x + math.sqrt(v) * z.reshape(frames, d)
    ts = times[-1]
    xo = x * np.sqrt(s2) / np.sqrt((1 - ts) ** 2 * s2 + ts * ts)
    bits = spec.n_steps * b / G
    err_f = np.sum((xo - x0) ** 2, axis=1); eg = err_f.reshape(ng, G).mean(1)
    gap = 10 * math.log10(err_f.mean() / og.realism_distortion(s2, bits))
    se = 10 / math.log(10) * eg.std(ddof=1) / math.sqrt(ng) / err_f.mean()
    return bits / d, spec.n_steps, gap, se, float(np.mean(np.mean(xo**2, 0) / s2))

for bpf in (50, 150):
    for kind in ("harsh_7dec",):
        r = run_vectors(kind, 10, 2, bpf, 1.0, 64, 3)
        o = og.run_group(kind, 10, 2, bpf, 1.0, 1024, 3)
        print(f"{kind} b=10 G=2 R={r[0]:.3f} S={r[1]}: vectors gap {r[2]:+.2f}±{r[3]:.2f} vr {r[4]:.3f} | "
              f"oracle gap {o['gap_db']:+.2f}±{o['gap_se_db']:.2f} vr {o['var_ratio']:.3f}", flush=True)
