"""BD-rate (gvc_jax.eval.bdrate): equal to the bjontegaard package called directly, lower-is-better
metrics, eval-row tables and the degenerate cases (None with a reason, never an exception)."""
import math
import warnings

import numpy as np
import pytest

bjontegaard = pytest.importorskip("bjontegaard")

from gvc_jax.eval.bdrate import METHODS, bd_rate, bd_table  # noqa: E402

# an anchor and a test curve with 4 points each, the test ~20% cheaper with a different shape
A_RATES = [100.0, 200.0, 400.0, 800.0]
A_PSNR = [30.0, 33.1, 35.9, 38.2]
T_RATES = [90.0, 170.0, 330.0, 700.0]
T_PSNR = [30.4, 33.5, 36.3, 39.0]


def _direct(fn, *args, method):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, method, require_matching_points=False, min_overlap=0)


@pytest.mark.parametrize("method", METHODS)
def test_equals_package_called_directly(method):
    got = bd_rate(T_RATES, T_PSNR, A_RATES, A_PSNR, method=method)
    want_rate = _direct(bjontegaard.bd_rate, A_RATES, A_PSNR, T_RATES, T_PSNR, method=method)
    want_psnr = _direct(bjontegaard.bd_psnr, A_RATES, A_PSNR, T_RATES, T_PSNR, method=method)
    assert got["bd_rate_pct"] == want_rate and got["bd_metric"] == want_psnr
    assert got["bd_rate_pct"] < -5 and got["bd_metric"] > 0.3 and got["reason"] is None
    # overlap: shared over total range, on quality and on log10(rate)
    assert got["overlap"] == pytest.approx((38.2 - 30.4) / (39.0 - 30.0))
    lo, hi = math.log10(100), math.log10(700)
    assert got["overlap_rate"] == pytest.approx((hi - lo) / (math.log10(800) - math.log10(90)))
    # input order does not matter (the package itself needs sorted points)
    perm = [2, 0, 3, 1]
    shuffled = bd_rate([T_RATES[i] for i in perm], [T_PSNR[i] for i in perm],
                       A_RATES[::-1], A_PSNR[::-1], method=method)
    assert shuffled == got


@pytest.mark.parametrize("method", METHODS)
def test_lower_is_better_is_the_negated_direct_call(method):
    # LPIPS-like: falls with rate; the test curve is better (lower) at every rate
    a_lp = [0.30, 0.21, 0.14, 0.09]
    t_lp = [0.28, 0.19, 0.12, 0.07]
    got = bd_rate(T_RATES, t_lp, A_RATES, a_lp, method=method, higher_is_better=False)
    neg = lambda v: [-x for x in v]  # noqa: E731
    want_rate = _direct(bjontegaard.bd_rate, A_RATES, neg(a_lp), T_RATES, neg(t_lp),
                        method=method)
    want_metric = -_direct(bjontegaard.bd_psnr, A_RATES, neg(a_lp), T_RATES, neg(t_lp),
                           method=method)
    assert got["bd_rate_pct"] == want_rate and got["bd_metric"] == want_metric
    assert got["bd_rate_pct"] < 0 and got["bd_metric"] < 0  # cheaper, and lower LPIPS
    # without the flag the curve is not monotonic the way the package assumes
    wrong = bd_rate(T_RATES, t_lp, A_RATES, a_lp, method=method)
    assert wrong["bd_rate_pct"] is None and "monotonic" in wrong["reason"]


