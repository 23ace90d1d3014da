"""The rows of fits.csv a prediction reads: an algorithm's (α, β, γ) with their intervals, its
max-rate limit, one value, the size range of S."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from analysis import models
from analysis.node_limits import RATE_ORIGINS
from analysis.robust import segment_for

if TYPE_CHECKING:  # pandas is imported where used: `commbench run` ranks never need it
    import pandas as pd


def param_values(rows: pd.DataFrame):
    """(value, ci_low, ci_high) arrays over (α, β, γ); a missing γ is 0 (folded into β);
    a missing interval end is the value."""
    out = np.zeros((3, 3))
    for i, p in enumerate(models.PARAMS):
        r = rows[rows.param == p]
        if len(r):
            v, lo, hi = (float(r.iloc[0][c]) for c in ("value", "ci_low", "ci_high"))
            out[:, i] = [v, lo if np.isfinite(lo) else v, hi if np.isfinite(hi) else v]
    return out


def rate_limit(rows: pd.DataFrame):
    """(R, R_low, R_high, origin) of the max-rate limit, inf where there is none (a missing
    interval end is the value; an infinite upper end is no limit)."""
    r = rows[rows.param == models.RATE]
    if not len(r):
        return math.inf, math.inf, math.inf, ""
    v, lo, hi = (float(r.iloc[0][c]) for c in ("value", "ci_low", "ci_high"))
    origin = int(one_value(rows, "node_rate_origin")) if (rows.param == "node_rate_origin").any() else 0
    return (v, lo if lo == lo and lo > 0 else v, hi if hi == hi else v,
            RATE_ORIGINS[origin] if 0 <= origin < len(RATE_ORIGINS) else "fit")


def one_value(rows: pd.DataFrame, param: str) -> float:
    r = rows[rows.param == param]
    return float(r.iloc[0].value) if len(r) else float("nan")


def segment_rows(rows: pd.DataFrame, nbytes: float, warnings: list) -> pd.DataFrame | None:
    """The rows of the size range that covers nbytes; None when there is no size range."""
    segs = rows[rows.segment >= 0].groupby("segment")[["nbytes_lo", "nbytes_hi"]].first()
    bounds = list(segs.itertuples(index=False, name=None))
    if not bounds:
        return None
    k = segs.index[segment_for(nbytes, bounds)]
    lo, hi = bounds[0][0], bounds[-1][1]
    if nbytes > hi or nbytes < lo:
        warnings.append(f"S = {nbytes:.0f} B lies outside the measured sizes {lo}..{hi} B: "
                        "extrapolated")
    return rows[rows.segment == k]
