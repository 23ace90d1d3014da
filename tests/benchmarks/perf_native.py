"""commbench's native loop against a plain C loop (and the Python loop), side by side in one job.

    python tests/benchmarks/perf_native.py [--sizes 4,64,4K,1M,4M] [--dtype float32]
    mpiexec -n 2 python tests/benchmarks/perf_native.py

The plain C loop is compiled here with the same mpicc as commbench's native loop (the MPI
mpi4py uses), one function per op written out as OSU writes it: a barrier, then the clock
read in C, k calls, the clock read in C. commbench is timed as its harness times it: a barrier,
then perf_counter around program(k) (one foreign call per sample for the native loop).
All three use the same buffers and the same k, alternate sample by sample in a shuffled order
(the same on every rank), and each sample's time is the max over ranks; the table shows the
medians (and, as "min n/C", the ratio of the fastest samples: what is left of the overhead on a
machine whose other load makes the medians wander). Targets (issue: a native timed loop for
MPI), on a quiet machine: native ≤ 1.2× C at 1–64 B for pingpong, allreduce, allgather and
barrier; native bandwidth ≥ 0.97× C at 1–4 MiB.

Then OSU Micro-Benchmarks 7.4 itself, side by side with `commbench run`: tests/benchmarks/vs_osu.py
(its docstring says how; --osu-rounds N, default 5, and --osu-ops pass on to it as --rounds and
--ops). --osu-only skips the in-job table; --no-osu skips OSU.
"""
import argparse
import ctypes
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from bench import spawn  # noqa: E402
from bench.settings import Settings  # noqa: E402
from bench.world import detect_world  # noqa: E402

PLAIN_C = r"""
#define _POSIX_C_SOURCE 199309L
#include <mpi.h>
#include <stdint.h>
#include <time.h>
#define C(h) ((MPI_Comm)(intptr_t)(h))
#define T(h) ((MPI_Datatype)(intptr_t)(h))
#define WINDOW 64
static double now(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* every function: k iterations of one op on comm, seconds elapsed (timed in C) */
double pingpong(int64_t comm, void *s, void *r, int n, int64_t dt, int peer, int first, int64_t k) {
    double t0 = now();
    for (int64_t i = 0; i < k; i++) {
        if (first) {
            MPI_Send(s, n, T(dt), peer, 0, C(comm));
            MPI_Recv(r, n, T(dt), peer, 0, C(comm), MPI_STATUS_IGNORE);
        } else {
            MPI_Recv(r, n, T(dt), peer, 0, C(comm), MPI_STATUS_IGNORE);
            MPI_Send(r, n, T(dt), peer, 0, C(comm));
        }
    }
    return now() - t0;
}
double bw(int64_t comm, void *s, void *r, int n, int64_t dt, int peer, int first, int64_t k) {
    MPI_Request req[WINDOW]; char ack[16];
    double t0 = now();
    for (int64_t i = 0; i < k; i++) {
        if (first) {
            for (int w = 0; w < WINDOW; w++) MPI_Isend(s, n, T(dt), peer, 0, C(comm), &req[w]);
            MPI_Waitall(WINDOW, req, MPI_STATUSES_IGNORE);
            MPI_Recv(ack, 1, T(dt), peer, 0, C(comm), MPI_STATUS_IGNORE);
        } else {
            for (int w = 0; w < WINDOW; w++) MPI_Irecv(r, n, T(dt), peer, 0, C(comm), &req[w]);
            MPI_Waitall(WINDOW, req, MPI_STATUSES_IGNORE);
            MPI_Send(ack, 1, T(dt), peer, 0, C(comm));
        }
    }
    return now() - t0;
}
double bibw(int64_t comm, void *s, void *r, int n, int64_t dt, int peer, int first, int64_t k) {
    MPI_Request req[2 * WINDOW];
    double t0 = now();
    for (int64_t i = 0; i < k; i++) {
        for (int w = 0; w < WINDOW; w++) MPI_Irecv(r, n, T(dt), peer, 0, C(comm), &req[w]);
        for (int w = 0; w < WINDOW; w++) MPI_Isend(s, n, T(dt), peer, 0, C(comm), &req[WINDOW + w]);
        MPI_Waitall(2 * WINDOW, req, MPI_STATUSES_IGNORE);
    }
    return now() - t0;
}
double allreduce(int64_t comm, void *s, void *r, int n, int64_t dt, int nr, int unused, int64_t k) {
    double t0 = now();
    for (int64_t i = 0; i < k; i++) MPI_Allreduce(s, r, n, T(dt), MPI_SUM, C(comm));
    return now() - t0;
}
double allgather(int64_t comm, void *s, void *r, int n, int64_t dt, int nr, int unused, int64_t k) {
    double t0 = now();
    for (int64_t i = 0; i < k; i++) MPI_Allgather(s, n, T(dt), r, n, T(dt), C(comm));
    return now() - t0;
}
double reduce_scatter(int64_t comm, void *s, void *r, int n, int64_t dt, int nr, int unused, int64_t k) {
    double t0 = now();
    for (int64_t i = 0; i < k; i++) MPI_Reduce_scatter_block(s, r, n, T(dt), MPI_SUM, C(comm));
    return now() - t0;
}
double alltoall(int64_t comm, void *s, void *r, int n, int64_t dt, int nr, int unused, int64_t k) {
    double t0 = now();
    for (int64_t i = 0; i < k; i++) MPI_Alltoall(s, n / nr, T(dt), r, n / nr, T(dt), C(comm));
    return now() - t0;
}
double broadcast(int64_t comm, void *s, void *r, int n, int64_t dt, int nr, int unused, int64_t k) {
    double t0 = now();
    for (int64_t i = 0; i < k; i++) MPI_Bcast(r, n, T(dt), 0, C(comm));
    return now() - t0;
}
double barrier(int64_t comm, void *s, void *r, int n, int64_t dt, int nr, int unused, int64_t k) {
    double t0 = now();
    for (int64_t i = 0; i < k; i++) MPI_Barrier(C(comm));
    return now() - t0;
}
"""