def test_degenerate_cases_give_none_with_a_reason():
    few = bd_rate(T_RATES[:3], T_PSNR[:3], A_RATES, A_PSNR, method="cubic")
    assert few["bd_rate_pct"] is None and few["bd_metric"] is None
    assert "3 usable points, cubic needs at least 4" in few["reason"]
    one = bd_rate(T_RATES[:1], T_PSNR[:1], A_RATES, A_PSNR)
    assert one["bd_rate_pct"] is None and "needs at least 2" in one["reason"]
    assert bd_rate(T_RATES[:2], T_PSNR[:2], A_RATES, A_PSNR)["bd_rate_pct"] is not None
    # quality ranges apart: no BD-rate, BD-metric still defined on the shared rates
    far = bd_rate(T_RATES, [p + 20 for p in T_PSNR], A_RATES, A_PSNR)
    assert far["bd_rate_pct"] is None and far["overlap"] == 0
    assert far["bd_metric"] is not None and "quality ranges do not overlap" in far["reason"]
    # rate ranges apart: the reverse
    apart = bd_rate([r * 100 for r in T_RATES], T_PSNR, A_RATES, A_PSNR)
    assert apart["bd_metric"] is None and apart["bd_rate_pct"] is not None
    assert apart["overlap_rate"] == 0 and "rate ranges do not overlap" in apart["reason"]
    # missing / non-finite / non-positive points are dropped before counting
    dropped = bd_rate(T_RATES + [1000.0, 0.0], T_PSNR + [None, 45.0], A_RATES, A_PSNR)
    assert dropped == bd_rate(T_RATES, T_PSNR, A_RATES, A_PSNR)
    assert "same rate" in bd_rate([1, 1, 2], [1, 2, 3], A_RATES, A_PSNR)["reason"]
    assert "2 rates but 1" in bd_rate([1, 2], [3], A_RATES, A_PSNR)["reason"]
    with pytest.raises(ValueError, match="method"):
        bd_rate(T_RATES, T_PSNR, A_RATES, A_PSNR, method="linear")


def _rows():
    rows = []
    for video, shift in (("Beauty", 0.0), ("Jockey", 1.0)):
        for r, p in zip(A_RATES, A_PSNR):
            rows.append({"video": video, "codec": "x265", "kbps": r, "psnr_rgb": p + shift,
                         "lpips": 0.5 - p / 100, "dists": None})
        for r, p in zip(T_RATES, T_PSNR):
            rows.append({"video": video, "codec": "gvc-t2v", "kbps": r, "psnr_rgb": p + shift,
                         "lpips": 0.5 - p / 100 - 0.01, "dists": None})
        rows.append({"video": video, "codec": "x264", "setting": "crf=99", "failed": "too low"})
    rows.append({"video": "Bosphorus", "codec": "gvc-t2v", "kbps": 10.0, "psnr_rgb": 30.0})
    return rows


def test_bd_table_from_eval_rows():
    table = bd_table(_rows(), "x265", ["psnr_rgb", "lpips", "dists"], "akima")
    keys = [(t["video"], t["codec"], t["metric"]) for t in table]
    assert keys == [(v, "gvc-t2v", m) for v in ("Beauty", "Jockey", "Bosphorus")
                    for m in ("psnr_rgb", "lpips", "dists")]
    first = table[0]
    assert set(first) == {"video", "codec", "anchor", "metric", "method", "bd_rate_pct",
                          "bd_metric", "overlap", "overlap_rate", "reason", "points",
                          "anchor_points"}
    assert first["anchor"] == "x265" and first["method"] == "akima"
    assert first["bd_rate_pct"] == bd_rate(T_RATES, T_PSNR, A_RATES, A_PSNR,
                                           method="akima")["bd_rate_pct"]
    lp = table[1]
    want = bd_rate(T_RATES, [0.5 - p / 100 - 0.01 for p in T_PSNR], A_RATES,
                   [0.5 - p / 100 for p in A_PSNR], method="akima", higher_is_better=False)
    assert lp["bd_rate_pct"] == want["bd_rate_pct"] and lp["bd_metric"] == want["bd_metric"]
    assert lp["bd_metric"] < 0
    assert table[2]["bd_rate_pct"] is None and table[2]["points"] == 0  # DISTS not computed
    assert table[6]["bd_rate_pct"] is None and "no rows of the anchor" in table[6]["reason"]
    assert all(not np.isnan(t["bd_rate_pct"]) for t in table if t["bd_rate_pct"] is not None)
