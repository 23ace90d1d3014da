"""The cost models of collective algorithms (analysis.models) fitted on a sweep (`commbench
sweep`: run directories at several rank counts): per op, all rank counts jointly, piecewise in
S (break points as for Hockney, analysis.robust.best_partition); in each size range every
algorithm of the op is fitted (α, β, γ) and scored by its error on each rank count left out in
turn; the lowest held-out error is marked `selected`, but the algorithm of the range below
stays selected unless the held-out error supports the switch at the sizes next to the boundary.

Each algorithm on one size range, with its node rate limit R: analysis.algorithms_range_fit
(the limit's profile: analysis.algorithms_node_rate); where it is known which algorithm ran:
analysis.algorithms_attributed.

γ: in every model of a reducing op β and γ scale alike, so times of that op alone fix only
their sum. Ops that move the same blocks without reducing (bench.ops: `beta_source`) are
fitted first, and their β pins β of the reducing ops of the same sweep so γ can be fitted.
"""
from __future__ import annotations

import math

import numpy as np

from analysis import models
from analysis.algorithms_node_rate import soft_l1
from analysis.algorithms_range_fit import AlgorithmFit, bootstrap_fit, fit_one
from analysis.robust import (Segment, best_partition, bootstrap_medians, fit_relative,
                             independent_columns, median_sd, relative_residuals, segment_for)
from analysis.known_ops import FOREIGN_OPS, known_op
from bench.ops import OPS


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
    starts: list[float] = []
    step: dict = {}
    for x in np.unique(nbytes):
        if not starts or x > starts[-1] * (1 + tolerance) + 0.5:
            starts.append(x)
        step[x] = len(starts) - 1
    return np.array([step[x] for x in nbytes], dtype=int), np.array(starts)


# switching algorithm between adjacent size ranges needs the new one to be better on the
# held-out rank counts at the sizes next to the boundary by both of these
SWITCH_RATIO = 0.8
SWITCH_MARGIN = 0.01
# ... unless the previous one is this much worse over the whole range (then the data switch
# inside the range, and the break point is only misplaced)
KEEP_RATIO, KEEP_MARGIN = 1.5, 0.03


def case_arrays(op, names, keys, cases, per_node):
    """The arrays both fits read from {key: sample times} (key = (p, S, ...)): p, S, the
    samples and their medians, the size steps, each model's design matrix, and the load (ranks
    per node where per_node gives it, else p)."""
    p = np.array([k[0] for k in keys], dtype=float)
    n = np.array([k[1] for k in keys], dtype=float)
    groups = [np.asarray(cases[k], dtype=float) for k in keys]
    med = np.array([np.median(g) for g in groups])
    size_idx, sizes = size_steps(n)
    X = {name: models.design_matrix(op, name, p, n) for name in names}
    if per_node is None:
        load = p
    else:
        get = per_node.get if isinstance(per_node, dict) else per_node
        load = np.array([float(get(int(q)) or q) for q in p])
    return p, n, groups, med, size_idx, sizes, X, load


