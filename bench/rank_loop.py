"""The body of `commbench run` on every rank: cases in (shuffled) rounds, each checked on an
untimed call, then timed by the harness; rank 0 records each case as soon as it is done."""
from __future__ import annotations

import atexit
import os
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench import ceilings, contention, nodes, plausible
from bench.core.errors import UsageError
from bench.core.samples import block_of
from bench.core.stats import summarize_case
from bench.harness import Sync, measure
from bench.ops import OPS
from bench.plan import (EXIT_ABORT, EXIT_WRONG, PAGE, Outcome, Plan, arena_bytes, check_fits,
                        launches_of, pages, skip_notes)
from bench.world import LOCAL_PARENT

if TYPE_CHECKING:
    from bench.backends import Backend
    from bench.ops.op import Case

ABORT_GRACE_S = 1.0  # a failing rank waits this long before aborting the job

METHOD = {
    "synchronisation": "barrier before every sample",
    "sample": "k back-to-back calls timed on each rank with its own host clock after a device "
              "synchronize (--timer host), or by CUDA events around them (--timer cuda); k calibrated "
              "collectively so a sample lasts at least sample_time_s on the slowest rank",
    "time_per_op": "sample duration / (k x ops per call)",
    "across_ranks": "the time of a sample is the max over ranks (per-rank rows are kept)",
    "summary": "median over samples with a 95% nonparametric (binomial order-statistic) CI",
    "stop_rule": "after at least min_samples, stop when (ci_high - ci_low) / median <= ci_target, "
                 "or when the case's budget for the round is spent, or at max_samples",
    "warmup": "the calibration calls (k grown geometrically) and the untimed check call",
    "validation": "one untimed call per case and round on small-integer data; every element "
                  "of every receive buffer compared exactly with the expected result",
    "loops": "how each backend runs the k calls of a sample (`loop`): native = one call into "
             "compiled code that makes the k calls against the MPI library mpi4py uses "
             "(bench/native, built with that MPI's mpicc); python = a Python for-loop over "
             "prepared calls",
}


@dataclass
class Job:
    """One case on one backend, across the rounds. Every rank holds the same calibrated k and
    the same agreed sample times; rank 0 also accumulates what it records."""
    be: Backend
    case: Case
    sync: Sync
    arena: object
    calls: int | None = None
    agreed: list = field(default_factory=list)
    wrong: int = 0
    rounds: int = 0
    split: str = "all"            # --split: be is then this rank's sub-communicator
    world: object = None          # the backend on the whole world (gathers rows); None: be
    world_of: list | None = None  # world rank of each rank of be (None: the same)
    flags: set = field(default_factory=set)  # what a rank's program said of itself (empty-graph)

    @property
    def label(self) -> str:
        where = "" if self.split == "all" else (
            f" ({self.split}-node)" if self.split in ("intra", "inter") else f" ({self.split})")
        pairing = f", pairing round {self.case.pairing}" if self.case.pairing >= 0 else ""
        return f"{self.case.op.name} at {self.case.nbytes} B on {self.be.name}{where}{pairing}"


def _injected(what: str, op: str, nbytes: int, rank: int) -> bool:
    """Fault injection for tests: COMMBENCH_INJECT=kind:op:nbytes:rank (nbytes may be *)."""
    spec = os.environ.get("COMMBENCH_INJECT", "")
    for item in spec.split(","):
        parts = item.split(":")
        if len(parts) == 4 and parts[0] == what and parts[1] == op \
                and parts[2] in ("*", str(nbytes)) and int(parts[3]) == rank:
            return True
    return False


def buffers_of(be, arena, case, dtype):
    """(send, recv, ack): the case's buffers, page-aligned views into the rank's arena."""
    send_bytes = pages(case.send_count * case.itemsize)
    recv_bytes = pages(case.recv_count * case.itemsize)
    send = be.view(arena, 0, case.send_count, dtype)
    recv = be.view(arena, send_bytes, case.recv_count, dtype)
    ack = be.view(arena, send_bytes + recv_bytes, 1, dtype)
    return send, recv, ack


def prepare_case(be, case, arena, dtype):
    """(program, recv): the buffers filled with the op's initial data, and program(k), the k
    back-to-back calls the harness times."""
    op, rank = case.op, be.rank
    send, recv, ack = buffers_of(be, arena, case, dtype)
    program = be.wrap_program(op.program(be, send, recv, ack, case, rank))
    prepare = getattr(program, "prepare", None)
    if prepare is not None:  # its set-up runs the op (a CUDA graph's warm-up): before the data
        prepare(1)
    init_send, init_recv = op.initial(case, rank)
    if init_send is not None:
        be.write(send, init_send)
    if init_recv is not None:
        be.write(recv, init_recv)
    return program, recv


