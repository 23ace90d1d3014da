"""`commbench predict --fits DIR --op OP --nranks P --nbytes S`: the time and bandwidth of one op
from the models `commbench fit` wrote to DIR/fits.csv (fitted first if DIR has none).

Which model: for a collective with algorithm fits (a sweep over rank counts), the size range of
S and in it the algorithm with the lowest held-out error (or --model); otherwise the Hockney fit
of the op at exactly that rank count (point-to-point ops: at any rank count, since the pair
does not change), in the size range of S.

Interval: the model evaluated at the low and at the high ends of the parameters' bootstrap
intervals (every coefficient is non-negative, so the time is monotone in each parameter), then
widened by the model's relative error e — its held-out error for algorithm models, its rms
error for Hockney — to [low / (1 + e), high · (1 + e)] (symmetric in log time, never
negative). Parameter intervals alone would claim a precision the model does not have once it
extrapolates.

Hierarchical (several nodes, --ranks-per-node q): allreduce as intra-node reduce-scatter (ring,
q ranks, intra parameters) + inter-node allreduce of S/q bytes over P/q nodes (inter
parameters) + intra-node allgather (ring). Intra parameters come from fits with split `intra`
(or `all` of single-node runs), inter from fits with split `inter` (runs across nodes with
`--split inter`); each level takes, in this order, algorithm fits across rank counts, the Hockney
fit at exactly that rank count, or the ring formula with that split's pingpong α and β.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from analysis import models
from analysis.fitsfile import load_fits
from analysis.robust import segment_for
from analysis.rundir import one_line, shown
from bench.core.errors import RunDirError, UsageError
from bench.core.units import format_bw, format_time, human_bytes, parse_size
from bench.ops import canonical_name, known_op

if TYPE_CHECKING:  # pandas is imported where used: `commbench run` ranks never need it
    import pandas as pd


@dataclass
class Prediction:
    time_s: float
    low_s: float
    high_s: float
    model: str
    detail: str
    warnings: list

    def bandwidth(self, nbytes):
        """algbw = S / t; the interval swaps ends."""
        f = (lambda t: nbytes / t if t > 0 else float("inf"))  # noqa: E731
        return f(self.time_s), f(self.high_s), f(self.low_s)


def point_to_point(op: str) -> bool:
    """One message between two ranks (bench.ops): its Hockney fit holds at any rank count."""
    found = known_op(op)
    return bool(found and found.point_to_point)


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


def predict_algorithm(fits, op, nranks, nbytes, model=None, split="all") -> Prediction | None:
    """From the algorithm fits across rank counts (nranks 0 rows), or None if there are none."""
    rows = fits[(fits.op == op) & (fits.nranks == 0) & (fits.split == split)
                & (fits.model != "hockney")]
    if rows.empty:
        return None
    warnings: list = []
    seg = _segment_rows(rows, nbytes, warnings)
    if seg is None or seg.empty:
        return None
    if model is None:
        sel = seg[(seg.param == "selected") & (seg.value == 1)]
        model = sel.model.iloc[0] if len(sel) else seg.model.iloc[0]
    elif model not in set(seg.model):
        raise UsageError(f"no {model!r} fit for {op}; have {', '.join(sorted(set(seg.model)))}")
    mrows = seg[seg.model == model]
    value, lo, hi = _params(mrows)
    t, t_lo, t_hi = (float(models.predict(op, model, nranks, nbytes, v)) for v in (value, lo, hi))
    err = _one(mrows, "loo_rel_error")
    err = err if np.isfinite(err) else _one(mrows, "rel_rms")
    err = err if np.isfinite(err) else 0.0
    counts = sorted(int(q) for q in fits[(fits.op == op) & (fits.model == model)
                                         & (fits.param == "heldout_rel_error")].nranks.unique())
    if counts and not counts[0] <= nranks <= counts[-1]:
        warnings.append(f"{nranks} ranks lies outside the measured rank counts "
                        f"{','.join(map(str, counts))}: extrapolated")
    detail = (f"{model} [{models.describe(op, model)}], size range "
              f"{int(mrows.nbytes_lo.iloc[0])}..{int(mrows.nbytes_hi.iloc[0])} B, "
              f"α {value[0]:.3g} s, β {value[1]:.3g} s/B"
              + (f", γ {value[2]:.3g} s/B" if value[2] else "")
              + f", held-out error {100 * err:.1f}%")
    return Prediction(t, t_lo / (1 + err), t_hi * (1 + err), model, detail, warnings)


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
    return Prediction(f(value), f(lo) / (1 + err), f(hi) * (1 + err), "hockney", detail,
                      warnings)


def predict_from_pingpong(fits, op, nranks, nbytes, split, algorithm="ring") -> Prediction | None:
    """An algorithm's cost formula with α, β of the link: the Hockney fit of pingpong in that
    split, in the size range of the algorithm's messages (S/p for ring-type algorithms)."""
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
    t, t_lo, t_hi = (float(models.predict(op, algorithm, nranks, nbytes, v))
                     for v in (value, lo, hi))
    err = _one(seg, "rel_rms")
    err = err if np.isfinite(err) else 0.0
    detail = (f"{algorithm} [{models.describe(op, algorithm)}] with the {split} pingpong link "
              f"α {value[0]:.3g} s, β {value[1]:.3g} s/B (γ taken as 0)")
    return Prediction(t, t_lo / (1 + err), t_hi * (1 + err), f"{algorithm}(pingpong)", detail,
                      warnings)


