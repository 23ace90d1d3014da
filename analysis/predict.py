"""`commbench predict --fits DIR --op OP --nranks P --nbytes S`: the time and bandwidth of one op
from the models `commbench fit` wrote to DIR/fits.csv (fitted first if DIR has none).

Which model: for a collective with algorithm fits (a sweep over rank counts), the size range of
S and in it the selected algorithm (or --model); otherwise the Hockney fit of the op at exactly
that rank count (point-to-point ops: at any rank count, since the pair does not change), in
the size range of S. Algorithm models carry the max-rate limit where the fit found one
(analysis.models): the ranks of a node that send at once share R, so no prediction assumes
more bandwidth in total than the node (or, across nodes, the NIC) has. The output says from
how many ranks the limit binds, and when the algorithm that fits the nearest measured rank
count best is not the one used at the target count.

Interval (LEVEL = 90% claimed): in log time, the parameters' bootstrap intervals (the model at
their low and high ends: every coefficient is non-negative, so the time is monotone in each)
combined with Z·ln(1 + e), e the model's relative error — its held-out error across rank
counts for algorithm models (beyond the measured counts, the held-out error of the outermost
count times the distance in doublings relative to the doubling it was held out over), its rms
error for Hockney — and widened to cover every algorithm that the held-out error cannot tell
from the chosen one (analysis.algorithms: the switch criterion). Parameter intervals alone
would claim a precision the model does not have once it extrapolates.
`tests/benchmarks/check_predict.py` measures how often the interval holds the measured time.

Hierarchical (several nodes, --ranks-per-node q, N = P/q nodes), each op as two levels on the
grid of q local × N node ranks, the inter-node level run by the q local ranks at once (one
communicator per local rank, as `--split inter` measures):
  allreduce       intra allreduce (q ranks, S) + inter allreduce (N, S/q)
  reduce_scatter  intra reduce_scatter (q, S) + inter reduce_scatter (N, S/q)
  allgather       inter allgather (N, S/q) + intra allgather (q, S)
  alltoall        intra alltoall (q, S) + inter alltoall (N, S)
  broadcast       inter broadcast (N, S/q) + intra broadcast (q, S): the root's node scatters
                  S to its q ranks, each broadcasts its piece across the nodes, each node
                  gathers S back (scatter + allgather, costed as the intra broadcast of S)
Intra parameters come from fits with split `intra` (or `all` of single-node runs), inter from
fits with split `inter` (runs across nodes with `--split inter`); each level takes, in this
order, algorithm fits across rank counts, the Hockney fit at exactly that rank count, or the
ring formula with that split's pingpong α and β. The inter level's bytes cost at least
k/R_NIC per byte with k ranks of a node sending at once (the NIC's declared line rate, where
the runs recorded it and the times do not beat it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from analysis import models
from analysis.algorithms import SWITCH_MARGIN, SWITCH_RATIO
from analysis.fit_pipeline import load_fits
from analysis.node_limits import RATE_ORIGINS, point_to_point
from analysis.robust import segment_for
from bench.core.safe_text import one_line, path_text
from bench.core.errors import RunDirError, UsageError
from bench.core.units import format_bw, format_time, human_bytes, parse_size
from analysis.known_ops import canonical_name

if TYPE_CHECKING:  # pandas is imported where used: `commbench run` ranks never need it
    import pandas as pd

LEVEL = 0.90  # the share of measured times the interval claims to hold
Z = 1.645     # two-sided normal quantile of LEVEL
ORIGIN_TEXT = {"fit": "fitted to the sweep's times", "ceiling": "the machine's copy ceiling",
               "nic": "the NIC's declared line rate"}
HIERARCHY = {  # op -> levels (split, ranks "q" or "N", bytes divided by q?, local ranks at once)
    "allreduce": (("intra", "q", False, None), ("inter", "N", True, "q")),
    "reduce_scatter": (("intra", "q", False, None), ("inter", "N", True, "q")),
    "allgather": (("inter", "N", True, "q"), ("intra", "q", False, None)),
    "alltoall": (("intra", "q", False, None), ("inter", "N", False, "q")),
    "broadcast": (("inter", "N", True, "q"), ("intra", "q", False, None)),
}


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


def _params(rows: pd.DataFrame):
    """(value, ci_low, ci_high) arrays over (α, β, γ); a missing γ is 0 (folded into β);
    a missing interval end is the value."""
    out = np.zeros((3, 3))
    for i, p in enumerate(models.PARAMS):
        r = rows[rows.param == p]
        if len(r):
            v, lo, hi = (float(r.iloc[0][c]) for c in ("value", "ci_low", "ci_high"))
            out[:, i] = [v, lo if np.isfinite(lo) else v, hi if np.isfinite(hi) else v]
    return out


def _rate(rows: pd.DataFrame):
    """(R, R_low, R_high, origin) of the max-rate limit, inf where there is none (a missing
    interval end is the value; an infinite upper end is no limit)."""
    r = rows[rows.param == models.RATE]
    if not len(r):
        return math.inf, math.inf, math.inf, ""
    v, lo, hi = (float(r.iloc[0][c]) for c in ("value", "ci_low", "ci_high"))
    origin = int(_one(rows, "node_rate_origin")) if (rows.param == "node_rate_origin").any() else 0
    return (v, lo if lo == lo and lo > 0 else v, hi if hi == hi else v,
            RATE_ORIGINS[origin] if 0 <= origin < len(RATE_ORIGINS) else "fit")


def _one(rows: pd.DataFrame, param: str) -> float:
    r = rows[rows.param == param]
    return float(r.iloc[0].value) if len(r) else float("nan")


def _segment_rows(rows: pd.DataFrame, nbytes: float, warnings: list) -> pd.DataFrame | None:
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


def _pick_backend(fits, backend):
    backends = sorted(fits.backend.unique())
    if backend is None:
        if len(backends) > 1:
            raise UsageError(f"fits hold several backends ({', '.join(backends)}): give --backend")
        return backends[0] if backends else None
    if backend not in backends:
        raise UsageError(f"no fits for backend {backend!r}; have {', '.join(backends) or 'none'}")
    return backend


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


def _supported_alternative(sel_err: float, alt_err: float) -> bool:
    """Whether the held-out error cannot tell an alternative from the selected algorithm (the
    switch criterion of analysis.algorithms)."""
    if not (np.isfinite(sel_err) and np.isfinite(alt_err)):
        return False
    return alt_err <= max(sel_err / SWITCH_RATIO, sel_err + SWITCH_MARGIN)


def _evaluate(op, model, nranks, nbytes, mrows, per_node, spread):
    """(t, t_low, t_high) of one algorithm's rows, and its (α, β, γ) and limit."""
    value, lo, hi = _params(mrows)
    rate, r_lo, r_hi, origin = _rate(mrows)
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
    seg = _segment_rows(rows, nbytes, warnings)
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
    loo = _one(mrows, "loo_rel_error")
    loo = loo if np.isfinite(loo) else _one(mrows, "rel_rms")
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
            alt_err = _one(arows, "loo_rel_error")
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
    seg = _segment_rows(rows, nbytes, warnings)
    if seg is None or seg.empty:
        return None
    value, lo, hi = _params(seg)
    err = _one(seg, "rel_rms")
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
    seg = _segment_rows(rows, message, warnings)
    if seg is None or seg.empty:
        return None
    value, lo, hi = _params(seg)
    value[2] = lo[2] = hi[2] = 0.0  # pingpong has no reduction: γ unknown, taken as 0
    rate, r_lo, r_hi, origin = _rate(seg)
    t, t_lo, t_hi = (float(models.predict(op, algorithm, nranks, nbytes, list(v) + [r],
                                          per_node, spread))
                     for v, r in ((value, rate), (lo, r_hi), (hi, r_lo)))
    err = _one(seg, "rel_rms")
    err = err if np.isfinite(err) else 0.0
    detail = (f"{algorithm} [{models.describe(op, algorithm)}] with the {split} pingpong link "
              f"α {value[0]:.3g} s, β {value[1]:.3g} s/B (γ taken as 0)"
              + (f", NIC {format_bw(rate)} shared by the ranks of a node sending at once"
                 if np.isfinite(rate) else ""))
    low, high = interval(t, t_lo, t_hi, err)
    return Prediction(t, low, high, f"{algorithm}(pingpong)", detail, warnings)


