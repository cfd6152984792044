"""``summary.md`` of ``gvc eval``: one table per (video, protocol), the means over videos, GVCC's
published figures as reference rows, the BD-rate table, failures and notes (docs/eval.md)."""
from __future__ import annotations

from gvc_jax.eval.protocols import HEADLINE, PROTOCOLS

_RATE = [("bytes", "bytes", None), ("bpp", "bpp", 5), ("kbps", "kbps", 2)]
_GVCC_RATE = [("kbps GVCC (16 fps)", "kbps_gvcc", 2)]
_QUALITY = {
    "ours": [("PSNR RGB", "psnr_rgb", 2), ("PSNR Y", "psnr_y", 2),
             ("PSNR YUV 6:1:1", "psnr_yuv_611", 2), ("MS-SSIM", "ms_ssim", 4),
             ("LPIPS", "lpips", 4), ("DISTS", "dists", 4)],
    "dcvc": [("PSNR YUV 6:1:1", "psnr_yuv_611", 2), ("PSNR Y", "psnr_y", 2),
             ("PSNR U", "psnr_u", 2), ("PSNR V", "psnr_v", 2),
             ("PSNR YUV 4:1:1", "psnr_yuv_411", 2), ("PSNR RGB", "psnr_rgb", 2),
             ("MS-SSIM", "ms_ssim", 4), ("LPIPS", "lpips", 4), ("DISTS", "dists", 4)],
}
_QUALITY["gvcc"] = _QUALITY["ours"]
_TIMES = [("enc s", "encode_seconds", 2), ("dec s", "decode_seconds", 2)]

PROTOCOL_LINES = {
    "ours": "Protocol `ours`: RGB frames (raw .yuv: ffmpeg, BT.709 limited range), every byte of "
            "each file, kbps at the source frame rate.",
    "gvcc": "Protocol `gvcc`: GVCC's frames (raw .yuv: OpenCV's bilinear chroma and "
            "COLOR_YUV2RGB, no range expansion); `kbps` counts every byte at the source frame "
            "rate, `kbps GVCC (16 fps)` counts as GVCC does (top-M indices at ceil(log2 K)+1 bits "
            "an atom, I2V's first frame free, at 16 frames per second).",
    "dcvc": "Protocol `dcvc`: the source's 4:2:0 planes are the reference and what the classical "
            "codecs code; PSNR on the planes, (6 Y + U + V) / 8 the headline; kbps at the source "
            "frame rate.",
}
MODE_NAMES = {"t2v": "T2V", "i2v": "I2V", "flf2v": "FLF2V"}


def _fmt(v, digits) -> str:
    if v is None:
        return "—"
    return str(v) if digits is None else f"{v:.{digits}f}"


def _setting_cell(r: dict) -> str:
    """A matched-rate row also shows the knob the search chose, and whether the target was
    below the encoder's floor."""
    m = (r.get("settings") or {}).get("match")
    if not m:
        return r["setting"]
    (knob, value), = m["chosen"].items()
    floor = ", floor" if m["outcome"].startswith("target below") else ""
    return f"{r['setting']} ({knob}={value}{floor})"


def _protocol(r: dict) -> str:
    return r.get("protocol") or "ours"


def _order(protocol: str) -> int:
    return PROTOCOLS.index(protocol) if protocol in PROTOCOLS else len(PROTOCOLS)


def _columns(protocol: str) -> list:
    return _RATE + (_GVCC_RATE if protocol == "gvcc" else []) + _QUALITY[protocol] + _TIMES


def _table(rows: list[dict], cols: list, first: list[tuple[str, callable]]) -> list[str]:
    head = [h for h, _ in first] + [h for h, _, _ in cols]
    out = ["| " + " | ".join(head) + " |",
           "|" + "---|" * len(first) + "---:|" * len(cols)]
    for r in rows:
        cells = [fn(r) for _, fn in first] + [_fmt(r.get(k), d) for _, k, d in cols]
        out.append("| " + " | ".join(cells) + " |")
    return out


def _published_for(published: list[dict], video: str) -> list[dict]:
    return [p for p in published if p.get("video") == video]


def _video_sections(rows: list[dict], published: list[dict]) -> list[str]:
    out = []
    keys = sorted({(r["video"], _protocol(r)) for r in rows}, key=lambda k: (k[0], _order(k[1])))
    for video, protocol in keys:
        vr = sorted((r for r in rows if r["video"] == video and _protocol(r) == protocol),
                    key=lambda r: (r["codec"], r["bpp"]))
        r0 = vr[0]
        out += [f"## {video}, protocol {protocol} ({r0['frames']} frames, {r0['width']}x"
                f"{r0['height']}, {r0['fps']:.3f} fps)", "", PROTOCOL_LINES[protocol], ""]
        out += _table(vr, _columns(protocol), [("codec", lambda r: r["codec"]),
                                               ("setting", _setting_cell)])
        if protocol == "gvcc":
            for p in _published_for(published, video):
                out += ["", f"GVCC as published for {video} ({MODE_NAMES.get(p['mode'], p['mode'])}"
                        f", its protocol): PSNR {p['psnr_rgb']:.2f} dB (reference, not measured "
                        "here)."]
        out.append("")
    return out


