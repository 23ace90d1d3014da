"""`commbench` command line: the command layer, the only module that names both sides
(measurement in bench/, analysis in analysis/). A command is a module with
`add_arguments(parser)` and `main(args)`, or a function of this layer `f(args, argv)` that
needs the command line too (run, noise, sweep, workload); a command's module is imported only
when that command runs, so a rank loads the measurement side alone."""
from __future__ import annotations

import argparse
import importlib
import os
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
            if cmd.examples:  # every verb shows a few command lines to start from
                p.formatter_class = argparse.RawDescriptionHelpFormatter
                p.epilog = (p.epilog.rstrip() + "\n\n" if p.epilog else "") + \
                    "examples:\n" + "\n".join(f"  {line}" for line in cmd.examples)
    return parser


def run(args, argv) -> int:
    """`commbench run`: measure; then the process that should prints the end-of-run output once
    measuring is over (bench.end_of_run): the local launcher, reading its ranks' files through
    analysis; or rank 0 under an outside launcher, from what it wrote, with no pandas."""
    from bench.run import main as run_main

    outcome = run_main(args, argv)
    if outcome.show is None:
        return outcome.rc
    from bench import end_of_run

    if outcome.written_here:  # rank 0 under an outside launcher: no pandas (nor analysis) here
        end_of_run.print_own_run(outcome.show, [sys.executable, "-m", "analysis.finished_run"])
    else:  # the local launcher: its ranks' files, read and checked by analysis
        from analysis.finished_run import checked_run, nodes_text

        meta, rows, shown_dir = checked_run(outcome.show)
        end_of_run.print_end_of_run(meta, rows, shown_dir, lambda: nodes_text(outcome.show, meta))
    return outcome.rc


def noise(args, argv) -> int:
    """`commbench noise`: a run of the noise calibration alone (bench.noise_run)."""
    from bench.noise_run import main as noise_main

    return noise_main(args, build_parser("run").parse_args)


def sweep(args, argv) -> int:
    """`commbench sweep`: one run per rank count (its runs get the sweep's run options)."""
    from bench.sweep import main as sweep_main

    return sweep_main(args, argv)


def workload(args, argv) -> int:
    """`commbench workload`: derive a training step's communication (analysis.workload); with
    --measure, first run its cases through `commbench run`, one run per layout group on that
    group's communicators (split group:SIZE:STRIDE) into OUT/measure/GROUP, then report on the
    process that starts the ranks, or on rank 0 under an outside launcher."""
    from analysis import workload as wl

    if args.measure is None:
        return wl.main(args, argv)
    from bench.workload_runs import measure_groups

    out_given = args.out is not None
    spec = wl.prepare(args)
    rc, report = measure_groups(args.measure, spec.layout.world, spec.layout.dtype,
                                lambda dtype: wl.measure_runs(spec, dtype), out_given,
                                build_parser("run").parse_args)
    return max(rc, wl.main(args, argv, measured=True)) if report else rc


@dataclass(frozen=True)
class Command:
    module: str                 # where add_arguments lives (and main, unless `main` is given)
    help: str
    main: Callable | None = None  # main(args, argv) of the command layer itself
    examples: tuple = ()        # command lines shown at the end of the verb's --help


