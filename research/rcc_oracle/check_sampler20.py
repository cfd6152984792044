"""nearest_exact vs brute force at b = 20 (2^20 draws per sample), targets inside and beyond reach."""
import numpy as np
from .oracle import nearest_exact
from scipy.stats import ks_2samp
rng = np.random.default_rng(12)
for tau in (3.0, 5.0):
    n = 1000
    ex = nearest_exact(np.full(4000, tau), 20, rng)
    di = np.array([(lambda p: p[np.argmin(np.abs(p - tau))])(rng.standard_normal(1 << 20)) for _ in range(n)])
    print(20, tau, "mean ex %.5f di %.5f  std ex %.5f di %.5f  KS p=%.3f" % (ex.mean(), di.mean(), ex.std(), di.std(), ks_2samp(ex, di).pvalue))
