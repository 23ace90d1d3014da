"""`commbench triage --find`: faster than all pairs, measuring the hosts in rounds of groups
with `commbench run` (one launch a round) and driving analysis.finder (the algorithm) with the
groups' times; prints each round and the nodes to drain."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis.triage_drain import apply_drain, scontrol_lines, write_drain
from analysis.triage_verdicts import RULES
from bench.core.errors import UsageError
from bench.core.hostlist import compress


def launch_argv(template: str, hosts: list) -> list:
    """The launcher's argv for these hosts: {hosts} and {n} filled in, token by token."""
    import shlex

    try:
        words = shlex.split(template)
    except ValueError as exc:
        raise UsageError(f"--launch: {exc}") from None
    if not any("{hosts}" in w for w in words):
        raise UsageError("--launch: the template must place {hosts} (the round's hosts in rank order)")
    return [w.replace("{hosts}", ",".join(hosts)).replace("{n}", str(len(hosts))) for w in words]


def group_times(samples, k: int):
    """Per group of k consecutive ranks (group:k:1): the median over samples of the max over
    the group's ranks."""
    df = samples[samples["rank"] >= 0].assign(group=lambda d: d["rank"] // k)
    per = df.groupby(["round", "sample", "group"])["time_s"].max()
    return per.groupby(level="group").median()


def measure_round(args, groups, index: int) -> list:
    """Run the op on every group at once (one launch: --split group:k:1 over the round's hosts
    in group order); the groups' times, NaN for a group with no samples."""
    import subprocess
    import sys

    from analysis.meta_checks import load_checked_meta
    from analysis.runsamples import load_samples

    k = args.group_size
    hosts = [h for g in groups for h in g]
    out = Path(args.out) / f"round{index:02d}"
    argv = [*launch_argv(args.launch, hosts), sys.executable, "-m", "bench.cli", "run",
            "--out", str(out), "--force", "--ops", args.op, "--sizes", args.size,
            "--split", f"group:{k}:1", "--no-noise", "--no-ceilings", "-q",
            "--launches", "1", "--repeats", "1", *args.run_args.split()]
    try:
        r = subprocess.run(argv, check=False, capture_output=True, text=True)
    except OSError as exc:
        raise UsageError(f"--launch: cannot start {argv[0]!r} ({exc.strerror or exc})") from None
    if r.returncode not in (0, 1):
        tail = (r.stderr.strip().splitlines() or r.stdout.strip().splitlines() or ["no output"])[-1]
        raise UsageError(f"--find round {index}: the launch failed (exit {r.returncode}): {tail}")
    meta = load_checked_meta(out)
    if list(meta.get("hosts") or []) != hosts:
        raise UsageError(f"--find round {index}: the launcher placed ranks on "
                         f"{','.join(meta.get('hosts') or [])}, not on {','.join(hosts)} in that "
                         "order (use a launcher that keeps the host order, e.g. mpirun --host)")
    times = group_times(load_samples(out, meta), k)
    return [float(times.get(i, float("nan"))) for i in range(len(groups))]


def find_main(args) -> int:
    import time

    from analysis.finder import Finder, rounds_bound
    from bench.core.hostlist import expand_hostlist

    if not args.launch or not args.out:
        raise UsageError("--find needs --launch TEMPLATE and --out DIR")
    if args.op is None:
        args.op = "pingpong" if args.group_size == 2 else "allreduce"
    hosts = expand_hostlist(args.find)
    launch_argv(args.launch, hosts)  # a bad template fails before anything starts
    try:
        finder = Finder(hosts, group_size=args.group_size, confirm=args.confirm, seed=args.seed)
    except ValueError as exc:
        raise UsageError(f"--find: {exc}") from None
    Path(args.out).mkdir(parents=True, exist_ok=True)
    print(f"commbench triage --find: {len(hosts)} nodes, groups of {args.group_size}, "
          f"{args.op} S={args.size}, drain after {args.confirm} slow confirmations; rules:")
    print("\n".join(f"  {r}" for r in RULES[:2]))
    start = time.monotonic()
    while (groups := finder.plan()) is not None:
        index = finder.outcome.rounds + 1
        times = measure_round(args, groups, index)
        finder.record(groups, times)
        verdicts = finder.outcome.history[-1][2]
        slow = [f"{'-'.join(g)} ({v}, {t * 1e3:.3g} ms)" for g, t, v in zip(groups, times, verdicts)
                if v != "ok"]
        print(f"round {index}: {len(groups)} groups, median {np.nanmedian(times) * 1e3:.3g} ms; "
              f"not ok: {', '.join(slow) or 'none'}")
    out = finder.outcome
    all_pairs = len(hosts) - 1 if len(hosts) % 2 == 0 else len(hosts)
    print(f"rounds: {out.rounds} (one bad node: {rounds_bound(args.group_size, args.confirm)}; "
          f"all pairs: {all_pairs}), {time.monotonic() - start:.1f} s")
    for node in out.warn:
        print(f"warn: {node} (slow, not at the drain level, in a confirmation)")
    for combo in out.combos:
        print(f"slow combination: {'-'.join(combo)} (each member fine with other partners: a link?)")
    if out.unresolved:
        print(f"unresolved (not enough cleared partners or rounds): {compress(out.unresolved)}")
    drain = sorted(out.drain)
    print(f"drain ({len(drain)}): {compress(drain) if drain else 'none'}")
    reasons = {h: f"commbench triage --find: slow in {args.confirm} groups with other partners "
               f"({args.op} S={args.size})" for h in drain}
    for line in scontrol_lines(reasons):
        print(f"slurm: {line}")
    write_drain(args.drain, drain)
    if args.apply_drain:
        apply_drain(reasons)
    return 1 if drain else 0
