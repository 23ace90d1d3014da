"""`commbench` command line: a registry of subcommands, each a module with
`add_arguments(parser)` and `main(args) -> int`. Modules are imported only to build the parser
and keep their heavy imports (mpi4py, torch, matplotlib) inside functions."""
from __future__ import annotations

import argparse
import importlib
import sys

from bench import __version__
from bench.errors import UsageError

# name -> (module, one-line help)
COMMANDS = {
    "run": ("bench.run", "measure ops over a backend (launches local ranks unless inside a launcher)"),
    "noise": ("bench.noise", "calibrate the machine's own noise (timer, OS jitter, ping-pong spread)"),
    "report": ("analysis.report", "write RUN_DIR/report/index.html: figures, tables, method, environment"),
    "compare": ("analysis.compare", "compare runs case by case; exit 1 when NEW is significantly slower"),
    "import": ("analysis.importers", "turn nccl-tests, OSU or IMB output into a run directory"),
    "sweep": ("bench.sweep", "one run per rank count (--nranks 2,4,8) into one directory, for fit"),
    "fit": ("analysis.fit", "fit latency/bandwidth, LogGP and collective algorithm models (fits.csv)"),
    "links": ("analysis.links", "across nodes: host map, pairwise link map with slow links/nodes flagged, rank skew"),
    "predict": ("analysis.predict", "predict an op's time at a rank count and size from fitted models"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, like every other bad input
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="commbench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"commbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod = importlib.import_module(module)
        mod.add_arguments(p)
        p.set_defaults(_main=mod.main)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        argv = ["run"]  # the default job
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            raise UsageError("no command given; known: " + ", ".join(COMMANDS))
        args._argv = argv
        return int(args._main(args) or 0)
    except UsageError as exc:
        print(f"commbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("commbench: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # analysis-side input problems (unreadable run dirs etc.)
        from analysis.rundir import RunDirError

        if isinstance(exc, RunDirError):
            print(f"commbench: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
