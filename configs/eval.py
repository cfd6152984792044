"""Evaluation presets for ``gvc eval`` and GVCC's published figures (docs/eval.md, "Presets";
docs/design.md §7).

Launch lines::

    gvc eval /data/UVG --preset uvg-720p-gvcc --out results/uvg720 --weights /ckpt/wan-t2v
    gvc eval /data/UVG --preset uvg-1080p-dcvc --out results/uvg1080

``uvg-720p-gvcc`` (T2V), ``uvg-720p-gvcc-i2v`` and ``uvg-720p-gvcc-flf2v`` follow GVCC's UVG
protocol: every sequence is cut to its first 3 GOPs, resized to 1280x720 with Lanczos, and coded
with the GVCC codec parameters per mode (K=16384, M=64; I2V adds M_tail=128 on the last two
latent frames; T2V's prompt context is 226 tokens as in GVCC's T2V wrapper, I2V/FLF2V keep 512).
Each runs both protocols: ``gvcc`` (GVCC's frames, rate also as GVCC counts it) and ``ours``
(colour-correct frames, every byte at the native frame rate), and shows GVCC's published
figures for its mode as reference rows. Each takes the --weights folder of its own model. The
four classical baselines run on the same frames at their default ladders and at our points'
rates.

``uvg-1080p-dcvc`` follows DCVC's test conditions as far as this toolchain allows: 96 frames of
the native 1920x1080 8-bit 4:2:0 source, the planes coded as they are by the classical codecs,
PSNR on the planes with (6Y+U+V)/8 the headline, kbps at the native frame rate, BD-rate against
VVC (libvvenc at DCVC's anchor QPs plus two lower-rate ones).

``get_config(name)`` returns an ml_collections ConfigDict:
  frames        frames evaluated per sequence (None: all)
  size          (width, height) after Lanczos resizing ([]: keep)
  gvc           list of our runs, "config[:key=v1,v2[:key=...]]" specs
  baselines     baseline names
  ladders       {baseline: "KNOB:V1,V2"} replacing a default ladder
  match_rate    also run each baseline at the kbps of each of our points
  protocols     evaluation protocols run, each its own rows (ours, gvcc, dcvc)
  bd_anchor     codec the BD-rates are taken against (None: no BD table)
  published     GVCC mode whose published figures are shown ("t2v", "i2v", "flf2v" or None)
"""
from __future__ import annotations

import ml_collections

# GVCC parameters per mode (docs/design.md §7); the presets of configs/codec.py carry the rest
# (I2V: M_tail=128, the entropy-coded residual; shift 5 at 720p; the default anchor codec).
# text_len: GVCC's diffusers-based T2V wrapper pads the prompt context to 226 tokens.
GVCC_720P = {
    "t2v": "wan2.1-t2v-14b:K=16384:M=64:gop_frames=33:text_len=226",
    "i2v": "wan2.1-i2v-14b-720p:K=16384:M=64:M_tail=128:gop_frames=33",
    "flf2v": "wan2.1-flf2v-14b-720p:K=16384:M=64:gop_frames=33",
}
_BASELINES = dict(baselines=["x264", "x265", "vvc", "av1"], match_rate=True)
_BOTH = dict(protocols=["gvcc", "ours"], bd_anchor=None)

# GVCC's published UVG figures at 1280x720 (docs/design.md §7): mean over the 7 sequences, kbps
# as GVCC counts them (theoretical bits at 16 fps), and what that count leaves out.
GVCC_PUBLISHED = {
    "t2v": {"psnr_rgb": 29.01, "lpips": 0.117, "kbps_gvcc": 71.2, "left_out": "nothing"},
    "flf2v": {"psnr_rgb": 31.40, "lpips": 0.096, "kbps_gvcc": 192.8,
              "left_out": "nothing (boundary frames by cheng2020-attn q4, counted)"},
    "i2v": {"psnr_rgb": 31.97, "lpips": 0.074, "kbps_gvcc": 801.5,
            "left_out": "the first frame (sent free); the M_tail atoms (counted as M)"},
}
GVCC_PUBLISHED_PSNR = {   # per sequence: T2V, I2V, FLF2V
    "Beauty": (31.79, 32.90, 32.26), "Bosphorus": (30.32, 33.63, 32.72),
    "HoneyBee": (30.78, 36.21, 34.73), "Jockey": (31.28, 33.27, 33.09),
    "ReadySteadyGo": (26.74, 29.48, 29.44), "ShakeNDry": (25.55, 30.11, 29.52),
    "YachtRide": (26.60, 28.21, 28.02),
}
GVCC_PROTOCOL = {"width": 1280, "height": 720, "fps": 16, "frames": 99,
                 "source": "GVCC (paper and official repository), docs/design.md §7"}

