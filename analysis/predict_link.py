"""Predictions from α + Sβ link fits: the op's own Hockney fit, or an algorithm's cost formula
with the pingpong link's α and β."""
from __future__ import annotations

import math

import numpy as np

from analysis import models
from analysis.node_limits import point_to_point
from analysis.predict_fit_rows import one_value, param_values, rate_limit, segment_rows
from analysis.predict_interval import Prediction, interval
from bench.core.units import format_bw


def predict_hockney(fits, op, nranks, nbytes, split="all") -> Prediction | None:
    rows = fits[(fits.op == op) & (fits.model == "hockney") & (fits.split == split)]
    if not point_to_point(op):
        rows = rows[rows.nranks == nranks]
    if rows.empty:
        return None
    warnings: list = []
    if rows.nranks.nunique() > 1:  # point to point at several counts: the nearest count
        near = min(rows.nranks.unique(), key=lambda q: abs(q - nranks))
        rows = rows[rows.nranks == near]
    seg = segment_rows(rows, nbytes, warnings)
    if seg is None or seg.empty:
        return None
    value, lo, hi = param_values(seg)
    err = one_value(seg, "rel_rms")
    err = err if np.isfinite(err) else 0.0
    f = lambda v: v[0] + nbytes * v[1]  # noqa: E731
    detail = (f"hockney α + Sβ at {int(seg.nranks.iloc[0])} ranks, size range "
              f"{int(seg.nbytes_lo.iloc[0])}..{int(seg.nbytes_hi.iloc[0])} B, "
              f"α {value[0]:.3g} s, 1/β {1 / value[1] if value[1] else math.inf:.3g} B/s, "
              f"fit rms {100 * err:.1f}%")
    low, high = interval(f(value), f(lo), f(hi), err)
    return Prediction(f(value), low, high, "hockney", detail, warnings)


def predict_from_pingpong(fits, op, nranks, nbytes, split, algorithm="ring", per_node=None,
                          spread=False) -> Prediction | None:
    """An algorithm's cost formula with α, β of the link: the Hockney fit of pingpong in that
    split, in the size range of the algorithm's messages (S/p for ring-type algorithms); the
    NIC's line rate bounds what the ranks of a node send at once where the fits have it."""
    rows = fits[(fits.op == "pingpong") & (fits.model == "hockney") & (fits.split == split)]
    if rows.empty or algorithm not in models.algorithms(op):
        return None
    warnings: list = []
    message = nbytes / max(nranks, 1)
    seg = segment_rows(rows, message, warnings)
    if seg is None or seg.empty:
        return None
    value, lo, hi = param_values(seg)
    value[2] = lo[2] = hi[2] = 0.0  # pingpong has no reduction: γ unknown, taken as 0
    rate, r_lo, r_hi, origin = rate_limit(seg)
    t, t_lo, t_hi = (float(models.predict(op, algorithm, nranks, nbytes, list(v) + [r],
                                          per_node, spread))
                     for v, r in ((value, rate), (lo, r_hi), (hi, r_lo)))
    err = one_value(seg, "rel_rms")
    err = err if np.isfinite(err) else 0.0
    detail = (f"{algorithm} [{models.describe(op, algorithm)}] with the {split} pingpong link "
              f"α {value[0]:.3g} s, β {value[1]:.3g} s/B (γ taken as 0)"
              + (f", NIC {format_bw(rate)} shared by the ranks of a node sending at once"
                 if np.isfinite(rate) else ""))
    low, high = interval(t, t_lo, t_hi, err)
    return Prediction(t, low, high, f"{algorithm}(pingpong)", detail, warnings)
