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
class CaseState:
    """What rank 0 accumulates for one case over the rounds."""
    calls: int | None = None
    agreed: list = field(default_factory=list)
    wrong: int = 0
    rounds: int = 0


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
    be = plan.backend(world)
    rank, n = be.rank, be.size
    writer = None
    try:
        hosts = be.bcast(be.gather(socket.gethostname()))
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
        writer, seed = _start_recording(args, plan, be, hosts, cases)
        return _measure_all(args, plan, be, cases, writer, seed, clock)
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
        be.abort(EXIT_ABORT)
        return EXIT_ABORT


def _start_recording(args, plan, be, hosts, cases):
    from bench.record import RunWriter, base_meta, buffer_info, new_run_id, timer_info

    rank, n = be.rank, be.size
    if rank == 0:
        out = Path(args.out or Path("results") / new_run_id(args.backend, n))
        seed = args.seed if args.seed is not None else int(time.time_ns() % 2**31)
        agreed = (str(out), seed)
    else:
        agreed = None
    out, seed = be.bcast(agreed)
    if rank != 0:
        return None, seed
    settings = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    settings.update(seed=seed, sampling=asdict(plan.sampling), sizes=plan.sizes)
    meta = base_meta(Path(out).name, ["commbench"] + list(args._argv), settings)
    meta.update(
        backend={"name": plan.backend.name, **be.versions()}, nranks=n,
        nnodes=len(set(hosts)), hosts=hosts, timer=timer_info(), method=METHOD,
        buffers=buffer_info(PAGE), dtype=plan.dtype,
        ops={op.name: op.describe() for op in plan.ops},
    )
    return RunWriter(Path(out), meta), seed


def _measure_all(args, plan, be, cases, writer, seed, clock) -> int:
    from bench.watchdog import Watchdog

    rank, n = be.rank, be.size
    on_fire = (lambda msg: writer.finish("aborted", error=msg)) if writer else None
    watchdog = Watchdog(args.timeout, rank, on_fire)
    sync = Sync(barrier=be.barrier(), allreduce_max=be.allreduce_max, device_sync=be.sync,
                clock=clock)
    arena = be.alloc(arena_bytes(cases))
    if writer:
        from bench.record import buffer_info
        writer.write_meta(buffers=buffer_info(PAGE))
    calls = {}              # case index -> calibrated k, on every rank
    history = {}            # case index -> agreed sample times so far (identical on every rank)
    states = [CaseState() for _ in cases]  # rank 0's record
    rng = np.random.default_rng(seed)
    started, total, done = time.monotonic(), len(cases) * plan.repeats, 0
    last_progress = started
    for round_no in range(plan.repeats):
        order = rng.permutation(len(cases)) if plan.repeats > 1 else range(len(cases))
        for index in order:
            case = cases[index]
            label = f"{case.op.name} at {case.nbytes} B"
            watchdog.arm(label)
            try:
                m, wrong = run_case(be, case, arena, plan.dtype, sync, plan.sampling,
                                    calls.get(index), history.get(index, []))
                calls[index] = m.calls
                history[index] = history.get(index, []) + m.agreed_s
                active = case.op.active(rank, n)
                gathered = be.gather((rank, m.local_s if active else None, wrong))
            except Exception as exc:
                exc._commbench_case = label
                raise
            if rank == 0:
                _record_case(writer, plan, case, states[index], round_no, m, gathered)
                writer.write_summary(_summary_rows(plan, cases, states))
            done += 1
            now = time.monotonic()
            if rank == 0 and not args.quiet and now - last_progress > 2.0:
                left = (now - started) / done * (total - done)
                print(f"commbench: {done}/{total} cases, {now - started:.0f} s elapsed, "
                      f"~{left:.0f} s left", file=sys.stderr, flush=True)
                last_progress = now
    watchdog.disarm()
    wrong_total = be.bcast(sum(s.wrong for s in states) if rank == 0 else None)
    if rank == 0:
        writer.finish("wrong" if wrong_total else "complete")
        if not args.quiet:
            from analysis.tables import format_summary
            from analysis.rundir import load_summary

            print(format_summary(load_summary(writer.dir), writer.meta))
            print(f"# results: {writer.dir}")
        if wrong_total:
            print(f"commbench: {wrong_total} elements failed validation (see the #wrong column)",
                  file=sys.stderr)
    return EXIT_WRONG if wrong_total else 0


def _record_case(writer, plan, case, state, round_no, m, gathered):
    backend, op, dtype = plan.backend.name, case.op.name, plan.dtype
    rows = []
    for rank, local, wrong in gathered:
        state.wrong += wrong
        for i, t in enumerate(local or []):
            rows.append((backend, op, dtype, case.nbytes, case.nranks, "all", round_no, i, rank,
                         m.calls, float(t)))
    writer.append_samples(rows)
    state.agreed += m.agreed_s
    state.rounds += 1


def _summary_rows(plan, cases, states):
    rows = []
    for case, state in zip(cases, states):
        if not state.rounds:
            continue
        op, n = case.op, case.nranks
        row = {"backend": plan.backend.name, "op": op.name, "dtype": plan.dtype,
               "nbytes": case.nbytes, "nranks": n, "split": "all", "count": case.send_count
               or case.recv_count, "wrong": state.wrong, "rounds": state.rounds}
        row.update(summarize_case(state.agreed, case.nbytes, op.bus_factor(n), op.msgs_per_op(n)))
        rows.append(row)
    return rows
