"""Timing of one case, identical for every op and backend.

A sample is k back-to-back calls after a barrier, timed by each rank: by its host clock
(after a device synchronize, as nccl-tests) or, with a device timer (--timer cuda), by events
on the device; the sample's time is the max over ranks. k is calibrated collectively so a
sample lasts at least `sample_time_s`. Samples are taken in batches; after each batch the
ranks agree (one small allreduce, outside the timed region) on the per-sample max and the
elapsed time, and every rank evaluates the same stop rule on the same numbers, so they stop
together without a broadcast. The clock is injected so this module can be tested without
time passing.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from bench.core.stats import relative_ci_width


@dataclass(frozen=True)
class Sampling:
    sample_time_s: float = 1e-3   # a sample lasts at least this long (k calls)
    min_samples: int = 10         # per case and round
    max_samples: int = 5000       # per case and round
    ci_target: float = 0.02       # stop when the 95% CI of the median is this narrow (relative)
    budget_s: float = 1.0         # ... or when this much time went into the case in this round
    max_calls: int = 1 << 22      # cap on k


@dataclass
class Sync:
    """What the harness needs from the ranks: untimed agreement and synchronisation."""
    barrier: Callable[[], None]
    allreduce_max: Callable[[np.ndarray], np.ndarray]
    device_sync: Callable[[], None] = lambda: None
    clock: Callable[[], float] = time.perf_counter
    # Times on the device instead of the host clock: device_timer() starts timing (enqueues a
    # start event) and returns stop(), which ends it and gives the seconds between the two.
    device_timer: Callable[[], Callable[[], float]] | None = None


@dataclass
class Measurement:
    calls: int                                  # k
    local_s: list = field(default_factory=list)   # this rank: seconds per op, per sample
    agreed_s: list = field(default_factory=list)  # max over ranks, per sample
    stop: str = ""                              # why sampling ended
    flags: tuple = ()                           # what the program says of itself (empty-graph)


def _timed(run, k: int, sync: Sync) -> float:
    prepare = getattr(run, "prepare", None)
    if prepare is not None:
        prepare(k)  # per-k setup that is not the op's cost (CUDA graph capture), untimed
    sync.barrier()
    if sync.device_timer is not None:
        stop = sync.device_timer()
        run(k)
        return stop()
    t0 = sync.clock()
    run(k)
    sync.device_sync()
    return sync.clock() - t0


def calibrate(run, sync: Sync, settings: Sampling) -> int:
    """k such that a sample lasts about sample_time_s on the slowest rank. k grows
    geometrically until a sample lasts a quarter of the target, confirmed by a second,
    warm measurement (the first calls are the warmup and may be slow), then k is scaled from
    that warm measurement."""
    k, confirmed, quarter = 1, False, settings.sample_time_s / 4
    while k < settings.max_calls:
        t = float(sync.allreduce_max(np.array([_timed(run, k, sync)]))[0])
        if t >= quarter:
            if confirmed:
                break
            confirmed = True
            continue
        k = min(settings.max_calls, 8 * k if t <= 0 else max(2 * k, min(8 * k, math.ceil(k * quarter / t))))
    else:
        return settings.max_calls
    return int(min(settings.max_calls, max(k, math.ceil(k * settings.sample_time_s / t))))


def stop_reason(agreed, this_round: int, elapsed_s: float, settings: Sampling) -> str:
    """'' to go on; otherwise why to stop. `agreed` holds the case's samples of all rounds."""
    if this_round >= settings.max_samples:
        return "max_samples"
    if elapsed_s >= settings.budget_s and this_round >= 1:
        return "budget"
    if this_round >= settings.min_samples and relative_ci_width(agreed) <= settings.ci_target:
        return "ci"
    return ""


def measure(run, ops_per_call: int, sync: Sync, settings: Sampling, calls: int | None = None,
            prior=()) -> Measurement:
    """Sample one case until the stop rule holds. `calls` reuses an earlier calibration;
    `prior` are the agreed samples of earlier rounds of the same case."""
    k = calls or calibrate(run, sync, settings)
    m = Measurement(calls=k)
    per_op = 1.0 / (k * ops_per_call)
    start = sync.clock()
    batch = settings.min_samples
    while True:
        local = [_timed(run, k, sync) * per_op for _ in range(batch)]
        agreed = sync.allreduce_max(np.array(local + [sync.clock() - start]))
        m.local_s += local
        m.agreed_s += [float(t) for t in agreed[:-1]]
        elapsed = float(agreed[-1])
        m.stop = stop_reason(list(prior) + m.agreed_s, len(m.agreed_s), elapsed, settings)
        if m.stop:
            m.flags = tuple(sorted(getattr(run, "flags", ())))
            return m
        # Check less often as samples pile up, but never overrun the budget by much.
        per_sample = elapsed / len(m.agreed_s)
        left = (settings.budget_s - elapsed) / per_sample if per_sample > 0 else batch
        batch = int(max(1, min(max(2, len(m.agreed_s) // 2), left + 1,
                               settings.max_samples - len(m.agreed_s))))
