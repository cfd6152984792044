"""Tables for shift_candidates.py outputs (markdown to stdout). usage (repository root): python -m research.rcc_oracle.shift_summary"""
import json, math, os
import numpy as np
R = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "results", "rcc_oracle")
ld = lambda f: json.load(open(os.path.join(R, f)))["rows"] if os.path.exists(os.path.join(R, f)) else []


def paired(a, b):
    """10 log10(E_a/E_b) with its SE from per-frame errors on the same frames."""
    ea, eb = np.array(a["err_per_frame"]), np.array(b["err_per_frame"])
    d = ea / ea.mean() - eb / eb.mean()
    return 10 * math.log10(ea.mean() / eb.mean()), 10 / math.log(10) * d.std(ddof=1) / math.sqrt(d.size)


def vr(r):
    g = r["var_ratio_groups"]; return f"{r['var_ratio']:.3f} ({min(g):.2f}–{max(g):.2f})"


pair = ld("shift_b12_f32_paired.json")
big = {12: ld("shift_b12_f256.json"), 16: ld("shift_b16_f256.json"), 13: ld("shiftsign_b13_f256.json")}
orc = {12: ld("o_b12_exact.json"), 16: [r for r in ld("o_sweep_pl.json") + ld("o_sweep_harsh.json") if r["b"] == 16 and r["eta"] == 1.0],
       13: ld("o_b13_exact.json")}
for kind in ("power_law", "harsh_7dec"):
    print(f"\n### {kind}, b = 12, 32 paired frames (same x0, x_T; candidates differ)\n")
    print("| bits/frame | S | gap iid | gap shift | shift−iid (paired) | gap shift±sign | vr iid (groups) | vr shift (groups) | s/choice iid | s/choice shift |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = [r for r in pair if r["source"] == kind]
    for bud in sorted({r["budget"] for r in rows}):
        f = {r["family"]: r for r in rows if r["budget"] == bud}
        if "iid" not in f:
            continue
        i, s = f["iid"], f["shift"]; ss = f.get("shiftsign")
        dd, dse = paired(s, i)
        print(f"| {i['bits_per_frame']} | {i['steps']} | {i['gap_db']:+.3f}±{i['gap_se_db']:.3f} | {s['gap_db']:+.3f}±{s['gap_se_db']:.3f} | "
              f"{dd:+.3f}±{dse:.3f} | {ss['gap_db']:+.3f}±{ss['gap_se_db']:.3f} | {vr(i)} | {vr(s)} | "
              f"{i['choice_wall_s_per_choice']*1e3:.0f} ms | {s['choice_wall_s_per_choice']*1e3:.2f} ms |")
    for b, fam in ((12, "shift"), (12, "shiftsign"), (16, "shift"), (16, "shiftsign"), (13, "shiftsign")):
        rows = [r for r in big[b] if r["source"] == kind and r["family"] == fam]
        o = {r["bits_per_frame"]: r for r in orc[b] if r["source"] == kind and r["eta"] == 1.0}
        if not rows:
            continue
        print(f"\n{kind}: {fam} at b = {b}, {rows[0]['frames']} frames, vs the projection oracle (= iid in law, 256 frames, same x0/x_T stream)\n")
        print("| bits/frame | S | gap oracle | gap " + fam + " | diff (±SE, unpaired) | vr oracle (groups) | vr " + fam + " (groups) | flops/bit | s/choice |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            q = o.get(r["bits_per_frame"])
            if q is None:
                continue
            se = math.hypot(q["gap_se_db"], r["gap_se_db"])
            print(f"| {r['bits_per_frame']} | {r['steps']} | {q['gap_db']:+.3f}±{q['gap_se_db']:.3f} | {r['gap_db']:+.3f}±{r['gap_se_db']:.3f} | "
                  f"{r['gap_db']-q['gap_db']:+.3f}±{se:.3f} | {vr(q)} | {vr(r)} | {r['flops_per_bit']:.3g} | {r['choice_wall_s_per_choice']*1e3:.2f} ms |")
allr = pair + big[12] + big[16] + big[13]
print("\nchecks: decoder rebuild equal", sum(r["check"]["decoded_equal"] for r in allr), "/", sum(r["check"]["n"] for r in allr),
      "; max |FFT proj - direct dot| (shift families)", max(r["check"]["max_proj_err"] for r in allr if r["family"] != "iid"),
      "; iid (float32 scores)", max([r["check"]["max_proj_err"] for r in allr if r["family"] == "iid"] or [0]))
print("max over steps of mean(max |autocorr(e)| at nonzero lags):", {k: round(max(max(r["ehat_max_abs_autocorr_per_step"]) for r in allr if r["source"] == k), 3) for k in ("power_law", "harsh_7dec")},
      "min:", {k: round(min(min(r["ehat_max_abs_autocorr_per_step"]) for r in allr if r["source"] == k), 3) for k in ("power_law", "harsh_7dec")})
print("|z|^2/D of chosen candidates: ", {f: (round(min(r["z_sq_per_dim_mean"] for r in allr if r["family"] == f), 4), round(max(r["z_sq_per_dim_mean"] for r in allr if r["family"] == f), 4)) for f in ("iid", "shift", "shiftsign")},
      "; |w_perp|^2/(D-1):", {f: (round(min(r["zperp_sq_per_dim_mean"] for r in allr if r["family"] == f), 4), round(max(r["zperp_sq_per_dim_mean"] for r in allr if r["family"] == f), 4)) for f in ("iid", "shift", "shiftsign")})
for b in (12, 13, 16):
    for f in ("iid", "shift", "shiftsign"):
        rr = [r for r in allr if r["b"] == b and r["family"] == f]
        if rr:
            r = rr[0]
            print(f"cost b={b} {f}: flops/choice {r['flops_per_choice']:.3g}, flops/bit {r['flops_per_bit']:.3g}, normals/bit {r['normals_per_bit']:.3g}")