OPS = ("pingpong", "bw", "bibw", "allreduce", "allgather", "reduce_scatter", "alltoall",
       "broadcast", "barrier")
LATENCY_TARGET = ("pingpong", "allreduce", "allgather", "barrier")  # <= 1.2x C at 1-64 B


def compile_plain(mpicc, comm):
    """The plain C loop, compiled on rank 0 of each node with the same mpicc."""
    from mpi4py import MPI

    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    path = None
    if node.Get_rank() == 0:
        tmp = tempfile.mkdtemp(prefix="commbench-plain-")
        src, path = os.path.join(tmp, "plain.c"), os.path.join(tmp, "plain.so")
        with open(src, "w") as f:
            f.write(PLAIN_C)
        subprocess.run([mpicc, "-O2", "-fPIC", "-shared", "-o", path, src], check=True)
    path = node.bcast(path)
    node.Free()
    lib = ctypes.CDLL(path)
    for name in OPS:
        fn = getattr(lib, name)
        fn.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                       ctypes.c_int64, ctypes.c_int, ctypes.c_int, ctypes.c_int64]
        fn.restype = ctypes.c_double
    return lib


def plain_run(lib, be, case, send, recv, ack):
    """k -> seconds of the plain C loop of this case on this rank (0 for an idle rank)."""
    op, n, rank = case.op, case.nranks, be.rank
    comm = be.comm.handle
    fn = getattr(lib, op.name)
    addr = lambda a: a.__array_interface__["data"][0] if a is not None and a.size else 0  # noqa: E731
    dt = be.MPI.Datatype.fromcode((recv if recv.size else ack).dtype.char).handle
    if op.name in ("pingpong", "bw", "bibw"):
        if rank not in (0, n - 1):
            return lambda k: 0.0
        args = (addr(send), addr(recv), case.send_count, dt, n - 1 if rank == 0 else 0, rank == 0)
    elif op.name == "allgather":
        args = (addr(send), addr(recv), case.send_count, dt, n, 0)
    elif op.name == "reduce_scatter":
        args = (addr(send), addr(recv), case.recv_count, dt, n, 0)
    elif op.name in ("broadcast", "barrier"):
        args = (0, addr(recv), case.recv_count, dt, n, 0)
    else:  # allreduce, alltoall
        args = (addr(send), addr(recv), case.send_count, dt, n, 0)
    return lambda k: fn(comm, *args, k)


def confirmed_k(program, k, sync, sample_time):
    """k scaled so that the median of 5 samples (max over ranks) lasts sample_time: the
    harness's calibration takes one warm sample, which a preemption on a busy machine can
    stretch into a k of 1 (and a sample then times the per-sample overhead, not the op)."""
    times = []
    for _ in range(5):
        sync.barrier()
        t0 = time.perf_counter()
        program(k)
        times.append(float(sync.allreduce_max(np.array([time.perf_counter() - t0]))[0]))
    t = float(np.median(times))
    return max(k, int(np.ceil(k * sample_time / t))) if t > 0 else k


