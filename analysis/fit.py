"""`commbench fit RUN_DIR...`: fitted performance models, written to RUN_DIR/fits.csv.

Three kinds of fit, all on sample times (max over ranks per round and sample,
`analysis.run_frames.sample_times`), all in relative error (times span decades, so every point
weighs by 1/t), with non-negative parameters (LogGP's L may come out negative), all robust
(soft-L1 loss) and fitted on the per-size medians (robust to outlying samples); the numerics
are in analysis.robust:

* hockney (analysis.hockney) — per (backend, op, nranks): t = α + S·β, piecewise in S.
  Protocol changes (eager → rendezvous, shared memory → single copy, Open MPI's 4 KiB
  shared-memory step) show up as break points between measured sizes; they are found by
  dynamic programming for 1 to --max-segments segments (at least --min-points sizes each) and
  the count is chosen by an information criterion (BIC with the jitter scale taken from the
  most flexible model and outlying sizes capped, see `analysis.robust.best_partition`).
  Intervals: bootstrap over the raw samples within each size, refitted with the chosen break
  points.
* loggp (analysis.loggp) — from the `prtt_*` ops (Netgauge's parametrised round trip), see
  `analysis.loggp.fit_loggp`:
    commbench run -n 2 --ops prtt_rtt1,prtt_rttn8,prtt_rtts8,prtt_rttr8 --sizes 4:1M:4
* algorithm models (analysis.models, fitted by analysis.algorithms) — on a sweep (`commbench
  sweep`: run directories at several rank counts): per op, all rank counts jointly, piecewise
  in S as above; in each size range every algorithm of the op is fitted (α, β, γ) and scored
  by its error on each rank count left out in turn; the lowest held-out error is marked
  `selected` (but the algorithm of the size range below stays unless the held-out error
  supports the switch next to the boundary). Each algorithm also gets the max-rate limit R
  of the node where there is one (node_rate_Bps: fitted, or from the runs' copy ceiling or
  NIC line rate; analysis.models, analysis.algorithms).

fits.csv (written by analysis.fits_source, read by analysis.fits_csv) is tidy: backend, op, nranks, split, model,
segment, nbytes_lo, nbytes_hi, param, value, ci_low, ci_high. nbytes_lo / nbytes_hi are the
smallest and largest measured S inside the segment; nranks is 0 on rows fitted across the rank
counts of a sweep (their held-out errors per rank count are rows with that nranks). SI units
throughout.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from analysis.fit_pipeline import fit_loaded
from analysis.fit_rows import rate_from_per_byte
from analysis.fits_source import data_source, save_fits
from analysis.run_times import load_sweep
from analysis.library import of_runs
from bench.core.safe_text import path_text
from bench.core.errors import UsageError
from bench.core.units import format_bw, format_time, human_bytes

if TYPE_CHECKING:  # pandas is imported where used: `commbench run` ranks never need it
    import pandas as pd


# ---------------------------------------------------------------- table
PER_COUNT = ("heldout_rel_error", "count_rel_rms")  # rows per rank count, not table lines
ORIGIN = {0: "fitted", 1: "copy ceiling", 2: "NIC line rate"}


def node_rate_text(v: dict) -> str:
    """'node 12.3 GB/s [..] (k* 5.2, fitted)': R of the max-rate limit, its interval, the
    ranks sending at once from which it binds (k* = R·β) and where it comes from."""
    r = v["node_rate_Bps"]
    beta = v.get("beta_s_per_byte", (math.nan,))[0]
    kstar = r[0] * beta if beta == beta and beta > 0 else math.nan
    origin = ORIGIN.get(int(v.get("node_rate_origin", (0,))[0]), "fitted")
    where = f"k* {kstar:.3g}, " if kstar == kstar else ""
    return (f"node {bandwidth_text(r[0])} {format_interval(bandwidth_text, r[1], r[2])} "
            f"({where}{origin})").replace("  (", " (")


def bandwidth_text(x: float) -> str:
    """A bandwidth as the table shows it; 'unbounded' where β = 0 (never 'inf')."""
    return format_bw(x) if not math.isinf(x) else "unbounded"


def format_interval(fmt, lo, hi) -> str:
    """'[lo, hi]' in the unit of fmt; '' when an end is missing."""
    return f"[{fmt(lo)}, {fmt(hi)}]" if not (math.isnan(lo) or math.isnan(hi)) else ""


def format_table(fits: pd.DataFrame) -> str:
    """One line per (backend, op, nranks, model, segment)."""
    if fits.empty:
        return "(nothing to fit)"
    lines = []
    wide = fits[fits["segment"] >= 0]
    keys = ["backend", "op", "split", "nranks", "segment", "model"]
    wide = wide[~wide["param"].isin(PER_COUNT)]
    for k, g in wide.groupby(keys, sort=True):
        k = (k[0], k[1], k[3], k[2], k[5], k[4])  # backend, op, nranks, split, model, segment
        v = {r.param: (r.value, r.ci_low, r.ci_high) for r in g.itertuples()}
        r0 = g.iloc[0]
        span = f"{human_bytes(r0.nbytes_lo)}..{human_bytes(r0.nbytes_hi)}"
        where = f"{k[0]} {k[1]} n{k[2] if k[2] else '*'}"
        parts = [f"{where:<22} {k[4]:<19} {span:<19}"]
        if "alpha_s" in v:
            a = v["alpha_s"]
            parts.append(f"α {format_time(a[0])} {format_interval(format_time, a[1], a[2])}")
        if "g_s" in v:
            a = v["g_s"]
            parts.append(f"g {format_time(a[0])} {format_interval(format_time, a[1], a[2])}")
        bw = v.get("bandwidth_Bps")
        if bw is None and "beta_s_per_byte" in v:
            b = v["beta_s_per_byte"]
            bw = (rate_from_per_byte(b[0]), rate_from_per_byte(b[2]), rate_from_per_byte(b[1]))
        label = "1/β"
        if bw is None and "G_s_per_byte" in v:
            b = v["G_s_per_byte"]
            bw, label = (rate_from_per_byte(b[0]), rate_from_per_byte(b[2]), rate_from_per_byte(b[1])), "1/G"
        if bw is not None:
            parts.append(f"{label} {bandwidth_text(bw[0])} "
                         f"{format_interval(bandwidth_text, bw[1], bw[2])}")
        if "gamma_s_per_byte" in v:
            parts.append(f"γ {v['gamma_s_per_byte'][0]:.3g} s/B")
        if "node_rate_Bps" in v:
            parts.append(node_rate_text(v))
        parts.append(f"rms {100 * v['rel_rms'][0]:.1f}%")
        if "loo_rel_error" in v:
            sel = " *" if v.get("selected", (0,))[0] else ""
            parts.append(f"held-out {100 * v['loo_rel_error'][0]:.1f}%{sel}")
        if "ran_cases" in v:
            parts.append(f"ran {int(v['ran_cases'][0])} cases")
        lines.append("  ".join(parts))
    scal = fits[fits["segment"] < 0]
    for k, g in scal.groupby(["backend", "op", "nranks", "split", "model"]):
        items = [f"{r.param[:-2]} {format_time(r.value)} "
                 f"{format_interval(format_time, r.ci_low, r.ci_high)}" for r in g.itertuples()]
        lines.append(f"{k[0]} {k[1]} n{k[2]} {k[4]}: " + "  ".join(items))
        if (g[g.param == "L_s"].value < 0).any():
            lines.append("  L < 0: o_s + o_r measured with idle gaps exceed half the round trip, "
                         "so LogGP's assumptions fail here (e.g. a costlier unexpected-message "
                         "path, or time stolen from the busy wait)")
    header = ("α latency, 1/β asymptotic bandwidth (GB/s = 1e9 B/s; LogGP: g gap, 1/G), 95% "
              "bootstrap intervals; rms: relative fit error; held-out: error on rank counts "
              "left out (* = selected algorithm; ran: the cases it ran where the MPI library is "
              "known); n*: fitted across the rank counts; node: "
              "max-rate limit R, what a node moves in total over its ranks sending at once "
              "(bytes cost max(β, k/R) with k of them; k* = R·β ranks saturate it)")
    return header + "\n" + "\n".join(lines)


# ---------------------------------------------------------------- command line
def add_arguments(parser) -> None:
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="run directory, or a sweep directory holding one run per rank count")
    parser.add_argument("--max-segments", type=int, default=4,
                        help="most size ranges (protocol regimes) per op (default 4)")
    parser.add_argument("--min-points", type=int, default=3,
                        help="fewest measured sizes per size range (default 3)")
    parser.add_argument("--bootstrap", type=int, default=200,
                        help="bootstrap resamples for the intervals, 0 for none (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--ops", default=None, help="comma-separated ops to fit (default all)")


def main(args) -> int:
    if args.max_segments < 1 or args.min_points < 2 or args.bootstrap < 0:
        raise UsageError("--max-segments ≥ 1, --min-points ≥ 2 and --bootstrap ≥ 0 please")
    ops = [o for o in args.ops.split(",") if o] if args.ops else None
    # every directory is read and checked before anything is fitted, written or printed
    # (what the data was before it was read: fits.csv records it, to be found stale later)
    loaded = [(path, data_source(path), load_sweep(path)) for path in args.run_dirs]
    for path, source, runs in loaded:
        fits = fit_loaded(*runs, max_segments=args.max_segments, min_points=args.min_points,
                          n_boot=args.bootstrap, seed=args.seed, ops=ops)
        target = save_fits(path, fits, source)  # a read-only run: one line naming fits.csv, exit 2
        print(f"== {path_text(path)} -> {path_text(target)}")
        if (fits["param"] == "ran_cases").any():
            rules, _ = of_runs(runs[1])
            print(f"algorithm models fitted on the cases each algorithm ran: forced by the "
                  f"run's environment, else chosen by {rules.label}'s decision rules "
                  "(analysis.library)")
        print(format_table(fits))
    return 0
