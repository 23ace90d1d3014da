"""`commbench` command line: the command layer, the only module that names both sides
(measurement in bench/, analysis in analysis/). A command is a module with
`add_arguments(parser)` and `main(args)` (run and sweep: `main(args, argv)`); a command's module
is imported only when that command runs, so a rank loads the measurement side alone."""
from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from typing import Callable

from bench import __version__
from bench.core.errors import RunDirError, UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, like every other bad input
        raise UsageError(message)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command`'s options are loaded (all of them when None: for tests
    and documentation, never on a rank)."""
    parser = _Parser(prog="commbench", description="benchmarks for interconnects and collective "
                     "communication over MPI and torch.distributed")
    parser.add_argument("--version", action="version", version=f"commbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        if command is None or name == command:
            importlib.import_module(cmd.module).add_arguments(p)
    return parser


def run(args, argv) -> int:
    """`commbench run`: measure; then the process that should (the local launcher, or rank 0
    under an outside launcher) prints the tables, through analysis, once measuring is over."""
    from bench.run import main as run_main

    outcome = run_main(args, argv)
    if outcome.show is not None:
        from analysis.tables import print_run

        print_run(outcome.show)
    return outcome.rc


def noise(args, argv) -> int:
    """`commbench noise`: a run of the noise calibration alone (plus a barrier case)."""
    return main(["run", "--ops", "barrier", "--noise", "--launches", "1", *argv[1:]])


@dataclass(frozen=True)
class Command:
    module: str                 # where add_arguments lives (and main, unless `main` is given)
    help: str
    main: Callable | None = None  # main(args, argv) of the command layer itself
    takes_argv: bool = False    # the module's main is main(args, argv)


COMMANDS = {
    "run": Command("bench.run", "measure ops over a backend (launches local ranks unless inside a launcher)", run),
    "noise": Command("bench.run", "calibrate the machine's own noise (timer, OS jitter, ping-pong spread)", noise),
    "report": Command("analysis.report", "write RUN_DIR/report/index.html: figures, tables, method, environment"),
    "compare": Command("analysis.compare", "compare runs case by case; exit 1 when NEW is significantly slower"),
    "import": Command("analysis.importers", "turn nccl-tests, OSU or IMB output into a run directory"),
    "sweep": Command("bench.sweep", "one run per rank count (--nranks 2,4,8) into one directory, for fit",
                     takes_argv=True),
    "fit": Command("analysis.fit", "fit latency/bandwidth, LogGP and collective algorithm models (fits.csv)"),
    "links": Command("analysis.links", "across nodes: host map, pairwise link map with slow links/nodes flagged, rank skew"),
    "predict": Command("analysis.predict", "predict an op's time at a rank count and size from fitted models"),
}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        argv = ["run"]  # the default job
    try:
        command = argv[0] if argv[0] in COMMANDS else None
        args = build_parser(command or "").parse_args(argv)
        if args.command is None:
            raise UsageError("no command given; known: " + ", ".join(COMMANDS))
        cmd = COMMANDS[args.command]
        if cmd.main is not None:
            return int(cmd.main(args, argv) or 0)
        module = importlib.import_module(cmd.module)
        return int((module.main(args, argv) if cmd.takes_argv else module.main(args)) or 0)
    except (UsageError, RunDirError) as exc:
        print(f"commbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("commbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