def wrong_elements(be, case, recv) -> int:
    """Elements of recv that differ from what the op says this rank must hold (after one call).
    Every element is compared exactly, where the buffer lives when the backend can count there
    (`count_wrong`: a GPU buffer is not copied to the host), else on the host (read)."""
    expected = case.op.expected(case, be.rank)
    if expected is None:
        return 0
    if _injected("corrupt", case.op.name, case.nbytes, be.rank):
        recv[len(recv) // 2] += 1  # the data arrived with one element wrong
    return int(be.count_wrong(recv, expected))


def run_case(be, case, arena, dtype, sync, sampling, state_calls, prior):
    """Check the op once, then time it. Returns (Measurement, wrong elements on this rank)."""
    op, rank = case.op, be.rank
    program, recv = prepare_case(be, case, arena, dtype)
    if _injected("raise", op.name, case.nbytes, rank):
        raise RuntimeError("injected failure")
    if _injected("hang", op.name, case.nbytes, rank):
        while True:
            time.sleep(1)
    sync.barrier()
    program(1)
    be.sync()
    wrong = wrong_elements(be, case, recv)
    m = measure(program, op.ops_per_call, sync, sampling, calls=state_calls, prior=prior)
    return m, wrong


def run_spmd(plan: Plan, world, argv=("run",), clock=time.perf_counter) -> Outcome:
    """Measure every case on this rank, as plan.settings say. argv: the command line after
    `commbench` (for meta.json); `clock` is injectable for tests."""
    settings = plan.settings
    backends = []
    writer = None
    rank = world.rank
    try:
        backends = [cls.create(world, settings) for cls in plan.backends]
        control = backends[0]  # agreement that is not about a measurement
        rank, n = control.rank, control.size
        if world.size and n != world.size:  # every rank alone: it cannot reach the others
            if world.rank == 0:
                print(f"commbench: error: the launcher ({world.launcher}) started {world.size} "
                      f"ranks, but {control.name} sees {n}: the MPI library does not speak the "
                      "launcher's protocol (Open MPI 5 needs PMIx: srun --mpi=pmix, not pmi2)",
                      file=sys.stderr)
            return Outcome(2)
        hosts = control.bcast(control.gather(socket.gethostname()))
        problem = None
        try:
            if settings.nranks is not None and settings.nranks != n:
                raise UsageError(f"-n {settings.nranks} given, but the launcher started {n} ranks")
            # notes about the plan once per run, not once per launch; what is measured other
            # than asked (sizes rounded, ops left out) is said even with -q: a quiet run must
            # not silently measure something else
            say = (lambda text: print(text, file=sys.stderr)) if (
                rank == 0 and settings.launch_number == 0) else None
            by_split = _cases_by_split(plan, hosts, hosts.count(socket.gethostname()), say)
            cases = [case for split_cases in by_split.values() for case in split_cases]
            for note in skip_notes(plan) if say and not settings.quiet else []:
                assert say is not None  # the loop runs only when say is set
                say(note)
        except UsageError as exc:
            problem = str(exc)
        if problem:
            if rank == 0:
                print(f"commbench: error: {problem}", file=sys.stderr)
            return Outcome(2)
        timers = [_device_timer(settings, be) for be in backends]  # None: the host clock
        writer, seed, problem = _start_recording(argv, plan, backends, hosts, timers)
        if writer is not None:
            _RUN_WRITER.append(writer)
        if problem:
            if rank == 0:
                print(f"commbench: error: {problem}", file=sys.stderr)
            return Outcome(2)
        jobs = []
        for be, timer in zip(backends, timers):
            arena = be.alloc(arena_bytes(cases))
            sync = Sync(barrier=be.control_barrier(), allreduce_max=be.allreduce_max,
                        device_sync=be.sync, clock=clock, device_timer=timer)
            jobs += [job for job in _split_jobs(be, by_split, hosts, sync, arena)
                     if (be.name, job.case.op.name) not in plan.skip]
        if writer:
            from bench.record import buffer_info
            writer.write_meta(buffers=buffer_info(PAGE))
        outcome = _measure_all(plan, backends, jobs, writer, seed)
        for be in reversed(backends):
            be.finalize()
        return outcome
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - any failure must take the whole job down
        where = getattr(exc, "_commbench_case", "setup")
        message = f"commbench: rank {rank} failed in {where}: {type(exc).__name__}: {exc}"
        print(message, file=sys.stderr, flush=True)
        if os.environ.get("COMMBENCH_DEBUG"):
            traceback.print_exc()
        if writer is not None:
            try:
                writer.finish("aborted", error=message)
            except Exception as again:  # a full disk, say: the job must still end now
                print(f"commbench: rank {rank} could not record the abort in {writer.dir}: "
                      f"{again}", file=sys.stderr, flush=True)
        elif rank != 0:
            time.sleep(ABORT_GRACE_S)  # rank 0 may be recording the case it just finished
        if backends:
            backends[0].abort(EXIT_ABORT)
        os._exit(EXIT_ABORT)


def _device_timer(settings, be):
    if settings.timer != "cuda":
        return None
    return be.device_timer()


_RUN_LOCKS: list = []  # rank 0 under an outside launcher: the run directory's lock, held to exit
_RUN_WRITER: list = []  # rank 0: the writer of the run, for the signal thread
SIGNAL_GRACE_S = 1.0  # after a stop signal, the other ranks outlive rank 0's record by this much


def end_on_signals(rank: int) -> None:
    """Under an outside launcher (mpirun, srun, torchrun): SIGTERM and SIGHUP, which launchers
    send when they are stopped or lose their terminal, end this rank at once, and rank 0 first
    marks the run aborted with the signal (under commbench's own launcher the parent does).
    The signals are blocked in every thread, before the communication library starts its own,
    and taken by one thread (sigwait): the main thread may sit in a collective that never
    returns, where no Python handler would run."""
    if os.environ.get(LOCAL_PARENT) or not hasattr(signal, "pthread_sigmask"):
        return
    stops = {signal.SIGTERM, signal.SIGHUP}
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)

    def wait():
        sig = signal.sigwait(stops)
        name = signal.Signals(sig).name
        if _RUN_WRITER:
            try:
                _RUN_WRITER[0].finish("aborted", error=f"commbench: interrupted by {name} "
                                      "(the launcher or the shell stopped the job)")
            except Exception as exc:  # a full disk, say: the rank must still end now
                print(f"commbench: rank {rank} could not record the abort: {exc}",
                      file=sys.stderr, flush=True)
        print(f"commbench: rank {rank} interrupted by {name}", file=sys.stderr, flush=True)
        if rank != 0:
            # the launcher kills the whole job once any rank ends: give rank 0 its moment to
            # record the abort first (seen lost on a loaded machine without it)
            time.sleep(SIGNAL_GRACE_S)
        os._exit(128 + sig)

    threading.Thread(target=wait, name="commbench-signals", daemon=True).start()


