"""The cost models of collective algorithms (analysis.models) fitted on a sweep (`commbench
sweep`: run directories at several rank counts): per op, all rank counts jointly, piecewise in
S (break points as for Hockney, analysis.robust.best_partition); in each size range every
algorithm of the op is fitted (α, β, γ) and scored by its error on each rank count left out in
turn; the lowest held-out error is marked `selected`.

γ: in every model of a reducing op β and γ scale alike, so times of that op alone fix only
their sum. Ops that move the same blocks without reducing (bench.ops: `beta_source`) are
fitted first, and their β pins β of the reducing ops of the same sweep so γ can be fitted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis import models
from analysis.robust import (Segment, best_partition, bootstrap_medians, fit_relative,
                             independent_columns, median_sd, percentile_ci, relative_residuals,
                             rms, segment_for)
from bench.ops import FOREIGN_OPS, OPS, known_op


def reduces(op: str) -> bool:
    """Whether op (any spelling) reduces: a γ term in its models."""
    found = known_op(op)
    return bool(found and found.reduces)


def beta_source_ops() -> list[str]:
    """The non-reducing ops whose β, fitted in the same sweep, pins β of a reducing op so that
    γ can be separated, first choice first (bench.ops: `beta_source`). allgather moves the same
    per-rank blocks as the allgather half of ring / Rabenseifner allreduce."""
    found = [op for table in (OPS, FOREIGN_OPS) for op in table.values() if op.beta_source > 0]
    return [op.name for op in sorted(found, key=lambda op: op.beta_source)]


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
    (β of a non-reducing op of the same sweep, see analysis.fitsfile.fit_times), pins β so γ
    can be fitted."""
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


def selected_beta(results):
    """S -> (β, ci_low, ci_high) of the selected algorithm in the size range of S, for the
    beta_known of fit_algorithms."""
    bounds = [(seg.nbytes_lo, seg.nbytes_hi) for seg, _ in results]
    chosen = [next(f for f in fits if f.selected) for _, fits in results]

    def beta(nbytes):
        f = chosen[segment_for(nbytes, bounds)]
        return f.theta[1], f.ci_low[1], f.ci_high[1]
    return beta

