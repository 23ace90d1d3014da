"""Order statistics used both by the sampling stop rule (on every rank) and by the summaries,
and the per-case summary itself. numpy only: ranks must not load scipy (start-up time at
scale); tests check these against scipy.stats and scipy.signal."""
from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=4096)
def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int]:
    """0-based indices (lo, hi) into the sorted sample of a distribution-free confidence
    interval for the median: the binomial(n, 1/2) order-statistic interval. Below 6 samples
    no interval reaches 95%, so it widens to (min, max)."""
    k = binom_half_ppf((1.0 - confidence) / 2.0, n)
    if k < 1:
        return 0, n - 1
    return k - 1, n - k


def binom_half_ppf(q: float, n: int) -> int:
    """The q-quantile of binomial(n, 1/2): the smallest k with P(X <= k) >= q (q <= 1/2),
    as scipy.stats.binom.ppf(q, n, 0.5)."""
    if n <= 0:
        return 0
    j = np.arange(n // 2 + 1, dtype=float)
    # log C(n, j) by the recurrence C(n, j+1) = C(n, j) (n - j) / (j + 1)
    log_comb = np.concatenate([[0.0], np.cumsum(np.log(n - j[:-1]) - np.log(j[:-1] + 1))])
    cdf = np.cumsum(np.exp(log_comb - n * np.log(2.0)))
    return int(np.searchsorted(cdf, q * (1 - 1e-12), side="left"))


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


def kde_silverman(x: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Gaussian kernel density of the 1-D sample x on grid, Silverman's bandwidth (as
    scipy.stats.gaussian_kde(x, bw_method='silverman'))."""
    n = x.size
    factor = (n * 3.0 / 4.0) ** (-1.0 / 5.0)
    var = np.var(x, ddof=1) * factor ** 2
    d = grid[:, None] - x[None, :]
    return np.exp(-0.5 * d * d / var).sum(axis=1) / (n * np.sqrt(2 * np.pi * var))


def peaks_with_prominence(y: np.ndarray, min_prominence: float) -> np.ndarray:
    """Indices of the local maxima of y (a plateau counts once, at its middle) whose
    topographic prominence is at least min_prominence (as scipy.signal.find_peaks)."""
    peaks, i, last = [], 1, y.size - 1
    while i < last:
        if y[i - 1] < y[i]:
            ahead = i + 1
            while ahead < last and y[ahead] == y[i]:
                ahead += 1
            if y[ahead] < y[i]:
                peaks.append((i + ahead - 1) // 2)
                i = ahead
        i += 1
    kept = []
    for p in peaks:
        left_min = right_min = y[p]
        i = p
        while i >= 0 and y[i] <= y[p]:
            left_min = min(left_min, y[i])
            i -= 1
        i = p
        while i <= last and y[i] <= y[p]:
            right_min = min(right_min, y[i])
            i += 1
        if y[p] - max(left_min, right_min) >= min_prominence:
            kept.append(p)
    return np.asarray(kept, dtype=int)


def modes(values, min_share: float = 0.05, min_separation: float = 0.05) -> list[tuple[float, int]]:
    """The modes of a timing distribution, as (median of the mode, samples in it), fastest
    first. Machines switch between latency modes for seconds at a time; a single median then
    hides that the samples form separate groups.

    Method: a Gaussian kernel density of log(time) (Silverman's bandwidth); every local maximum
    is a candidate, samples go to the basin between the density minima around it, and a mode
    counts when it holds at least `min_share` of the samples (and 3 of them) and its median is
    at least `min_separation` (relative) away from its neighbour's; otherwise it merges into
    the larger neighbour."""
    x = np.log(np.asarray([v for v in values if v > 0], dtype=float))
    if x.size < 10 or np.ptp(x) < min_separation:
        return [(float(np.exp(np.median(x))), int(x.size))] if x.size else []
    grid = np.linspace(x.min(), x.max(), 512)
    density = kde_silverman(x, grid)
    padded = np.concatenate([[0.0], density, [0.0]])
    peaks = peaks_with_prominence(padded, 0.05 * density.max()) - 1
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


def summarize_case(times, nbytes: int, bus_factor: float, msgs_per_op: float) -> dict:
    """The statistics columns of one summary.csv row, from the case's per-sample times
    (each already the max over ranks)."""
    times = np.asarray(times, dtype=float)
    med, lo, hi = median_ci(times)
    rate = nbytes / med if med > 0 and nbytes > 0 else float("nan")
    found = modes(times)
    return {
        "median_s": med, "ci_low_s": lo, "ci_high_s": hi,
        "min_s": float(times.min()) if times.size else float("nan"),
        "max_s": float(times.max()) if times.size else float("nan"),
        "algbw_Bps": rate,
        "busbw_Bps": rate * bus_factor if bus_factor else float("nan"),
        "msg_rate_per_s": msgs_per_op / med if med > 0 else float("nan"),
        "samples": int(times.size),
        "modes": len(found),
        "mode_medians_s": ";".join(f"{m:.6g}" for m, _ in found) if len(found) > 1 else "",
    }
