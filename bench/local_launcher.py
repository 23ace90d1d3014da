"""Outside any launcher: commbench starts the ranks itself (mpiexec for MPI backends, its own
spawner for torch backends), `--launches` times into one run directory, and afterwards merges
the launches' samples into the run's summary. Runs in the parent process, which never loads
MPI or torch."""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from bench import plausible, spawn
from bench.core import raw_samples, run_lock, run_writer, rundir, summarize
from bench.core.errors import RunDirError, UsageError
from bench.ops import OPS
from bench.ops.pairs import pairing_rounds
from bench.plan import EXIT_ABORT, EXIT_WRONG, Outcome, Plan, check_fits, itemsize_of
from bench.world import LOCAL_PARENT, free_port

# local oversubscription beyond this is refused, not attempted (64 on 2 cores works: bench/README.md)
MAX_RANKS_PER_CORE = 32


# Signals that end a run in an orderly way: the ranks are stopped and the run marked aborted.
# SIGHUP is a closed terminal or a lost ssh session: the same as being told to stop.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(Exception):
    """One of STOP_SIGNALS reached commbench while its ranks ran."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stop_on_signal(signum, frame):
    raise Stopped(signum)


def check_local_ranks(plan: Plan, n: int) -> None:
    """Refuse more local ranks than this machine can hold, before starting any."""
    cores = os.cpu_count() or 1
    if n > cores * MAX_RANKS_PER_CORE:
        raise UsageError(f"-n {n}: more local ranks than this machine can run ({cores} cores x "
                         f"{MAX_RANKS_PER_CORE} ranks per core at most)")
    for cls in plan.backends:
        cls.check_ranks(plan.settings, n)
    check_fits(plan, n, n)  # buffers and each rank's own memory; the ranks report skipped ops


def start_local(plan: Plan, argv) -> Outcome:
    """Start N local ranks running this same command (argv after `commbench`). The run
    directory is checked and locked here for the whole run (and removed again when no run
    got into it); SIGINT, SIGTERM and SIGHUP end the ranks and mark the run aborted."""
    settings = plan.settings
    n = settings.nranks or 2
    check_local_ranks(plan, n)
    spawn.check_environment(any(cls.launcher == "mpi" for cls in plan.backends))
    out = Path(settings.out if settings.out is not None
               else Path("results") / rundir.new_run_id(settings.backend, n))
    lock = run_lock.claim_out_dir(out, settings.force)
    out = lock.dir.resolve()
    previous = {s: signal.signal(s, _stop_on_signal) for s in STOP_SIGNALS}
    try:
        return _launches(settings, argv, plan, n, out)
    except Stopped as stop:
        mark_if_unfinished(out, 128 + stop.signum, f"commbench: interrupted by {stop} "
                                                     "(the ranks were stopped)")
        print(f"commbench: interrupted by {stop}; finished cases are in {out}", file=sys.stderr)
        return Outcome(128 + stop.signum)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        lock.release()


def _launches(settings, argv, plan, n, out) -> Outcome:
    extra = [] if settings.out else ["--out", str(out)]
    wrong: dict = {}  # case -> wrong elements summed over launches
    raised: dict = {}  # case -> flags programs raised
    for index in range(settings.launches):
        several = ["--launch-index", str(index)] if settings.launches > 1 else []
        command = spawn.self_command(["run"] + list(argv[1:]) + extra + several)
        rc, message = start_ranks(plan, n, command)
        if rc != 2 and not rundir.holds_run(out):
            # the launcher failed before any rank recorded anything: no verdict, an abort
            print(f"commbench: the ranks' launcher ended with status {rc} and no rank started "
                  f"the run{f' ({message})' if message else ''}", file=sys.stderr)
            return Outcome(EXIT_ABORT)
        mark_if_unfinished(out, rc, message)
        if settings.launches > 1:
            add_launch(out, wrong, raised)
        if rc not in (0, EXIT_WRONG):
            break
    if settings.launches > 1 and rc in (0, EXIT_WRONG):
        merge_launches(out, wrong, raised)
    finished = rc in (0, EXIT_WRONG)
    return Outcome(rc if rc in (0, EXIT_WRONG, 2) else EXIT_ABORT,
                   out if finished and not settings.quiet else None)


def start_ranks(plan: Plan, n: int, command: list) -> tuple:
    if any(cls.launcher == "mpi" for cls in plan.backends):
        mpiexec = spawn.find_mpiexec()
        flavor = spawn.mpi_flavor(mpiexec)
        argv = spawn.mpiexec_argv(mpiexec, flavor, n, os.cpu_count() or 1, command)
        env = spawn.mpiexec_env(flavor, os.geteuid() == 0)
        return spawn.run_local(argv, {**env, LOCAL_PARENT: "1"}, n)
    # torch backends only: no MPI needed, commbench starts the ranks itself
    envs = spawn.torch_local_envs(n, free_port("127.0.0.1"))
    return spawn.run_ranks(command, [{**env, LOCAL_PARENT: "1"} for env in envs])


def _case_key(row) -> tuple:
    return tuple(int(row[c]) if c in ("nbytes", "nranks") else row[c] for c in rundir.CASE)


def add_launch(out: Path, wrong: dict, raised: dict) -> None:
    """Add the wrong elements of the launch just finished (its summary) to `wrong`, and the
    flags its programs raised (plausible.RAISED: no summary can derive them) to `raised`."""
    import csv

    path = out / rundir.SUMMARY
    if not path.exists():
        return
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            key = _case_key(row)
            wrong[key] = wrong.get(key, 0) + int(row["wrong"] or 0)
            raised.setdefault(key, set()).update(
                set(rundir.split_flags(row.get("flags"))) & plausible.RAISED)


def merge_launches(out: Path, wrong: dict, raised: dict) -> None:
    """After the last launch: the summary over the samples of all launches (each launch wrote
    one of its own rounds only) and the final status. Reads a block at a time: the maxima
    over ranks, not every rank's sample, stay in memory."""
    meta = rundir.load_meta(out)
    itemsize = itemsize_of(meta["dtype"])
    block_list = raw_samples.read_blocks(out)
    calls: dict = {}  # case -> k of its samples (the largest)
    for b in block_list:
        key = _case_key(dict(zip(rundir.CASE, b.case)))
        calls[key] = max(calls.get(key, 1), int(b.calls.max(initial=1)))
    rows = summarize.summary_of_maxima(
        summarize.block_maxima(block_list, pairing_of),
        bus_factor=lambda op, n: OPS[op].bus_factor(n),
        msgs_per_op=lambda op, n: OPS[op].msgs_per_op(n),
        count=lambda op, dtype, nbytes, n: OPS[op].case(nbytes, n, itemsize).count)
    for row in rows:
        key = _case_key(row)
        row["wrong"] = wrong.get(key, 0)
        plausible.finish_row(row, OPS[row["op"]], calls.get(key, 1), meta, raised.get(key, ()))
    writer = run_writer.RunWriter(out, meta)
    writer.write_summary(rows, op_order=OPS)
    writer.finish("wrong" if sum(wrong.values()) else "complete")


