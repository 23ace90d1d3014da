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

Then OSU Micro-Benchmarks 7.4 itself: osu_latency, osu_bw, osu_allreduce and osu_allgather
(from $OSU_DIR, or beside osu_latency on PATH, or else built from the OSU tarball, $OSU_TARBALL
or shared/tools/ in a folder above the repository, with the same mpicc, into a temporary
folder that is removed afterwards) run against `commbench run -n 2` on the same sizes (OSU's
message or per-rank block, dtype uint8), each op's pair in a random order, round after round
(--osu-rounds, default 3). OSU runs with -z (its per-call median too) and, when built here,
prints 4 decimals instead of 2. The table gives, per op and size, the median and range over
rounds of commbench / OSU's average (time per op; for bw OSU's bandwidth / commbench's), of
commbench / OSU's median, of commbench's own samples read as OSU reads them (mean over
samples; rank 0's clock for pingpong and bw, the mean over ranks for collectives) / OSU's
average, and commbench's max over ranks / rank 0's time. Targets (issue 29), on a quiet
machine: pingpong, allreduce, allgather at 1-64 B <= 1.05x OSU; bw at 1-4 MiB
>= 0.97x OSU; no verdict where OSU's average and median, or the rounds, differ by over 10%.
--osu-only skips the in-job table; --no-osu skips OSU.
"""
import argparse
import ctypes
import os
import shutil
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


OSU_TARBALL = "osu-micro-benchmarks-7.4.tar.gz"
NOISY = 1.10  # OSU's average / median, or the ratio's max / min over rounds, beyond which no verdict
# commbench op -> (OSU binary, its folder in the build, sizes as OSU's -m takes them)
OSU_OPS = {"pingpong": ("osu_latency", "c/mpi/pt2pt/standard", "1:64"),
           "bw": ("osu_bw", "c/mpi/pt2pt/standard", "1048576:4194304"),
           "allreduce": ("osu_allreduce", "c/mpi/collective/blocking", "1:64"),
           "allgather": ("osu_allgather", "c/mpi/collective/blocking", "1:64")}


def find_osu_tarball():
    """$OSU_TARBALL, else shared/tools/<tarball> in a folder above the repository."""
    if os.environ.get("OSU_TARBALL"):
        return os.environ["OSU_TARBALL"]
    here = ROOT
    while True:
        candidate = os.path.join(here, "shared", "tools", OSU_TARBALL)
        if os.path.isfile(candidate):
            return candidate
        up = os.path.dirname(here)
        if up == here:
            return None
        here = up


def osu_binaries(workdir):
    """{op: path of its OSU binary}: from $OSU_DIR (a folder of them, or a built OSU tree), or
    beside osu_latency on PATH, or built here from the OSU tarball with the mpicc of the MPI
    mpi4py uses, into `workdir` (a temporary folder, removed by the caller)."""
    from bench.native import find_mpicc

    for where in (os.environ.get("OSU_DIR"), os.path.dirname(shutil.which("osu_latency") or "")):
        for layout in ("flat", "build"):  # the binaries in one folder, or an OSU source tree
            found = {op: os.path.join(where, *([] if layout == "flat" else [folder]), b)
                     for op, (b, folder, _) in OSU_OPS.items()} if where else {}
            if found and all(os.access(path, os.X_OK) for path in found.values()):
                return found, where
    tarball = find_osu_tarball()
    mpicc, why = find_mpicc()
    if tarball is None or mpicc is None:
        source = tarball or OSU_TARBALL + " not found; set OSU_TARBALL"
        return None, f"no OSU binaries and nothing to build them from ({source}; {mpicc or why})"
    subprocess.run(["tar", "xzf", tarball, "-C", workdir], check=True)
    src = os.path.join(workdir, OSU_TARBALL[:-len(".tar.gz")])
    mpicxx = os.path.join(os.path.dirname(mpicc), "mpicxx")
    # FLOAT_PRECISION: OSU prints 2 decimals (0.16 us vs 0.17 us is a 6% step); 4 here. It
    # changes what is printed, not what is measured.
    steps = [["./configure", f"CC={mpicc}", f"CXX={mpicxx if os.access(mpicxx, os.X_OK) else mpicc}",
              "CFLAGS=-g -O2 -DFLOAT_PRECISION=4"]]
    steps += [["make", "-j2", "-C", folder] for folder in sorted({f for _, f, _ in OSU_OPS.values()})]
    log_path = os.path.join(workdir, "build.log")
    with open(log_path, "w") as log:
        for step in steps:
            if subprocess.run(step, cwd=src, stdout=log, stderr=subprocess.STDOUT, check=False).returncode:
                return None, f"building OSU failed at {' '.join(step[:3])} (log: {log_path})"
    return ({op: os.path.join(src, folder, b) for op, (b, folder, _) in OSU_OPS.items()},
            f"built from {tarball} with {mpicc} in a temporary folder")


def parse_osu(text):
    """{size: (average, P50)} of an OSU table run with -z (us, or MB/s for osu_bw)."""
    found = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and not line.startswith("#") and parts[0].isdigit():
            found[int(parts[0])] = (float(parts[1]), float(parts[2]))
    return found


def commbench_times(out, op):
    """{S: (commbench's median of the per-sample max over ranks, mean over samples of rank 0's
    time (pingpong, bw: OSU's point-to-point definition) or of the mean over ranks
    (collectives: OSU's), median over samples of rank 0's time)} in seconds per op, from the
    run directory's raw samples."""
    from analysis.runsamples import load_run

    _, samples, summary = load_run(out)
    found = {}
    for nbytes, rows in samples[samples["op"] == op].groupby("nbytes"):
        median = float(summary.loc[(summary["op"] == op) & (summary["nbytes"] == nbytes), "median_s"].iloc[0])
        keys = ["round", "sample"]
        if op in ("pingpong", "bw"):
            per_sample = rows[rows["rank"] == 0].groupby(keys)["time_s"].mean()
        else:
            per_sample = rows.groupby(keys)["time_s"].mean()
        rank0 = rows[rows["rank"] == 0]["time_s"]
        found[int(nbytes)] = (median, float(per_sample.mean()), float(rank0.median()))
    return found


def compare_osu(rounds, ops, extra):
    """OSU 7.4's binaries and `commbench run` on the same sizes, each op's pair run in a
    shuffled order round after round (A B B A ...), and the ratio commbench / OSU of each round."""
    import random

    mpiexec = spawn.find_mpiexec()
    flavor = spawn.mpi_flavor(mpiexec)
    env = spawn.mpiexec_env(flavor, os.geteuid() == 0)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory(prefix="commbench-osu-") as tmp:
        binaries, where = osu_binaries(tmp)
        if binaries is None:
            print(f"# {where}: no OSU comparison")
            return
        print(f"# OSU 7.4: {where}", flush=True)
        ratios = {}  # (op, S) -> [(osu, cb median, cb OSU definition, cb rank-0 median)]
        for r in range(rounds):
            for op in ops:
                sizes = OSU_OPS[op][2]
                order = ["osu", "commbench"]
                random.shuffle(order)
                for who in order:
                    if who == "osu":
                        argv = spawn.mpiexec_argv(mpiexec, flavor, 2, os.cpu_count() or 1,
                                                   [binaries[op], "-m", sizes, "-z"])
                        text = subprocess.run(argv, env=env, capture_output=True, text=True,
                                              timeout=600, check=True).stdout
                        osu = parse_osu(text)
                    else:
                        out = os.path.join(tmp, f"run-{op}-{r}")
                        lo, hi = (int(x) for x in sizes.split(":"))
                        tool_sizes = [1 << i for i in range(lo.bit_length() - 1, hi.bit_length())]
                        from bench.ops import get_op
                        s_of = {get_op(op).s_of_tool_size(s, 2): s for s in tool_sizes}
                        cmd = [sys.executable, "-m", "bench.cli", "run", "-n", "2", "--ops", op,
                               "--dtype", "uint8", "--sizes", ",".join(map(str, s_of)),
                               "--out", out, "-q", *extra]
                        subprocess.run(cmd, env=env, check=True, timeout=600)
                        cb = {s_of[s]: t for s, t in commbench_times(out, op).items()}
                for size, values in osu.items():
                    avg, p50 = (size / (v * 1e6) if op == "bw" else v * 1e-6 for v in values)
                    if size in cb:
                        ratios.setdefault((op, size), []).append((avg, p50, *cb[size]))
            print(f"# round {r + 1}/{rounds} done", flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# commbench / OSU 7.4, time per op (bw: OSU's bandwidth / commbench's), 2 ranks, "
          f"{rounds} interleaved rounds: median [min-max] over rounds. Load now: {load:.1f} "
          f"(1 min) on {os.cpu_count()} cores")
    print("#   cb = commbench's number (median over samples of the max over ranks); avg, P50: "
          "OSU's average and median (-z) per call; cb-mean = commbench's samples read as OSU "
          "reads them (mean over samples; rank 0 for pt2pt, the mean over ranks for "
          "collectives); max/r0 = commbench's median of the max over ranks / of rank 0's time")
    print(f"{'op':<11}{'size':>8}{'avg(us)':>10}{'P50(us)':>10}{'cb(us)':>9}  {'cb/avg':<22}"
          f"{'cb/P50':<22}{'cb-mean/avg':<22}{'max/r0':<22}target (cb/avg)")
    ok = judged_all = True
    for (op, size), rows in ratios.items():
        a = np.array(rows)  # osu avg, osu P50, cb, cb mean (OSU's reading), cb rank-0 median
        cols = [a[:, 2] / a[:, 0], a[:, 2] / a[:, 1], a[:, 3] / a[:, 0], a[:, 2] / a[:, 4]]
        text = [f"{np.median(c):.3f} [{c.min():.2f}-{c.max():.2f}]" for c in cols]
        text = [t if len(t) < 22 else f"{np.median(c):.3g}" for t, c in zip(text, cols)]
        med = float(np.median(cols[0]))
        # A machine too busy to judge: OSU's average and median disagree (preemptions in its
        # loop), or the ratio wanders from round to round.
        skew = float(np.median(a[:, 0] / a[:, 1]))
        spread = float(cols[0].max() / cols[0].min())
        if max(skew, 1 / skew) > NOISY or spread > NOISY:
            good, target = False, f"not judged (OSU avg/P50 {skew:.2f}, rounds spread {spread:.2f}x)"
            judged_all = False
        elif op == "bw":
            good = 1 / med >= 0.97
            target = f"bw >= 0.97x OSU {'ok' if good else 'MISSED'}"
        else:
            good = med <= 1.05
            target = f"<= 1.05x OSU {'ok' if good else 'MISSED'}"
        ok &= good
        print(f"{op:<11}{size:>8}{np.median(a[:, 0]) * 1e6:>10.3f}{np.median(a[:, 1]) * 1e6:>10.3f}"
              f"{np.median(a[:, 2]) * 1e6:>9.3f}  " + "".join(f"{t:<22}" for t in text) + target)
    print("all OSU targets met" if ok else "some OSU targets missed" if judged_all else
          "some OSU targets missed or not judged (too noisy here)", flush=True)


if __name__ == "__main__":
    if {"-h", "--help"} & set(sys.argv[1:]):  # once, before any rank or OSU build starts
        print(__doc__)
        sys.exit(0)
    if detect_world() is None:
        parent = argparse.ArgumentParser(add_help=False)
        parent.add_argument("--osu-rounds", type=int, default=3)
        parent.add_argument("--osu-ops", default=",".join(OSU_OPS))
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
            compare_osu(known.osu_rounds, known.osu_ops.split(","), [])
        sys.exit(rc)
    main()
