"""Bjøntegaard deltas (BD-rate, BD-metric) of eval rows, on the ``bjontegaard`` package
(docs/metrics.md, "BD-rate").

``bd_rate`` integrates log10(rate) as a function of quality over the quality range both curves
cover, and reports the average rate difference of the test against the anchor in percent
(negative: the test needs less rate for the same quality). ``bd_metric`` integrates quality as a
function of log10(rate) over the shared log-rate range and reports the average quality difference
(test minus anchor, in the metric's own units). Interpolation: ``pchip`` (default), ``akima`` or
``cubic`` (a least-squares cubic polynomial), as the package implements them.
"""
from __future__ import annotations

import math
import numbers
import warnings

METHODS = ("pchip", "akima", "cubic")
# fewest points per curve: a cubic needs four; pchip and akima interpolate from two
MIN_POINTS = {"pchip": 2, "akima": 2, "cubic": 4}
LOWER_IS_BETTER = frozenset({"lpips", "dists"})
RATE_KEY = "kbps"


def _none(reason: str, overlap=None, overlap_rate=None) -> dict:
    return {"bd_rate_pct": None, "bd_metric": None, "overlap": overlap,
            "overlap_rate": overlap_rate, "reason": reason}


def _finite(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _curve(rates, metric, who: str, sign: float, method: str):
    """Valid points sorted by rate as (rates, sign * metric), or a reason string."""
    rates, metric = list(rates), list(metric)
    if len(rates) != len(metric):
        return f"{who} has {len(rates)} rates but {len(metric)} metric values"
    pts = sorted((float(r), sign * float(m)) for r, m in zip(rates, metric)
                 if _finite(r) and _finite(m) and r > 0)
    need = MIN_POINTS[method]
    if len(pts) < need:
        return f"{who} has {len(pts)} usable points, {method} needs at least {need}"
    r = [p[0] for p in pts]
    q = [p[1] for p in pts]
    if any(b <= a for a, b in zip(r, r[1:])):
        return f"{who} has two points at the same rate"
    if any(b <= a for a, b in zip(q, q[1:])):
        return f"{who}'s quality does not improve strictly with rate; BD needs monotonic curves"
    return r, q


def _overlap(a: list[float], b: list[float]) -> float:
    """Shared range over total range of two sorted point sets (the package's definition)."""
    lo, hi = max(a[0], b[0]), min(a[-1], b[-1])
    return max(hi - lo, 0.0) / (max(a[-1], b[-1]) - min(a[0], b[0]))


def bd_rate(rates, metric, anchor_rates, anchor_metric, *, method: str = "pchip",
            higher_is_better: bool = True) -> dict:
    """BD-rate and BD-metric of a test curve against an anchor curve.

    Returns ``{"bd_rate_pct", "bd_metric", "overlap", "overlap_rate", "reason"}``:
    ``overlap`` is the shared fraction of the quality ranges (what ``bd_rate_pct`` integrates
    over), ``overlap_rate`` that of the log-rate ranges (for ``bd_metric``). A value that cannot
    be computed (too few points, repeated rates, a non-monotonic curve, no overlap, or the
    ``bjontegaard`` package missing) is None and ``reason`` says why; it never raises on data.

    Points with a missing (None), non-finite or non-positive value are dropped; the rest are
    sorted by rate, and the quality must then strictly increase (strictly decrease for
    lower-is-better metrics) along each curve.

    Lower-is-better metrics (``higher_is_better=False``, e.g. LPIPS, DISTS): the package assumes
    quality grows with rate, so both curves are passed as ``-metric``. BD-rate is unchanged by
    that reflection (it averages the log-rate gap over the same quality interval, only walked the
    other way), and is reported as is; the package's BD-metric on ``-metric`` is negated back,
    so ``bd_metric`` is always test minus anchor in the metric's own units: negative is better
    for LPIPS/DISTS, positive is better for PSNR/MS-SSIM.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    sign = 1.0 if higher_is_better else -1.0
    test = _curve(rates, metric, "the test curve", sign, method)
    if isinstance(test, str):
        return _none(test)
    anchor = _curve(anchor_rates, anchor_metric, "the anchor curve", sign, method)
    if isinstance(anchor, str):
        return _none(anchor)
    (rates_t, q_t), (rates_a, q_a) = test, anchor
    ov_q = _overlap(q_a, q_t)
    ov_r = _overlap([math.log10(x) for x in rates_a], [math.log10(x) for x in rates_t])
    try:
        import bjontegaard as bd
    except ImportError:
        return _none("the bjontegaard package is not installed (pip install 'gvc-jax[eval]')",
                     ov_q, ov_r)
    out = {"bd_rate_pct": None, "bd_metric": None, "overlap": ov_q, "overlap_rate": ov_r,
           "reason": None}
    reasons = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # low overlap is reported through the overlap fields
        if ov_q > 0:
            out["bd_rate_pct"] = float(bd.bd_rate(rates_a, q_a, rates_t, q_t, method,
                                                  require_matching_points=False, min_overlap=0))
        else:
            reasons.append("the quality ranges do not overlap")
        if ov_r > 0:
            out["bd_metric"] = sign * float(bd.bd_psnr(rates_a, q_a, rates_t, q_t, method,
                                                       require_matching_points=False,
                                                       min_overlap=0))
        else:
            reasons.append("the rate ranges do not overlap")
    for key in ("bd_rate_pct", "bd_metric"):
        if out[key] is not None and not math.isfinite(out[key]):
            out[key] = None
            reasons.append(f"{key} is not finite")
    out["reason"] = "; ".join(reasons) or None
    return out


def bd_table(rows: list[dict], anchor: str, metrics=("psnr_rgb", "psnr_yuv_611", "ms_ssim",
                                                      "lpips", "dists"),
             method: str = "pchip") -> list[dict]:
    """BD-rates of every codec against ``anchor``, per video and metric, from eval rows.

    ``rows`` are eval result rows (keys ``video``, ``codec``, ``kbps`` and metric columns);
    rows with a ``failed`` key are skipped, and so are points whose metric is missing. Returns
    one dict per (video, codec other than the anchor, metric), in the order videos and codecs
    first appear: ``{video, codec, anchor, metric, method, bd_rate_pct, bd_metric, overlap,
    overlap_rate, points, anchor_points, reason}``. ``lpips`` and ``dists`` are lower-is-better.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    curves: dict[str, dict[str, list[dict]]] = {}
    for row in rows:
        if "failed" in row:
            continue
        curves.setdefault(row["video"], {}).setdefault(row["codec"], []).append(row)
    out = []
    for video, by_codec in curves.items():
        anchor_rows = by_codec.get(anchor, [])
        for codec, test_rows in by_codec.items():
            if codec == anchor:
                continue
            for metric in metrics:
                def points(rs):
                    return ([r.get(RATE_KEY) for r in rs if _finite(r.get(metric))],
                            [r.get(metric) for r in rs if _finite(r.get(metric))])

                (rt, mt), (ra, ma) = points(test_rows), points(anchor_rows)
                if anchor_rows:
                    res = bd_rate(rt, mt, ra, ma, method=method,
                                  higher_is_better=metric not in LOWER_IS_BETTER)
                else:
                    res = _none(f"no rows of the anchor {anchor!r} for this video")
                out.append({"video": video, "codec": codec, "anchor": anchor, "metric": metric,
                            "method": method, **res, "points": len(rt),
                            "anchor_points": len(ra)})
    return out
