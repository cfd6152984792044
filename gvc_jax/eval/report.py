"""Evaluation reports: ``results.csv``, ``results.json``, ``summary.md`` and RD plots
(``rd_psnr.png``, ``rd_ms_ssim.png``, ``rd_lpips.png``), all written atomically."""
from __future__ import annotations

import csv
import io
import json
import os

from gvc_jax.fileutil import atomic_output, write_bytes_atomic

COLUMNS = ("video", "codec", "setting", "frames", "height", "width", "fps", "bits", "bytes",
           "bpp", "kbps", "psnr_rgb", "psnr_rgb_seq", "psnr_y", "psnr_y_seq", "ms_ssim",
           "lpips", "encode_seconds", "decode_seconds")

PLOTS = (("psnr_rgb", "PSNR RGB (dB, mean of frames)", "rd_psnr.png"),
         ("ms_ssim", "MS-SSIM (RGB)", "rd_ms_ssim.png"),
         ("lpips", "LPIPS-Alex (lower is better)", "rd_lpips.png"))


def sort_rows(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: (r["video"], r["codec"], r["bpp"]))


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in sort_rows(rows):
        w.writerow([_cell(r.get(c)) for c in COLUMNS])
    return buf.getvalue()


def _fmt(v, digits: int) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _setting_cell(r: dict) -> str:
    """A matched-rate row also shows the knob the search chose, and whether the target was
    below the encoder's floor."""
    m = (r.get("settings") or {}).get("match")
    if not m:
        return r["setting"]
    (knob, value), = m["chosen"].items()
    floor = ", floor" if m["outcome"].startswith("target below") else ""
    return f"{r['setting']} ({knob}={value}{floor})"


def to_markdown(rows: list[dict], notes: dict[str, str], command: str | None = None,
                failed: list[dict] = ()) -> str:
    out = ["# gvc eval results", ""]
    if command:
        out += [f"Command: `{command}`", ""]
    out += ["bpp = bits / (frames · H · W) of the evaluated frames; kbps at the source frame "
            "rate. Bits are the real size of each coded file. PSNR is the mean of per-frame "
            "PSNR; Y is BT.709 luma. Times include JIT compilation on first use.", ""]
    for video in sorted({r["video"] for r in rows}):
        vr = [r for r in sort_rows(rows) if r["video"] == video]
        r0 = vr[0]
        out += [f"## {video} ({r0['frames']} frames, {r0['width']}x{r0['height']}, "
                f"{r0['fps']:.3f} fps)", "",
                "| codec | setting | bytes | bpp | kbps | PSNR RGB | PSNR Y | MS-SSIM | LPIPS "
                "| enc s | dec s |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in vr:
            out.append(f"| {r['codec']} | {_setting_cell(r)} | {r['bytes']} | {r['bpp']:.5f} | "
                       f"{r['kbps']:.2f} | {_fmt(r['psnr_rgb'], 2)} | {_fmt(r['psnr_y'], 2)} | "
                       f"{_fmt(r['ms_ssim'], 4)} | {_fmt(r['lpips'], 4)} | "
                       f"{r['encode_seconds']:.2f} | {r['decode_seconds']:.2f} |")
        out.append("")
    if failed:
        out += ["## Runs that failed (not in the tables)", ""]
        out += [f"- {r['video']} {r['codec']} {r['setting']}: {r['failed']}" for r in failed]
        out.append("")
    if notes:
        out += ["## Notes", ""] + [f"- {k}: {v}" for k, v in sorted(notes.items())] + [""]
    return "\n".join(out)


def _log_bpp_axis(ax) -> None:
    """A log bpp axis whose labels never collide: ticks at 1, 2 and 5 per decade (every digit
    when the data span less than a factor of 3) written as plain decimals, no minor-tick
    labels, slanted so neighbours keep apart. Call it after plotting."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    subs = (1.0, 2.0, 5.0) if hi > 3 * lo else tuple(float(d) for d in range(1, 10))
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs, numticks=12))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(axis="x", labelrotation=35)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")


def plot(rows: list[dict], key: str, ylabel: str, path: str) -> bool:
    """One RD panel per video, one curve per codec; False when no row has the metric."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    videos = sorted({r["video"] for r in rows if r.get(key) is not None})
    if not videos:
        return False
    n = len(videos)
    cols = min(n, 3)
    rws = -(-n // cols)
    fig, axes = plt.subplots(rws, cols, figsize=(5.2 * cols, 4.0 * rws), squeeze=False)
    for ax, video in zip(axes.flat, videos):
        vr = [r for r in sort_rows(rows) if r["video"] == video and r.get(key) is not None]
        for codec in sorted({r["codec"] for r in vr}):
            pts = sorted((r["bpp"], r[key]) for r in vr if r["codec"] == codec)
            style = "o-" if codec.startswith("gvc-") else "s--"
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=codec, ms=4)
        _log_bpp_axis(ax)
        ax.set_xlabel("bpp")
        ax.set_ylabel(ylabel)
        ax.set_title(video)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    atomic_output(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"), ".png")
    plt.close(fig)
    return True


def write_all(rows: list[dict], out: str, notes: dict[str, str], log=lambda s: None,
              command: str | None = None) -> list[str]:
    """Writes every report file; returns their paths. ``command`` (the command line of the
    last run that wrote them) goes into results.json and summary.md."""
    failed = [r for r in rows if r.get("failed")]
    rows = [r for r in rows if not r.get("failed")]
    written = []
    p = os.path.join(out, "results.csv")
    write_bytes_atomic(p, to_csv(rows).encode())
    written.append(p)
    p = os.path.join(out, "results.json")
    doc = {"command": command, "columns": list(COLUMNS), "notes": notes,
           "rows": sort_rows(rows), "failed": failed}
    write_bytes_atomic(p, json.dumps(doc, indent=1).encode())
    written.append(p)
    try:
        import matplotlib  # noqa: F401
        have_mpl = True
    except ImportError:
        have_mpl = False
        notes = dict(notes, plots="matplotlib is not installed: no RD plots "
                                  "(pip install matplotlib)")
        log("gvc eval: matplotlib is not installed; skipping the RD plots")
    if have_mpl:
        for key, label, name in PLOTS:
            p = os.path.join(out, name)
            if plot(rows, key, label, p):
                written.append(p)
    p = os.path.join(out, "summary.md")
    write_bytes_atomic(p, to_markdown(rows, notes, command, failed).encode())
    written.append(p)
    return written
