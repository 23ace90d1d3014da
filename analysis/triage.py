"""`commbench triage`: the command (its help, options and exit status): one verdict per node
and per link of a fleet (ok, warn, drain) with the evidence next to it. The runs are
analysis.triage_run_set, the rules and evidence analysis.triage_verdicts, the text
analysis.triage_output, the drain list analysis.triage_drain, the --find rounds
analysis.triage_find (the algorithm: analysis.finder). The rules are its help text: EPILOG below."""
from __future__ import annotations

from analysis.triage_drain import apply_drain, drain_reasons, write_drain
from analysis.triage_find import find_main
from analysis.triage_output import format_text
from analysis.triage_verdicts import triage
from bench.core.errors import UsageError

# the help text (constants, not the docstring: python -OO strips docstrings)
EPILOG = """Evidence and rules (printed with every verdict list):
- links, from `pairs` (analysis.links: a link's time is the median over samples of the slower
  of its two ranks): per case (backend, dtype, split, S), the inter-node links' rates x = S /
  time (1 / time at S = 0) against each other; a node's rate is the median of its links' rates,
  set against the other nodes'.
- intra-node collectives (`--split intra`, 2 or more ranks per node): per case, a node's time
  in a sample is the max over its ranks; its rate x = S / (median over samples), against the
  other nodes'. With --expect/--min (as `commbench check`), its busbw (x × the op's bus factor)
  against the reference: below a minimum drains, below a typical figure (less --tolerance) warns.
- robust z = 0.6745 × (x − median) / MAD over the values compared (Iglewicz & Hoaglin's
  modified z; MAD the median absolute deviation; analysis.robust_z); at least 3 values. warn: z < −2 and
  x at least 10% below the median; drain: z < −3 and at least 20% below (the floors keep a fleet
  of near-identical values, MAD ≈ 0, from flagging noise).
- a link through a node that is itself warn or drain is that node's (counted apart, not listed).
- per-rank skew (analysis.timeline): a rank last in a share of a collective's samples above
  max(2/n, 50%), over at least 10 samples: warn (never drain: lateness is no rate).
- time (analysis.timeline): spikes per case, labelled system-wide / straggler / partial, with
  when they happened; printed, not judged.

Output: only what is not ok, plus counts; the hosts to drain, in Slurm hostlist form
(bench.core.hostlist) and, with --drain FILE, one per line. Exit 0 when nothing is to be
drained, 1 when something is, 2 on bad input.

--find HOSTS --launch TEMPLATE --out DIR: instead of judging runs, measure the hosts in rounds of
groups with `commbench run` (analysis.finder: screen in groups of k, bisect slow groups padded
with cleared nodes, confirm single suspects with fresh partners); 3 rounds for one bad node at
k = 2, whatever the fleet's size, where all pairs takes N − 1.
"""


def add_arguments(parser) -> None:
    import argparse

    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("run_dirs", nargs="*", metavar="RUN_DIR",
                        help="run directories of one fleet (e.g. a pairs run and a --split intra run)")
    parser.add_argument("--drain", metavar="FILE", help="write the hosts to drain here, one per line")
    parser.add_argument("--apply-drain", action="store_true",
                        help="also run the printed scontrol lines (Slurm: the nodes end up "
                        "drained, with the evidence as the reason); never done without this")
    parser.add_argument("--expect", metavar="SYSTEM", help="published figures of a system "
                        "(commbench check --list) for the intra-node collectives")
    parser.add_argument("--min", action="append", metavar="OP:SIZE=RATE", default=None,
                        help="a minimum busbw of the intra-node collectives (drain below it)")
    parser.add_argument("--tolerance", type=float, default=0.1,
                        help="share below a typical figure that still passes (default 0.1)")
    parser.add_argument("--nics", type=int, default=None, help="NICs per node (per-NIC figures)")
    find = parser.add_argument_group("faster than all pairs (instead of RUN_DIRs)")
    find.add_argument("--find", metavar="HOSTS", help="measure these hosts (Slurm hostlist) in "
                      "rounds of groups (analysis.finder) and name the slow ones")
    find.add_argument("--launch", metavar="TEMPLATE", help="the launcher command of a round, "
                      "{hosts} = the round's hosts in rank order (comma list), {n} = their count: "
                      "'mpirun -n {n} --host {hosts} --map-by node'")
    find.add_argument("-o", "--out", metavar="DIR", help="--find: the rounds' run directories go here "
                      "(DIR/round01, ...)")
    find.add_argument("--group-size", type=int, default=2, help="--find: nodes per group (default 2)")
    find.add_argument("--confirm", type=int, default=2,
                      help="--find: slow confirmations, each with other partners, to drain (default 2)")
    find.add_argument("--op", default=None, help="--find: the op every group runs (default "
                      "pingpong for groups of 2, which exercises both directions one at a time, "
                      "else allreduce)")
    find.add_argument("--size", default="4M", help="--find: its S (default 4M: long enough that "
                      "the links, not the CPUs, set the time)")
    find.add_argument("--run-args", default="", metavar="ARGS",
                      help="--find: more options of commbench run, one string ('--budget 0.2')")
    find.add_argument("--seed", type=int, default=0, help="--find: shuffles the screen round")


def main(args) -> int:
    from analysis import check_references

    if not 0 <= args.tolerance < 1:
        raise UsageError("--tolerance must be in [0, 1)")
    if args.find is not None:
        if args.run_dirs:
            raise UsageError("--find measures; give it no RUN_DIR")
        return find_main(args)
    if not args.run_dirs:
        raise UsageError("give RUN_DIRs to judge, or --find HOSTS --launch TEMPLATE --out DIR")
    refs = []
    if args.expect:
        refs += check_references.expected_for(args.expect)
    refs += [check_references.parse_min(m) for m in args.min or []]
    result = triage(args.run_dirs, refs, args.nics, args.tolerance)
    print(format_text(result))
    drain = result.drain()
    write_drain(args.drain, drain)
    if args.apply_drain:
        apply_drain(drain_reasons(result))
    return 1 if drain else 0
