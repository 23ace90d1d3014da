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


def modes(values, min_share: float = 0.05, min_separation: float = 0.05) -> list[tuple[float, int]]:
    """The modes of a timing distribution, as (median of the mode, samples in it), fastest
    first. Machines switch between latency modes for seconds at a time; a single median then
    hides that the samples form separate groups.

    Method: a Gaussian kernel density of log(time) (Silverman's bandwidth); every local maximum
    is a candidate, samples go to the basin between the density minima around it, and a mode
    counts when it holds at least `min_share` of the samples (and 3 of them) and its median is
    at least `min_separation` (relative) away from its neighbour's; otherwise it merges into
    the larger neighbour."""
    from scipy.signal import find_peaks
    from scipy.stats import gaussian_kde

    x = np.log(np.asarray([v for v in values if v > 0], dtype=float))
    if x.size < 10 or np.ptp(x) < min_separation:
        return [(float(np.exp(np.median(x))), int(x.size))] if x.size else []
    grid = np.linspace(x.min(), x.max(), 512)
    density = gaussian_kde(x, bw_method="silverman")(grid)
    padded = np.concatenate([[0.0], density, [0.0]])
    peaks, _ = find_peaks(padded, prominence=0.05 * density.max())
    peaks = peaks - 1
    if len(peaks) <= 1:
        return [(float(np.exp(np.median(x))), int(x.size))]
    # split at the density minimum between neighbouring peaks
    cuts = [grid[a + int(np.argmin(density[a:b + 1]))] for a, b in zip(peaks[:-1], peaks[1:])]
    groups = [g for g in np.split(np.sort(x), np.searchsorted(np.sort(x), cuts)) if g.size]
    merged = True
    while merged and len(groups) > 1:
        merged = False
        for i, g in enumerate(groups):
            neighbours = [j for j in (i - 1, i + 1) if 0 <= j < len(groups)]
            close = any(abs(np.median(g) - np.median(groups[j])) < np.log1p(min_separation)
                        for j in neighbours)
            if g.size < max(3, min_share * x.size) or close:
                j = max(neighbours, key=lambda j: groups[j].size)
                groups[j] = np.sort(np.concatenate([groups[j], g]))
                del groups[i]
                merged = True
                break
    return [(float(np.exp(np.median(g))), int(g.size)) for g in groups]
