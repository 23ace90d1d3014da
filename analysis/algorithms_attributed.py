"""Collective algorithm models fitted where it is known which algorithm ran in each case (forced,
or per the MPI library's decision rules: analysis.library); the counterpart of
analysis.algorithms.fit_algorithms, which selects the algorithm from the times.
"""
from __future__ import annotations

import math

import numpy as np

from analysis import models
from analysis.algorithms import case_arrays
from analysis.algorithms_range_fit import bootstrap_fit, fit_one
from analysis.robust import (Segment, best_partition, bootstrap_medians, fit_relative,
                             median_sd, relative_residuals)


def fit_attributed(op: str, cases: dict, max_segments: int = 4, min_points: int = 3,
                   n_boot: int = 200, seed: int = 0, beta_known=None, *, per_node=None,
                   spread: bool = False, limit: bool = True, saturation=None, link_rate=None):
    """fit_algorithms where it is known which algorithm ran in each case: cases
    {(nranks, nbytes, algorithm): sample times} (the algorithm forced, or the one the MPI
    library's decision rules run there: analysis.library). Size ranges are placed jointly as
    in fit_algorithms, each range's misfit being that of every algorithm fitted on its own
    cases; in each range every algorithm with at least 2 cases there is fitted on those cases
    only (ran_cases), its held-out error over the rank counts it ran at. `selected` marks
    the algorithm that ran most cases of the range (what a prediction without the rules
    takes). Cases of an algorithm commbench has no model of are left out."""
    names = models.algorithms(op)
    keys = sorted(k for k in cases if k[2] in names)
    if not keys:
        return []
    p, n, groups, med, size_idx, sizes, X, load = case_arrays(op, names, keys, cases, per_node)
    ran = np.array([k[2] for k in keys])
    boot = bootstrap_medians(groups, n_boot, np.random.default_rng(seed)) if n_boot > 0 else None
    ceilings = dict(limit=limit, saturation=saturation, link_rate=link_rate)

    def rows(i, j):
        return (size_idx >= i) & (size_idx <= j)

    def own(name, m):
        k = m & (ran == name)
        if not k.any():
            return k, np.zeros(0)
        return k, relative_residuals(X[name][k], med[k], fit_relative(X[name][k], med[k]))

    def residuals(i, j):
        m = rows(i, j)
        return np.concatenate([own(name, m)[1] for name in names if (m & (ran == name)).any()])

    part = best_partition(len(sizes), residuals, max_segments, min(min_points, len(sizes)),
                          median_sd(groups))
    out = []
    for i, j in part:
        m = rows(i, j)
        seg = Segment(i, j, n[m].min(), n[m].max(), theta=None)
        pinned_of = None
        if beta_known is not None:
            pinned_of = beta_known(math.sqrt(max(seg.nbytes_lo, 1) * max(seg.nbytes_hi, 1)))
        fits = []
        for name in names:
            k, plain = own(name, m)
            if k.sum() < 2:
                continue
            f, extra = fit_one(op, name, X[name][k], med[k], p[k], load[k], spread,
                                np.unique(p[k]),
                                size_idx[k], [g for g, keep in zip(groups, k) if keep],
                                pinned_of, ceilings, plain)
            if boot is not None:
                bootstrap_fit(f, extra, [b[k] for b in boot])
            f.ran_cases = int(k.sum())
            fits.append(f)
        if fits:
            max(fits, key=lambda f: f.ran_cases).selected = True
            out.append((seg, fits))
    return out