_PRESETS = {
    # T2V: 3 disjoint GOPs of 33 frames. I2V and FLF2V: 3 GOPs that share their boundary
    # frames, 97 frames (GVCC's I2V codes 99 with a one-frame offset; ours has none).
    "uvg-720p-gvcc": dict(frames=99, size=(1280, 720), gvc=[GVCC_720P["t2v"]], **_BASELINES,
                          **_BOTH, published="t2v"),
    "uvg-720p-gvcc-i2v": dict(frames=97, size=(1280, 720), gvc=[GVCC_720P["i2v"]],
                              **_BASELINES, **_BOTH, published="i2v"),
    "uvg-720p-gvcc-flf2v": dict(frames=97, size=(1280, 720), gvc=[GVCC_720P["flf2v"]],
                                **_BASELINES, **_BOTH, published="flf2v"),
    # The same protocol with the embedded Gaussian prior in place of Wan, runnable
    # without weights (its GOPs are multiples of 4 frames, so 99 = 32+32+32+3).
    "uvg-720p-gaussian": dict(frames=99, size=(1280, 720),
                              gvc=["gaussian:K=16384:M=64:gop_frames=32"], **_BASELINES,
                              protocols=["ours"], bd_anchor=None, published=None),
    # DCVC's conditions: 96 native frames, planes in, PSNR on the planes, BD against VVC.
    "uvg-1080p-dcvc": dict(frames=96, size=None, gvc=["gaussian:K=16384:M=64:gop_frames=32"],
                           baselines=["vvc", "x265", "x264", "av1"], match_rate=False,
                           ladders={"vvc": "qp:22,27,32,37,42,47"}, protocols=["dcvc"],
                           bd_anchor="vvc", published=None),
}

PRESETS = tuple(_PRESETS)


def published_rows(mode: str | None) -> list[dict]:
    """GVCC's published figures for ``mode`` as reference rows (``published: True``, no bytes):
    one ``scope: "mean"`` row, then one ``scope: "sequence"`` row per UVG sequence."""
    if mode is None:
        return []
    if mode not in GVCC_PUBLISHED:
        raise KeyError(f"no published GVCC figures for mode {mode!r}")
    p, proto = GVCC_PUBLISHED[mode], GVCC_PROTOCOL
    bpp = p["kbps_gvcc"] * 1000.0 / proto["fps"] / (proto["width"] * proto["height"])
    common = {"published": True, "codec": "GVCC (published)", "mode": mode,
              "protocol": "gvcc", "source": proto["source"], "width": proto["width"],
              "height": proto["height"]}
    rows = [{**common, "scope": "mean", "video": "UVG (mean of 7 sequences)",
             "psnr_rgb": p["psnr_rgb"], "lpips": p["lpips"], "kbps_gvcc": p["kbps_gvcc"],
             "bpp_gvcc": bpp, "left_out": p["left_out"]}]
    col = ("t2v", "i2v", "flf2v").index(mode)
    rows += [{**common, "scope": "sequence", "video": seq, "psnr_rgb": vals[col]}
             for seq, vals in GVCC_PUBLISHED_PSNR.items()]
    return rows


def get_config(arg: str = "uvg-720p-gvcc") -> ml_collections.ConfigDict:
    if arg not in _PRESETS:
        raise KeyError(f"unknown eval preset {arg!r}; known: {', '.join(PRESETS)}")
    p = dict(_PRESETS[arg])
    p.setdefault("ladders", {})
    return ml_collections.ConfigDict({"name": arg, **p, "size": list(p["size"] or [])})
