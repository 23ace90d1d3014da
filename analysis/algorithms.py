"""The cost models of collective algorithms (analysis.models) fitted on a sweep (`commbench
sweep`: run directories at several rank counts): per op, all rank counts jointly, piecewise in
S (break points as for Hockney, analysis.robust.best_partition); in each size range every
algorithm of the op is fitted (α, β, γ) and scored by its error on each rank count left out in
turn; the lowest held-out error is marked `selected`, but the algorithm of the range below
stays selected unless the held-out error supports the switch at the sizes next to the boundary.

Max-rate (analysis.models): each algorithm also gets a node rate limit R — fitted where the
rank counts load the node differently and the limit explains the times better (BIC) than
the algorithm without it and than every algorithm without it (else a wrong algorithm could
bend itself towards the right one with a limit), else taken from the machine's measured
ceilings (the copy rate of all ranks of a node at once against one core's, or the NIC's line
rate) unless the times contradict it (fit worse with it than the best algorithm without).

γ: in every model of a reducing op β and γ scale alike, so times of that op alone fix only
their sum. Ops that move the same blocks without reducing (bench.ops: `beta_source`) are
fitted first, and their β pins β of the reducing ops of the same sweep so γ can be fitted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from analysis import models
from analysis.robust import (SIGMA_FLOOR, Segment, best_partition, bootstrap_medians,
                             fit_relative, independent_columns, median_sd, percentile_ci,
                             relative_residuals, rms, segment_for)
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
    # the max-rate limit (analysis.models): R, bytes per second a node moves in total over the
    # ranks that send at once; inf: no limit (the contention-free model)
    node_rate: float = math.inf
    rate_ci: tuple = (math.nan, math.nan)
    rate_source: str = ""  # "fit" (the sweep's times), "ceiling" (copy ceiling), "nic"
    count_rms: dict = field(default_factory=dict)  # nranks -> rms relative error of the fit
    boundary_error: float = math.nan  # held-out error on the sizes next to the lower boundary
    ran_cases: int = 0  # fit_attributed: the (p, S) cases this algorithm ran (0: not attributed)

    @property
    def saturation_ranks(self) -> float:
        """k* = R·β: ranks of a node sending at once at which the limit starts to bind."""
        return self.node_rate * self.theta[1] if self.theta[1] > 0 else math.inf


# switching algorithm between adjacent size ranges needs the new one to be better on the
# held-out rank counts at the sizes next to the boundary by both of these
SWITCH_RATIO = 0.8
SWITCH_MARGIN = 0.01
# ... unless the previous one is this much worse over the whole range (then the data switch
# inside the range, and the break point is only misplaced)
KEEP_RATIO, KEEP_MARGIN = 1.5, 0.03
PROFILE_POINTS = 12  # grid of k* for the max-rate fit, refined by golden section
NIC_SLACK = 0.05     # a declared line rate that the measured times beat by more is no limit


def soft_l1(r, f_scale: float = 0.05) -> float:
    """The robust loss fit_relative minimises, of relative residuals r."""
    r = np.asarray(r, dtype=float)
    return float(np.sum(2 * f_scale**2 * (np.sqrt(1 + (r / f_scale) ** 2) - 1)))


def bic_gain(r_plain, r_rich, sampling_sd: float, extra: int = 1) -> float:
    """How much better (in BIC units, positive: better) the richer fit explains the points
    than the plainer, minus ln N per extra parameter; jitter σ from the richer fit's residuals
    (robust MAD scale), at least the medians' sampling error; residuals capped at 3σ, as
    analysis.robust.best_partition scores break points."""
    r_plain, r_rich = np.asarray(r_plain, float), np.asarray(r_rich, float)
    n = r_rich.size
    dof = max(n - 4, 1)
    sigma = max(1.4826 * float(np.median(np.abs(r_rich))) * math.sqrt(n / dof), sampling_sd,
                SIGMA_FLOOR)
    cap = 3 * sigma

    def cost(r):
        return float(np.sum(np.minimum(r * r, cap * cap))) / sigma**2
    return cost(r_plain) - cost(r_rich) - extra * math.log(max(n, 2))


class _Limited:
    """One algorithm on one size range, with the max-rate factor: design(k*) is the design
    matrix with the β column scaled by Σ_j w_j·max(1, k_j/k*) (analysis.models)."""

    def __init__(self, op, name, X, p, per_node, spread, beta, tied):
        if beta is None and tied:
            # β and γ scale alike: fitted as one (γ = 0) with the limit too, which would
            # otherwise tell them apart by the factor alone
            X = X.copy()
            X[:, 2] = 0.0
        self.X, self.beta = X, beta
        self.w, self.k = models.senders(op, name, p, per_node, spread)
        peak = np.where(self.w > 0, self.k, 0).max(axis=1)
        sized = X[:, 1] > 0
        self.peak = peak
        # k* below the smallest peak only rescales β (every point is node-bound), above the
        # largest it changes nothing: the range worth searching (profile)
        self.k_hi = float(peak[sized].max()) if sized.any() else math.inf

    def identifiable(self, rows=None) -> bool:
        sized = (self.X[:, 1] > 0) if rows is None else (self.X[:, 1] > 0) & rows
        return bool(sized.any()) and np.unique(self.peak[sized]).size >= 2

    def design(self, kstar):
        if not np.isfinite(kstar):
            return self.X
        X = self.X.copy()
        X[:, 1] *= (self.w * np.maximum(1.0, self.k / kstar)).sum(axis=1)
        return X

    def fit(self, kstar, rows, t):
        return _fitter(self.design(kstar), self.beta)(rows, t)

    def loss(self, kstar, rows, t):
        theta = self.fit(kstar, rows, t)
        return soft_l1(relative_residuals(self.design(kstar)[rows], t, theta)), theta

    def profile(self, rows, t, points=PROFILE_POINTS, around=None):
        """(k*, θ) minimising the robust loss over the rows: k* on a geometric grid over the
        node loads of the rows, refined by golden section between the best point's
        neighbours (around an earlier estimate, for the bootstrap: 5 points within ±30%
        and a parabola through the best three); k* = inf where the best is the largest load
        (no limit binds within the rows)."""
        if not self.identifiable(rows):
            return math.inf, self.fit(math.inf, rows, t)
        sized = (self.X[:, 1] > 0) & rows
        lo, hi = float(self.peak[sized].min()), float(self.peak[sized].max())
        if around is not None and np.isfinite(around):
            grid = np.clip(around * 1.3 ** np.linspace(-1, 1, 5), lo, hi)
            scored = [self.loss(k, rows, t) for k in grid]
            i = int(np.argmin([x[0] for x in scored]))
            best_k, (best_loss, best_theta) = grid[i], scored[i]
            if 0 < i < len(grid) - 1:
                x = np.log(grid[i - 1:i + 2])
                y = np.array([scored[j][0] for j in range(i - 1, i + 2)])
                curve = np.polyfit(x, y, 2)
                if curve[0] > 0:
                    kk = float(np.exp(np.clip(-curve[1] / (2 * curve[0]), x[0], x[2])))
                    got = self.loss(kk, rows, t)
                    if got[0] < best_loss:
                        best_k, (best_loss, best_theta) = kk, got
        else:
            grid = np.geomspace(lo, hi, points)
            scored = [self.loss(k, rows, t) for k in grid]
            i = int(np.argmin([x[0] for x in scored]))
            best_k, (best_loss, best_theta) = grid[i], scored[i]
            if 0 < i < len(grid) - 1:  # golden section between the neighbours
                a, b = math.log(grid[i - 1]), math.log(grid[i + 1])
                g = (math.sqrt(5) - 1) / 2
                c, d = b - g * (b - a), a + g * (b - a)
                fc, fd = self.loss(math.exp(c), rows, t), self.loss(math.exp(d), rows, t)
                for _ in range(6):
                    if fc[0] < fd[0]:
                        b, d, fd = d, c, fc
                        c = b - g * (b - a)
                        fc = self.loss(math.exp(c), rows, t)
                    else:
                        a, c, fc = c, d, fd
                        d = a + g * (b - a)
                        fd = self.loss(math.exp(d), rows, t)
                for kk, (l_, th) in ((math.exp(c), fc), (math.exp(d), fd)):
                    if l_ < best_loss:
                        best_k, best_loss, best_theta = kk, l_, th
        if best_k >= hi * (1 - 1e-9):
            return math.inf, self.fit(math.inf, rows, t)
        return float(best_k), best_theta


def _case_arrays(op, names, keys, cases, per_node):
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
    p, n, groups, med, size_idx, sizes, X, load = _case_arrays(op, names, keys, cases, per_node)
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
            each = [_fit_one(op, name, X[name][m], med[m], p[m], load[m], spread, counts,
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
                _bootstrap(f, x, [b[m] for b in boot])
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
    p, n, groups, med, size_idx, sizes, X, load = _case_arrays(op, names, keys, cases, per_node)
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
            f, extra = _fit_one(op, name, X[name][k], med[k], p[k], load[k], spread,
                                np.unique(p[k]),
                                size_idx[k], [g for g, keep in zip(groups, k) if keep],
                                pinned_of, ceilings, plain)
            if boot is not None:
                _bootstrap(f, extra, [b[k] for b in boot])
            f.ran_cases = int(k.sum())
            fits.append(f)
        if fits:
            max(fits, key=lambda f: f.ran_cases).selected = True
            out.append((seg, fits))
    return out


def _fit_one(op, name, Xm, tm, pm, load, spread, counts, steps, groups, pinned, ceilings,
             rival):
    """One algorithm on one size range: (AlgorithmFit without intervals, what _bootstrap
    needs). See fit_algorithms for the method."""
    tied = bool(Xm[:, 2].any()) and 2 not in independent_columns(Xm)  # β, γ scale alike
    if not tied:
        pinned = None  # β is pinned only where γ cannot be told from it
    lim = _Limited(op, name, Xm, pm, load, spread, pinned[0] if pinned else None, tied)
    everything = np.ones(len(tm), dtype=bool)
    sd = median_sd(groups)
    # the sizes next to the lower boundary: the lower half of the range's sizes
    here = np.unique(steps)
    edge = steps <= here[max(1, (len(here) + 1) // 2) - 1]

    def leave_out(kfix):
        """(per count, all, next to the boundary) held-out errors, k* refitted per fold
        ("profile") or fixed."""
        held, errors, edge_errors = {}, [], []
        for q in counts if counts.size > 1 else []:
            train = pm != q
            if not (~train).any():
                continue
            if kfix == "profile":
                kf, th = lim.profile(train, tm[train])
            else:
                kf, th = kfix, lim.fit(kfix, train, tm[train])
            r = relative_residuals(lim.design(kf)[~train], tm[~train], th)
            held[int(q)] = rms(r)
            errors.append(r)
            edge_errors.append(r[edge[~train]])
        return held, _total(errors), _total(edge_errors)

    theta = lim.fit(math.inf, everything, tm)
    r_free = relative_residuals(lim.design(math.inf), tm, theta)
    kstar, source = math.inf, ""
    scored = leave_out(math.inf)
    if ceilings["limit"] and lim.identifiable():
        k_hat, th = lim.profile(everything, tm)
        if np.isfinite(k_hat):
            r_hat = relative_residuals(lim.design(k_hat), tm, th)
            # k* is no regular parameter (a bend that may sit anywhere): two parameters'
            # worth of BIC, and it must predict the left-out counts no worse
            if bic_gain(r_free, r_hat, sd, extra=2) > 0 and bic_gain(rival, r_hat, sd,
                                                                     extra=2) > 0:
                tried = leave_out("profile")
                if not tried[1] > scored[1]:
                    kstar, source, theta, scored = k_hat, "fit", th, tried
    saturation = ceilings["saturation"]
    if ceilings["limit"] and not source and saturation and saturation > 0 and Xm[:, 1].any():
        if saturation >= lim.k_hi:  # binds only beyond the measured loads
            kstar, source = float(saturation), "ceiling"
        else:
            th = lim.fit(saturation, everything, tm)
            r_c = relative_residuals(lim.design(saturation), tm, th)
            worse = math.log(max(len(tm), 2))  # how much worse the times may fit with it
            if bic_gain(r_c, r_free, sd, extra=0) <= worse and bic_gain(r_c, rival, sd,
                                                                        extra=0) <= worse:
                kstar, source, theta = float(saturation), "ceiling", th
                scored = leave_out(kstar)
    rate = math.inf
    if source:
        rate = kstar / theta[1] if theta[1] > 0 else math.inf
        if not np.isfinite(rate):
            kstar, source, theta, scored = math.inf, "", lim.fit(math.inf, everything, tm), \
                leave_out(math.inf)
    link = ceilings["link_rate"]
    sized = lim.X[:, 1] > 0
    if (ceilings["limit"] and not source and link and link > 0 and theta[1] > 0 and sized.any()
            and np.all(lim.peak[sized] / link <= theta[1] * (1 + NIC_SLACK))):
        rate, source = float(link), "nic"  # does not bind at the measured loads
    fitted = relative_residuals(lim.design(kstar), tm, theta)
    fit = AlgorithmFit(name, theta, np.full(3, np.nan), np.full(3, np.nan), rms(fitted),
                       scored[1], scored[0], node_rate=rate, rate_source=source,
                       count_rms={int(q): rms(fitted[pm == q]) for q in np.unique(pm)},
                       boundary_error=scored[2])
    return fit, (lim, kstar, pinned)


def _bootstrap(fit: AlgorithmFit, extra, replicates) -> None:
    """Percentile intervals of θ (and of R where the data fitted it: k* refitted near its
    estimate in every replicate; from a ceiling: k* held, R = k*/β) from the replicates."""
    lim, kstar, pinned = extra
    everything = np.ones(len(replicates[0]), dtype=bool)
    thetas, rhos = [], []
    for b in replicates:
        if fit.rate_source == "fit":
            kb, th = lim.profile(everything, b, around=kstar)
        else:
            kb = kstar if fit.rate_source == "ceiling" else math.inf
            th = lim.fit(kb, everything, b)
        thetas.append(th)
        if fit.rate_source in ("fit", "ceiling"):
            rhos.append(th[1] / kb if np.isfinite(kb) and th[1] > 0 else 0.0)
    fit.ci_low, fit.ci_high = percentile_ci(np.array(thetas))
    if rhos:
        r_lo, r_hi = percentile_ci(np.array(rhos))
        fit.rate_ci = (1 / r_hi if r_hi > 0 else math.inf, 1 / r_lo if r_lo > 0 else math.inf)
    elif fit.rate_source == "nic":
        fit.rate_ci = (fit.node_rate, fit.node_rate)
    if pinned:
        fit.ci_low[1], fit.ci_high[1] = pinned[1], pinned[2]


def _total(errors) -> float:
    return rms(np.concatenate(errors)) if errors else float("nan")


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

