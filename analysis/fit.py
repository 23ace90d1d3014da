"""`commbench fit RUN_DIR...`: fitted performance models, written to RUN_DIR/fits.csv.

Three kinds of fit, all on sample times (max over ranks per round and sample,
`analysis.rundir.sample_times`), all in relative error (times span decades, so every point
weighs by 1/t), all with non-negative parameters, all robust (soft-L1 loss) and fitted on the
per-size medians (robust to outlying samples):

* hockney — per (backend, op, nranks): t = α + S·β, piecewise in S. Protocol changes (eager →
  rendezvous, shared memory → single copy, Open MPI's 4 KiB shared-memory step) show up as
  break points between measured sizes; they are found by dynamic programming for 1 to
  --max-segments segments (at least --min-points sizes each) and the count is chosen by an
  information criterion (BIC with the jitter scale taken from the most flexible model and
  outlying sizes capped, see `best_partition`). Intervals: bootstrap over the raw samples
  within each size, refitted with the chosen break points.
* loggp — from the `prtt_*` ops (Netgauge's parametrised round trip), see `fit_loggp`:
    commbench run -n 2 --ops prtt_rtt1,prtt_rttn8,prtt_rtts8,prtt_rttr8 --sizes 4:1M:4
* algorithm models (analysis.models) — on a sweep (`commbench sweep`: run directories at
  several rank counts): per op, all rank counts jointly, piecewise in S as above; in each size
  range every algorithm of the op is fitted (α, β, γ) and scored by its error on each rank
  count left out in turn; the lowest held-out error is marked `selected`.

fits.csv is tidy: backend, op, nranks, split, model, segment, nbytes_lo, nbytes_hi, param,
value, ci_low, ci_high. nbytes_lo / nbytes_hi are the smallest and largest measured S inside
the segment; nranks is 0 on rows fitted across the rank counts of a sweep (their held-out
errors per rank count are rows with that nranks). SI units throughout.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas is imported where used: `commbench run` ranks never need it
    import pandas as pd

FITS_COLUMNS = ["backend", "op", "nranks", "split", "model", "segment", "nbytes_lo",
                "nbytes_hi", "param", "value", "ci_low", "ci_high"]
CI_LEVEL = 0.95
OUTLIER_REL = 0.2  # residual cap while estimating the jitter σ (see best_partition)
SIGMA_FLOOR = 5e-3  # 0.5%: wiggles below this between sizes are not worth a break point
POINT_TO_POINT = ("pingpong", "sendrecv", "send", "pingping", "exchange")


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


# ---------------------------------------------------------------- Hockney, piecewise
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
    extra: dict = field(default_factory=dict)


def hockney_design(nbytes) -> np.ndarray:
    n = np.asarray(nbytes, dtype=float)
    return np.column_stack([np.ones_like(n), n])


def fit_hockney(nbytes, samples, max_segments: int = 4, min_points: int = 3,
                n_boot: int = 200, seed: int = 0) -> list[Segment]:
    """Piecewise t = α + nβ over sizes `nbytes` (ascending, distinct), `samples[i]` the sample
    times at nbytes[i]. See the module docstring for the method."""
    order = np.argsort(nbytes)
    nbytes = np.asarray(nbytes, dtype=float)[order]
    groups = [np.asarray(samples[i], dtype=float) for i in order]
    med = np.array([np.median(g) for g in groups])
    X = hockney_design(nbytes)
    K = len(nbytes)

    def residuals(i, j):
        sl = slice(i, j + 1)
        return relative_residuals(X[sl], med[sl], fit_relative(X[sl], med[sl]))

    part = best_partition(K, residuals, max_segments, min(min_points, K), median_sd(groups))
    rng = np.random.default_rng(seed)
    boot = bootstrap_medians(groups, n_boot, rng) if n_boot > 0 else None
    segments = fit_segments(part, X, med, nbytes, boot)
    return segments


def segment_for(nbytes: float, bounds: list[tuple[float, float]]) -> int:
    """Index of the segment that covers nbytes: the boundary between two segments is the
    geometric mean of the last size of one and the first of the next; outside the measured
    range the nearest segment."""
    for k in range(len(bounds) - 1):
        edge = math.sqrt(max(bounds[k][1], 1.0) * max(bounds[k + 1][0], 1.0))
        if nbytes < edge:
            return k
    return len(bounds) - 1


# ---------------------------------------------------------------- algorithm models on a sweep
def size_steps(nbytes, tolerance: float = 0.05):
    """(step index of every size, first size of every step): sizes within 5% of a step's first
    size are one step. Ops with per-rank blocks round S to a multiple of p (allgather at 3
    ranks: 1020 B where 2 and 4 ranks give 1024 B), and those belong together."""
    nbytes = np.asarray(nbytes, dtype=float)
    starts, step = [], {}
    for x in np.unique(nbytes):
        if not starts or x > starts[-1] * (1 + tolerance) + 0.5:
            starts.append(x)
        step[x] = len(starts) - 1
    return np.array([step[x] for x in nbytes], dtype=int), np.array(starts)


@dataclass
class AlgorithmFit:
    name: str
    theta: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    rel_rms: float
    loo_rel_error: float  # rms relative error over all held-out points
    heldout: dict  # nranks -> rms relative error predicting that count from the others
    selected: bool = False


def fit_algorithms(op: str, cases: dict, max_segments: int = 4, min_points: int = 3,
                   n_boot: int = 200, seed: int = 0, beta_known=None):
    """cases: {(nranks, nbytes): sample times}. Returns [(Segment, [AlgorithmFit, ...])]:
    size ranges found jointly over all rank counts (the cost of a range is the misfit of its
    best algorithm), then in each range every algorithm of op fitted on all counts, scored by
    leave-one-rank-count-out, the lowest held-out error selected.

    γ: in every model of a reducing op β and γ scale alike, so times of that op alone fix only
    their sum (γ comes out 0, β absorbs it). beta_known(S) -> (β, ci_low, ci_high), when given
    (β of a non-reducing op of the same sweep, see fit_times), pins β so γ can be fitted."""
    from analysis import models

    names = models.algorithms(op)
    if not names:
        return []
    keys = sorted(cases)
    p = np.array([k[0] for k in keys], dtype=float)
    n = np.array([k[1] for k in keys], dtype=float)
    groups = [np.asarray(cases[k], dtype=float) for k in keys]
    med = np.array([np.median(g) for g in groups])
    size_idx, sizes = size_steps(n)
    X = {name: models.design_matrix(op, name, p, n) for name in names}

    def rows(i, j):
        return (size_idx >= i) & (size_idx <= j)


    def residuals(i, j):
        m = rows(i, j)
        return [relative_residuals(X[name][m], med[m], fit_relative(X[name][m], med[m]))
                for name in names]

    part = best_partition(len(sizes), residuals, max_segments, min(min_points, len(sizes)),
                          median_sd(groups))
    rng = np.random.default_rng(seed)
    boot = bootstrap_medians(groups, n_boot, rng) if n_boot > 0 else None
    counts = np.unique(p)
    out = []
    for i, j in part:
        m = rows(i, j)
        seg = Segment(i, j, n[m].min(), n[m].max(), theta=None)
        fits = []
        for name in names:
            Xm, tm, pm = X[name][m], med[m], p[m]
            pinned = None
            if (beta_known is not None and Xm[:, 2].any()
                    and 2 not in independent_columns(Xm)):
                pinned = beta_known(math.sqrt(max(seg.nbytes_lo, 1) * max(seg.nbytes_hi, 1)))
            fit = _fitter(Xm, pinned[0] if pinned else None)
            everything = np.ones(len(tm), dtype=bool)
            theta = fit(everything, tm)
            held, errors = {}, []
            for q in counts if counts.size > 1 else []:
                train = pm != q
                th = fit(train, tm[train])
                r = relative_residuals(Xm[~train], tm[~train], th)
                held[int(q)] = rms(r)
                errors.append(r)
            loo = rms(np.concatenate(errors)) if errors else float("nan")
            lo, hi = np.full(3, np.nan), np.full(3, np.nan)
            if boot is not None:
                thetas = np.array([fit(everything, b[m]) for b in boot])
                lo, hi = percentile_ci(thetas)
            if pinned:
                lo[1], hi[1] = pinned[1], pinned[2]
            fits.append(AlgorithmFit(name, theta, lo, hi,
                                     rms(relative_residuals(Xm, tm, theta)), loo, held))
        score = [f.loo_rel_error if np.isfinite(f.loo_rel_error) else f.rel_rms for f in fits]
        fits[int(np.argmin(score))].selected = True
        out.append((seg, fits))
    return out


def _fitter(X: np.ndarray, beta=None):
    """fit(rows, t) -> θ over the rows of X; with β given, β is held there and α, γ fitted."""
    if beta is None:
        return lambda rows, t: fit_relative(X[rows], t)
    free = X.copy()
    free[:, 1] = 0.0
    offset = X[:, 1] * beta

    def fit(rows, t):
        theta = fit_relative(free[rows], t, offset=offset[rows])
        theta[1] = beta
        return theta
    return fit


# ---------------------------------------------------------------- LogGP from PRTT
PRTT_KINDS = ("rtt1", "rttn", "rtts", "rttr")
SMALL_SIZES = 3  # sizes behind LogGP's per-message o_s, o_r and L


def fit_loggp(prtt: dict, n_msgs: int, delay, n_boot: int = 200, seed: int = 0,
              max_segments: int = 3, min_points: int = 3):
    """LogGP parameters from Netgauge-style parametrised round trips (the `prtt_*` ops).

    prtt: {(kind, s): sample times} with kind
      "rtt1"  PRTT(1, 0, s): one s-byte message and its echo,
      "rttn"  PRTT(n, 0, s): n back-to-back s-byte messages, then one echo,
      "rtts"  PRTT(n, d, s): as rttn with the sender idle d(s) before every message but the first,
      "rttr"  as rttn with the receiver idle d(s) before every receive but the first (the
              messages wait for it: each later receive costs o_r).
    delay: s -> d(s) in seconds, as the ops used it.
    LogGP (Hoefler, Lichei & Rehm 2009, "LogGP in theory and practice"):
      G_all(s) = g + (s−1)·G = (PRTT(n,0,s) − PRTT(1,0,s)) / (n−1): a line in s, piecewise
        (protocol changes), break points chosen as for Hockney;
      o_s(s) = (PRTT_s(n,d,s) − PRTT(1,0,s)) / (n−1) − d(s), o_r(s) likewise from rttr,
        valid where d(s) ≥ G_all(s) (else the gap, not the overhead, paces the messages);
      L = PRTT(1,0,s)/2 − o_s(s) − o_r(s) − (s−1)·G.
    o_s, o_r and L are per message in LogGP: reported as the median over the three smallest
    sizes where d(s) ≥ G_all(s) (robust to one disturbed size).
    Returns {"segments": [Segment with theta (g, G)], "scalars": {param: (value, lo, hi)},
    "per_size": DataFrame of s, G_all, o_s, o_r}."""
    sizes = sorted({s for (kind, s) in prtt if kind == "rtt1"})
    for kind in PRTT_KINDS:
        missing = [s for s in sizes if (kind, s) not in prtt]
        if missing:
            raise ValueError(f"prtt: no {kind} samples at sizes {missing}")
    if len(sizes) < 2:
        raise ValueError("prtt: LogGP needs at least 2 sizes")
    s = np.array(sizes, dtype=float)
    d = np.array([delay(x) for x in sizes], dtype=float)
    groups = {k: [np.asarray(prtt[(k, x)], float) for x in sizes] for k in PRTT_KINDS}
    med = {k: np.array([np.median(g) for g in v]) for k, v in groups.items()}
    rng = np.random.default_rng(seed)
    boot = ({k: bootstrap_medians(v, n_boot, rng) for k, v in groups.items()}
            if n_boot > 0 else None)

    def derived(m):
        gall = (m["rttn"] - m["rtt1"]) / (n_msgs - 1)
        o_s = (m["rtts"] - m["rtt1"]) / (n_msgs - 1) - d
        o_r = (m["rttr"] - m["rtt1"]) / (n_msgs - 1) - d
        return gall, o_s, o_r

    gall, o_s, o_r = derived(med)
    X = np.column_stack([np.ones_like(s), np.maximum(s - 1, 0)])  # columns (g, G)
    floor = 1e-3 * np.abs(gall).max()  # a non-positive difference is noise: keep it small
    y = np.maximum(gall, floor)

    def residuals(i, j):
        sl = slice(i, j + 1)
        return relative_residuals(X[sl], y[sl], fit_relative(X[sl], y[sl]))

    # the sampling error of G_all, from the bootstrap, is the floor of the jitter σ
    sd = 0.0
    if boot is not None:
        gb = np.array([derived({k: v[b] for k, v in boot.items()})[0] for b in range(n_boot)])
        sd = float(np.median(np.std(gb, axis=0) / y))
    part = best_partition(len(s), residuals, max_segments, min(min_points, len(s)), sd)
    segments = fit_segments(part, X, y, s, None if boot is None else [np.maximum(g, floor) for g in gb])

    # LogGP's o and L are per message: take them at the smallest sizes, as the median over the
    # (up to) SMALL_SIZES smallest sizes where the delay exceeded the gap, so one disturbed
    # size cannot set them; L(s) = PRTT(1,0,s)/2 − o_s(s) − o_r(s) − (s−1)·G.
    G0 = segments[0].theta[1]
    small = np.flatnonzero(d >= gall)[:SMALL_SIZES]

    def scalars(m, o_s_, o_r_):
        if small.size == 0:
            return {"L_s": np.nan, "o_s_s": np.nan, "o_r_s": np.nan}
        L = m["rtt1"][small] / 2 - o_s_[small] - o_r_[small] - np.maximum(s[small] - 1, 0) * G0
        return {"L_s": float(np.median(L)), "o_s_s": float(np.median(o_s_[small])),
                "o_r_s": float(np.median(o_r_[small]))}

    point = scalars(med, o_s, o_r)
    out = {k: (v, float("nan"), float("nan")) for k, v in point.items()}
    if boot is not None:
        draws = []
        for b in range(n_boot):
            mb = {k: v[b] for k, v in boot.items()}
            _, ob, rb = derived(mb)
            draws.append(list(scalars(mb, ob, rb).values()))
        lo, hi = percentile_ci(np.array(draws))
        out = {k: (point[k], lo[i], hi[i]) for i, k in enumerate(point)}
    import pandas as pd

    per_size = pd.DataFrame({"nbytes": s, "delay_s": d, "G_all_s": gall, "o_s_s": o_s,
                             "o_r_s": o_r, "valid": d >= gall})
    return {"segments": segments, "scalars": out, "per_size": per_size}


# ---------------------------------------------------------------- run directories
def discover_runs(path) -> list[Path]:
    """A run directory itself, or the run directories directly inside a sweep directory."""
    from analysis.rundir import RunDirError

    path = Path(path)
    if (path / "meta.json").exists():
        return [path]
    if path.is_dir():
        runs = sorted(d for d in path.iterdir() if (d / "meta.json").exists())
        if runs:
            return runs
    raise RunDirError(f"{path}: not a commbench run directory nor a sweep of them (no meta.json)")


def load_times(run_dirs) -> pd.DataFrame:
    """Sample times (max over ranks) of all runs, one row per case, round and sample."""
    import pandas as pd

    from analysis.rundir import load_meta, load_samples, sample_times

    frames = []
    for d in run_dirs:
        load_meta(d)  # validates the directory and schema
        s = load_samples(d)
        if len(s):
            frames.append(sample_times(s))
    if not frames:
        return pd.DataFrame(columns=["backend", "op", "dtype", "nbytes", "nranks", "split",
                                     "round", "sample", "time_s"])
    t = pd.concat(frames, ignore_index=True)
    return t[t["time_s"] > 0]


def _one_dtype(df: pd.DataFrame, label: str) -> pd.DataFrame:
    """fits.csv has no dtype column: fit the most frequent dtype of an op and say so."""
    if df["dtype"].nunique() > 1:
        keep = df["dtype"].value_counts().idxmax()
        print(f"commbench fit: {label}: several dtypes, fitting {keep} only", file=sys.stderr)
        df = df[df["dtype"] == keep]
    return df


def _row(key, model, segment, lo, hi, param, value, ci_low=float("nan"), ci_high=float("nan")):
    backend, op, nranks, split = key
    return dict(backend=backend, op=op, nranks=int(nranks), split=split, model=model,
                segment=int(segment), nbytes_lo=int(lo), nbytes_hi=int(hi), param=param,
                value=float(value), ci_low=float(ci_low), ci_high=float(ci_high))


def _bandwidth_row(key, model, k, seg, beta, lo, hi):
    """1/β, with the interval from the β interval inverted."""
    inv = lambda x: 1.0 / x if x > 0 else float("inf")  # noqa: E731
    return _row(key, model, k, seg.nbytes_lo, seg.nbytes_hi, "bandwidth_Bps", inv(beta),
                inv(hi), inv(lo))


def hockney_rows(key, segments: list[Segment]) -> list[dict]:
    rows = []
    for k, seg in enumerate(segments):
        lo = seg.ci_low if seg.ci_low is not None else np.full(2, np.nan)
        hi = seg.ci_high if seg.ci_high is not None else np.full(2, np.nan)
        sized = seg.nbytes_hi > 0  # barrier: no bytes, so no β and no bandwidth
        for i, param in enumerate(("alpha_s", "beta_s_per_byte")[:2 if sized else 1]):
            rows.append(_row(key, "hockney", k, seg.nbytes_lo, seg.nbytes_hi, param,
                             seg.theta[i], lo[i], hi[i]))
        if sized:
            rows.append(_bandwidth_row(key, "hockney", k, seg, seg.theta[1], lo[1], hi[1]))
        rows.append(_row(key, "hockney", k, seg.nbytes_lo, seg.nbytes_hi, "rel_rms",
                         seg.rel_rms))
    return rows


def algorithm_rows(key, results) -> list[dict]:
    from analysis.models import PARAMS

    rows = []
    for k, (seg, fits) in enumerate(results):
        span = (seg.nbytes_lo, seg.nbytes_hi)
        for f in fits:
            for i, param in enumerate(PARAMS):
                if i == 2 and f.theta[2] == 0 and not np.any(np.nan_to_num(f.ci_high[2:]) > 0):
                    continue  # γ not identified: β and γ are fitted as one (see models.py)
                rows.append(_row(key, f.name, k, *span, param, f.theta[i], f.ci_low[i],
                                 f.ci_high[i]))
            rows.append(_row(key, f.name, k, *span, "rel_rms", f.rel_rms))
            rows.append(_row(key, f.name, k, *span, "loo_rel_error", f.loo_rel_error))
            rows.append(_row(key, f.name, k, *span, "selected", float(f.selected)))
            for q, err in sorted(f.heldout.items()):
                rows.append(_row(key[:2] + (q,) + key[3:], f.name, k, *span,
                                 "heldout_rel_error", err))
    return rows


def loggp_rows(key, res) -> list[dict]:
    rows = []
    for k, seg in enumerate(res["segments"]):
        lo = seg.ci_low if seg.ci_low is not None else np.full(2, np.nan)
        hi = seg.ci_high if seg.ci_high is not None else np.full(2, np.nan)
        for i, param in enumerate(("g_s", "G_s_per_byte")):
            rows.append(_row(key, "loggp", k, seg.nbytes_lo, seg.nbytes_hi, param,
                             seg.theta[i], lo[i], hi[i]))
        rows.append(_row(key, "loggp", k, seg.nbytes_lo, seg.nbytes_hi, "rel_rms", seg.rel_rms))
    s0 = res["segments"][0].nbytes_lo
    s1 = res["segments"][-1].nbytes_hi
    for param, (v, lo, hi) in res["scalars"].items():
        rows.append(_row(key, "loggp", -1, s0, s1, param, v, lo, hi))
    return rows


def _groups(df: pd.DataFrame, by) -> dict:
    return {k: g["time_s"].to_numpy() for k, g in df.groupby(by)}


def fit_times(times: pd.DataFrame, max_segments=4, min_points=3, n_boot=200, seed=0,
              ops=None, meta_ops=None) -> pd.DataFrame:
    """All fits of the sample times of one run or one sweep, as fits.csv rows."""
    import pandas as pd

    rows: list[dict] = []
    if ops:
        times = times[times["op"].isin(ops)]
    prtt_ops = times["op"].str.startswith("prtt")
    for (backend, op, nranks, split), df in times[~prtt_ops].groupby(
            ["backend", "op", "nranks", "split"]):
        df = _one_dtype(df, f"{backend} {op} n{nranks}")
        cases = _groups(df, "nbytes")
        seg = fit_hockney(list(cases), list(cases.values()), max_segments, min_points, n_boot,
                          seed)
        rows += hockney_rows((backend, op, nranks, split), seg)
    # algorithm models need at least two rank counts (held-out scoring); ops that move data
    # without reducing go first: their β lets the reducing ops' γ be fitted
    from analysis import models

    groups = [(k, df) for k, df in times[~prtt_ops].groupby(["backend", "op", "split"])
              if df["nranks"].nunique() >= 2 and models.algorithms(k[1])]
    groups.sort(key=lambda kd: models.canonical_op(kd[0][1]) in models.REDUCING)
    beta_sources: dict = {}
    for (backend, op, split), df in groups:
        df = _one_dtype(df, f"{backend} {op}")
        known = None
        if models.canonical_op(op) in models.REDUCING:
            known = next((beta_sources[(backend, split, src)] for src in models.BETA_SOURCES
                          if (backend, split, src) in beta_sources), None)
        res = fit_algorithms(op, _groups(df, ["nranks", "nbytes"]), max_segments, min_points,
                             n_boot, seed, beta_known=known)
        beta_sources[(backend, split, models.canonical_op(op))] = _selected_beta(res)
        rows += algorithm_rows((backend, op, 0, split), res)
    for (backend, nranks, split), df in times[prtt_ops].groupby(["backend", "nranks", "split"]):
        res = loggp_from_times(df, meta_ops or {}, n_boot, seed)
        if res is not None:
            rows += loggp_rows((backend, "prtt", nranks, split), res)
    return pd.DataFrame(rows, columns=FITS_COLUMNS)


def _selected_beta(results):
    """S -> (β, ci_low, ci_high) of the selected algorithm in the size range of S."""
    bounds = [(seg.nbytes_lo, seg.nbytes_hi) for seg, _ in results]
    chosen = [next(f for f in fits if f.selected) for _, fits in results]

    def beta(nbytes):
        f = chosen[segment_for(nbytes, bounds)]
        return f.theta[1], f.ci_low[1], f.ci_high[1]
    return beta


def loggp_from_times(df: pd.DataFrame, meta_ops: dict, n_boot=200, seed=0):
    """LogGP from the prtt ops of one run: `prtt_rtt1`, `prtt_rttn<n>`, `prtt_rtts<n>`,
    `prtt_rttr<n>` (bench/ops.py). The delay d(s) the ops used is read from the run's
    meta.json (ops → delay_s0, delay_Bps), with bench.ops' values as the fallback."""
    import re

    prtt, n_msgs, op_meta = {}, None, {}
    for (op, size), g in df.groupby(["op", "nbytes"]):
        m = re.fullmatch(r"prtt_(rtt1|rttn|rtts|rttr)(\d*)", op)
        if not m:
            continue
        if m.group(2):
            n_msgs = int(m.group(2))
            op_meta = meta_ops.get(op, op_meta)
        prtt[(m.group(1), size)] = g["time_s"].to_numpy()
    if not prtt or not n_msgs:
        return None
    from bench.ops import PRTT_DELAY_BPS, PRTT_DELAY_S0

    d0 = float(op_meta.get("delay_s0", PRTT_DELAY_S0))
    bps = float(op_meta.get("delay_Bps", PRTT_DELAY_BPS))
    try:
        return fit_loggp(prtt, n_msgs, lambda x: d0 + x / bps, n_boot=n_boot, seed=seed)
    except ValueError as exc:
        print(f"commbench fit: {exc}", file=sys.stderr)
        return None


