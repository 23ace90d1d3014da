"""The body of `commbench run` on every rank: cases in (shuffled) rounds, each checked on an
untimed call, then timed by the harness; rank 0 records each case as soon as it is done."""
from __future__ import annotations

import os
import socket
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from analysis.rundir import summarize_case
from bench import contention
from bench.errors import UsageError
from bench.harness import Sync, measure
from bench.run import EXIT_ABORT, EXIT_WRONG, PAGE, Plan, _pages, arena_bytes, check_fits

METHOD = {
    "synchronisation": "barrier before every sample",
    "sample": "k back-to-back calls timed on each rank with its own clock; k calibrated "
              "collectively so a sample lasts at least sample_time_s on the slowest rank",
    "time_per_op": "sample duration / (k x ops per call)",
    "across_ranks": "the time of a sample is the max over ranks (per-rank rows are kept)",
    "summary": "median over samples with a 95% nonparametric (binomial order-statistic) CI",
    "stop_rule": "after at least min_samples, stop when (ci_high - ci_low) / median <= ci_target, "
                 "or when the case's budget for the round is spent, or at max_samples",
    "warmup": "the calibration calls (k grown geometrically) and the untimed check call",
    "validation": "one untimed call per case and round on small-integer data; every element "
                  "of every receive buffer compared exactly with the expected result",
}


@dataclass
class Job:
    """One case on one backend, across the rounds. Every rank holds the same calibrated k and
    the same agreed sample times; rank 0 also accumulates what it records."""
    be: object
    case: object
    sync: Sync
    arena: object
    calls: int | None = None
    agreed: list = field(default_factory=list)
    wrong: int = 0
    rounds: int = 0

    @property
    def label(self) -> str:
        return f"{self.case.op.name} at {self.case.nbytes} B on {self.be.name}"


def _injected(what: str, op: str, nbytes: int, rank: int) -> bool:
    """Fault injection for tests: COMMBENCH_INJECT=kind:op:nbytes:rank (nbytes may be *)."""
    spec = os.environ.get("COMMBENCH_INJECT", "")
    for item in spec.split(","):
        parts = item.split(":")
        if len(parts) == 4 and parts[0] == what and parts[1] == op \
                and parts[2] in ("*", str(nbytes)) and int(parts[3]) == rank:
            return True
    return False


def _buffers(be, arena, case, dtype):
    send_bytes = _pages(case.send_count * case.itemsize)
    recv_bytes = _pages(case.recv_count * case.itemsize)
    send = be.view(arena, 0, case.send_count, dtype)
    recv = be.view(arena, send_bytes, case.recv_count, dtype)
    ack = be.view(arena, send_bytes + recv_bytes, 1, dtype)
    return send, recv, ack


