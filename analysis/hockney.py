"""Hockney's model, piecewise in S: per (backend, op, nranks), t = α + S·β.

Protocol changes (eager → rendezvous, shared memory → single copy, Open MPI's 4 KiB
shared-memory step) show up as break points between measured sizes; they are found by dynamic
programming for 1 to max_segments segments (at least min_points sizes each) and the count is
chosen by an information criterion (analysis.robust.best_partition). The fit is robust, in
relative error, on the per-size medians; intervals: bootstrap over the raw samples within each
size, refitted with the chosen break points.
"""
from __future__ import annotations

import numpy as np

from analysis.robust import (Segment, best_partition, bootstrap_medians, fit_relative,
                             fit_segments, median_sd, relative_residuals, segment_for)


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


def hockney_time(segments, nbytes: float) -> float:
    """t = α + Sβ at S = nbytes, from segments [(nbytes_lo, nbytes_hi, alpha_s, beta)]
    (ascending): the segment that covers S (analysis.robust.segment_for: between two segments
    the nearer one, outside them the nearest); NaN without segments."""
    if not segments:
        return float("nan")
    _, _, alpha, beta = segments[segment_for(nbytes, [(s[0], s[1]) for s in segments])]
    return alpha + nbytes * beta
