"""The prediction from algorithm fits across rank counts (analysis.algorithms): the selected
algorithm in the size range of S (or the MPI library's choice, or --algorithm), its max-rate
limit, and the interval widened to the algorithms the held-out error cannot tell from it.

Which model: for a collective with algorithm fits (a sweep over rank counts), the size range of
S and in it the selected algorithm (or --model); otherwise the Hockney fit of the op at exactly
that rank count (point-to-point ops: at any rank count, since the pair does not change), in
the size range of S. Algorithm models carry the max-rate limit where the fit found one
(analysis.models): the ranks of a node that send at once share R, so no prediction assumes
more bandwidth in total than the node (or, across nodes, the NIC) has. The output says from
how many ranks the limit binds, and when the algorithm that fits the nearest measured rank
count best is not the one used at the target count.
"""
from __future__ import annotations

import math

import numpy as np

from analysis import models
from analysis.algorithms import SWITCH_MARGIN, SWITCH_RATIO
from analysis.predict_fit_rows import one_value, param_values, rate_limit, segment_rows
from analysis.predict_interval import Prediction, extrapolation_error, interval
from bench.core.errors import UsageError
from bench.core.units import format_bw, format_time

ORIGIN_TEXT = {"fit": "fitted to the sweep's times", "ceiling": "the machine's copy ceiling",
               "nic": "the NIC's declared line rate"}


def _supported_alternative(sel_err: float, alt_err: float) -> bool:
    """Whether the held-out error cannot tell an alternative from the selected algorithm (the
    switch criterion of analysis.algorithms)."""
    if not (np.isfinite(sel_err) and np.isfinite(alt_err)):
        return False
    return alt_err <= max(sel_err / SWITCH_RATIO, sel_err + SWITCH_MARGIN)


def _evaluate(op, model, nranks, nbytes, mrows, per_node, spread):
    """(t, t_low, t_high) of one algorithm's rows, and its (α, β, γ) and limit."""
    value, lo, hi = param_values(mrows)
    rate, r_lo, r_hi, origin = rate_limit(mrows)
    t = float(models.predict(op, model, nranks, nbytes, list(value) + [rate], per_node, spread))
    t_lo = float(models.predict(op, model, nranks, nbytes, list(lo) + [r_hi], per_node, spread))
    t_hi = float(models.predict(op, model, nranks, nbytes, list(hi) + [r_lo], per_node, spread))
    return (t, min(t_lo, t), max(t_hi, t)), value, (rate, r_lo, r_hi, origin)


def _limit_text(op, model, nranks, beta, rate_info, per_node, spread, counts) -> tuple[str, list]:
    """(detail text, notes) of the max-rate limit at the target."""
    rate, r_lo, r_hi, origin = rate_info
    if not np.isfinite(rate):
        return "", []
    kstar = rate * beta if beta > 0 else 0.0
    _, k = models.senders(op, model, nranks, per_node, spread)
    k_now = float(k.max())
    text = (f", node limit R {format_bw(rate)} in total ({ORIGIN_TEXT.get(origin, origin)}; "
            f"k* = R·β = {kstar:.3g} ranks sending at once)")
    binds_now = k_now > kstar
    # on one node the measured counts loaded it with their own ranks; spread over nodes the
    # load of the measured runs is not in the fits
    binds_measured = spread or any(
        float(models.senders(op, model, q)[1].max()) > kstar for q in counts)
    if binds_now and not binds_measured:
        return text, [f"the node limit binds here ({k_now:.3g} ranks of a node send at once, "
                      f"k* = {kstar:.3g}) but at none of the measured counts: its share of the "
                      f"time comes from {ORIGIN_TEXT.get(origin, origin)}"]
    if binds_now:
        return text, [f"the node limit binds: {k_now:.3g} ranks of a node send at once, more "
                      f"than the k* = {kstar:.3g} at which they saturate R = {format_bw(rate)}"]
    return text, []


def _library_choice(rules, rows, seg, op, nranks, nbytes, itemsize, warnings, notes):
    """(model, segment rows, why) of the algorithm the library's decision rules run at the
    target, where the fits have that algorithm (in the size range of S, else in the nearest
    range that has it, with a warning); (None, seg, why) where they do not."""
    choice = rules.choose(op, nranks, nbytes, itemsize)
    if choice is None:
        return None, seg, f"{rules.label} has no rule for {op}: commbench's own selection"
    if choice.model is None:
        return None, seg, (f"{choice.why}; commbench has no model of {choice.native}: "
                           "its own selection is used instead")
    found = _nearest_fit(rows, seg, choice.model, nbytes, warnings)
    if found is None:
        return None, seg, (f"{choice.why}; no fit of {choice.model} (no measured case ran it): "
                           "commbench's own selection is used instead")
    return choice.model, found, choice.why


def _nearest_fit(rows, seg, model, nbytes, warnings):
    """The rows of `model` in the size range of S, else in the nearest size range that has a
    fit of it (where it was fitted only on the cases it ran: analysis.library), with a
    warning; None where it has none."""
    if model in set(seg.model):
        return seg
    have = rows[(rows.model == model) & (rows.segment >= 0)]
    if have.empty:
        return None
    spans = have.groupby("segment")[["nbytes_lo", "nbytes_hi"]].first()
    dist = [abs(math.log(max(nbytes, 1) / max(lo if nbytes < lo else hi, 1)))
            for lo, hi in spans.itertuples(index=False, name=None)]
    k = spans.index[int(np.argmin(dist))]
    lo, hi = spans.loc[k]
    warnings.append(f"{model} ran at none of the measured cases of this size range: its fit "
                    f"over {int(lo)}..{int(hi)} B is used")
    return rows[rows.segment == k]


