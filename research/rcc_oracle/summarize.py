"""Markdown tables from the JSON results in research/results/rcc_oracle (docs/rcc.md §7).

usage (repository root): python -m research.rcc_oracle.summarize > research/results/rcc_oracle/summary.md"""
import json, glob, os
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.chdir(os.path.join(ROOT, "research", "results", "rcc_oracle"))
L = lambda f: json.load(open(f))["rows"] if os.path.exists(f) else []
BENCH = json.load(open(os.path.join(ROOT, "bench", "results", "gaussian_rd_rcc.json")))["rows"]

def fmt_vr(r):
    g = r["var_ratio_groups"] if "var_ratio_groups" in r else r["variance_ratio_groups"]
    v = r.get("var_ratio", r.get("variance_ratio_mean"))
    return f"{v:.2f} ({min(g):.2f}–{max(g):.2f})"

print("## Validation, b = 12, L = 1, eta = 1\n")
print("| source | bits/dim | bench (8 fr, seed 0) | real JAX rcc (32 fr, seed 1) | real JAX (32 fr, seed 2) | oracle RK4-replica tail (256 fr) | oracle exact tail (256 fr) | oracle var ratio |")
print("|---|---|---|---|---|---|---|---|")
real1, real2 = L("real_b12_f32_s1.json"), L("real_b12_f32_s2.json")
ork, oex = L("o_b12_rk4.json"), L("o_b12_exact.json")
for i, r in enumerate(ork):
    src = r["source"]
    b = [x["rcc"] for x in BENCH if x["source"] == src][i % 6]
    r1 = [x for x in real1 if x["source"] == src]
    r2 = [x for x in real2 if x["source"] == src]
    e = oex[i]
    s1 = f"{r1[i%6]['gap_db']:+.2f}" if len(r1) > i % 6 else "–"
    s2 = f"{r2[i%6]['gap_db']:+.2f}" if len(r2) > i % 6 else "–"
    print(f"| {src} | {r['bits_per_dim']:.3f} | {b['gap_db']:+.2f} | {s1} | {s2} | {r['gap_db']:+.2f} ± {r['gap_se_db']:.2f} | {e['gap_db']:+.2f} | {fmt_vr(e)} |")

rows = L("o_sweep_harsh.json") + L("o_sweep_pl.json") + L("o_bigb.json")
for src in ("harsh_7dec", "power_law"):
    print(f"\n## {src}: gap dB (var ratio mean) per b and eta, 256 frames, exact tail\n")
    bs = sorted({r["b"] for r in rows if r["source"] == src})
    for b in bs:
        rr = [r for r in rows if r["source"] == src and r["b"] == b]
        etas = sorted({r["eta"] for r in rr})
        rates = []
        for r in rr:
            if r["bits_per_dim"] not in rates: rates.append(r["bits_per_dim"])
        if b == bs[0]:
            print("| b | eta | " + " | ".join(f"pt{k+1}" for k in range(6)) + " |")
            print("|---|---|" + "---|" * 6)
        for eta in etas:
            cells = []
            for r in [r for r in rr if r["eta"] == eta][:6]:
                cells.append(f"{r['bits_per_dim']:.3f}: {r['gap_db']:+.2f} ({r['var_ratio']:.2f})")
            print(f"| {b} | {eta:.1f} | " + " | ".join(cells) + " |")

print("\n## Perfect matching (p* = tau, rate charged S*b = planned KL), eta = 1: grid floor\n")
pr = L("o_perfect.json")
for src in ("harsh_7dec", "power_law"):
    for b in sorted({r["b"] for r in pr}):
        cells = [f"{r['bits_per_dim']:.3f}: {r['gap_db']:+.2f}" for r in pr if r["source"] == src and r["b"] == b]
        print(f"| {src} | grid b={b} | " + " | ".join(cells) + " |")
print("\n## Perfect matching on harsh with eta < 1 (delivers eta of the charged rate)\n")
for r0 in sorted({(r["b"], r["eta"]) for r in L("o_perfect_eta.json")}):
    cells = [f"{r['bits_per_dim']:.3f}: {r['gap_db']:+.2f}" for r in L("o_perfect_eta.json") if (r["b"], r["eta"]) == r0]
    print(f"| grid b={r0[0]} | eta={r0[1]} | " + " | ".join(cells) + " |")

print("\n## One choice of b bits shared by G frames (b/G bits per frame and step), 512 frames\n")
gr = L("o_group.json") + L("o_group_ctrl.json") + L("o_group_frontier.json")
for src in ("harsh_7dec", "power_law"):
    for cfg in sorted({(r["b"], r["G"], r["eta"]) for r in gr if r["source"] == src}):
        rr = [r for r in gr if r["source"] == src and (r["b"], r["G"], r["eta"]) == cfg]
        cells = [f"{r['bits_per_dim']:.3f}: {r['gap_db']:+.2f} ({r['var_ratio']:.2f})" for r in rr]
        p2 = sum(r["p2_bits_per_choice"] for r in rr) / len(rr)
        print(f"| {src} | b={cfg[0]} G={cfg[1]} (b/G={cfg[0]/cfg[1]:g}) eta={cfg[2]} | p2/2={p2:.1f} | " + " | ".join(cells) + " |")
s7 = L("o_group_seed7.json")
if s7:
    print("\nseed 7 repeat:")
    for cfg in sorted({(r["b"], r["G"]) for r in s7}):
        print(f"| harsh b={cfg[0]} G={cfg[1]} | " + " | ".join(f"{r['bits_per_dim']:.3f}: {r['gap_db']:+.2f} ({fmt_vr(r)})" for r in s7 if (r["b"], r["G"]) == cfg) + " |")
