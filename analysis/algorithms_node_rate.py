"""The max-rate limit (analysis.models) of one algorithm on one size range: the design matrix
with the β column scaled by the node's load for a saturation point k*, k* found by profiling
the robust loss (a grid and golden section; linear in α, β, γ for each k*), and the BIC gain
by which a richer fit must beat a plainer one (analysis.algorithms_range_fit decides with it).
"""
from __future__ import annotations

import math

import numpy as np

from analysis import models
from analysis.robust import SIGMA_FLOOR, fit_relative, relative_residuals

PROFILE_POINTS = 12  # grid of k* for the max-rate fit, refined by golden section


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


class Limited:
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
        return fitter(self.design(kstar), self.beta)(rows, t)

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


def fitter(X: np.ndarray, beta=None):
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

