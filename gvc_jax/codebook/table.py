"""The 2^16-entry table of normal quantiles that turns 16 random bits into one normal draw.

Entry i is Φ^{-1}((i + 0.5) / 2^16), computed on the host in float64 (``statistics.NormalDist``,
Wichura's AS241, ~1e-16 relative), made exactly antisymmetric (entry 65535 - i = -entry i) and
rounded to the grid 2^-12 (the entries nearest the median become +0.0). In grid units every
entry fits in int16 (|v| <= 17715), so devices gather from a 128 KiB int16 table. The grid makes every
sum of up to 947 signed atoms exact in float32 in any order (|Σ| < 2^24 grid units), so
:func:`combine` does not depend on reduction order or backend.
A SHA-256 of the bytes is checked at import so a host whose libm would round differently fails loudly
instead of producing different atoms.
"""
from __future__ import annotations

import hashlib
import statistics

import numpy as np

GRID_LOG2 = 12                      # table values are multiples of 2^-12
TABLE_BITS = 16
TABLE_SIZE = 1 << TABLE_BITS
TABLE_SHA256 = "22eff448358fb3c32080b3b524e32552f28ab50ed1bd11bee9ff39c7fb29c8a3"


def _build() -> np.ndarray:
    nd = statistics.NormalDist()
    half = np.array([nd.inv_cdf((i + 0.5) / TABLE_SIZE) for i in range(TABLE_SIZE // 2)],
                    dtype=np.float64)
    full = np.concatenate([half, -half[::-1]])
    full = np.round(full * (1 << GRID_LOG2)) / (1 << GRID_LOG2)   # exact in float64
    full = full + 0.0                                              # -0.0 -> +0.0 (4 entries are 0)
    return full.astype(np.float32)                                 # exact: < 2^24 grid units


QUANTILES = _build()
QUANTILES.setflags(write=False)
MAX_ABS = float(np.abs(QUANTILES).max())
# Largest number of atoms whose signed sum is exact in float32 whatever the order.
MAX_EXACT_ATOMS = int(((1 << 24) >> GRID_LOG2) // MAX_ABS)


def table_sha256() -> str:
    return hashlib.sha256(QUANTILES.astype("<f4").tobytes()).hexdigest()


if table_sha256() != TABLE_SHA256:  # pragma: no cover
    raise RuntimeError("gvc_jax.codebook: the normal quantile table differs from the reference "
                       f"(sha256 {table_sha256()}); atoms would not be bit-exact on this host")
