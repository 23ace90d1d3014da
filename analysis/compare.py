"""`commbench compare`: the command (its help, options and exit status): is NEW slower than
BASE, case by case, beyond the noise? The comparison is analysis.compare_sides (its statistics
analysis.compare_stats, the settings analysis.compare_settings), the output
analysis.compare_output. What the command does and why is its help text: DESCRIPTION and
EPILOG below."""
from __future__ import annotations

import sys

from analysis.compare_output import format_json, format_markdown, format_text
from analysis.compare_sides import compare_runs
from analysis.output_formats import FORMATS
from bench.core.errors import UsageError

# the help text (constants, not the docstring: python -OO strips docstrings)
DESCRIPTION = """`commbench compare`: is NEW slower than BASE, case by case, beyond the noise?"""
EPILOG = """    commbench compare BASE NEW                    one run directory per side
    commbench compare BASE [BASE...] --new NEW [NEW...]
                                                  several run directories per side (pooled)
    options: --factor 1.1  --alpha 0.05  --format text|markdown|json  --ops OP,OP

Cases are joined on (backend, op, nbytes, nranks, split); dtypes of one case are pooled.

Unit of replication. Latency on a shared machine drifts between modes for seconds at a time,
so samples of one run are not independent draws and a test on them overstates certainty.
When both sides have at least 2 (run, round) pairs for a case, the units are the per-(run,
round) medians of the sample times (`commbench run --repeats R`, or several run directories
per side). Otherwise the test falls back to the raw sample times (the max over ranks per
sample) and says so: that test cannot see run-to-run variation.

Verdict per case, with r = median(NEW units) / median(BASE units):
  slower           r > factor   and NEW > factor x BASE by a one-sided Mann-Whitney U test
                   at level alpha (the null hypothesis is "no worse than the factor")
  faster           r < 1/factor and NEW < BASE / factor by the mirrored test
  not significant  anything else, including changes smaller than the factor
The ratio comes with a 95% distribution-free interval of the typical ratio (the order
statistics of all pairwise NEW/BASE ratios that the Mann-Whitney test implies).

Unreplicated cases (a side holds one (run, round) for the case: a single-round run, or an
import, which holds one value per size). No test on them can see run-to-run variation, and
one value per side can never be significant, so the verdict rests on other evidence:
  - neighbouring sizes: a real change persists over a range of sizes, while a machine that
    switches latency modes spoils single cases (identical single-round runs on a shared VM
    differ up to 8x at one size, rarely at two neighbours, not at three in a row);
  - the machine's noise: meta.json -> noise (`commbench noise`: the spread of 8-byte
    ping-pong medians over bursts, max/min, the larger of the two sides), else a stated
    default of 1.1 (a 10% run-to-run change assumed where neither side measured its noise);
  - the rank test on raw samples, where both sides have enough samples for it to reach alpha.
Such a case is slower when it lies in a window of 3 consecutive sizes of its series (same
backend, op, ranks, split) in which every case has r > factor x noise and, where the rank test
can decide, a significant one; faster mirrored. The row says so: "slower, unreplicated: 7.60×
at 3/3 sizes" (the median ratio of the window, its cases beyond the threshold). A series of
fewer than 3 sizes gets no unreplicated verdict. nccl-tests also prints an in-place time per
size; the importer keeps the out-of-place one only, so it is no second measurement here.

Exit status: 0 when no case is slower, 1 when some case is, 2 on bad input.
"""


def add_arguments(parser) -> None:
    import argparse

    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("base", nargs="+", metavar="BASE",
                        help="run directory of the baseline (with --new: one or more)")
    parser.add_argument("--new", nargs="+", metavar="NEW", default=None,
                        help="run directories of the new side (default: the last positional)")
    parser.add_argument("--factor", type=float, default=1.1,
                        help="tolerated slow-down: slower means beyond this ratio (default 1.1)")
    parser.add_argument("--alpha", type=float, default=0.05,
                        help="significance level of each one-sided test (default 0.05)")
    parser.add_argument("--format", default="text", help="text, markdown or json (default text)")
    parser.add_argument("--ops", default=None, help="comma list of ops to compare (default all)")


def sides(args) -> tuple[list, list]:
    if args.new:
        return list(args.base), list(args.new)
    if len(args.base) != 2:
        raise UsageError("give BASE NEW, or BASE... --new NEW... for several run directories per side")
    return [args.base[0]], [args.base[1]]


def main(args) -> int:
    if args.format not in FORMATS:
        raise UsageError(f"no such format {args.format!r}; known: {', '.join(FORMATS)}")
    base_dirs, new_dirs = sides(args)
    ops = [s.strip() for s in args.ops.split(",") if s.strip()] if args.ops else None
    result = compare_runs(base_dirs, new_dirs, args.factor, args.alpha, ops)
    text = {"text": format_text, "markdown": format_markdown, "json": format_json}[args.format](result)
    sys.stdout.write(text + "\n")
    return result["exit_status"]
