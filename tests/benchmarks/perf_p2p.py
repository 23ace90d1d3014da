"""Overhead of commbench's harness against bare mpi4py loops, measured side by side in one job.

    python tests/benchmarks/perf_p2p.py            # starts 2 local ranks itself
    mpiexec -n 2 python tests/benchmarks/perf_p2p.py

Targets (issue 2): pingpong median at 1-64 B within 1.15x of a bare Send/Recv loop; bw at
1-4 MiB at least 0.95x of a bare windowed loop. Both sides use the same buffers, the same k
calls per sample, a barrier before each sample and the median over samples; they alternate
sample by sample so drifts of the machine hit both equally. Run it on a quiet machine.
"""
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from bench import spawn  # noqa: E402
from bench.world import detect_world  # noqa: E402

SAMPLES = 200


def bare_pingpong(comm, buf, peer, rank):
    def run(k):
        if rank == 0:
            for _ in range(k):
                comm.Send(buf, peer)
                comm.Recv(buf, peer)
        else:
            for _ in range(k):
                comm.Recv(buf, peer)
                comm.Send(buf, peer)
    return run


def bare_window(comm, MPI, buf, ack, peer, rank, window):
    def run(k):
        if rank == 0:
            for _ in range(k):
                MPI.Request.Waitall([comm.Isend(buf, peer) for _ in range(window)])
                comm.Recv(ack, peer)
        else:
            for _ in range(k):
                MPI.Request.Waitall([comm.Irecv(buf, peer) for _ in range(window)])
                comm.Send(ack, peer)
    return run


def main():
    from mpi4py import MPI

    from bench.backends.mpi import MPIBackend
    from bench.harness import Sampling, Sync, calibrate
    from bench.ops import get_op
    from bench.ops.loops import WINDOW

    be = MPIBackend()
    comm, rank = be.comm, be.rank
    sync = Sync(barrier=be.barrier(), allreduce_max=be.allreduce_max)
    arena = be.alloc(3 * (4 << 20) + 3 * 4096)
    results = []
    for op_name, sizes, bare_of, per_call in (
            ("pingpong", [1, 8, 64], lambda buf, ack: bare_pingpong(comm, buf, 1 - rank, rank), 2),
            ("bw", [1 << 20, 2 << 20, 4 << 20],
             lambda buf, ack: bare_window(comm, MPI, buf, ack, 1 - rank, rank, WINDOW), WINDOW)):
        op = get_op(op_name)
        for nbytes in sizes:
            case = op.case(nbytes, 2, 1)
            send = be.view(arena, 0, case.send_count, "uint8")
            recv = be.view(arena, (4 << 20) + 4096, case.recv_count, "uint8")
            ack = be.view(arena, 2 * ((4 << 20) + 4096), 1, "uint8")
            ours = op.program(be, send, recv, ack, case, rank)
            bare = bare_of(send if rank == 0 else recv, ack)
            k = calibrate(ours, sync, Sampling(sample_time_s=1e-3))
            bare(k)
            times = {"commbench": [], "bare": []}
            for _ in range(SAMPLES):
                for name, run in (("commbench", ours), ("bare", bare)):
                    sync.barrier()
                    t0 = time.perf_counter()
                    run(k)
                    t = (time.perf_counter() - t0) / (k * per_call)
                    times[name].append(float(be.allreduce_max(np.array([t]))[0]))
            ours_s, bare_s = np.median(times["commbench"]), np.median(times["bare"])
            results.append((op_name, nbytes, ours_s, bare_s))
    if rank == 0:
        print(f"{'op':<9} {'S(B)':>8} {'commbench(us)':>14} {'bare(us)':>10} {'ratio':>7}  target")
        ok = True
        for op_name, nbytes, ours_s, bare_s in results:
            if op_name == "pingpong":
                ratio, target, good = ours_s / bare_s, "time <= 1.15x bare", ours_s / bare_s <= 1.15
            else:  # bandwidth ratio: bare time / our time
                ratio, target, good = bare_s / ours_s, "bw >= 0.95x bare", bare_s / ours_s >= 0.95
            ok &= good
            print(f"{op_name:<9} {nbytes:>8} {ours_s * 1e6:>14.3f} {bare_s * 1e6:>10.3f} "
                  f"{ratio:>7.3f}  {target} {'ok' if good else 'MISSED'}")
        print("all targets met" if ok else "some targets missed")


if __name__ == "__main__":
    if detect_world() is None:
        mpiexec = spawn.find_mpiexec()
        flavor = spawn.mpi_flavor(mpiexec)
        argv = spawn.mpiexec_argv(mpiexec, flavor, 2, os.cpu_count() or 1,
                                   [sys.executable, os.path.abspath(__file__)])
        sys.exit(spawn.run_local(argv, spawn.mpiexec_env(flavor, os.geteuid() == 0))[0])
    main()