def fit_algorithms(op: str, cases: dict, max_segments: int = 4, min_points: int = 3,
                   n_boot: int = 200, seed: int = 0, beta_known=None, *, per_node=None,
                   spread: bool = False, limit: bool = True, saturation=None, link_rate=None):
    """cases: {(nranks, nbytes): sample times}. Returns [(Segment, [AlgorithmFit, ...])]:
    size ranges found jointly over all rank counts (the cost of a range is the misfit of its
    best algorithm), then in each range every algorithm of op fitted on all counts, scored by
    leave-one-rank-count-out, the lowest held-out error selected — but an algorithm other than
    the one of the range below is selected only where the held-out error supports the switch
    at the sizes next to the boundary (SWITCH_RATIO, SWITCH_MARGIN).

    γ: in every model of a reducing op β and γ scale alike, so times of that op alone fix only
    their sum (γ comes out 0, β absorbs it). beta_known(S) -> (β, ci_low, ci_high), when given
    (β of a non-reducing op of the same sweep, see analysis.fit_pipeline.fit_times), pins β so γ
    can be fitted.

    Max-rate limit (analysis.models), with limit: per_node(nranks) (a mapping or a function;
    default nranks: the whole communicator on one node) gives the ranks of one node in the
    op; spread: one rank per node of per_node communicators at once (`--split inter`). k* is
    fitted by profiling (a grid and golden section; linear in α, β, γ for each k*) where the
    counts give at least two node loads, and kept where BIC prefers it (one parameter more)
    to no limit, for this algorithm and for the best of all algorithms without a limit. Else
    the machine's ceilings, where known: saturation (ranks whose copies saturate the node,
    from the copy ceilings: k* = saturation) or link_rate (R of the NIC), kept unless the
    times contradict them (BIC against both, or the times beat the line rate). A limit
    that does not bind at the measured counts changes no fitted value, only predictions at
    larger counts."""
    names = models.algorithms(op)
    if not names:
        return []
    keys = sorted(cases)
    p, n, groups, med, size_idx, sizes, X, load = case_arrays(op, names, keys, cases, per_node)
    counts = np.unique(p)
    rng = np.random.default_rng(seed)
    boot = bootstrap_medians(groups, n_boot, rng) if n_boot > 0 else None
    ceilings = dict(limit=limit, saturation=saturation, link_rate=link_rate)

    def rows(i, j):
        return (size_idx >= i) & (size_idx <= j)

    def fitted(Z, m):
        return relative_residuals(Z[m], med[m], fit_relative(Z[m], med[m]))

    plain: dict = {}  # (i, j) -> residuals of the contention-free models, for both partitions

    def partition(limited=()):
        def residuals(i, j):
            m = rows(i, j)
            if (i, j) not in plain:
                plain[(i, j)] = [fitted(Z, m) for Z in X.values()]
            return plain[(i, j)] + [fitted(Z, m) for Z in limited]
        return best_partition(len(sizes), residuals, max_segments, min(min_points, len(sizes)),
                              median_sd(groups))

    cache: dict = {}

    def fit_range(i, j):
        """(Segment, [AlgorithmFit], [what the bootstrap needs]) of size range i..j."""
        if (i, j) not in cache:
            m = rows(i, j)
            seg = Segment(i, j, n[m].min(), n[m].max(), theta=None)
            pinned_of = None
            if beta_known is not None:
                pinned_of = beta_known(math.sqrt(max(seg.nbytes_lo, 1) * max(seg.nbytes_hi, 1)))
            # a limit must explain the times better than every contention-free algorithm:
            # else a wrong algorithm could bend itself towards the right one with it
            rival = min(plain.get((i, j)) or [fitted(X[name], m) for name in names],
                        key=soft_l1)
            each = [fit_one(op, name, X[name][m], med[m], p[m], load[m], spread, counts,
                             size_idx[m], [g for g, keep in zip(groups, m) if keep],
                             pinned_of, ceilings, rival) for name in names]
            cache[(i, j)] = (seg, [f for f, _ in each], [x for _, x in each])
        return cache[(i, j)]

    part = partition()
    # break points were placed with contention-free models; where the data showed a limit,
    # place them again with each algorithm's limit as a candidate too (k* of its largest
    # size range that has one), so a limit that grows with S is not taken for a protocol
    # change
    kglob = {f.name: f.saturation_ranks for i, j in part for f in fit_range(i, j)[1]
             if f.rate_source == "fit"}
    if kglob:
        limited = []
        for name, kstar in kglob.items():
            Xk = models.design_matrix(op, name, p, n, kstar, load, spread)
            if Xk[:, 2].any() and 2 not in independent_columns(X[name]):
                Xk[:, 2] = 0.0  # β and γ fitted as one, as without the limit
            limited.append(Xk)
        part = partition(limited)
    out = []
    previous = None  # the algorithm selected in the size range below
    for i, j in part:
        seg, fits, extras = fit_range(i, j)
        m = rows(i, j)
        if boot is not None:
            for f, x in zip(fits, extras):
                bootstrap_fit(f, x, [b[m] for b in boot])
        score = [f.loo_rel_error if np.isfinite(f.loo_rel_error) else f.rel_rms for f in fits]
        best = int(np.argmin(score))
        chosen = best
        if previous is not None and previous != fits[best].name:
            k = next(x for x, f in enumerate(fits) if f.name == previous)
            if not switch_supported(fits[k], fits[best], score[k], score[best]):
                chosen = k
        fits[chosen].selected = True
        previous = fits[chosen].name
        out.append((seg, fits))
    return out


def switch_supported(old: AlgorithmFit, new: AlgorithmFit, old_score, new_score) -> bool:
    """Whether the held-out error supports leaving `old` (selected in the size range below)
    for `new` at the sizes next to the boundary; where it does not, `old` stays unless it is
    much worse over the whole range."""
    e_old, e_new = old.boundary_error, new.boundary_error
    if not (np.isfinite(e_old) and np.isfinite(e_new)):
        return True
    if e_new <= SWITCH_RATIO * e_old and e_old - e_new >= SWITCH_MARGIN:
        return True
    return old_score > max(KEEP_RATIO * new_score, new_score + KEEP_MARGIN)


def selected_beta(results):
    """S -> (β, ci_low, ci_high) of the selected algorithm in the size range of S, for the
    beta_known of fit_algorithms."""
    bounds = [(seg.nbytes_lo, seg.nbytes_hi) for seg, _ in results]
    chosen = [next(f for f in fits if f.selected) for _, fits in results]

    def beta(nbytes):
        f = chosen[segment_for(nbytes, bounds)]
        return f.theta[1], f.ci_low[1], f.ci_high[1]
    return beta