def predict_level(fits, op, nranks, nbytes, split, model=None, per_node=None,
                  spread=False) -> Prediction | None:
    """One level of a hierarchical model, from the best source the fits have for that split:
    algorithm fits across rank counts, else the Hockney fit at exactly nranks, else the ring
    formula with the split's pingpong link parameters. per_node, spread: the ranks of a node
    sending at once (analysis.models.senders)."""
    if nranks <= 1:
        return Prediction(0.0, 0.0, 0.0, "none", "one rank: nothing to do", [])
    return (predict_algorithm(fits, op, nranks, nbytes, model, split=split, per_node=per_node,
                              spread=spread)
            or (None if model else predict_hockney(fits, op, nranks, nbytes, split=split))
            or predict_from_pingpong(fits, op, nranks, nbytes, split, model or "ring",
                                     per_node=per_node, spread=spread))


def predict_hierarchical(fits, op, nranks, nbytes, ranks_per_node, model=None) -> Prediction:
    """A two-level op on N nodes × q ranks (HIERARCHY, see the module docstring). Intra
    parameters: split `intra` (or `all` of single-node runs); inter: split `inter` (runs
    across nodes), with the q local ranks' communicators at once sharing the NIC."""
    if op not in HIERARCHY:
        raise UsageError(f"the hierarchical model covers {', '.join(HIERARCHY)}; not {op}")
    q = ranks_per_node
    if nranks % q:
        raise UsageError(f"--nranks {nranks} is not a multiple of --ranks-per-node {q}")
    nodes = nranks // q
    if not (fits.split == "inter").any():
        raise UsageError("a hierarchical prediction needs inter-node fits (split 'inter', from "
                         "runs across nodes with --split inter); these fits have none")
    intra_split = "intra" if (fits.split == "intra").any() else "all"
    parts = []
    for split, ranks, divided, at_once in HIERARCHY[op]:
        p = q if ranks == "q" else nodes
        size = nbytes / q if divided else nbytes
        if split == "intra":
            got = predict_level(fits, op, p, size, intra_split)
            if got is None:
                raise UsageError(f"no intra-node {op} fits at {q} ranks (split {intra_split})")
        else:
            got = predict_level(fits, op, p, size, "inter", model,
                                per_node=q if at_once == "q" else 1, spread=True)
            if got is None:
                raise UsageError(f"no inter-node {op} or pingpong fits to cover {nodes} nodes")
        parts.append((split, p, size, got))
    detail = " + ".join(f"{split}: {g.model} on {p} {'ranks' if split == 'intra' else 'nodes'}, "
                        f"{human_bytes(size)} ({format_time(g.time_s)})"
                        for split, p, size, g in parts)
    detail += "; " + "; ".join(f"{split} {g.detail}" for split, _, _, g in parts)
    return Prediction(sum(g.time_s for *_, g in parts), sum(g.low_s for *_, g in parts),
                      sum(g.high_s for *_, g in parts),
                      f"hierarchical({', '.join(g.model for *_, g in parts)})", detail,
                      [w for *_, g in parts for w in g.warnings],
                      [f"{split}: {n}" for split, _, _, g in parts for n in g.notes])


