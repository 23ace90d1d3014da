"""The timed loop an op's program is: `loop` builds program(k), k back-to-back runs of its
steps with no overhead beyond the calls themselves, and the structured steps it may hold
(`window_step`: a window of non-blocking transfers, as OSU; `spin_step`: a calibrated idle
wait). Every step says what it does by a `desc` tuple, so a backend can run the same program
in compiled code (bench.native)."""
from __future__ import annotations

WINDOW = 64  # messages in flight per window for bw, bibw and multipair (as OSU)


def loop(*steps):
    """program(k): run the steps (zero-argument callables) k times, with no per-call overhead
    beyond the calls themselves. The program lists its steps (`program.steps`), so a backend
    can run the same sequence in compiled code (bench.native): a step says what it does by a
    `desc` tuple, the backend's primitives (name, *arguments) or the structures built here,
    ("window", W, posts) from window_step and ("spin", seconds) from spin_step."""
    if not steps:
        def run(k):
            return None
    elif len(steps) == 1:
        (a,) = steps

        def run(k):
            for _ in range(k):
                a()
    elif len(steps) == 2:
        a, b = steps

        def run(k):
            for _ in range(k):
                a()
                b()
    else:
        def run(k):
            for _ in range(k):
                for step in steps:
                    step()
    run.steps = steps
    return run


def window_step(be, *posts):
    """One call of a windowed transfer: WINDOW starts of each prepared non-blocking call (all
    of the first, then all of the next), then wait for all."""
    waitall = be.waitall
    if len(posts) == 1:
        (start,) = posts

        def window():
            waitall([start() for _ in range(WINDOW)])
    else:
        first, second = posts

        def window():
            reqs = [first() for _ in range(WINDOW)]
            reqs += [second() for _ in range(WINDOW)]
            waitall(reqs)
    window.desc = ("window", WINDOW, posts)
    return window


def spin_step(seconds: float, clock=None, calibrate: int = 21):
    """A busy wait that lasts `seconds` on average, as a zero-argument callable. A bare spin
    overshoots by its own call and clock-read cost (0.2 µs in Python, as large as the o_s it
    is meant to isolate), so the target is shortened by the median overshoot of `calibrate`
    trial waits (median: a preempted trial does not count), measured at the first call (a
    native loop runs its own calibrated spin, from desc, and never calls this one)."""
    import time

    clock = clock or time.perf_counter

    def wait(target):
        end = clock() + target
        while clock() < end:
            pass

    target = None

    def calibrated():
        nonlocal target
        target = seconds
        if calibrate and seconds > 0:
            over = []
            for _ in range(calibrate):
                t0 = clock()
                wait(seconds)
                over.append(clock() - t0 - seconds)
            target = max(0.0, seconds - sorted(over)[len(over) // 2])
        return target

    def spin():
        wait(calibrated() if target is None else target)
    spin.desc = ("spin", seconds)  # type: ignore[attr-defined]  # a function's attribute: mypy has none
    return spin