def _start_recording(argv, plan, backends, hosts, timers):
    """(writer, seed, problem) on rank 0; (None, seed, problem) elsewhere. Every rank gets the
    same seed (the case order) and the same problem (one that stops the run before it starts)."""
    from bench.core.run_lock import claim_out_dir
    from bench.core.run_writer import RunWriter
    from bench.core.rundir import load_meta, new_run_id
    from bench.record import base_meta, buffer_info, device_timer_info, timer_info

    settings = plan.settings
    control = backends[0]
    rank, n = control.rank, control.size
    index = settings.launch_number
    meta = None
    if rank == 0:
        out = Path(settings.out if settings.out is not None
                   else Path("results") / new_run_id(settings.backend, n))
        problem = None
        if index > 0:  # a later launch of the same run: continue its directory and metadata
            meta = load_meta(out)
            seed = meta["settings"]["seed"] + index
        else:
            seed = settings.seed if settings.seed is not None else int(time.time_ns() % 2**31)
            if not os.environ.get(LOCAL_PARENT):  # else the local launcher did this
                try:
                    _RUN_LOCKS.append(claim_out_dir(out, settings.force))
                    atexit.register(_RUN_LOCKS[-1].release)  # no run written: no lock left
                except UsageError as exc:
                    problem = str(exc)
        agreed = (str(out), seed, problem)
    else:
        agreed = None
    out, seed, problem = control.bcast(agreed)  # every rank shuffles the cases with the same seed
    if rank != 0 or problem:
        return None, seed, problem
    this_launch = {"index": index, "started": datetime.now(timezone.utc).isoformat(),
                   "rounds": [index * plan.repeats, (index + 1) * plan.repeats], "hosts": hosts}
    if meta is not None:
        meta["launches"] = meta.get("launches", []) + [this_launch]
        meta["status"] = "running"
        return RunWriter(Path(out), meta), seed, None
    recorded = {**settings.recorded, "seed": seed, "sampling": asdict(plan.sampling),
                "sizes": plan.sizes}
    meta = base_meta(Path(out).name, ["commbench"] + list(argv), recorded)
    meta.update(
        backend={"name": ",".join(be.name for be in backends),
                 **{k: v for be in reversed(backends) for k, v in be.versions().items()}},
        backends={be.name: be.versions() for be in backends}, nranks=n,
        nnodes=len(set(hosts)), hosts=hosts,
        timer=next((device_timer_info(start) for start in timers if start), None) or timer_info(),
        method={**METHOD, "loop": {be.name: be.loop for be in backends}},
        buffers=buffer_info(PAGE), dtype=plan.dtype,
        ops={op.name: op.facts() for op in plan.ops}, launches=[this_launch],
    )
    return RunWriter(Path(out), meta), seed, None


