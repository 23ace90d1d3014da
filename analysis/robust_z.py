"""The rules every fleet verdict of commbench uses (`commbench triage`, analysis.finder):
robust z = 0.6745 × (x − median) / MAD (Iglewicz & Hoaglin's modified z score; MAD the median
absolute deviation; 0.6745 the standard normal's 0.75 quantile, so z reads as standard deviations
for normal data), on rates x (higher is better). warn: z < −2 and x at least 10% below the
median; drain: z < −3 and at least 20% below. The floors keep a fleet of near-identical values
(MAD ≈ 0) from flagging noise."""
from __future__ import annotations

import numpy as np

WARN_Z, DRAIN_Z = -2.0, -3.0
WARN_DROP, DRAIN_DROP = 0.10, 0.20
Z_SCALE = 0.6745  # the normal's 0.75 quantile: 0.6745 × (x − median) / MAD is z for normal data


def robust_z(values) -> tuple[np.ndarray, float]:
    """(z of every value, median): 0.6745 (x − median) / MAD; ±inf off the median when MAD = 0."""
    x = np.asarray(values, dtype=float)
    med = float(np.median(x))
    mad = float(np.median(np.abs(x - med)))
    if mad > 0:
        return Z_SCALE * (x - med) / mad, med
    return np.where(x < med, -np.inf, np.where(x > med, np.inf, 0.0)), med


def verdict_of(z: float, ratio: float) -> str:
    """ok / warn / drain of a value with robust z and ratio x / median."""
    if z < DRAIN_Z and ratio <= 1 - DRAIN_DROP:
        return "drain"
    if z < WARN_Z and ratio <= 1 - WARN_DROP:
        return "warn"
    return "ok"
