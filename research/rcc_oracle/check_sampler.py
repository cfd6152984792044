"""Check nearest_exact against brute force (direct draws) at b = 12 for several targets."""
import numpy as np
from .oracle import nearest_exact
from scipy.stats import ks_2samp
rng = np.random.default_rng(5)
for b in (8, 12):
    for tau in (0.5, 2.0, 3.5, 4.5, 6.0):
        n = 4000
        ex = nearest_exact(np.full(n, tau), b, rng)
        di = np.array([ (lambda p: p[np.argmin(np.abs(p - tau))])(rng.standard_normal(1 << b)) for _ in range(n)])
        print(b, tau, "mean ex %.4f di %.4f  std ex %.4f di %.4f  KS p=%.3f" % (ex.mean(), di.mean(), ex.std(), di.std(), ks_2samp(ex, di).pvalue))