def predict_level(fits, op, nranks, nbytes, split, model=None) -> Prediction | None:
    """One level of a hierarchical model, from the best source the fits have for that split:
    algorithm fits across rank counts, else the Hockney fit at exactly nranks, else the ring
    formula with the split's pingpong link parameters."""
    if nranks <= 1:
        return Prediction(0.0, 0.0, 0.0, "none", "one rank: nothing to do", [])
    return (predict_algorithm(fits, op, nranks, nbytes, model, split=split)
            or (None if model else predict_hockney(fits, op, nranks, nbytes, split=split))
            or predict_from_pingpong(fits, op, nranks, nbytes, split, model or "ring"))


def predict_hierarchical(fits, op, nranks, nbytes, ranks_per_node, model=None) -> Prediction:
    """Two-level allreduce on P nodes × q ranks: intra-node reduce-scatter and allgather
    (together costed as the intra-node allreduce of S on q ranks, as fitted) plus an inter-node
    allreduce of S/q on P nodes (q of them at once, one per local rank, as `--split inter`
    measures them). Intra parameters: split `intra` (or `all` of single-node runs); inter:
    split `inter` (runs across nodes)."""
    if op != "allreduce":
        raise UsageError("the hierarchical model covers allreduce only")
    q = ranks_per_node
    if nranks % q:
        raise UsageError(f"--nranks {nranks} is not a multiple of --ranks-per-node {q}")
    nodes = nranks // q
    if not (fits.split == "inter").any():
        raise UsageError("a hierarchical prediction needs inter-node fits (split 'inter', from "
                         "runs across nodes with --split inter); these fits have none")
    intra_split = "intra" if (fits.split == "intra").any() else "all"
    inner = predict_level(fits, "allreduce", q, nbytes, intra_split)
    if inner is None:
        raise UsageError(f"no intra-node allreduce fits at {q} ranks (split {intra_split})")
    outer = predict_level(fits, "allreduce", nodes, nbytes / q, "inter", model)
    if outer is None:
        raise UsageError(f"no inter-node allreduce or pingpong fits to cover {nodes} nodes")
    detail = (f"intra: {inner.model} on {q} ranks, S ({format_time(inner.time_s)}) + inter: "
              f"{outer.model} on {nodes} nodes, S/{q} ({format_time(outer.time_s)}); "
              f"intra {inner.detail}; inter {outer.detail}")
    return Prediction(inner.time_s + outer.time_s, inner.low_s + outer.low_s,
                      inner.high_s + outer.high_s,
                      f"hierarchical({inner.model}, {outer.model})", detail,
                      inner.warnings + outer.warnings)


def predict(fits: pd.DataFrame, op: str, nranks: int, nbytes: float, backend=None, model=None,
            ranks_per_node=None) -> Prediction:
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
        got = predict_algorithm(fits, op, nranks, nbytes, model) or (
            None if model else predict_hockney(fits, op, nranks, nbytes))
    if got is None:
        have = sorted(int(q) for q in fits[fits.op == op].nranks.unique() if q)
        raise UsageError(f"no model for {op} at {nranks} ranks: the fits cover rank counts "
                         f"{','.join(map(str, have))}; fit a sweep over rank counts "
                         "(commbench sweep) to predict others")
    return got


def add_arguments(parser) -> None:
    parser.add_argument("--fits", required=True, metavar="DIR",
                        help="run or sweep directory with fits.csv (fitted now if missing)")
    parser.add_argument("--op", required=True)
    parser.add_argument("--nranks", required=True, type=int)
    parser.add_argument("--nbytes", required=True,
                        help="S of the op, with binary K/M/G/T suffixes (1G = 2^30 bytes)")
    parser.add_argument("--backend", help="backend of the fits (needed when they hold several)")
    parser.add_argument("--model", help="force a model (an algorithm name or hockney)")
    parser.add_argument("--ranks-per-node", type=int,
                        help="ranks per node: use the hierarchical (intra/inter node) model")


def main(args) -> int:
    nbytes = parse_size(args.nbytes)
    if args.nranks < 1:
        raise UsageError(f"--nranks must be at least 1, got {args.nranks}")
    if args.ranks_per_node is not None and args.ranks_per_node < 1:
        raise UsageError("--ranks-per-node must be at least 1")
    fits = load_fits(args.fits, fit_missing=True, command="commbench predict")
    p = predict(fits, args.op, args.nranks, nbytes, args.backend, args.model,
                args.ranks_per_node)
    # nothing NaN or infinite is printed as a result: checked fits give finite times, and a
    # model that still does not (a degenerate fit) is refused rather than printed
    if not (all(math.isfinite(t) for t in (p.time_s, p.low_s, p.high_s))
            and p.time_s > 0 and p.low_s >= 0 and p.high_s > 0):
        raise RunDirError(f"{shown(args.fits)}: the fits give no finite positive time for "
                          f"{one_line(args.op)} on {args.nranks} ranks at {nbytes} B "
                          f"(model {one_line(p.model)}): refit it (commbench fit)")
    bw, bw_lo, bw_hi = p.bandwidth(nbytes)
    print(f"{one_line(args.op)} on {args.nranks} ranks, S = {human_bytes(nbytes)} ({nbytes} B)")
    print(f"  time       {format_time(p.time_s)}  "
          f"[{format_time(p.low_s)}, {format_time(p.high_s)}]")
    if nbytes > 0:
        top = format_bw(bw_hi) if math.isfinite(bw_hi) else "no upper bound"
        print(f"  algbw      {format_bw(bw)}  [{format_bw(bw_lo)}, {top}]  (S / time)")
    print(f"  model      {p.detail}")
    print("  interval   parameter bootstrap intervals widened by the model's error")
    for w in p.warnings:
        print(f"  warning    {w}")
    return 0
