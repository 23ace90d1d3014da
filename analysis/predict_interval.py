"""A prediction and its interval.

Interval (LEVEL = 90% claimed): in log time, the parameters' bootstrap intervals (the model at
their low and high ends: every coefficient is non-negative, so the time is monotone in each)
combined with Z·ln(1 + e), e the model's relative error — its held-out error across rank
counts for algorithm models (beyond the measured counts, the held-out error of the outermost
count times the distance in doublings relative to the doubling it was held out over), its rms
error for Hockney — and widened to cover every algorithm that the held-out error cannot tell
from the chosen one (analysis.algorithms: the switch criterion). Parameter intervals alone
would claim a precision the model does not have once it extrapolates.
`tests/benchmarks/check_predict.py` measures how often the interval holds the measured time."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

LEVEL = 0.90  # the share of measured times the interval claims to hold
Z = 1.645     # two-sided normal quantile of LEVEL


@dataclass
class Prediction:
    time_s: float
    low_s: float
    high_s: float
    model: str
    detail: str
    warnings: list
    notes: list = field(default_factory=list)  # what the output should say besides warnings
    level: float = LEVEL
    basis: str = ""  # why this algorithm (the library's rule, --algorithm, or commbench's own)
    widened: bool = True  # the interval covers the algorithms the held-out error cannot tell
    # apart (not where the library's rules or --algorithm name the algorithm)

    def bandwidth(self, nbytes):
        """algbw = S / t; the interval swaps ends."""
        f = (lambda t: nbytes / t if t > 0 else float("inf"))  # noqa: E731
        return f(self.time_s), f(self.high_s), f(self.low_s)

def interval(t: float, lo: float, hi: float, err: float) -> tuple[float, float]:
    """[low, high] of LEVEL around t: in log time, the parameter interval's half-widths
    combined with Z·ln(1 + err) (root of the sum of squares); never negative."""
    s = Z * math.log1p(max(err, 0.0))
    if t > 0 and lo > 0 and hi > 0:
        down = math.log(t / lo) if lo < t else 0.0
        up = math.log(hi / t) if hi > t else 0.0
        return t * math.exp(-math.hypot(down, s)), t * math.exp(math.hypot(up, s))
    return max(lo, 0.0) / math.exp(s), hi * math.exp(s)


def extrapolation_error(loo: float, heldout: dict, nranks: float) -> tuple[float, str]:
    """The relative error to expect at nranks: the held-out error inside the measured counts;
    beyond them the held-out error of the outermost count (at least the overall one), times
    the distance in doublings over the doubling that count was held out over."""
    counts = sorted(heldout)
    if len(counts) < 2 or counts[0] <= nranks <= counts[-1]:
        return loo, ""
    if nranks > counts[-1]:
        edge, inner = counts[-1], counts[-2]
    else:
        edge, inner = counts[0], counts[1]
    base = max(loo, heldout[edge]) if np.isfinite(loo) else heldout[edge]
    scale = max(1.0, abs(math.log2(nranks / edge)) / abs(math.log2(edge / inner)))
    return base * scale, (f"held-out error at {edge} ranks {100 * heldout[edge]:.1f}% "
                          f"× {scale:.2g} for the distance")
