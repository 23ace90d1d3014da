"""The numerics every fit of `commbench fit` shares: robust linear fits in relative error,
partitions of the sizes into segments (break points), bootstrap intervals.

All fits are in relative error (times span decades, so every point weighs by 1/t), with
non-negative parameters, robust (soft-L1 loss), on per-size medians (robust to outlying
samples). Break points between measured sizes are found by dynamic programming for 1 to
max_segments segments and the count is chosen by an information criterion (BIC with the jitter
scale taken from the most flexible model and outlying sizes capped, see `best_partition`).
Intervals: bootstrap over the raw samples within each size, refitted with the chosen break
points. numpy here; scipy (nnls) is imported where used.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CI_LEVEL = 0.95
OUTLIER_REL = 0.2  # residual cap while estimating the jitter σ (see best_partition)
SIGMA_FLOOR = 5e-3  # 0.5%: wiggles below this between sizes are not worth a break point


@dataclass
class Segment:
    lo: int  # index of the first size in the segment
    hi: int  # index of the last size (inclusive)
    nbytes_lo: float
    nbytes_hi: float
    theta: np.ndarray  # (alpha_s, beta_s_per_byte) or (α, β, γ)
    ci_low: np.ndarray = None
    ci_high: np.ndarray = None
    rel_rms: float = float("nan")


# ---------------------------------------------------------------- linear fits in relative error
def independent_columns(X: np.ndarray) -> np.ndarray:
    """Indices of columns that are not zero nor a combination of earlier ones (on this data).
    In every reducing-collective model β and γ enter in a fixed ratio, so γ is dropped there."""
    A = X / np.maximum(np.abs(X).max(axis=0), 1e-300)
    keep: list[int] = []
    for j in range(X.shape[1]):
        if np.abs(A[:, j]).max() == 0:
            continue
        if np.linalg.matrix_rank(A[:, keep + [j]], tol=1e-9) == len(keep) + 1:
            keep.append(j)
    return np.array(keep, dtype=int)


def fit_relative(X: np.ndarray, t: np.ndarray, robust: bool = True,
                 f_scale: float = 0.05, offset=None) -> np.ndarray:
    """Non-negative θ minimising Σ ρ((Xθ + offset − t)/t), offset a known part of t (default
    none). ρ is the square (robust=False) or soft-L1
    (ρ(r) = 2f²(√(1 + (r/f)²) − 1), f = 5%): residuals beyond a few percent count linearly, so
    one odd size cannot drag the line. Columns that the data cannot identify get θ = 0.
    Solved by iteratively reweighted non-negative least squares (scipy's nnls; 20 rounds), the
    textbook M-estimator algorithm, 5× cheaper here than scipy.optimize.least_squares, which
    matters inside the bootstrap."""
    from scipy.optimize import nnls

    X = np.asarray(X, dtype=float)
    t = np.asarray(t, dtype=float)
    theta = np.zeros(X.shape[1])
    cols = independent_columns(X)
    if cols.size == 0:
        return theta
    A = X[:, cols] / t[:, None]
    scale = np.abs(A).max(axis=0)  # parameters of order 1 for the solver
    A = A / scale
    target = np.ones_like(t) if offset is None else 1.0 - np.asarray(offset, float) / t
    x, _ = nnls(A, target)
    if robust and len(t) > cols.size:
        for _ in range(20):
            r = A @ x - target
            w = np.sqrt(1.0 / np.sqrt(1.0 + (r / f_scale) ** 2))  # sqrt of the IRLS weight ψ(r)/r
            x_new, _ = nnls(A * w[:, None], w * target)
            done = np.abs(x_new - x).max() <= 1e-7 * np.abs(x).max()
            x = x_new
            if done:
                break
    theta[cols] = x / scale
    return theta


def fit_segments(part, X, y, sizes, replicates=None) -> list:
    """Fit each size range of a partition; intervals from the same fit on bootstrap
    replicates of y (None: no intervals)."""
    segments = []
    for i, j in part:
        sl = slice(i, j + 1)
        theta = fit_relative(X[sl], y[sl])
        seg = Segment(i, j, sizes[i], sizes[j], theta,
                      rel_rms=rms(relative_residuals(X[sl], y[sl], theta)))
        if replicates is not None:
            seg.ci_low, seg.ci_high = percentile_ci(np.array([fit_relative(X[sl], r[sl]) for r in replicates]))
        segments.append(seg)
    return segments


def relative_residuals(X, t, theta) -> np.ndarray:
    return (np.asarray(X) @ theta - t) / t


def rms(x) -> float:
    x = np.asarray(x, dtype=float)
    return float(np.sqrt(np.mean(x * x))) if x.size else float("nan")


# ---------------------------------------------------------------- break points
def best_partition(n_groups: int, residuals, max_segments: int, min_groups: int,
                   sampling_sd: float, params_per_segment: int = 2):
    """Split groups 0..n_groups-1 (sizes, ascending) into at most max_segments contiguous
    segments of at least min_groups each. residuals(i, j) gives, for one robust fit over groups
    i..j (or a list, one per candidate model: the best counts), the relative residuals of the
    points in them.

    The criterion is BIC with a known scale, Σ min(r², c²)/σ² + k·ln N (N points, k = params
    per segment × segments + break points), minimised for each segment count by dynamic
    programming. σ, the jitter of a point about the true curve, comes from the most flexible
    model (max_segments segments; as Mallows' Cp takes σ² from the full model): a robust (MAD)
    scale of its residuals, at least the sampling error of the medians. Residuals beyond
    c = 3σ are capped: with robust fits, which follow the majority of a segment, an outlying
    size then costs the same in any segmentation, so no break point is spent on it, while a
    protocol change moves every later size and pays for its break."""
    inf = float("inf")
    memo: dict[tuple[int, int], list] = {}

    def res(i, j):
        if (i, j) not in memo:
            r = residuals(i, j)
            memo[(i, j)] = [np.asarray(x, float) for x in (r if isinstance(r, list) else [r])]
        return memo[(i, j)]

    def capped(r, cap):
        return float(np.sum(np.minimum(r * r, cap * cap)))

    def solve(cap):
        """{m: (cost, partition)} for every feasible m, cost Σ min(r², cap²)."""
        def cost(i, j):
            if j - i + 1 < min_groups:
                return inf
            return min(capped(r, cap) for r in res(i, j))

        best = [dict() for _ in range(max_segments + 1)]  # best[m][j]: groups 0..j in m
        for j in range(n_groups):
            best[1][j] = (cost(0, j), [(0, j)])
        for m in range(2, max_segments + 1):
            for j in range(n_groups):
                cand = (inf, None)
                for i in range(1, j + 1):
                    prev = best[m - 1].get(i - 1)
                    if prev is None or prev[0] == inf:
                        continue
                    c = prev[0] + cost(i, j)
                    if c < cand[0]:
                        cand = (c, prev[1] + [(i, j)])
                best[m][j] = cand
        return {m: best[m][n_groups - 1] for m in range(1, max_segments + 1)
                if best[m].get(n_groups - 1, (inf, None))[0] < inf}

    def k_params(m):
        return params_per_segment * m + (m - 1)

    first = solve(OUTLIER_REL)
    if not first:  # fewer groups than min_groups: one segment
        return [(0, n_groups - 1)]
    m_full = max(first)
    r_full = np.concatenate([min(res(i, j), key=lambda r: capped(r, OUTLIER_REL))
                             for i, j in first[m_full][1]])
    n_points = r_full.size
    dof = n_points - k_params(m_full)
    mad = (1.4826 * float(np.median(np.abs(r_full))) * math.sqrt(n_points / dof)
           if dof > 0 else 0.0)
    sigma = max(mad, sampling_sd, SIGMA_FLOOR)
    scored = solve(3 * sigma)
    choice = min(scored, key=lambda m: scored[m][0] / sigma**2 + k_params(m) * math.log(n_points))
    return scored[choice][1]


def median_sd(groups: list[np.ndarray]) -> float:
    """Typical relative standard error of a group's median: 1.2533·σ/√m, σ the robust (MAD)
    relative spread of its m samples."""
    se = []
    for x in groups:
        m = np.median(x)
        if m > 0 and x.size:
            se.append(1.2533 * 1.4826 * np.median(np.abs(x - m)) / m / math.sqrt(x.size))
    return float(np.median(se)) if se else 0.0


def segment_for(nbytes: float, bounds: list[tuple[float, float]]) -> int:
    """Index of the segment that covers nbytes: the boundary between two segments is the
    geometric mean of the last size of one and the first of the next; outside the measured
    range the nearest segment."""
    for k in range(len(bounds) - 1):
        edge = math.sqrt(max(bounds[k][1], 1.0) * max(bounds[k + 1][0], 1.0))
        if nbytes < edge:
            return k
    return len(bounds) - 1


# ---------------------------------------------------------------- bootstrap
def bootstrap_medians(groups: list[np.ndarray], n_boot: int, rng) -> np.ndarray:
    """(n_boot, len(groups)) medians of samples resampled with replacement within each group."""
    out = np.empty((n_boot, len(groups)))
    for g, x in enumerate(groups):
        idx = rng.integers(0, x.size, size=(n_boot, x.size))
        out[:, g] = np.median(x[idx], axis=1)
    return out


def percentile_ci(values: np.ndarray, level: float = CI_LEVEL):
    q = (1 - level) / 2 * 100
    lo, hi = np.nanpercentile(values, [q, 100 - q], axis=0)
    return lo, hi
