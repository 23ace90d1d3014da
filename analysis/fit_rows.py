"""fits.csv's tidy rows of one fit: Hockney segments (analysis.hockney), algorithm models
(analysis.algorithms) and LogGP (analysis.loggp); the columns are bench.core.rundir.FITS_COLUMNS
(see analysis.fit_pipeline)."""
from __future__ import annotations

import numpy as np

from analysis import models
from analysis.algorithms_range_fit import NIC_SLACK
from analysis.node_limits import RATE_ORIGINS
from analysis.robust import Segment

__all__ = ["rate_from_per_byte", "hockney_rows", "algorithm_rows", "loggp_rows"]


def _row(key, model, segment, lo, hi, param, value, ci_low=float("nan"), ci_high=float("nan")):
    backend, op, nranks, split = key
    return dict(backend=backend, op=op, nranks=int(nranks), split=split, model=model,
                segment=int(segment), nbytes_lo=int(lo), nbytes_hi=int(hi), param=param,
                value=float(value), ci_low=float(ci_low), ci_high=float(ci_high))


def rate_from_per_byte(x: float) -> float:
    """1/x of a non-negative β or G: NaN stays NaN (no value), 0 gives an unbounded inf."""
    return x if x != x else 1 / x if x > 0 else float("inf")


def _bandwidth_row(key, model, k, seg, beta, lo, hi):
    """1/β, with the interval from the β interval inverted (no interval: none; β = 0: an
    unbounded bandwidth)."""
    return _row(key, model, k, seg.nbytes_lo, seg.nbytes_hi, "bandwidth_Bps", rate_from_per_byte(beta),
                rate_from_per_byte(hi), rate_from_per_byte(lo))


def hockney_rows(key, segments: list[Segment], node_rate=None) -> list[dict]:
    """Rows of analysis.hockney.fit_hockney's segments; key = (backend, op, nranks, split).
    node_rate: the NIC's line rate, for point-to-point fits across nodes (split inter), where
    known; kept in the segments whose bandwidth does not beat it (else it is no limit of this
    network)."""
    rows = []
    for k, seg in enumerate(segments):
        lo = seg.ci_low if seg.ci_low is not None else np.full(2, np.nan)
        hi = seg.ci_high if seg.ci_high is not None else np.full(2, np.nan)
        sized = seg.nbytes_hi > 0  # barrier: no bytes, so no β and no bandwidth
        for i, param in enumerate(("alpha_s", "beta_s_per_byte")[:2 if sized else 1]):
            rows.append(_row(key, "hockney", k, seg.nbytes_lo, seg.nbytes_hi, param,
                             seg.theta[i], lo[i], hi[i]))
        if sized:
            rows.append(_bandwidth_row(key, "hockney", k, seg, seg.theta[1], lo[1], hi[1]))
        if sized and node_rate and seg.theta[1] * (1 + NIC_SLACK) * node_rate >= 1:
            rows.append(_row(key, "hockney", k, seg.nbytes_lo, seg.nbytes_hi, models.RATE,
                             node_rate, node_rate, node_rate))
            rows.append(_row(key, "hockney", k, seg.nbytes_lo, seg.nbytes_hi,
                             "node_rate_origin", RATE_ORIGINS.index("nic")))
        rows.append(_row(key, "hockney", k, seg.nbytes_lo, seg.nbytes_hi, "rel_rms",
                         seg.rel_rms))
    return rows


def algorithm_rows(key, results) -> list[dict]:
    """Rows of analysis.algorithms.fit_algorithms' results; key's nranks is 0 (all counts).
    The max-rate limit, where there is one: node_rate_Bps (R) and node_rate_origin (0: fitted
    to the times, 1: the machine's copy ceiling, 2: the NIC's declared line rate)."""
    rows = []
    for k, (seg, fits) in enumerate(results):
        span = (seg.nbytes_lo, seg.nbytes_hi)
        for f in fits:
            for i, param in enumerate(models.PARAMS):
                if i == 2 and f.theta[2] == 0 and not np.any(np.nan_to_num(f.ci_high[2:]) > 0):
                    continue  # γ not identified: β and γ are fitted as one (see models.py)
                rows.append(_row(key, f.name, k, *span, param, f.theta[i], f.ci_low[i],
                                 f.ci_high[i]))
            if f.rate_source and np.isfinite(f.node_rate):
                rows.append(_row(key, f.name, k, *span, models.RATE, f.node_rate, *f.rate_ci))
                rows.append(_row(key, f.name, k, *span, "node_rate_origin",
                                 RATE_ORIGINS.index(f.rate_source)))
            rows.append(_row(key, f.name, k, *span, "rel_rms", f.rel_rms))
            rows.append(_row(key, f.name, k, *span, "loo_rel_error", f.loo_rel_error))
            rows.append(_row(key, f.name, k, *span, "selected", float(f.selected)))
            if f.ran_cases:
                rows.append(_row(key, f.name, k, *span, "ran_cases", float(f.ran_cases)))
            for q, err in sorted(f.heldout.items()):
                rows.append(_row(key[:2] + (q,) + key[3:], f.name, k, *span,
                                 "heldout_rel_error", err))
            for q, err in sorted(f.count_rms.items()):
                rows.append(_row(key[:2] + (q,) + key[3:], f.name, k, *span,
                                 "count_rel_rms", err))
    return rows


def loggp_rows(key, res) -> list[dict]:
    """Rows of analysis.loggp.fit_loggp's result: g and G per segment, o_s, o_r and L as
    segment -1 over the whole measured range."""
    rows = []
    for k, seg in enumerate(res["segments"]):
        lo = seg.ci_low if seg.ci_low is not None else np.full(2, np.nan)
        hi = seg.ci_high if seg.ci_high is not None else np.full(2, np.nan)
        for i, param in enumerate(("g_s", "G_s_per_byte")):
            rows.append(_row(key, "loggp", k, seg.nbytes_lo, seg.nbytes_hi, param,
                             seg.theta[i], lo[i], hi[i]))
        rows.append(_row(key, "loggp", k, seg.nbytes_lo, seg.nbytes_hi, "rel_rms", seg.rel_rms))
    s0 = res["segments"][0].nbytes_lo
    s1 = res["segments"][-1].nbytes_hi
    for param, (v, lo, hi) in res["scalars"].items():
        if np.isfinite(v):  # not fitted: said by loggp_from_times, left out here
            rows.append(_row(key, "loggp", -1, s0, s1, param, v, lo, hi))
    return rows