# ---------------------------------------------------------------- table
def human_bytes(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            v = n / size
            return f"{v:.0f} {unit}" if v == int(v) or v >= 100 else f"{v:.3g} {unit}"
    return f"{n:.0f} B"


def _fmt_time(x):
    if not np.isfinite(x):
        return "-"
    for unit, f in (("s", 1), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if abs(x) >= f:
            return f"{x / f:.3g} {unit}"
    return f"{x / 1e-9:.3g} ns"


def _fmt_bw(x):
    if np.isnan(x):
        return "-"
    if np.isinf(x):
        return "inf"
    return f"{x / 1e9:.3g} GB/s"


def _fmt_ci(fmt, lo, hi):
    return f"[{fmt(lo)}, {fmt(hi)}]" if not (np.isnan(lo) or np.isnan(hi)) else ""


def format_table(fits: pd.DataFrame) -> str:
    """One line per (backend, op, nranks, model, segment)."""
    if fits.empty:
        return "(nothing to fit)"
    lines = []
    wide = fits[fits["segment"] >= 0]
    keys = ["backend", "op", "split", "nranks", "segment", "model"]
    wide = wide[wide["param"] != "heldout_rel_error"]
    for k, g in wide.groupby(keys, sort=True):
        k = (k[0], k[1], k[3], k[2], k[5], k[4])  # backend, op, nranks, split, model, segment
        v = {r.param: (r.value, r.ci_low, r.ci_high) for r in g.itertuples()}
        r0 = g.iloc[0]
        span = f"{human_bytes(r0.nbytes_lo)}..{human_bytes(r0.nbytes_hi)}"
        where = f"{k[0]} {k[1]} n{k[2] if k[2] else '*'}"
        parts = [f"{where:<22} {k[4]:<19} {span:<19}"]
        if "alpha_s" in v:
            a = v["alpha_s"]
            parts.append(f"α {_fmt_time(a[0])} {_fmt_ci(_fmt_time, a[1], a[2])}")
        if "g_s" in v:
            a = v["g_s"]
            parts.append(f"g {_fmt_time(a[0])} {_fmt_ci(_fmt_time, a[1], a[2])}")
        bw = v.get("bandwidth_Bps")
        if bw is None and "beta_s_per_byte" in v:
            b = v["beta_s_per_byte"]
            inv = lambda x: 1 / x if x > 0 else float("inf")  # noqa: E731
            bw = (inv(b[0]), inv(b[2]), inv(b[1]))
        label = "1/β"
        if bw is None and "G_s_per_byte" in v:
            b = v["G_s_per_byte"]
            inv = lambda x: 1 / x if x > 0 else float("inf")  # noqa: E731
            bw, label = (inv(b[0]), inv(b[2]), inv(b[1])), "1/G"
        if bw is not None:
            parts.append(f"{label} {_fmt_bw(bw[0])} {_fmt_ci(_fmt_bw, bw[1], bw[2])}")
        if "gamma_s_per_byte" in v:
            parts.append(f"γ {v['gamma_s_per_byte'][0]:.3g} s/B")
        parts.append(f"rms {100 * v['rel_rms'][0]:.1f}%")
        if "loo_rel_error" in v:
            sel = " *" if v.get("selected", (0,))[0] else ""
            parts.append(f"held-out {100 * v['loo_rel_error'][0]:.1f}%{sel}")
        lines.append("  ".join(parts))
    scal = fits[fits["segment"] < 0]
    for k, g in scal.groupby(["backend", "op", "nranks", "split", "model"]):
        items = [f"{r.param[:-2]} {_fmt_time(r.value)} {_fmt_ci(_fmt_time, r.ci_low, r.ci_high)}"
                 for r in g.itertuples()]
        lines.append(f"{k[0]} {k[1]} n{k[2]} {k[4]}: " + "  ".join(items))
        if (g[g.param == "L_s"].value < 0).any():
            lines.append("  L < 0: o_s + o_r measured with idle gaps exceed half the round trip, "
                         "so LogGP's assumptions fail here (e.g. a costlier unexpected-message "
                         "path, or time stolen from the busy wait)")
    header = ("α latency, 1/β asymptotic bandwidth (GB/s = 1e9 B/s; LogGP: g gap, 1/G), 95% "
              "bootstrap intervals; rms: relative fit error; held-out: error on rank counts "
              "left out (* = selected algorithm); n*: fitted across the rank counts")
    return header + "\n" + "\n".join(lines)


# ---------------------------------------------------------------- command line
def add_arguments(parser) -> None:
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="run directory, or a sweep directory holding one run per rank count")
    parser.add_argument("--max-segments", type=int, default=4,
                        help="most size ranges (protocol regimes) per op (default 4)")
    parser.add_argument("--min-points", type=int, default=3,
                        help="fewest measured sizes per size range (default 3)")
    parser.add_argument("--bootstrap", type=int, default=200,
                        help="bootstrap resamples for the intervals, 0 for none (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--ops", default=None, help="comma-separated ops to fit (default all)")


def fit_dir(path, **kw) -> pd.DataFrame:
    """Fit one run or sweep directory and write its fits.csv; return the fits."""
    from analysis.rundir import atomic_write_text

    from analysis.rundir import load_meta

    runs = discover_runs(path)
    meta_ops, seen = {}, {}
    for d in runs:
        meta = load_meta(d)
        meta_ops.update(meta.get("ops") or {})
        key = (meta.get("nranks"), str(meta.get("backend")))
        if key in seen:
            print(f"commbench fit: {d} and {seen[key]} both ran {key[0]} ranks: their samples "
                  "are pooled", file=sys.stderr)
        seen[key] = d
    fits = fit_times(load_times(runs), meta_ops=meta_ops, **kw)
    atomic_write_text(Path(path) / "fits.csv", fits.to_csv(index=False))
    return fits


def main(args) -> int:
    from bench.errors import UsageError

    if args.max_segments < 1 or args.min_points < 2 or args.bootstrap < 0:
        raise UsageError("--max-segments ≥ 1, --min-points ≥ 2 and --bootstrap ≥ 0 please")
    ops = [o for o in args.ops.split(",") if o] if args.ops else None
    for path in args.run_dirs:
        fits = fit_dir(path, max_segments=args.max_segments, min_points=args.min_points,
                       n_boot=args.bootstrap, seed=args.seed, ops=ops)
        print(f"== {path} -> {Path(path) / 'fits.csv'}")
        print(format_table(fits))
    return 0
