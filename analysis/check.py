"""`commbench check`: the command (its help, options and exit status). The references are
analysis.check_references, the verdicts analysis.check_verdicts, the output analysis.check_output."""
from __future__ import annotations

import sys

from analysis.check_output import format_json, format_list, format_markdown, format_text
from analysis.check_references import baseline_references, expected_for, load_expected, parse_min
from analysis.check_verdicts import DEFAULT_TOLERANCE, check
from analysis.output_formats import FORMATS
from bench.core.errors import UsageError

# the help text (constants, not the docstring: python -OO strips docstrings)
DESCRIPTION = """`commbench check`: is my number right? A verdict per op and size against what the hardware
should give: published figures for a system, your own baseline runs, or thresholds you state."""
EPILOG = """    commbench check RUN... --expect SYSTEM          figures shipped in analysis/expected.csv
    commbench check RUN... --baseline RUN...        your own earlier runs as the reference
    commbench check RUN... --min OP:SIZE=RATE ...   thresholds: busbw >= RATE at SIZE
    commbench check --list                          the shipped figures and their sources
    options: --tolerance 0.1  --nics N  --format text|markdown|json

RUN is a run directory of `commbench run` or of `commbench import` (nccl-tests, OSU, IMB).
SIZE and RATE follow commbench's one unit rule (bench/core/units.py): KiB, MiB, GiB are
powers of 1024, KB, MB, GB powers of 1000, and a bare K, M, G means the unit commbench prints
the quantity in: a size 16G = 16 GiB, a rate 460G = 4.6e11 B/s (GB/s, as nccl-tests prints
it). The options may be combined.

Verdict per reference and case (backend, op, dtype, ranks; the whole world, split 'all'):
  meets         busbw >= the reference's threshold
  below         under it; the row says by how much (busbw as a share of the figure)
  implausible   a number that cannot be set against the hardware: a collective on 1 rank
                moves no data (a no-op); busbw above a line rate the reference states, or
                above the run's own measured ceiling (meta.json -> ceilings: across nodes, the
                slowest NIC's declared line rate; on one node, the memory copy rate of the node
                for sizes that do not fit in the caches). The likely reason is named: NVLS,
                SHARP and tree algorithms exceed the ring bound that busbw assumes
                (NVIDIA/nccl-tests#196, #274); several NICs per node; a no-op.
  not measured  the run has no row at the size the reference is stated at
Thresholds: a 'minimum' (an acceptance threshold, --min) as stated; a 'typical' figure (a
published measurement) and a baseline less --tolerance (default 0.1: 10% below it still
meets). A reference without a size (a published peak) is set against the run's best busbw
over its sizes. Figures per NIC (--expect nic-200g) are multiplied by --nics. Every shipped
figure names its source and date (for Azure's health-check configuration files, the date in
their header); `--list` prints them.

Exit status: 0 when every verdict is 'meets', 1 when any is not, 2 on bad input (including
a check that matches nothing in the runs).
"""


def add_arguments(parser) -> None:
    import argparse

    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("runs", nargs="*", metavar="RUN", help="run directories to check")
    parser.add_argument("--expect", metavar="SYSTEM", default=None,
                        help="published figures of a system (--list shows them)")
    parser.add_argument("--baseline", nargs="+", metavar="RUN", default=None,
                        help="your own earlier run directories as the reference")
    parser.add_argument("--min", action="append", metavar="OP:SIZE=RATE", default=None,
                        help="busbw threshold, e.g. allreduce:16G=460G (repeatable)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help="share below a typical figure or a baseline that still meets "
                             f"(default {DEFAULT_TOLERANCE:g})")
    parser.add_argument("--nics", type=int, default=None,
                        help="NICs per node, for figures stated per NIC")
    parser.add_argument("--format", default="text", help="text, markdown or json (default text)")
    parser.add_argument("--list", action="store_true", help="list the shipped figures and exit")


def main(args) -> int:
    if args.format not in FORMATS:
        raise UsageError(f"no such format {args.format!r}; known: {', '.join(FORMATS)}")
    if args.list:
        sys.stdout.write(format_list(load_expected()) + "\n")
        return 0
    if not args.runs:
        raise UsageError("give the run directories to check (RUN...)")
    refs = []
    if args.expect:
        refs += expected_for(args.expect)
    for text in args.min or []:
        refs.append(parse_min(text))
    if args.baseline:
        refs += baseline_references(args.baseline)
    result = check(args.runs, refs, args.nics, args.tolerance)
    text = {"text": format_text, "markdown": format_markdown, "json": format_json}[args.format](result)
    sys.stdout.write(text + "\n")
    return result["exit_status"]
