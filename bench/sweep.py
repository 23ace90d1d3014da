"""`commbench sweep --nranks 2,4,8 --out DIR [run options]`: one `commbench run` per rank count,
into DIR/n2, DIR/n4, ... — the input of `commbench fit DIR` for the collective algorithm models
and of `commbench predict`. Each run is an ordinary `commbench run` in its own process (it
launches its own ranks), so a sweep measures exactly what single runs measure."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.core.errors import UsageError


def add_arguments(parser) -> None:
    from bench import run

    # every option of `commbench run`, passed through; -n/--nranks becomes a list
    run.add_arguments(_Without(parser, {"-n", "--nranks", "--out"}))
    parser.add_argument("-n", "--nranks", required=True,
                        help="comma-separated rank counts, one run each, e.g. 2,4,8")
    parser.add_argument("-o", "--out", required=True, metavar="DIR",
                        help="sweep directory; run directories DIR/n<count> are made in it")


class _Without:
    """A parser that ignores the options named in `skip` (the ones sweep redefines)."""

    def __init__(self, parser, skip):
        self.parser, self.skip = parser, skip

    def add_argument(self, *names, **kw):
        if not self.skip.intersection(names):
            return self.parser.add_argument(*names, **kw)
        return None


def parse_counts(text: str) -> list[int]:
    try:
        counts = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"malformed --nranks {text!r}: expected counts like 2,4,8") from None
    if not counts:
        raise UsageError("--nranks: no rank counts given")
    bad = [c for c in counts if c < 1]
    if bad:
        raise UsageError(f"--nranks: counts must be at least 1, got {bad[0]}")
    return sorted(set(counts))


def run_options(argv: list[str]) -> list[str]:
    """The command line after `sweep`, less -n/--nranks and --out (set per run)."""
    out, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        if a in ("-n", "--nranks", "--out", "-o"):
            skip = True
            continue
        if a.startswith(("--nranks=", "--out=")) or (a.startswith("-n") and a[2:3].isdigit()) or (
                a.startswith("-o") and len(a) > 2):
            continue
        out.append(a)
    return out


def main(args, argv) -> int:
    """argv: the command line after `commbench` (`sweep ...`)."""
    import argparse

    from bench.plan import make_plan

    counts = parse_counts(args.nranks)
    # every run option checked once, before any rank starts
    plan = make_plan(argparse.Namespace(**{**vars(args), "nranks": counts[0]}))
    for p in counts:
        for op in plan.ops:
            problem = op.rank_problem(p)
            if problem:
                raise UsageError(f"{problem} (in the sweep over {args.nranks})")
    root = Path(args.out)
    taken = [root / f"n{p}" for p in counts if (root / f"n{p}").exists()]
    if taken and not args.force:  # with --force, each run replaces its own (bench.run)
        raise UsageError(f"{taken[0]} exists: give the sweep a new --out directory or --force")
    root.mkdir(parents=True, exist_ok=True)
    rest = run_options(list(argv[1:]))
    (root / "sweep.json").write_text(json.dumps(
        {"nranks": counts, "run_options": rest, "argv": ["commbench"] + list(argv)},
        indent=1) + "\n")
    worst = 0
    for p in counts:
        sub = root / f"n{p}"
        if not args.quiet:
            print(f"commbench sweep: {p} ranks -> {sub}", file=sys.stderr)
        rc = subprocess.call([sys.executable, "-m", "bench.cli", "run", "-n", str(p),
                              "--out", str(sub), *rest])
        if rc == 2:  # bad input is the same for every count: stop
            return 2
        worst = max(worst, rc)
    if not args.quiet:
        print(f"commbench sweep: done; fit it with: commbench fit {root}", file=sys.stderr)
    return worst
