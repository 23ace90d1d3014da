"""`commbench predict --fits DIR --op OP --nranks P --nbytes S`: the time and bandwidth of one op
from the models `commbench fit` wrote to DIR/fits.csv (fitted first if DIR has none).

The prediction is analysis.predict_op (the model per op), analysis.predict_algorithm,
analysis.predict_link and analysis.predict_hierarchical (the models), analysis.predict_interval
(the interval) and analysis.predict_fit_rows (the rows of fits.csv they read)."""
from __future__ import annotations

import math

from analysis.fit_pipeline import load_fits
from analysis.predict_op import library_of, predict
from bench.core.safe_text import one_line, path_text
from bench.core.errors import RunDirError, UsageError
from bench.core.units import format_bw, format_time, human_bytes, parse_size


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
