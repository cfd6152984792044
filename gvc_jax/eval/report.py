"""Evaluation reports: ``results.csv``, ``results.json``, ``summary.md`` (:mod:`.summary`),
``bd.json`` and RD plots (``rd_psnr.png``, ``rd_psnr_yuv.png``, ``rd_ms_ssim.png``,
``rd_lpips.png``, ``rd_dists.png``), all written atomically (docs/eval.md, "Outputs")."""
from __future__ import annotations

import csv
import io
import json
import os

from gvc_jax.fileutil import atomic_output, write_bytes_atomic

COLUMNS = ("video", "protocol", "codec", "setting", "frames", "height", "width", "fps", "bits",
           "bytes", "bpp", "kbps", "bits_gvcc", "bpp_gvcc", "kbps_gvcc",
           "psnr_rgb", "psnr_rgb_seq", "psnr_y", "psnr_y_seq", "psnr_u", "psnr_u_seq",
           "psnr_v", "psnr_v_seq", "psnr_yuv_611", "psnr_yuv_611_seq", "psnr_yuv_411",
           "psnr_yuv_411_seq", "ms_ssim", "lpips", "dists", "encode_seconds", "decode_seconds")

PLOTS = (("psnr_rgb", "PSNR RGB (dB, mean of frames)", "rd_psnr.png"),
         ("psnr_yuv_611", "PSNR YUV (6Y+U+V)/8 (dB)", "rd_psnr_yuv.png"),
         ("ms_ssim", "MS-SSIM (RGB)", "rd_ms_ssim.png"),
         ("lpips", "LPIPS-Alex (lower is better)", "rd_lpips.png"),
         ("dists", "DISTS (lower is better)", "rd_dists.png"))
BD_METRICS = ("psnr_rgb", "psnr_yuv_611", "ms_ssim", "lpips", "dists")


def _protocol(r: dict) -> str:
    return r.get("protocol") or "ours"


def sort_rows(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: (r["video"], _protocol(r), r["codec"], r["bpp"]))


def bd_by_protocol(rows: list[dict], anchor: str, method: str = "pchip") -> list[dict]:
    """:func:`gvc_jax.eval.bdrate.bd_table` of every protocol's rows apart (metrics
    :data:`BD_METRICS`, rate ``kbps``), each result with its ``protocol``."""
    from gvc_jax.eval.bdrate import bd_table

    out = []
    for protocol in sorted({_protocol(r) for r in rows}):
        part = [r for r in rows if _protocol(r) == protocol]
        for b in bd_table(part, anchor, BD_METRICS, method):
            out.append({"protocol": protocol, **b})
    return out


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

    panels = sorted({(r["video"], _protocol(r)) for r in rows if r.get(key) is not None})
    if not panels:
        return False
    several = len({p for _, p in panels}) > 1
    n = len(panels)
    cols = min(n, 3)
    rws = -(-n // cols)
    fig, axes = plt.subplots(rws, cols, figsize=(5.2 * cols, 4.0 * rws), squeeze=False)
    for ax, (video, protocol) in zip(axes.flat, panels):
        vr = [r for r in sort_rows(rows) if r["video"] == video and _protocol(r) == protocol
              and r.get(key) is not None]
        for codec in sorted({r["codec"] for r in vr}):
            pts = sorted((r["bpp"], r[key]) for r in vr if r["codec"] == codec)
            style = "o-" if codec.startswith("gvc-") else "s--"
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=codec, ms=4)
        _log_bpp_axis(ax)
        ax.set_xlabel("bpp")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{video} ({protocol})" if several or protocol != "ours" else video)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    atomic_output(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"), ".png")
    plt.close(fig)
    return True


def write_all(rows: list[dict], out: str, notes: dict[str, str], log=lambda s: None,
              command: str | None = None, *, published: list[dict] = (),
              bd_anchor: str | None = None, bd_method: str = "pchip") -> list[str]:
    """Writes every report file; returns their paths. ``command`` (the command line of the
    last run that wrote them) goes into results.json and summary.md; ``published``: reference
    rows (no bytes) shown in summary.md and results.json; ``bd_anchor``: also the BD-rates of
    every codec against it (``bd.json`` and a summary table)."""
    from gvc_jax.eval.summary import to_markdown

    failed = [r for r in rows if r.get("failed")]
    rows = [r for r in rows if not r.get("failed")]
    written = []
    p = os.path.join(out, "results.csv")
    write_bytes_atomic(p, to_csv(rows).encode())
    written.append(p)
    bd = bd_by_protocol(rows, bd_anchor, bd_method) if bd_anchor else []
    p = os.path.join(out, "results.json")
    doc = {"command": command, "columns": list(COLUMNS), "notes": notes,
           "rows": sort_rows(rows), "failed": failed, "published": list(published)}
    if bd_anchor:
        doc["bd"] = bd
    write_bytes_atomic(p, json.dumps(doc, indent=1).encode())
    written.append(p)
    if bd_anchor:
        p = os.path.join(out, "bd.json")
        write_bytes_atomic(p, json.dumps(bd, indent=1).encode())
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
    md = to_markdown(rows, notes, command, failed, published=published, bd=bd,
                     bd_anchor=bd_anchor, bd_method=bd_method)
    write_bytes_atomic(p, md.encode())
    written.append(p)
    return written