def pairing_of(block) -> int:
    """`pairs` runs one job per pairing round, all with the same sample numbers: the pairing
    round of a pairs block (0 for other ops), so that a sample's max over ranks stays within
    one pairing round."""
    if block.case[1] != "pairs" or not block.rank.size:
        return 0
    rank, peer = int(block.rank[0]), int(block.peer[0])
    for p, peers in enumerate(pairing_rounds(int(block.case[4]))):
        if rank < len(peers) and peers[rank] == peer:
            return p
    return 0


def mark_if_unfinished(out: Path, rc: int, message: str = "") -> None:
    """A rank killed from outside cannot say so itself: record it in meta.json, with the case
    rank 0 last said it was measuring."""
    try:
        meta = rundir.load_meta(out)
    except RunDirError:
        return
    recorded = meta.get("error") or ""
    saw_more = (meta.get("status") == "aborted" and message and recorded and message != recorded
                and message.startswith(recorded))  # the parent saw more (ranks that fell silent)
    if meta.get("status") == "running" or saw_more:
        error = message or recorded or f"ranks exited with status {rc}"
        case = rundir.read_current_case(out)
        if case and not error.startswith("commbench:"):  # the ranks named no case themselves
            error += f", during {case}"
        if error != recorded:
            print(error if error.startswith("commbench:") else f"commbench: {error}", file=sys.stderr)
        try:
            run_writer.RunWriter(out, meta).finish("aborted", error=error)
        except OSError as exc:  # a full disk, say: the status stays as it was, the exit says why
            print(f"commbench: could not mark {out} aborted: {exc}", file=sys.stderr)
