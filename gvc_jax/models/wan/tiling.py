"""Spatial tiling with context margins and linear blending, for memory-bounded VAE passes.

Each tile is processed over the whole time axis (the causal caches stay per
tile). Along each spatial axis, a tile of ``tile`` units is cut; on every side
that is inside the image, ``margin`` units are thrown away after processing
(context only), and neighbouring kept regions overlap by at least ``blend``
units, where they are cross-faded linearly. Input tiles thus overlap by
``2*margin + blend`` units.

Exactness: a network whose receptive field radius is R units gives tile
outputs equal to the untiled output everywhere at least R units away from a
cut edge. With ``margin >= R`` every kept pixel is exact, and a convex blend of
exact values is exact. The Wan VAE is local except for its per-frame
attention in the middle block (global over the frame), so tiling is exact up
to rounding when that block's output projection is zero and approximate
otherwise (see docs/wan_vae.md for measured errors).
"""
from __future__ import annotations

from typing import Callable

import numpy as np


def plan_axis(length: int, tile: int, margin: int, blend: int) -> list[tuple[int, int, int]]:
    """Tiles along one axis as ``(start, keep_lo, keep_hi)`` in units (absolute coords)."""
    if tile >= length:
        return [(0, 0, length)]
    stride = tile - 2 * margin - blend
    if stride <= 0:
        raise ValueError(f"tile {tile} must exceed 2*margin + blend = {2 * margin + blend}")
    starts = list(range(0, length - tile, stride)) + [length - tile]
    out = []
    for s in sorted(set(starts)):
        lo = s + margin if s > 0 else 0
        hi = s + tile - margin if s + tile < length else length
        out.append((s, lo, hi))
    return out


def axis_weights(plan, scale: int, length_out: int) -> list[np.ndarray]:
    """Per-tile blend weights over the output axis (zero outside the kept region)."""
    ws = []
    for i, (_, lo, hi) in enumerate(plan):
        a, e = lo * scale, hi * scale
        p = np.arange(length_out, dtype=np.float64)
        w = ((p >= a) & (p < e)).astype(np.float64)
        if i > 0:
            ov = plan[i - 1][2] * scale - a
            if ov > 0:
                ramp = (p - a + 1) / (ov + 1)
                w = np.where((p >= a) & (p < a + ov), ramp, w)
        if i + 1 < len(plan):
            ov = e - plan[i + 1][1] * scale
            if ov > 0:
                ramp = (e - p) / (ov + 1)
                w = np.where((p >= e - ov) & (p < e), ramp, w)
        ws.append(w)
    return ws


def tiled_apply(fn: Callable, x_bcthw, *, tile, margin: int, blend: int,
                in_scale: int, out_scale: int) -> np.ndarray:
    """Applies ``fn`` ([B,C,T,H,W] -> [B,C',T',H',W']) tile by tile and blends on the host.

    ``tile``, ``margin`` and ``blend`` are in units; one unit is ``in_scale``
    input pixels and ``out_scale`` output pixels (8 and 1 for encode, 1 and 8
    for decode).
    """
    th, tw = (tile, tile) if isinstance(tile, int) else tuple(tile)
    h, w = x_bcthw.shape[-2] // in_scale, x_bcthw.shape[-1] // in_scale
    ph, pw = plan_axis(h, th, margin, blend), plan_axis(w, tw, margin, blend)
    wh = axis_weights(ph, out_scale, h * out_scale)
    ww = axis_weights(pw, out_scale, w * out_scale)
    acc = None
    for i, (sh, _, _) in enumerate(ph):
        for j, (sw, _, _) in enumerate(pw):
            hs, ws_ = min(th, h), min(tw, w)
            xt = x_bcthw[..., sh * in_scale:(sh + hs) * in_scale, sw * in_scale:(sw + ws_) * in_scale]
            yt = np.asarray(fn(xt), dtype=np.float32)
            if acc is None:
                acc = np.zeros(yt.shape[:-2] + (h * out_scale, w * out_scale), np.float32)
            r0, r1 = sh * out_scale, (sh + hs) * out_scale
            c0, c1 = sw * out_scale, (sw + ws_) * out_scale
            wt = np.outer(wh[i][r0:r1], ww[j][c0:c1]).astype(np.float32)
            acc[..., r0:r1, c0:c1] += yt * wt
    wsum = np.zeros((h * out_scale, w * out_scale), np.float64)
    for a in wh:
        for b in ww:
            wsum += np.outer(a, b)
    if np.any(wsum <= 0):
        raise AssertionError("tile plan leaves output pixels uncovered")
    return acc / wsum.astype(np.float32)