def _means(rows: list[dict]) -> list[str]:
    """Per protocol, the mean over videos of every (codec, setting) that every video has."""
    out = []
    for protocol in sorted({_protocol(r) for r in rows}, key=_order):
        pr = [r for r in rows if _protocol(r) == protocol]
        videos = sorted({r["video"] for r in pr})
        if len(videos) < 2:
            continue
        groups: dict[tuple, list[dict]] = {}
        for r in pr:
            groups.setdefault((r["codec"], r["setting"]), []).append(r)
        cols = [c for c in _columns(protocol) if c[1] not in ("bytes", "encode_seconds",
                                                              "decode_seconds")]
        means = []
        for (codec, setting), rs in sorted(groups.items()):
            if sorted(r["video"] for r in rs) != videos:
                continue
            m = {"codec": codec, "setting": setting}
            for _, k, _ in cols:
                vals = [r.get(k) for r in rs]
                m[k] = None if any(v is None for v in vals) else sum(vals) / len(vals)
            means.append(m)
        if means:
            out += [f"## Means over the {len(videos)} videos, protocol {protocol}", "",
                    "Plain means of each video's figure (rows every video has).", ""]
            out += _table(means, cols, [("codec", lambda r: r["codec"]),
                                        ("setting", lambda r: r["setting"])]) + [""]
    return out


def _published(published: list[dict]) -> list[str]:
    if not published:
        return []
    modes = [p for p in published if p.get("scope") == "mean"]
    seqs = [p for p in published if p.get("scope") == "sequence"]
    out = ["## GVCC as published (reference rows, not measured here)", "",
           "Figures from GVCC's paper and repository (docs/design.md §7) on its own protocol: UVG "
           "8-bit YUV converted as the `gvcc` protocol does, Lanczos to 1280x720, 3 GOPs; kbps are "
           "GVCC's theoretical count at 16 fps. No bytes: never in the BD-rates.", ""]
    if modes:
        out += ["| mode | PSNR RGB | LPIPS | kbps GVCC (16 fps) | bpp GVCC | what the rate leaves "
                "out |", "|---|---:|---:|---:|---:|---|"]
        out += [f"| {MODE_NAMES.get(p['mode'], p['mode'])} | {p['psnr_rgb']:.2f} | "
                f"{p['lpips']:.3f} | {p['kbps_gvcc']:.1f} | {p['bpp_gvcc']:.5f} | "
                f"{p.get('left_out') or 'nothing'} |" for p in modes]
        out.append("")
    if seqs:
        mode_keys = list(dict.fromkeys(p["mode"] for p in seqs))
        out += ["| sequence | " + " | ".join(f"PSNR {MODE_NAMES.get(m, m)}" for m in mode_keys)
                + " |", "|---|" + "---:|" * len(mode_keys)]
        for video in dict.fromkeys(p["video"] for p in seqs):
            vals = {p["mode"]: p["psnr_rgb"] for p in seqs if p["video"] == video}
            out.append(f"| {video} | " + " | ".join(_fmt(vals.get(m), 2) for m in mode_keys)
                       + " |")
        out.append("")
    return out


def _bd(bd: list[dict], anchor: str | None, method: str | None) -> list[str]:
    if anchor is None:
        return []
    out = [f"## BD-rate against {anchor} ({method})", "",
           "BD-rate: mean rate difference at equal quality over the shared quality range "
           "(negative: fewer bits than the anchor); BD-metric: mean quality difference at equal "
           "rate (test minus anchor; for LPIPS and DISTS negative is better). Rate is `kbps` "
           "(every byte of the files). Overlap: the shared share of the two quality ranges.", ""]
    if not bd:
        return out + ["No codec besides the anchor has rows.", ""]
    empty = [m for m in dict.fromkeys(b["metric"] for b in bd)
             if all(b["points"] == 0 and b["anchor_points"] == 0 for b in bd if b["metric"] == m)]
    if empty:
        out += [f"Not in the table, no row has a value: {', '.join(empty)} (see the notes).", ""]
    out += ["| video | protocol | codec | metric | BD-rate % | BD-metric | overlap | points | "
            "why empty |", "|---|---|---|---|---:|---:|---:|---:|---|"]
    for b in sorted((b for b in bd if b["metric"] not in empty),
                    key=lambda b: (b["video"], _order(b.get("protocol", "ours")))):
        digits = 4 if b["metric"] in ("ms_ssim", "lpips", "dists") else 3
        out.append(f"| {b['video']} | {b.get('protocol', 'ours')} | {b['codec']} | "
                   f"{b['metric']} | {_fmt(b['bd_rate_pct'], 2)} | "
                   f"{_fmt(b['bd_metric'], digits)} | {_fmt(b['overlap'], 2)} | "
                   f"{b['points']}/{b['anchor_points']} | {b.get('reason') or ''} |")
    return out + [""]


def to_markdown(rows: list[dict], notes: dict[str, str], command: str | None = None,
                failed: list[dict] = (), *, published: list[dict] = (), bd: list[dict] = (),
                bd_anchor: str | None = None, bd_method: str | None = None) -> str:
    out = ["# gvc eval results", ""]
    if command:
        out += [f"Command: `{command}`", ""]
    heads = [f"`{HEADLINE[p]}` ({p})" for p in sorted({_protocol(r) for r in rows}, key=_order)]
    out += ["bpp = bits / (frames · H · W) of the evaluated frames; kbps at the source frame "
            "rate. Bits are the real size of each coded file. Every figure is the mean over "
            "frames of the per-frame value (docs/metrics.md). PSNR Y/U/V are on the 4:2:0 "
            "planes. Times include JIT compilation on first use."
            + (f" Headline: {', '.join(heads)}." if heads else ""), ""]
    out += _video_sections(rows, list(published))
    out += _means(rows)
    out += _published(list(published))
    out += _bd(list(bd), bd_anchor, bd_method)
    if failed:
        out += ["## Runs that failed (not in the tables)", ""]
        out += [f"- {r['video']} ({_protocol(r)}) {r['codec']} {r['setting']}: {r['failed']}"
                for r in failed]
        out.append("")
    if notes:
        out += ["## Notes", ""] + [f"- {k}: {v}" for k, v in sorted(notes.items())] + [""]
    return "\n".join(out)
