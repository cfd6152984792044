"""Rate-distortion of the anchor image codecs on real frames (docs/anchors.md).

Codes frames 0, 32, 64 of .benchdata/bigbuckbunny.mp4 (1280x720) and carphone_pristine.mp4
(176x144) with each codec variant at several settings; records bytes, bpp, RGB PSNR and
encode/decode seconds, and compares variants at equal PSNR (bytes at 32/35/38 dB by log-linear
interpolation, and the BD-rate against the reference of :func:`gvc_jax.eval.bdrate.bd_rate`,
PCHIP over the common PSNR range).

    python -m research.anchor_rd [--quick] [--out research/results/anchor_rd.json]
    python -m research.anchor_rd --timing    # adds "timing" to an existing JSON
    python -m research.anchor_rd --summary   # recomputes "summary" from its stored points
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

from gvc_jax.codec import anchors as A
from gvc_jax.eval.bdrate import bd_rate as bd
from gvc_jax.io.video import read_video

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIPS = {"bigbuckbunny": ".benchdata/bigbuckbunny.mp4",
         "carphone": ".benchdata/carphone_pristine.mp4"}
FRAMES = (0, 32, 64)
LEVELS_DB = (32.0, 35.0, 38.0)
REFERENCE = "vvc-medium"

# variant -> (codec id, settings, encode(rgb, setting) -> bytes)
VARIANTS = {
    "vvc-faster": ("vvc", (22, 27, 32, 37, 42, 47), lambda x, s: A._encode_vvc(x, s, "faster")),
    "vvc-fast": ("vvc", (22, 27, 32, 37, 42, 47), lambda x, s: A._encode_vvc(x, s, "fast")),
    "vvc-medium": ("vvc", (22, 27, 32, 37, 42, 47), lambda x, s: A._encode_vvc(x, s, "medium")),
    "jxl-e7": ("jxl", (0.5, 0.8, 1.2, 1.8, 2.6, 3.8, 5.5, 8.0),
               lambda x, s: A._encode_jxl(x, s, 7)),
    "avif444-s6": ("avif", (25, 35, 45, 55, 65, 75, 85, 92),
                   lambda x, s: A._encode_avif(x, s, 6, yuv420=False)),
    "avif420-s6": ("avif", (25, 35, 45, 55, 65, 75, 85, 92),
                   lambda x, s: A._encode_avif(x, s, 6, yuv420=True)),
}


def command() -> str:
    return "python -m research.anchor_rd " + " ".join(sys.argv[1:])


def pad16(x: np.ndarray) -> np.ndarray:
    ph, pw = -x.shape[0] % 16, -x.shape[1] % 16
    return np.ascontiguousarray(np.pad(x, ((0, ph), (0, pw), (0, 0)), mode="edge"))


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def psnr(m: float) -> float:
    return 10 * np.log10(255.0 ** 2 / max(m, 1e-10))


def load_frames() -> dict[str, list[np.ndarray]]:
    out = {}
    for name, rel in CLIPS.items():
        v = read_video(os.path.join(ROOT, rel), max_frames=max(FRAMES) + 1).frames
        out[name] = [pad16(v[i]) for i in FRAMES]
    return out


def run_point(codec_id, enc, frames, setting) -> dict:
    nbytes, mses, te, td = [], [], 0.0, 0.0
    for x in frames:
        t0 = time.perf_counter()
        data = enc(x, setting)
        t1 = time.perf_counter()
        y = A.decode(codec_id, data, *x.shape[:2])
        td += time.perf_counter() - t1
        te += t1 - t0
        nbytes.append(len(data))
        mses.append(mse(x, y))
    pixels = sum(x.shape[0] * x.shape[1] for x in frames)
    return {"setting": setting, "bytes": int(sum(nbytes)), "bytes_per_frame": nbytes,
            "bpp": 8.0 * sum(nbytes) / pixels, "psnr": psnr(float(np.mean(mses))),
            "psnr_per_frame": [psnr(m) for m in mses], "encode_s": te / len(frames),
            "decode_s": td / len(frames)}


def bytes_at(points: list[dict], level: float) -> float | None:
    """Bytes at ``level`` dB, linear in log(bytes) between the two neighbouring points."""
    pts = sorted((p["psnr"], np.log(p["bytes"])) for p in points)
    for (p0, r0), (p1, r1) in zip(pts, pts[1:]):
        if p0 <= level <= p1 and p1 > p0:
            return float(np.exp(r0 + (r1 - r0) * (level - p0) / (p1 - p0)))
    return None


def bd_rate(test: list[dict], ref: list[dict]) -> dict:
    """BD-rate of ``test`` against ``ref`` in bytes at equal PSNR (PCHIP, the shared PSNR
    range; :func:`gvc_jax.eval.bdrate.bd_rate`): ``{"pct", "overlap", "reason"}``."""
    r = bd([p["bytes"] for p in test], [p["psnr"] for p in test],
           [p["bytes"] for p in ref], [p["psnr"] for p in ref], method="pchip")
    return {"pct": r["bd_rate_pct"], "overlap": r["overlap"], "reason": r["reason"]}


TIMING_POINTS = {"vvc-faster": 32, "vvc-fast": 32, "vvc-medium": 32, "jxl-e7": 2.6,
                 "avif444-s6": 65, "avif420-s6": 65}


def timing(out: str) -> None:
    x = load_frames()["bigbuckbunny"][1]
    load0 = os.getloadavg()
    rows = {}
    for var, setting in TIMING_POINTS.items():
        cid, _, enc = VARIANTS[var]
        te, td = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            data = enc(x, setting)
            t1 = time.perf_counter()
            A.decode(cid, data, *x.shape[:2])
            td.append(time.perf_counter() - t1)
            te.append(t1 - t0)
        rows[var] = {"setting": setting, "encode_s": min(te), "decode_s": min(td)}
        print(var, rows[var], flush=True)
    with open(out) as f:
        doc = json.load(f)
    doc["timing"] = {"what": "bigbuckbunny frame 32 (1280x720), best of 3, seconds",
                     "command": command(),
                     "loadavg_at_start": load0, "loadavg_at_end": os.getloadavg(), "rows": rows}
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)


def summarize(results: dict) -> dict:
    """Per clip and variant: bytes at the PSNR levels, the BD-rate against the reference and
    the mean seconds."""
    summary = {}
    for clip, per in results.items():
        ref = per.get(REFERENCE)
        for var, pts in per.items():
            b = bd_rate(pts, ref) if ref else None
            summary.setdefault(clip, {})[var] = {
                "bytes_at_db": {f"{q:g}": bytes_at(pts, q) for q in LEVELS_DB},
                f"bd_rate_vs_{REFERENCE}_pct": b["pct"] if b else None,
                "bd_overlap": b["overlap"] if b else None,
                "encode_s_mean": float(np.mean([p["encode_s"] for p in pts])),
                "decode_s_mean": float(np.mean([p["decode_s"] for p in pts]))}
    return summary


def resummarize(out: str) -> None:
    """Recomputes the stored JSON's summary from its points (no coding)."""
    with open(out) as f:
        doc = json.load(f)
    doc["summary"] = summarize(doc["results"])
    doc["summary_command"] = command()
    doc["bd_method"] = "gvc_jax.eval.bdrate.bd_rate, pchip (bjontegaard package)"
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
    print(json.dumps({c: {v: s[f"bd_rate_vs_{REFERENCE}_pct"] for v, s in per.items()}
                      for c, per in doc["summary"].items()}, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "research/results/anchor_rd.json"))
    ap.add_argument("--quick", action="store_true", help="carphone only, fast variants")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--timing", action="store_true",
                    help="only time one 720p frame per variant (best of 3) into --out's 'timing'")
    ap.add_argument("--summary", action="store_true",
                    help="only recompute --out's summary (BD-rates) from its stored points")
    args = ap.parse_args()
    if args.timing:
        return timing(args.out)
    if args.summary:
        return resummarize(args.out)
    frames = load_frames()
    if args.quick:
        frames = {"carphone": frames["carphone"]}
    names = [v for v in args.variants.split(",") if v]
    results = {}
    for clip, fr in frames.items():
        for var in names:
            cid, settings, enc = VARIANTS[var]
            pts = []
            for s in settings:
                p = run_point(cid, enc, fr, s)
                pts.append(p)
                print(f"{clip:13s} {var:11s} {s!s:>5s} {p['bytes']:8d} B {p['bpp']:.3f} bpp "
                      f"{p['psnr']:.2f} dB enc {p['encode_s']:.2f}s dec {p['decode_s']:.3f}s",
                      flush=True)
            results.setdefault(clip, {})[var] = pts
    summary = summarize(results)
    doc = {
        "command": command(),
        "what": "anchor image codecs on real frames; bytes per frame set, RGB 8-bit PSNR of the "
                "mean MSE over the frames; seconds are per frame",
        "frames": list(FRAMES), "clips": CLIPS, "reference": REFERENCE,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "note": "shared 2-core machine: seconds are indicative only"},
        "settings": {"vvc": "libvvenc via imageio-ffmpeg, qpa 0, 10-bit 4:2:0 BT.709 limited",
                     "jxl": "imagecodecs jpegxl, bare codestream",
                     "avif": "imagecodecs avif (libaom)"},
        "summary": summary, "results": results}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
