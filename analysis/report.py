"""`commbench report`: the command (its help and options). The page is analysis.report_page,
its sections analysis.report_ops and analysis.report_sections, its runs analysis.report_runs.

    commbench report RUN_DIR [RUN_DIR...] [--out DIR] [--no-fit]
"""
from __future__ import annotations

# the help text (constants, not the docstring: python -OO strips docstrings)
DESCRIPTION = """`commbench report RUN_DIR...`: one self-contained HTML page per report, plus the figures."""
EPILOG = """Writes DIR/index.html (default: the first RUN_DIR/report/, a sweep's own report/) with
every figure embedded as a PNG, so the page opens offline and can be mailed as one file; the same figures are written
next to it as PNG files. Per op: latency against S (log-log, median with its 95% confidence
band, the fitted Hockney model t = alpha + S*beta per size range drawn over it), algbw and
busbw against S, the per-rank spread (which rank is slow), the residuals of the fit; the
summary table; what S means, the bus factor and the method; the environment from meta.json.
Several run directories (or sweep directories holding runs) are overlaid in every figure.

The fit comes from fits.csv (`commbench fit`) in the run or sweep directory; when there is
none, the report fits in memory (analysis.fit_pipeline, no bootstrap) unless --no-fit is given.
Units: times in µs (1e-6 s), bandwidth in GB/s (1 GB = 1e9 bytes), sizes in bytes with binary
prefixes (1 KiB = 1024 B). Stored data stay SI.
"""


def add_arguments(parser) -> None:
    import argparse

    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="run directories (or sweep directories of runs), overlaid")
    parser.add_argument("--out", "-o", default=None,
                        help="directory for index.html and the PNGs (default FIRST_RUN_DIR/report)")
    parser.add_argument("--no-fit", action="store_true",
                        help="do not fit runs that have no fits.csv")


def main(args) -> int:
    from analysis.report_page import write_report

    index = write_report(args.run_dirs, args.out, fit_missing=not args.no_fit)
    print(f"wrote {index}")
    return 0