def predict(fits: pd.DataFrame, op: str, nranks: int, nbytes: float, backend=None, model=None,
            ranks_per_node=None, rules=None, itemsize=4) -> Prediction:
    """rules: the MPI library's decision rules (analysis.library.of_runs of the fitted runs),
    None where unknown (commbench's own selection)."""
    backend = _pick_backend(fits, backend)
    fits = fits[fits.backend == backend]
    ops = set(fits.op)
    if op not in ops and canonical_name(op) in ops:
        op = canonical_name(op)
    if op not in ops:
        raise UsageError(f"no fits for op {op!r}; have {', '.join(sorted(ops)) or 'none'}")
    if ranks_per_node and nranks > ranks_per_node:
        return predict_hierarchical(fits, op, nranks, nbytes, ranks_per_node, model)
    if model == "hockney":
        got = predict_hockney(fits, op, nranks, nbytes)
    else:
        got = predict_algorithm(fits, op, nranks, nbytes, model, rules=rules,
                                itemsize=itemsize) or (
            None if model else predict_hockney(fits, op, nranks, nbytes))
    if got is None:
        have = sorted(int(q) for q in fits[fits.op == op].nranks.unique() if q)
        raise UsageError(f"no model for {op} at {nranks} ranks: the fits cover rank counts "
                         f"{','.join(map(str, have))}; fit a sweep over rank counts "
                         "(commbench sweep) to predict others")
    return got