def main(argv=None):
    from bench.backends.mpi import MPIBackend, import_mpi
    from bench.core.units import parse_sizes
    from bench.harness import Sampling, Sync, calibrate
    from bench.ops import get_op
    from bench.plan import arena_bytes, itemsize_of
    from bench.rank_loop import buffers_of

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="4,64,4K,1M,4M")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--ops", default=",".join(OPS))
    p.add_argument("--samples", type=int, default=60)
    p.add_argument("--sample-time", type=float, default=2e-3)
    args = p.parse_args(argv)
    MPI = import_mpi()  # at the thread level commbench uses
    native_be = MPIBackend.create(None, Settings(loop="native", quiet=False))
    python_be = MPIBackend()
    comm, rank, n = native_be.comm, native_be.rank, native_be.size
    lib = compile_plain(native_be.native.mpicc, comm)
    sync = Sync(barrier=python_be.barrier(), allreduce_max=python_be.allreduce_max)
    sampling = Sampling(sample_time_s=args.sample_time)
    itemsize = itemsize_of(args.dtype)
    cases = []
    for name in args.ops.split(","):
        op = get_op(name)
        for nbytes in parse_sizes(args.sizes) if op.sized else [0]:
            cases.append(op.case(nbytes, n, itemsize))
    arena = native_be.alloc(arena_bytes(cases))
    rng = np.random.default_rng(1)  # the same order of the three loops on every rank
    rows = []
    for case in cases:
        send, recv, ack = buffers_of(native_be, arena, case, args.dtype)
        for buf, values in zip((send, recv), case.op.initial(case, rank)):
            if values is not None:
                buf[...] = values
        native = native_be.wrap_program(case.op.program(native_be, send, recv, ack, case, rank))
        python = case.op.program(python_be, send, recv, ack, case, rank)
        plain = plain_run(lib, native_be, case, send, recv, ack)
        assert getattr(native, "loop", "") == "native" or not getattr(native, "steps", None)
        k = calibrate(native, sync, sampling)
        k = confirmed_k(native, k, sync, args.sample_time)

        def timed(program):
            def sample():
                sync.barrier()
                t0 = time.perf_counter()
                program(k)
                return time.perf_counter() - t0
            return sample

        def timed_in_c():
            sync.barrier()
            return plain(k)

        loops = {"C": timed_in_c, "native": timed(native), "python": timed(python)}
        for run in loops.values():
            run()  # warm
        times = {name: [] for name in loops}
        per_op = 1.0 / (k * case.op.ops_per_call)
        for _ in range(args.samples):
            for name in rng.permutation(list(loops)):
                t = loops[name]() * per_op
                times[name].append(float(sync.allreduce_max(np.array([t]))[0]))
        rows.append((case.op.name, case.nbytes, k, {name: float(np.median(v)) for name, v in times.items()},
                     {name: float(np.min(v)) for name, v in times.items()}))
    if rank == 0:
        print(f"# {n} ranks, dtype {args.dtype}, {MPI.Get_library_version().splitlines()[0].strip()}")
        print(f"# median over {args.samples} interleaved samples of the per-op time, max over ranks")
        print(f"{'op':<15}{'S(B)':>9}{'k':>8}{'C(us)':>11}{'native(us)':>12}{'python(us)':>12}"
              f"{'native/C':>10}{'python/C':>10}{'min n/C':>9}  target (on medians)")
        ok = True
        for op, nbytes, k, t, low in rows:
            ratio, pyratio = t["native"] / t["C"], t["python"] / t["C"]
            target = ""
            if op in LATENCY_TARGET and nbytes <= 64:
                good = ratio <= 1.2
                target = f"time <= 1.2x C {'ok' if good else 'MISSED'}"
                ok &= good
            elif nbytes >= 1 << 20:
                good = t["C"] / t["native"] >= 0.97
                target = f"bw >= 0.97x C {'ok' if good else 'MISSED'}"
                ok &= good
            print(f"{op:<15}{nbytes:>9}{k:>8}{t['C'] * 1e6:>11.3f}{t['native'] * 1e6:>12.3f}"
                  f"{t['python'] * 1e6:>12.3f}{ratio:>10.3f}{pyratio:>10.3f}"
                  f"{low['native'] / low['C']:>9.3f}  {target}")
        print("all targets met" if ok else "some targets missed", flush=True)


if __name__ == "__main__":
    if {"-h", "--help"} & set(sys.argv[1:]):  # once, before any rank or OSU build starts
        print(__doc__)
        sys.exit(0)
    if detect_world() is None:
        parent = argparse.ArgumentParser(add_help=False)
        parent.add_argument("--osu-rounds", type=int, default=5)
        parent.add_argument("--osu-ops")
        parent.add_argument("--osu-only", action="store_true")
        parent.add_argument("--no-osu", action="store_true")
        known, rest = parent.parse_known_args()
        rc = 0
        if not known.osu_only:
            mpiexec = spawn.find_mpiexec()
            flavor = spawn.mpi_flavor(mpiexec)
            argv = spawn.mpiexec_argv(mpiexec, flavor, 2, os.cpu_count() or 1,
                                       [sys.executable, os.path.abspath(__file__), *rest])
            rc = spawn.run_local(argv, spawn.mpiexec_env(flavor, os.geteuid() == 0))[0]
        if rc == 0 and not known.no_osu:
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            import vs_osu

            rc = vs_osu.main(["--rounds", str(known.osu_rounds),
                              *(["--ops", known.osu_ops] if known.osu_ops else [])])
        sys.exit(rc)
    main()