def predict_algorithm(fits, op, nranks, nbytes, model=None, split="all", per_node=None,
                      spread=False, rules=None, itemsize=4) -> Prediction | None:
    """From the algorithm fits across rank counts (nranks 0 rows), or None if there are none.
    per_node, spread: the ranks of one node in the op (analysis.models.senders; default the
    whole communicator on one node). rules (analysis.library): the MPI library's decision
    rules; the algorithm they choose at the target is priced (unless model forces one), the
    others are listed with what they would cost if forced."""
    rows = fits[(fits.op == op) & (fits.nranks == 0) & (fits.split == split)
                & (fits.model != "hockney")]
    if rows.empty:
        return None
    warnings: list = []
    notes: list = []
    seg = segment_rows(rows, nbytes, warnings)
    if seg is None or seg.empty:
        return None
    forced = model is not None
    basis = ""
    by_rules = False
    if model is None and rules is not None:
        model, seg, basis = _library_choice(rules, rows, seg, op, nranks, nbytes, itemsize,
                                            warnings, notes)
        by_rules = model is not None
    if model is None:
        sel = seg[(seg.param == "selected") & (seg.value == 1)]
        model = sel.model.iloc[0] if len(sel) else seg.model.iloc[0]
        basis = basis or ("commbench's selection: the lowest held-out error across the "
                          "measured rank counts")
    elif forced:
        found = _nearest_fit(rows, seg, model, nbytes, warnings)
        if found is None:
            raise UsageError(f"no {model!r} fit for {op}; have "
                             f"{', '.join(sorted(set(rows.model)))}")
        seg = found
        basis = f"{model}, as asked (--algorithm)"
    mrows = seg[seg.model == model]
    (t, t_lo, t_hi), value, rate_info = _evaluate(op, model, nranks, nbytes, mrows, per_node,
                                                  spread)
    here = mrows.iloc[0]
    per_count = fits[(fits.op == op) & (fits.split == split) & (fits.segment == here.segment)
                     & (fits.nbytes_lo == here.nbytes_lo) & (fits.nranks > 0)]
    held = per_count[(per_count.model == model) & (per_count.param == "heldout_rel_error")]
    heldout = {int(r.nranks): float(r.value) for r in held.itertuples() if r.value == r.value}
    loo = one_value(mrows, "loo_rel_error")
    loo = loo if np.isfinite(loo) else one_value(mrows, "rel_rms")
    loo = loo if np.isfinite(loo) else 0.0
    err, how = extrapolation_error(loo, heldout, nranks)
    counts = sorted(heldout) or sorted(int(q) for q in fits[
        (fits.op == op) & (fits.model == model) & (fits.param == "heldout_rel_error")
        & (fits.split == split)].nranks.unique())
    if counts and not counts[0] <= nranks <= counts[-1]:
        warnings.append(f"{nranks} ranks lies outside the measured rank counts "
                        f"{','.join(map(str, counts))}: extrapolated")
    low, high = interval(t, t_lo, t_hi, err)
    # the algorithms the held-out error cannot tell from this one, and the one that fits the
    # nearest measured count best: their predictions belong in the interval
    others = {}
    if by_rules:  # the rules decide: the others are what forcing them would cost
        costs = []
        for name in sorted(set(seg.model) - {model}):
            (ta, _, _), _, _ = _evaluate(op, name, nranks, nbytes, seg[seg.model == name],
                                         per_node, spread)
            if math.isfinite(ta):
                costs.append(f"{name} {format_time(ta)}")
        if costs:
            notes.append("forced instead: " + ", ".join(costs))
    elif not forced:
        for name in sorted(set(seg.model) - {model}):
            arows = seg[seg.model == name]
            alt_err = one_value(arows, "loo_rel_error")
            if _supported_alternative(loo, alt_err):
                others[name] = f"held-out error {100 * alt_err:.1f}% vs {100 * loo:.1f}%"
        fitted = per_count[per_count.param == "count_rel_rms"]
        if counts and len(fitted):
            near = min(counts, key=lambda q: (abs(math.log(max(nranks, 1) / q)), -q))
            at = fitted[fitted.nranks == near].set_index("model").value
            if model in at.index and len(at):
                best = at.idxmin()
                if best != model and not _supported_alternative(at[best], at[model]):
                    others[best] = (f"fits the {near}-rank times best "
                                    f"({100 * at[best]:.1f}% vs {100 * at[model]:.1f}%)")
                    notes.append(f"the algorithm changes: at {near} ranks (the nearest measured "
                                 f"count) {best} fits best, at {nranks} ranks the prediction "
                                 f"uses {model} (selected by held-out error over all counts)")
    for name, why in others.items():
        (ta, _, _), _, _ = _evaluate(op, name, nranks, nbytes, seg[seg.model == name], per_node,
                                     spread)
        if not (low <= ta <= high) and math.isfinite(ta):
            notes.append(f"{name} ({why}) predicts {format_time(ta)}: the interval covers it")
            low, high = min(low, ta), max(high, ta)
    limit, limit_notes = _limit_text(op, model, nranks, value[1], rate_info, per_node, spread,
                                     counts)
    detail = (f"{model} [{models.describe(op, model)}], size range "
              f"{int(mrows.nbytes_lo.iloc[0])}..{int(mrows.nbytes_hi.iloc[0])} B, "
              f"α {value[0]:.3g} s, β {value[1]:.3g} s/B"
              + (f", γ {value[2]:.3g} s/B" if value[2] else "") + limit
              + f", held-out error {100 * loo:.1f}%" + (f" ({how})" if how else ""))
    return Prediction(t, low, high, model, detail, warnings, limit_notes + notes, basis=basis,
                      widened=not (by_rules or forced))