def run_case(be, case, arena, dtype, sync, sampling, state_calls, prior):
    """Check the op once, then time it. Returns (Measurement, wrong elements on this rank)."""
    op, rank = case.op, be.rank
    send, recv, ack = _buffers(be, arena, case, dtype)
    init_send, init_recv = op.initial(case, rank)
    if init_send is not None:
        be.write(send, init_send)
    if init_recv is not None:
        be.write(recv, init_recv)
    program = op.program(be, send, recv, ack, case, rank)
    if _injected("raise", op.name, case.nbytes, rank):
        raise RuntimeError("injected failure")
    if _injected("hang", op.name, case.nbytes, rank):
        while True:
            time.sleep(1)
    sync.barrier()
    program(1)
    be.sync()
    expected = op.expected(case, rank)
    wrong = 0
    if expected is not None:
        got = be.read(recv).astype(np.float64)
        if _injected("corrupt", op.name, case.nbytes, rank):
            got[len(got) // 2] += 1
        wrong = int(np.count_nonzero(got != expected.astype(np.float64)))
    m = measure(program, op.ops_per_call, sync, sampling, calls=state_calls, prior=prior)
    return m, wrong


def run_spmd(args, plan: Plan, world, clock=time.perf_counter) -> int:
    """Measure every case on this rank. `clock` is injectable for tests."""
    backends = []
    writer = None
    rank = world.rank
    try:
        backends = [cls(world) for cls in plan.backends]
        control = backends[0]  # agreement that is not about a measurement
        rank, n = control.rank, control.size
        hosts = control.bcast(control.gather(socket.gethostname()))
        problem = None
        try:
            if args.nranks is not None and args.nranks != n:
                raise UsageError(f"-n {args.nranks} given, but the launcher started {n} ranks")
            say = (lambda text: print(text, file=sys.stderr)) if rank == 0 and not args.quiet else None
            cases = check_fits(plan, n, hosts.count(socket.gethostname()), say)
        except UsageError as exc:
            problem = str(exc)
        if problem:
            if rank == 0:
                print(f"commbench: error: {problem}", file=sys.stderr)
            return 2
        writer, seed = _start_recording(args, plan, backends, hosts)
        jobs = []
        for be in backends:
            arena = be.alloc(arena_bytes(cases))
            sync = Sync(barrier=be.barrier(), allreduce_max=be.allreduce_max,
                        device_sync=be.sync, clock=clock)
            jobs += [Job(be, case, sync, arena) for case in cases]
        if writer:
            from bench.record import buffer_info
            writer.write_meta(buffers=buffer_info(PAGE))
        return _measure_all(args, plan, control, jobs, writer, seed)
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - any failure must take the whole job down
        where = getattr(exc, "_commbench_case", "setup")
        message = f"commbench: rank {rank} failed in {where}: {type(exc).__name__}: {exc}"
        print(message, file=sys.stderr, flush=True)
        if os.environ.get("COMMBENCH_DEBUG"):
            traceback.print_exc()
        if writer is not None:
            writer.finish("aborted", error=message)
        if backends:
            backends[0].abort(EXIT_ABORT)
        os._exit(EXIT_ABORT)


def _start_recording(args, plan, backends, hosts):
    from bench.record import RunWriter, base_meta, buffer_info, new_run_id, timer_info

    control = backends[0]
    rank, n = control.rank, control.size
    if rank == 0:
        out = Path(args.out or Path("results") / new_run_id(args.backend, n))
        seed = args.seed if args.seed is not None else int(time.time_ns() % 2**31)
        agreed = (str(out), seed)
    else:
        agreed = None
    out, seed = control.bcast(agreed)
    if rank != 0:
        return None, seed
    settings = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    settings.update(seed=seed, sampling=asdict(plan.sampling), sizes=plan.sizes)
    meta = base_meta(Path(out).name, ["commbench"] + list(args._argv), settings)
    meta.update(
        backend={"name": ",".join(be.name for be in backends),
                 **{k: v for be in reversed(backends) for k, v in be.versions().items()}},
        backends={be.name: be.versions() for be in backends}, nranks=n,
        nnodes=len(set(hosts)), hosts=hosts, timer=timer_info(), method=METHOD,
        buffers=buffer_info(PAGE), dtype=plan.dtype,
        ops={op.name: op.describe() for op in plan.ops},
    )
    return RunWriter(Path(out), meta), seed


def _measure_all(args, plan, control, jobs, writer, seed) -> int:
    """Rounds over all jobs (every backend's cases together), shuffled in each round when
    there are several, so drifts of the machine spread over all cases."""
    from bench.watchdog import Watchdog

    rank = control.rank
    on_fire = (lambda msg: writer.finish("aborted", error=msg)) if writer else None
    watchdog = Watchdog(args.timeout, rank, on_fire)
    machine_before = contention.snapshot()
    rng = np.random.default_rng(seed)
    started, total, done = time.monotonic(), len(jobs) * plan.repeats, 0
    last_progress = started
    for round_no in range(plan.repeats):
        order = rng.permutation(len(jobs)) if plan.repeats > 1 else range(len(jobs))
        for job in (jobs[i] for i in order):
            watchdog.arm(job.label)
            try:
                m, wrong = run_case(job.be, job.case, job.arena, plan.dtype, job.sync,
                                    plan.sampling, job.calls, job.agreed)
                job.calls = m.calls
                job.agreed = job.agreed + m.agreed_s
                active = job.case.op.active(rank, job.be.size)
                gathered = job.be.gather((rank, m.local_s if active else None, wrong))
            except Exception as exc:
                exc._commbench_case = job.label
                raise
            if rank == 0:
                _record_case(writer, plan, job, round_no, m, gathered)
                writer.write_summary(_summary_rows(plan, jobs))
            done += 1
            now = time.monotonic()
            if rank == 0 and not args.quiet and now - last_progress > 2.0:
                left = (now - started) / done * (total - done)
                print(f"commbench: {done}/{total} cases, {now - started:.0f} s elapsed, "
                      f"~{left:.0f} s left", file=sys.stderr, flush=True)
                last_progress = now
    watchdog.disarm()
    windows = control.gather(contention.window(machine_before, contention.snapshot()))
    wrong_total = control.bcast(sum(j.wrong for j in jobs) if rank == 0 else None)
    if rank == 0:
        writer.finish("wrong" if wrong_total else "complete",
                      contention=contention.summarize(windows))
        if not args.quiet:
            from analysis.tables import format_summary
            from analysis.rundir import load_summary

            print(format_summary(load_summary(writer.dir), writer.meta))
            print(f"# machine: {contention.describe(writer.meta['contention'])}")
            print(f"# results: {writer.dir}")
        if wrong_total:
            print(f"commbench: {wrong_total} elements failed validation (see the #wrong column)",
                  file=sys.stderr)
    return EXIT_WRONG if wrong_total else 0


def _record_case(writer, plan, job, round_no, m, gathered):
    case = job.case
    fixed = (job.be.name, case.op.name, plan.dtype, case.nbytes, case.nranks, "all", round_no)
    rows = []
    for rank, local, wrong in gathered:
        job.wrong += wrong
        rows += [fixed + (i, rank, m.calls, float(t)) for i, t in enumerate(local or [])]
    writer.append_samples(rows)
    job.rounds += 1


def _summary_rows(plan, jobs):
    rows = []
    for job in jobs:
        if not job.rounds:
            continue
        op, n = job.case.op, job.case.nranks
        row = {"backend": job.be.name, "op": op.name, "dtype": plan.dtype,
               "nbytes": job.case.nbytes, "nranks": n, "split": "all",
               "count": job.case.send_count or job.case.recv_count, "wrong": job.wrong,
               "rounds": job.rounds}
        row.update(summarize_case(job.agreed, job.case.nbytes, op.bus_factor(n), op.msgs_per_op(n)))
        rows.append(row)
    return rows