def _measure_all(plan, backends, jobs, writer, seed) -> Outcome:
    """Rounds over all jobs (every backend's cases together), shuffled in each round when
    there are several, so drifts of the machine spread over all cases."""
    from bench.watchdog import Watchdog

    settings = plan.settings
    index = settings.launch_number
    control = backends[0]
    rank = control.rank
    on_fire = (lambda msg: writer.finish("aborted", error=msg)) if writer else None
    watchdog = Watchdog(settings.timeout_s, rank, on_fire)
    machine_before = contention.snapshot()
    if settings.noise and index == 0:
        from bench import noise

        watchdog.arm("the noise calibration")
        found = noise.calibrate(control, replace(jobs[0].sync, device_timer=None),
                                pingpong=control.op_problem(OPS["pingpong"], settings) is None)
        if writer:
            writer.write_meta(noise=found)
    if settings.ceilings and index == 0:
        watchdog.arm("the ceilings' measurement")
        found = ceilings.measure(control, jobs[0].sync, backends)
        if writer:
            writer.write_meta(ceilings=found)
    rng = np.random.default_rng(seed)
    summary_cache: dict = {}  # summary row per (backend, op, size, split)
    # one progress over all launches: this launch counts on from where the ones before ended
    launches = launches_of(settings)
    started, total, done = time.monotonic(), len(jobs) * plan.repeats, 0
    before = index * total
    last_progress = started
    for round_no in range(plan.repeats):
        order = rng.permutation(len(jobs)) if plan.repeats > 1 else range(len(jobs))
        for job in (jobs[i] for i in order):
            watchdog.arm(job.label)
            try:
                if writer:
                    writer.note_case(f"{job.label}, round {round_no}")
                m, wrong = run_case(job.be, job.case, job.arena, plan.dtype, job.sync,
                                    plan.sampling, job.calls, job.agreed)
                job.calls = m.calls
                job.agreed = job.agreed + m.agreed_s
                gathered = _gather_rows(job, rank, m, wrong)
                if rank == 0:
                    _record_case(writer, plan, job, index * plan.repeats + round_no,
                                 m, gathered)
                    writer.write_summary(_summary_rows(plan, jobs, summary_cache, job, writer.meta), op_order=OPS)
            except Exception as exc:
                exc._commbench_case = job.label  # type: ignore[attr-defined]  # a tag, read where caught
                raise
            done += 1
            now = time.monotonic()
            if rank == 0 and not settings.quiet and now - last_progress > 2.0:
                left = (now - started) / done * (total * launches - before - done)
                print(f"commbench: {before + done}/{total * launches} cases"
                      + (f" (launch {index + 1} of {launches})" if launches > 1 else "")
                      + f", ~{left:.0f} s left", file=sys.stderr, flush=True)
                last_progress = now
    watchdog.disarm()
    windows = control.gather(contention.window(machine_before, contention.snapshot()))
    wrong_total = control.bcast(sum(j.wrong for j in jobs) if rank == 0 else None)
    if rank == 0:
        found = contention.summarize(windows)
        writer.meta["launches"][-1]["contention"] = found
        writer.finish("wrong" if wrong_total else "complete",
                      contention=contention.worst(writer.meta.get("contention"), found))
        if wrong_total:
            print(f"commbench: {wrong_total} elements failed validation (see the #wrong column)",
                  file=sys.stderr)
    # the local launcher prints the tables itself, once over all its launches
    show = rank == 0 and not settings.quiet and not os.environ.get(LOCAL_PARENT)
    return Outcome(EXIT_WRONG if wrong_total else 0, writer.dir if show else None, show)


