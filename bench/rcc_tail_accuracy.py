"""Accuracy of rcc's ODE tails on the exact Gaussian flow, without coding (docs/rcc.md §5).

For x0 ~ N(0, diag(var)) the probability-flow ODE maps x_t = sqrt((1-t)^2 var + t^2) xi to
x0 = sqrt(var) xi, one gain per dimension. Each tail (:func:`gvc_jax.sampler.rcc.ode_tail`) is
run from several stop times t_S on the 7-decade and power-law spectra of the RD bench, and the
per-dimension variance ratio (tail gain / exact gain)^2 is reported (mean, min, max), with the
relative squared error and the model calls. Seconds on a CPU.

    python bench/rcc_tail_accuracy.py --out bench/results/rcc_tail_accuracy.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from gvc_jax.sampler import rcc  # noqa: E402

TAILS = (("rk4", 8), ("rk4", 16), ("dpm2m", 16), ("dpm2m", 24), ("dpm2m", 32), ("dpm2m", 48))


def spectra(d: int = 1024) -> dict:
    i = np.arange(d)
    out = {"harsh_7dec": 10.0 ** (-7.0 * i / d), "power_law": (1.0 + i) ** -1.2}
    return {k: v / v.mean() for k, v in out.items()}


def run(var: np.ndarray, t_s: float, solver: str, steps: int) -> dict:
    t_s = float(np.float32(t_s))
    spec = rcc.RccSpec(times=(1.0, t_s), tail_solver=solver, tail_steps=steps)
    s2 = jnp.asarray(var, jnp.float32)[:, None, None, None]

    def velocity(x, t):                  # exact u = E[eps - x0 | x_t] of N(0, diag(var))
        return (t - (1.0 - t) * s2) * x / ((1.0 - t) ** 2 * s2 + t * t)

    x_t = np.sqrt((1 - t_s) ** 2 * var + t_s ** 2).astype(np.float32)[:, None, None, None]
    x0 = np.asarray(jax.jit(lambda x: rcc.ode_tail(velocity, x, spec))(jnp.asarray(x_t)))
    ratio = (x0[:, 0, 0, 0].astype(np.float64) / np.sqrt(var)) ** 2
    rel = float(np.sum((np.sqrt(ratio) - 1) ** 2 * var) / np.sum(var))
    return {"solver": solver, "intervals": steps, "model_calls": spec.model_calls() - 1,
            "t_s": t_s, "variance_ratio_mean": float(ratio.mean()),
            "variance_ratio_min": float(ratio.min()), "variance_ratio_max": float(ratio.max()),
            "relative_squared_error": rel}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stops", default="0.78,0.5,0.33,0.1")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    rows = []
    for name, var in spectra().items():
        for t_s in (float(v) for v in a.stops.split(",")):
            for solver, steps in TAILS:
                r = {"source": name, **run(var, t_s, solver, steps)}
                rows.append(r)
                print(f"{name} t_S={t_s:.2f} {solver}:{steps} ({r['model_calls']} calls): ratio "
                      f"{r['variance_ratio_mean']:.3f} [{r['variance_ratio_min']:.3f}, "
                      f"{r['variance_ratio_max']:.3f}], rel err {r['relative_squared_error']:.1e}",
                      file=sys.stderr)
    out = {"command": "python bench/rcc_tail_accuracy.py " + " ".join(
        sys.argv[1:] if argv is None else argv), "device": str(jax.devices()[0]), "rows": rows}
    text = json.dumps(out, indent=1)
    if a.out:
        with open(a.out + ".tmp", "w") as f:
            f.write(text + "\n")
        os.replace(a.out + ".tmp", a.out)
    else:
        print(text)


if __name__ == "__main__":
    main()