def library_of(path) -> tuple:
    """(rules, why, itemsize) of the runs behind a fits directory (analysis.library): None
    and the reason where the library has no encoded rules or the runs cannot be read (a
    fits.csv on its own)."""
    from analysis.fit_pipeline import itemsize
    from analysis.run_times import discover_runs
    from analysis.library import of_runs
    from analysis.meta_checks import load_checked_meta

    try:
        metas = [load_checked_meta(d) for d in discover_runs(path)]
    except RunDirError:
        return None, "no run directories beside the fits (the library is unknown)", 4
    rules, why = of_runs(metas)
    return rules, why, itemsize(metas[0].get("dtype", "float32")) if metas else 4


def add_arguments(parser) -> None:
    parser.add_argument("--fits", required=True, metavar="DIR",
                        help="run or sweep directory with fits.csv (fitted now if missing)")
    parser.add_argument("--op", required=True,
                        help="the op to predict, as fitted (allreduce, allgather, pingpong, ...)")
    parser.add_argument("--nranks", required=True, type=int,
                        help="ranks of the communicator to predict for (any count: an algorithm "
                             "model extrapolates beyond the sweep's counts)")
    parser.add_argument("--nbytes", required=True, metavar="SIZE",
                        help="S of the op in bytes: KiB/MiB and a bare K/M/G are binary "
                             "(1G = 2^30), KB/MB decimal")
    parser.add_argument("--backend", help="backend of the fits (needed when they hold several)")
    parser.add_argument("--model", "--algorithm", dest="model",
                        help="price this algorithm (an algorithm name, or hockney) instead of "
                        "the one the MPI library's rules (or commbench's selection) choose")
    parser.add_argument("--ranks-per-node", type=int,
                        help="ranks per node: use the hierarchical (intra/inter node) model")


def main(args) -> int:
    nbytes = parse_size(args.nbytes)
    if args.nranks < 1:
        raise UsageError(f"--nranks must be at least 1, got {args.nranks}")
    if args.ranks_per_node is not None and args.ranks_per_node < 1:
        raise UsageError("--ranks-per-node must be at least 1")
    fits = load_fits(args.fits, fit_missing=True, command="commbench predict")
    rules, why, size = library_of(args.fits)
    p = predict(fits, args.op, args.nranks, nbytes, args.backend, args.model,
                args.ranks_per_node, rules=rules, itemsize=size)
    # nothing NaN or infinite is printed as a result: checked fits give finite times, and a
    # model that still does not (a degenerate fit) is refused rather than printed
    if not (all(math.isfinite(t) for t in (p.time_s, p.low_s, p.high_s))
            and p.time_s > 0 and p.low_s >= 0 and p.high_s > 0):
        raise RunDirError(f"{path_text(args.fits)}: the fits give no finite positive time for "
                          f"{one_line(args.op)} on {args.nranks} ranks at {nbytes} B "
                          f"(model {one_line(p.model)}): refit it (commbench fit)")
    bw, bw_lo, bw_hi = p.bandwidth(nbytes)
    print(f"{one_line(args.op)} on {args.nranks} ranks, S = {human_bytes(nbytes)} ({nbytes} B)")
    print(f"  time       {format_time(p.time_s)}  "
          f"[{format_time(p.low_s)}, {format_time(p.high_s)}]")
    if nbytes > 0:
        top = format_bw(bw_hi) if math.isfinite(bw_hi) else "no upper bound"
        print(f"  algbw      {format_bw(bw)}  [{format_bw(bw_lo)}, {top}]  (S / time)")
    if p.basis:
        print(f"  algorithm  {p.basis}")
    if rules is None and not args.model:
        print(f"  note       {why or 'no MPI library recorded'}: commbench's own selection")
    print(f"  model      {p.detail}")
    print(f"  interval   {100 * p.level:.0f}% prediction interval: parameter bootstrap intervals "
          "and the model's held-out error"
          + (", covering the algorithms it cannot tell apart" if p.widened else ""))
    for n in p.notes:
        print(f"  note       {n}")
    for w in p.warnings:
        print(f"  warning    {w}")
    return 0
