"""The fit table of docs/fit.md: Wan configurations compiled for TPU targets from a CPU host.

Every case is :func:`gvc_jax.fit.fit` (one GOP's programs, abstract weights, compiled by libtpu
for compile-only devices; nothing runs). Programs shared between cases (the VAE, umT5 and CLIP
on one chip of the same TPU generation) are compiled once. Writes the reports and a summary
table to ``--out`` (JSON, with the command that made it).

    pip install "gvc-jax[tpu]"
    python bench/fit_tpu.py --out bench/results/fit_tpu.json          # every case
    python bench/fit_tpu.py --cases 13b-480p-v5e1 --out /tmp/fit.json  # one case
    python bench/fit_tpu.py --merge a.json b.json --out bench/results/fit_tpu.json
    python bench/fit_tpu.py --markdown bench/results/fit_tpu.json     # the table of docs/fit.md
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# name -> (target, preset, WxH, frames per GOP, sharding table or None)
CASES = {
    "13b-480p-v5e1": ("tpu-v5e-1", "wan2.1-t2v-1.3b", "832x480", 81, None),
    "13b-720p-v5e1": ("tpu-v5e-1", "wan2.1-t2v-1.3b", "1280x720", 33, None),
    "14b-720p-v5e1": ("tpu-v5e-1", "wan2.1-t2v-14b", "1280x720", 33, None),
    "14b-720p-v5e8-fsdp": ("tpu-v5e-8", "wan2.1-t2v-14b", "1280x720", 33, "wan-fsdp"),
    "14b-720p-v5e8-seq": ("tpu-v5e-8", "wan2.1-t2v-14b", "1280x720", 33, "wan-seq"),
    "14b-720p-v6e8-fsdp": ("tpu-v6e-8", "wan2.1-t2v-14b", "1280x720", 33, "wan-fsdp"),
    "i2v-720p-v5e8-fsdp": ("tpu-v5e-8", "wan2.1-i2v-14b-720p", "1280x720", 33, "wan-fsdp"),
    "i2v-720p-v6e8-fsdp": ("tpu-v6e-8", "wan2.1-i2v-14b-720p", "1280x720", 33, "wan-fsdp"),
    "flf2v-720p-v5e8-fsdp": ("tpu-v5e-8", "wan2.1-flf2v-14b-720p", "1280x720", 33, "wan-fsdp"),
    "flf2v-720p-v6e8-fsdp": ("tpu-v6e-8", "wan2.1-flf2v-14b-720p", "1280x720", 33, "wan-fsdp"),
}


def summary_row(name: str, r: dict) -> dict:
    from gvc_jax.fit.api import program_fits

    if "fits_with_offload_always" not in r:   # reports written before the key existed
        r["fits_with_offload_always"] = all(program_fits(e, r["capacity_bytes"], "always")
                                            for e in r["programs"])
    per = r["per_device_bytes"] or {}
    return {"case": name, "target": r["target"], "config": r["config"],
            "size": f"{r['size'][0]}x{r['size'][1]}x{r['frames']}", "sharding": r["sharding"],
            "per_chip_gib": round((per.get("total") or 0) / 2 ** 30, 2),
            "largest_program": r["largest_program"], "fits": r["fits"],
            "fits_with_offload_always": r["fits_with_offload_always"],
            "estimate_seconds_per_gop": r["estimate_seconds_per_gop"]}


def merge(paths, out_path, argv) -> int:
    from gvc_jax.fileutil import write_bytes_atomic

    runs = [json.load(open(p)) for p in paths]
    out = {"command": "python bench/fit_tpu.py " + " ".join(argv or sys.argv[1:]),
           "commands": [r["command"] for r in runs], "note": runs[0]["note"],
           "summary": [summary_row(k, v) for r in runs for k, v in r["reports"].items()],
           "reports": {k: v for r in runs for k, v in r["reports"].items()},
           "seconds": sum(r["seconds"] for r in runs)}
    write_bytes_atomic(out_path, (json.dumps(out, indent=1) + "\n").encode())
    return 0


def _verdict(row: dict) -> str:
    if row["fits"]:
        return "yes"
    if row.get("fits_with_offload_always"):
        return "with `--offload always`"
    return "**no**"


def markdown(path: str) -> str:
    """The summary of a results file as the Markdown table of docs/fit.md and the README."""
    doc = json.load(open(path))
    lines = ["| target | config | size × frames | DiT sharding | per-chip GiB (largest program) "
             "| fits | est. s per GOP (encode) |", "|---|---|---|---|---:|---|---:|"]
    for row in doc["summary"]:
        est = row["estimate_seconds_per_gop"]
        lines.append(f"| {row['target']} | {row['config']} | {row['size']} | "
                     f"{row['sharding'] or '—'} | {row['per_chip_gib']:.2f} "
                     f"({row['largest_program']}) | {_verdict(row)} | "
                     f"{'—' if est is None else f'{est:.1f}'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    ap.add_argument("--programs", default=None, help="comma-separated subset of programs")
    ap.add_argument("--merge", nargs="+", default=None,
                    help="combine the JSON files of earlier runs (run in parallel) into --out")
    ap.add_argument("--markdown", metavar="JSON", help="print a results file's table and exit")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    if args.markdown:
        print(markdown(args.markdown))
        return 0
    if not args.out:
        ap.error("--out is required")
    if args.merge:
        return merge(args.merge, args.out, argv)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from gvc_jax.fileutil import write_bytes_atomic
    from gvc_jax.fit import fit, format_table

    names = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        ap.error(f"unknown cases {unknown}; known: {', '.join(CASES)}")
    progs = tuple(args.programs.split(",")) if args.programs else None
    memo, reports, rows = {}, {}, []
    t0 = time.perf_counter()
    for name in names:
        tgt, preset, size, frames, shard = CASES[name]
        r = fit(tgt, preset, size, frames, shard=shard, programs=progs, memo=memo,
                log=lambda m: print(f"[{time.perf_counter() - t0:6.0f} s] {name}: {m}",
                                    flush=True))
        print(format_table(r), flush=True)
        reports[name] = r
        rows.append(summary_row(name, r))
        out = {"command": "python bench/fit_tpu.py " + " ".join(argv or sys.argv[1:]),
               "note": "TPU figures are compiled and fitted by libtpu on a CPU host, not run",
               "summary": rows, "reports": reports,
               "seconds": time.perf_counter() - t0}
        write_bytes_atomic(args.out, (json.dumps(out, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