def _record_case(writer, plan, job, round_no, m, gathered):
    case = job.case
    ranks, peers, times = [], [], []
    for rank, local, wrong, peer, flags in gathered:
        job.wrong += wrong
        job.flags.update(flags)
        if local:  # an idle rank timed nothing
            ranks.append(rank)
            peers.append(peer)
            times.append(local)
    writer.append_block(block_of((job.be.name, case.op.name, plan.dtype, case.nbytes, case.nranks,
                                  job.split), round_no, ranks, peers, times, m.calls))
    job.rounds += 1


def _summary_rows(plan, jobs, cache, changed, writer_meta):
    """One row per (backend, op, size, split); the jobs of one row (pairs: one per pairing
    round) pool their samples. Only the row of the job just finished is recomputed (`cache`
    keeps the others), so rewriting the summary stays cheap in long runs."""
    key_of = lambda j: (j.be.name, j.case.op.name, j.case.nbytes, j.split)  # noqa: E731
    group = [j for j in jobs if j.rounds and key_of(j) == key_of(changed)]
    job = group[0]
    op, n = job.case.op, job.case.nranks
    row = {"backend": job.be.name, "op": op.name, "dtype": plan.dtype,
           "nbytes": job.case.nbytes, "nranks": n, "split": job.split,
           "count": job.case.count,
           "wrong": sum(j.wrong for j in group), "rounds": max(j.rounds for j in group)}
    times = [t for j in group for t in j.agreed]
    row.update(summarize_case(times, job.case.nbytes, op.bus_factor(n), op.msgs_per_op(n)))
    plausible.finish_row(row, op, max(j.calls or 1 for j in group), writer_meta,
                         set().union(*(j.flags for j in group)))
    cache[key_of(changed)] = row
    return list(cache.values())


def _cases_by_split(plan, hosts, ranks_here, say):
    """{split: its cases}, each sized for the communicators of that split. With several
    splits, an op that cannot run on one split's size (pingpong on one rank per node) is
    skipped there, and is an error only when it runs on none."""
    for cls in plan.backends:
        if any(split != "all" for split in plan.splits) and not hasattr(cls, "split"):
            raise UsageError(f"backend {cls.name} cannot make sub-communicators (--split)")
    if len(plan.splits) == 1:
        split = plan.splits[0]
        size = nodes.split_size(split, hosts)
        try:
            return {split: check_fits(plan, size, ranks_here, say)}
        except UsageError as exc:
            if split == "all":
                raise
            raise UsageError(f"--split {split} ({size} rank(s) per communicator): {exc}") from None
    by_split = {}
    for split in plan.splits:
        size = nodes.split_size(split, hosts)
        tell = (lambda text, split=split: say(f"{text} (--split {split})")) if say else None
        by_split[split] = check_fits(replace(plan, ops=list(plan.ops), all_ops=True), size,
                                     ranks_here, tell)
    ran = {case.op.name for cases in by_split.values() for case in cases}
    for op in plan.ops:
        if op.name not in ran and not plan.all_ops:
            sizes = {s: nodes.split_size(s, hosts) for s in plan.splits}
            raise UsageError(f"{op.name} runs on none of the splits: "
                             + "; ".join(f"{s}: {op.rank_problem(n)}" for s, n in sizes.items()))
    return by_split


def _split_jobs(be, by_split, hosts, sync, arena):
    """The jobs of backend `be` on every split. The sync (barrier before each sample, the
    agreed per-sample max) stays on the whole world, so the communicators of a split run each
    sample at the same time, as nccl-tests does."""
    jobs = []
    for split, cases in by_split.items():
        sub = nodes.split_backend(be, split, hosts)
        world_of = nodes.members(split, be.rank, hosts) if split != "all" else None
        jobs += [Job(sub, case, sync, arena, split=split, world=be, world_of=world_of)
                 for case in cases]
    return jobs


def _gather_rows(job, rank, m, wrong):
    """At world rank 0: (world rank, its samples or None when idle, wrong elements, world rank
    of its peer or -1, flags its program raised, none when idle) of every rank."""
    case, here = job.case, job.be.rank
    peer = case.op.peer_of(case, here)
    if peer >= 0 and job.world_of:
        peer = job.world_of[peer]
    active = case.op.active_in(case, here)  # an idle rank's empty program is no finding
    local, flags = (m.local_s, m.flags) if active else (None, ())
    return (job.world or job.be).gather((rank, local, wrong, peer, flags))


