"""A short calibration of the machine itself, stored with a run (`meta.json` → `noise`):
timer resolution and read cost, OS jitter on a fixed quantum of work on every rank, and the
run-to-run spread of a tiny ping-pong measured in separate short bursts. The last one shows
what one run's interval cannot: machines that switch latency modes for seconds at a time.

`commbench noise` runs only this (a short run of the barrier with the calibration, on 2 local
ranks by default: bench.noise_run) and prints it; `commbench run` does it
first unless `--no-noise` is given."""
from __future__ import annotations

import time

import numpy as np

QUANTUM_S = 50e-6     # one unit of fixed work
QUANTA = 2000         # about 0.1 s per rank
BURSTS = 8            # ping-pong bursts
BURST_BUDGET_S = 0.05


def _spin_work(n: int) -> float:
    acc = 0.0
    for i in range(n):
        acc += i * 0.5
    return acc


def jitter(clock=time.perf_counter) -> dict:
    """Time QUANTA repetitions of the same work; the spread is what the OS (interrupts,
    preemption, frequency changes) adds."""
    n = 64
    while True:  # size the work to about one quantum
        t0 = clock()
        _spin_work(n)
        if clock() - t0 >= QUANTUM_S or n > 1 << 24:
            break
        n *= 2
    times = np.empty(QUANTA)
    for i in range(QUANTA):
        t0 = clock()
        _spin_work(n)
        times[i] = clock() - t0
    med = float(np.median(times))
    return {"quantum_s": med, "p99_over_median": float(np.quantile(times, 0.99) / med),
            "max_over_median": float(times.max() / med),
            "interrupted_share": float(np.mean(times > 1.5 * med)), "quanta": QUANTA}


def pingpong_spread(be, sync) -> dict | None:
    """Median 8-byte ping-pong latency in BURSTS separate bursts between the first and the
    last rank; the spread of the burst medians is the run-to-run noise."""
    from bench.harness import Sampling, measure
    from bench.ops import get_op

    if be.size < 2:
        return None
    op = get_op("pingpong")
    case = op.case(8, be.size, 1)
    arena = be.alloc(3 * 4096)
    send, recv, ack = (be.view(arena, i * 4096, c, "uint8") for i, c in enumerate((8, 8, 1)))
    if op.initial(case, be.rank)[0] is not None:
        be.write(send, op.initial(case, be.rank)[0])
    program = op.program(be, send, recv, ack, case, be.rank)
    settings = Sampling(sample_time_s=2e-4, min_samples=5, budget_s=BURST_BUDGET_S)
    medians, calls = [], None
    for _ in range(BURSTS):
        m = measure(program, op.ops_per_call, sync, settings, calls=calls)
        calls = m.calls
        medians.append(float(np.median(m.agreed_s)))
        time.sleep(0.02)  # separate the bursts in time
    lo, hi = min(medians), max(medians)
    return {"size_bytes": 8, "burst_medians_s": medians, "max_over_min": hi / lo,
            "cv": float(np.std(medians) / np.mean(medians))}


def calibrate(be, sync, pingpong: bool = True) -> dict | None:
    """Run on every rank; returns rank 0's record (None elsewhere). pingpong=False: the
    backend cannot send point to point on its buffers (gloo on CUDA), so no ping-pong spread."""
    from bench.record import timer_info

    mine = jitter()  # the real clock: this measures the machine, not the harness
    spread = pingpong_spread(be, sync) if pingpong else None
    gathered = be.gather(mine)
    if be.rank != 0:
        return None
    return {"timer": timer_info(), "jitter_per_rank": gathered, "pingpong": spread}

