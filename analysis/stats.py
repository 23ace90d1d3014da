"""Order statistics used both by the sampling stop rule and by the summaries."""
from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=4096)
def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int]:
    """0-based indices (lo, hi) into the sorted sample of a distribution-free confidence
    interval for the median: the binomial(n, 1/2) order-statistic interval. Below 6 samples
    no interval reaches 95%, so it widens to (min, max)."""
    from scipy.stats import binom

    k = int(binom.ppf((1.0 - confidence) / 2.0, n, 0.5))
    if k < 1:
        return 0, n - 1
    return k - 1, n - k


def median_ci(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """(median, ci_low, ci_high) of the values; NaNs when there are none."""
    x = np.sort(np.asarray(values, dtype=float))
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    lo, hi = median_ci_ranks(int(x.size), confidence)
    return float(np.median(x)), float(x[lo]), float(x[hi])


def relative_ci_width(values, confidence: float = 0.95) -> float:
    med, lo, hi = median_ci(values, confidence)
    return (hi - lo) / med if med > 0 else float("inf")
