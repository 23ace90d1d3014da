"""Overhead of commbench's gloo backend and harness over a bare `dist.all_reduce` loop.

Not collected by pytest. Run it on a quiet machine:
    .venv/bin/python tests/benchmarks/perf_torch_allreduce.py            # starts 2 local ranks
    .venv/bin/torchrun --standalone --nproc-per-node 2 tests/benchmarks/perf_torch_allreduce.py

Four ways to time all_reduce of float32 buffers. Each tick takes one sample of each, in a
seeded shuffled order (the same on every rank), so the four see the same state of the machine;
a sample is k back-to-back calls after a barrier (the same k for all four), its time the max
over ranks, in seconds per call:
  bare          for _ in range(k): dist.all_reduce(recv)                    (in place)
  cb-inplace    commbench's allreduce_inplace op on the gloo backend, one sample by
                bench.harness.measure (calls=k, one sample)
  bare+copy     for _ in range(k): recv.copy_(send); dist.all_reduce(recv)  (out of place)
  cb-allreduce  commbench's allreduce op (out of place: the same copy + all_reduce), by measure
All use the same buffers (commbench's arena). Printed per size: the median per variant, and
the median with its 95% CI of the per-tick ratios cb-inplace / bare and cb-allreduce /
bare+copy (commbench's own overhead; paired per tick, so slow drifts of a shared machine
cancel), and cb-allreduce / bare (what the out-of-place definition costs over an in-place loop).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SIZES = {"64K": 64 << 10, "1M": 1 << 20, "16M": 16 << 20}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ticks", type=int, default=60, help="samples per variant (default 60)")
    p.add_argument("--sample-time", type=float, default=0.05,
                   help="seconds a sample should last, sets k (default 0.05)")
    args = p.parse_args()
    from bench.world import detect_world

    world = detect_world()
    if world is None:
        from local_ranks import run_self

        return run_self(__file__, sys.argv[1:], 2)

    import torch
    import torch.distributed as dist

    from bench.backends.torch_dist import GlooBackend
    from bench.harness import Sampling, Sync, measure
    from bench.ops import get_op
    from bench.rank_loop import buffers_of

    be = GlooBackend(world)
    rank, n = be.rank, be.size
    barrier = be.control_barrier()
    clock = time.perf_counter
    sync = Sync(barrier=barrier, allreduce_max=be.allreduce_max)
    rng = np.random.default_rng(1)
    all_reduce = dist.all_reduce
    results = {}
    for label, nbytes in SIZES.items():
        arena = be.alloc(2 * nbytes + 2 * 4096)
        programs = {}
        for name in ("allreduce", "allreduce_inplace"):
            op = get_op(name)
            case = op.case(nbytes, n, 4)
            send, recv, ack = buffers_of(be, arena, case, "float32")
            init_send, init_recv = op.initial(case, rank)
            if init_send is not None:
                be.write(send, init_send)
            be.write(recv, init_recv)
            programs[name] = op.program(be, send, recv, ack, case, rank)
            programs[name](1)
            assert (be.read(recv) == op.expected(case, rank)).all(), f"commbench {name} is wrong"
        case = get_op("allreduce").case(nbytes, n, 4)
        send, recv, _ = buffers_of(be, arena, case, "float32")  # the allreduce op's buffers

        def bare(k):
            for _ in range(k):
                all_reduce(recv)

        def bare_copy(k):
            for _ in range(k):
                recv.copy_(send)
                all_reduce(recv)

        for f in (bare, bare_copy, *programs.values()):  # warm every variant
            f(2)
        barrier()
        t0 = clock()
        bare_copy(3)
        per_call = float(be.allreduce_max(np.array([(clock() - t0) / 3]))[0])
        k = max(1, round(args.sample_time / per_call))  # the same k for every variant

        def plain(run):
            barrier()
            t0 = clock()
            run(k)
            return float(be.allreduce_max(np.array([(clock() - t0) / k]))[0])

        def harness(program):
            s = Sampling(sample_time_s=args.sample_time, min_samples=1, max_samples=1,
                         ci_target=0.0, budget_s=1e9)
            return measure(program, 1, sync, s, calls=k).agreed_s[0]

        runs = {"bare": lambda: plain(bare), "cb-inplace": lambda: harness(programs["allreduce_inplace"]),
                "bare+copy": lambda: plain(bare_copy), "cb-allreduce": lambda: harness(programs["allreduce"])}
        got = {name: [] for name in runs}
        names = list(runs)
        for _ in range(args.ticks):
            for i in rng.permutation(len(names)):  # same seed on every rank: same order
                got[names[i]].append(runs[names[i]]())
        results[label] = (k, got)
        arena = programs = None  # free the buffers before the next size
    if rank == 0:
        from bench.core.stats import median_ci

        print(f"# gloo all_reduce float32, {n} ranks, torch {torch.__version__}, "
              f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, {args.ticks} samples per "
              "variant; time per call = median over samples of the max over ranks; ratios: "
              "median [95% CI] of per-sample ratios")
        print(f"{'size':>5} {'k':>3} {'bare(us)':>9} {'cb-inpl(us)':>11} {'bare+copy(us)':>13} "
              f"{'cb-allr(us)':>11}  {'cb-inpl/bare':>21}  {'cb-allr/bare+copy':>21}  {'cb-allr/bare':>21}")

        def ratio(a, b):
            med, lo, hi = median_ci(np.array(got[a]) / np.array(got[b]))
            return f"{med:.3f} [{lo:.3f}, {hi:.3f}]"

        for label, (k, got) in results.items():
            m = {name: float(np.median(v)) * 1e6 for name, v in got.items()}
            print(f"{label:>5} {k:>3} {m['bare']:>9.1f} {m['cb-inplace']:>11.1f} {m['bare+copy']:>13.1f} "
                  f"{m['cb-allreduce']:>11.1f}  {ratio('cb-inplace', 'bare'):>21}  "
                  f"{ratio('cb-allreduce', 'bare+copy'):>21}  {ratio('cb-allreduce', 'bare'):>21}")
        # What commbench adds per call, without the noise of a collective: the prepared callable
        # and the op's loop against a direct call, with a stand-in for dist.all_reduce.
        from functools import partial

        from bench.ops.loops import loop

        def stub(tensor, group=None):
            pass

        def direct(k):
            for _ in range(k):
                stub(recv)

        prepared = loop(partial(stub, recv, group=None))
        best = {}
        for name, run in (("direct", direct), ("commbench", prepared)):
            times = []
            for _ in range(7):
                t0 = clock()
                run(100000)
                times.append((clock() - t0) / 100000)
            best[name] = min(times)
        print(f"# per-call cost with a no-op collective: direct {best['direct'] * 1e9:.0f} ns, "
              f"commbench's prepared call in its loop {best['commbench'] * 1e9:.0f} ns")
    be.finalize()
    return 0


if __name__ == "__main__":
    sys.exit(main())