COMMANDS = {
    "run": Command("bench.run", "measure ops over a backend (launches local ranks unless inside a launcher)", run, (
        "commbench run                                    every op on 2 local ranks, 4 B to 4 MiB",
        "commbench run -n 4 --ops allreduce -b 8 -e 128M -f 2 -o results/ar",
        "commbench run --backend mpi,gloo --ops all_reduce,all_gather --sizes 1KiB,1MiB",
        "mpirun -np 64 --hostfile hosts commbench run --sizes 1K:1G --split all,intra,inter",
        "commbench run --ops pingpong --loop python --launches 1 --force -o /tmp/x")),
    "noise": Command("bench.noise_run", "calibrate the machine's own noise (timer, OS jitter, ping-pong spread)", noise, (
        "commbench noise", "commbench noise -n 4 -o results/noise --force")),
    "report": Command("analysis.report", "write RUN_DIR/report/index.html: figures, tables, method, environment", examples=(
        "commbench report results/quickstart",
        "commbench report results/a results/b -o /tmp/a-vs-b      two runs overlaid")),
    "compare": Command("analysis.compare", "compare runs case by case; exit 1 when NEW is significantly slower"),
    "check": Command("analysis.check", "is my number right? verdicts against expected figures, baselines or --min; exit 1 when not met"),
    "import": Command("analysis.importers", "turn nccl-tests, OSU or IMB output into a run directory", examples=(
        "commbench import all_reduce_perf.log -o results/nccl",
        "commbench import osu_latency.txt osu_bw.txt --backend mpi -o results/osu --force")),
    "sweep": Command("bench.sweep", "one run per rank count (--nranks 2,4,8) into one directory, for fit",
                     sweep, (
        "commbench sweep -n 2,4,8 --ops allreduce,allgather -o results/sweep",
        "commbench sweep -n 2,3 --ops prtt_rtt1,prtt_rttn8,prtt_rtts8,prtt_rttr8 --sizes 4:1M:4 -o results/loggp")),
    "fit": Command("analysis.fit", "fit latency/bandwidth, LogGP and collective algorithm models (fits.csv)", examples=(
        "commbench fit results/sweep", "commbench fit results/quickstart --ops allreduce --bootstrap 50")),
    "links": Command("analysis.links", "across nodes: host map, pairwise link map with slow links/nodes flagged, rank skew", examples=(
        "commbench links results/pairs", "commbench links results/pairs --csv links.csv --png maps/")),
    "triage": Command("analysis.triage", "fleet triage: ok/warn/drain per node and link from pairs, intra-node collectives, skew and references; exit 1 when something is to drain", examples=(
        "commbench triage results/pairs results/intra --min allreduce:64M=150G --drain drain.txt",
        "commbench triage --find 'node[01-64]' --launch 'mpirun -n {n} --host {hosts}' -o results/find")),
    "predict": Command("analysis.predict", "predict an op's time at a rank count and size from fitted models", examples=(
        "commbench predict --fits results/sweep --op allreduce --nranks 64 --nbytes 16M",
        "commbench predict --fits results/sweep --op allgather --nranks 512 --nbytes 1G --ranks-per-node 8")),
    "workload": Command("analysis.workload", "a model's communication per training step: derive, predict (--fits), measure (--measure)", workload, (
        "commbench workload --model Llama-3-8B --tp 8 --dp 64",
        "commbench workload --model Llama-3-8B --dp 2 --fits results/sweep",
        "commbench workload --model Llama-3-8B --dp 2 --measure --launches 1")),
}


# Exit status when commbench's own output could not be written (stdout closed, a full disk, a
# closed pipe): never 0-3, so a CI gate cannot take it for a verdict (1) or a pass (0).
EXIT_OUTPUT = 4


class OutputError(Exception):
    """Standard output could not be written."""


class _CheckedStdout:
    """sys.stdout for the length of a command: a failed write or flush raises OutputError, so
    it ends the command as such and not as whatever error the command would make of it."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise OutputError(exc.strerror or str(exc)) from None

    def flush(self):
        try:
            self._stream.flush()
        except OSError as exc:
            raise OutputError(exc.strerror or str(exc)) from None

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _output_failed(why: str) -> int:
    try:  # what is still buffered must not fail again at exit: send it nowhere
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass
    try:
        print(f"commbench: error: could not write the output to standard output ({why}); "
              f"exit status {EXIT_OUTPUT}, not a verdict", file=sys.stderr)
    except (OSError, AttributeError):
        pass
    return EXIT_OUTPUT


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        argv = ["run"]  # the default job
    if sys.stdout is None:  # started with stdout closed: nothing it prints could be seen
        return _output_failed("it is closed")
    stdout = sys.stdout
    sys.stdout = _CheckedStdout(stdout)
    try:
        command = argv[0] if argv[0] in COMMANDS else None
        args = build_parser(command or "").parse_args(argv)
        if args.command is None:
            raise UsageError("no command given; known: " + ", ".join(COMMANDS))
        cmd = COMMANDS[args.command]
        if cmd.main is not None:
            rc = int(cmd.main(args, argv) or 0)
        else:
            module = importlib.import_module(cmd.module)
            rc = int(module.main(args) or 0)
        sys.stdout.flush()  # the verdict counts only once its output is out
        return rc
    except (UsageError, RunDirError) as exc:
        print(f"commbench: error: {exc}", file=sys.stderr)
        return 2
    except OutputError as exc:
        return _output_failed(str(exc))
    except UnicodeEncodeError as exc:  # a name of bytes that are not UTF-8 reached a writer
        bad = exc.object[exc.start:exc.end] if isinstance(exc.object, str) else ""
        escaped = bad.encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
        print(f"commbench: error: a name holds bytes that are not UTF-8 ({escaped}), which "
              "commbench's files cannot carry; rename it", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("commbench: interrupted", file=sys.stderr)
        return 130
    finally:
        sys.stdout = stdout


if __name__ == "__main__":
    sys.exit(main())
