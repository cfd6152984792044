"""Plain-text tables of fit reports (docs/fit.md, "Report"), for the command line and docs."""
from __future__ import annotations

GIB = float(1 << 30)


def _gib(b) -> str:
    return "-" if b is None else f"{b / GIB:.2f}"


def _secs(s) -> str:
    if s is None:
        return "-"
    return f"{s:.3g}"


def format_table(report: dict) -> str:
    """One line per program, then the verdict: per-chip GiB (arguments, temporaries, outputs,
    weights of the DiT resident meanwhile, total), fits, TFLOP and the roofline estimate."""
    head = (f"{report['target']} ({report['devices']} x {report['device_kind'] or '?'}): "
            f"{report['config']} {report['mode']} {report['size'][0]}x{report['size'][1]} x "
            f"{report['frames']} frames, {report['dtype']}"
            + (f", DiT sharded {report['sharding']}" if report.get("sharding") else ""))
    cols = ("program", "args", "temps", "outs", "resident", "total", "fits", "TFLOP",
            "est s", "compile s")
    rows = []
    for e in report["programs"]:
        total = e.get("total_bytes")
        if total is None:
            tot = f">{_gib(e.get('required_bytes'))}" if e.get("required_bytes") else "?"
        else:
            tot = _gib(total + e.get("resident_bytes", 0))
        flops = e.get("flops")
        rows.append((e["name"], _gib(e.get("arguments_bytes")), _gib(e.get("temporaries_bytes")),
                     _gib(e.get("outputs_bytes")), _gib(e.get("resident_bytes")), tot,
                     "yes" if e["fits"] else "NO", "-" if flops is None else f"{flops / 1e12:.1f}",
                     _secs(e.get("estimate_seconds")), f"{e['compile_seconds']:.0f}"))
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c)
              for i, c in enumerate(cols)]
    line = lambda r: "  ".join(v.rjust(w) if i else v.ljust(w)  # noqa: E731
                               for i, (v, w) in enumerate(zip(r, widths)))
    out = [head, "per chip, GiB; capacity " + _gib(report["capacity_bytes"]), line(cols)]
    out += [line(r) for r in rows]
    verdict = "fits" if report["fits"] else "DOES NOT FIT"
    per = report.get("per_device_bytes") or {}
    out.append(f"{verdict}: largest program {report['largest_program']} needs "
               f"{_gib(per.get('total'))} GiB of {_gib(report['capacity_bytes'])} GiB per chip")
    if not report["fits"] and report.get("fits_with_offload_always"):
        out.append("fits with --offload always (the DiT's weights parked in host memory while "
                   "the VAE and CLIP run)")
    est, dec = report.get("estimate_seconds_per_gop"), report.get("estimate_seconds_per_gop_decode")
    out.append(f"estimate (roofline, compiled not run): {_secs(est)} s per GOP to encode, "
               f"{_secs(dec)} s to decode")
    return "\n".join(out)
