"""One collective algorithm fitted on one size range of a sweep (analysis.algorithms): α, β, γ
on all rank counts, scored by its error on each rank count left out in turn, with its node rate
limit R (analysis.algorithms_node_rate) — fitted where the rank counts load the node
differently and the limit explains the times better (BIC) than the algorithm without it and
than every algorithm without it (else a wrong algorithm could bend itself towards the right
one with a limit), else taken from the machine's measured ceilings (the copy rate of all ranks
of a node at once against one core's, or the NIC's line rate) unless the times contradict it
(fit worse with it than the best algorithm without); and bootstrap intervals of θ and R.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from analysis.algorithms_node_rate import Limited, bic_gain
from analysis.robust import independent_columns, median_sd, percentile_ci, relative_residuals, rms

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


NIC_SLACK = 0.05     # a declared line rate that the measured times beat by more is no limit


def fit_one(op, name, Xm, tm, pm, load, spread, counts, steps, groups, pinned, ceilings,
             rival):
    """One algorithm on one size range: (AlgorithmFit without intervals, what bootstrap_fit
    needs). See fit_algorithms for the method."""
    tied = bool(Xm[:, 2].any()) and 2 not in independent_columns(Xm)  # β, γ scale alike
    if not tied:
        pinned = None  # β is pinned only where γ cannot be told from it
    lim = Limited(op, name, Xm, pm, load, spread, pinned[0] if pinned else None, tied)
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


def bootstrap_fit(fit: AlgorithmFit, extra, replicates) -> None:
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

