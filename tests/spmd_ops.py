"""Op semantics on real ranks, without the harness, timing or a run directory: every op that can
run on the job's N ranks, at a few sizes and dtypes, on the MPI backend and (when torch is
importable) on gloo, built and checked exactly as `commbench run` does (bench.rank_loop's
prepare_case / program / sync / wrong_elements).

Runs inside every rank of ONE job (as mpi4py tests itself):

    mpiexec -n 4 python tests/spmd_ops.py [--backends mpi,gloo] [--ops allreduce,bw]

Each rank checks its own receive buffer; rank 0 gathers, prints one line per failed check and
a final "N passed, M failed" line, and the job exits 1 on any failure. An exception on any
rank aborts the whole job (a collective would otherwise wait for ever on the other ranks).

COMMBENCH_SPMD_CORRUPT=op:rank makes this script (not bench/) change one element of that
rank's receive buffer after every call of that op, so a test can show that failures are found.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mpi4py import MPI  # noqa: E402  (the job's launcher; also aborts the job on an error)

from bench.world import detect_world  # noqa: E402
from bench.ops import OPS  # noqa: E402
from bench.plan import arena_bytes, itemsize_of  # noqa: E402
from bench.rank_loop import prepare_case, wrong_elements  # noqa: E402
from bench.settings import Settings  # noqa: E402

# 4 B: one element (one per rank's block); 8 * 127 + 4 = 1020 B: an odd element count for 4-
# and 8-byte items, so S is no whole number of per-rank blocks and they round down; 64 KiB:
# several pages per buffer.
SIZES = (4, 1020, 64 * 1024)
DTYPES = {"mpi": ("float32", "int32", "float64"),
          "gloo": ("float32", "int32", "bfloat16")}  # torch reads bfloat16 back as float32
REPEAT = 3  # program(REPEAT) must leave the same result as program(1) for idempotent ops


def corrupt_spec():
    """(op, rank) from COMMBENCH_SPMD_CORRUPT=op:rank, or None."""
    spec = os.environ.get("COMMBENCH_SPMD_CORRUPT", "")
    if not spec:
        return None
    op, rank = spec.split(":")
    return op, int(rank)


def idempotent(case) -> bool:
    """Whether k calls leave what one call leaves: all but ops that reduce in place (their
    later calls reduce the previous result)."""
    return not (case.op.reduces and case.send_count == 0)


def cases_for(op, n, itemsize):
    """The op's cases at every size, without duplicates (barrier has no size; small sizes
    round to the same counts)."""
    seen, cases = set(), []
    for nbytes in SIZES if op.sized else (0,):
        for case in op.cases(nbytes, n, itemsize):
            key = (case.send_count, case.recv_count, case.pairing)
            if key not in seen:
                seen.add(key)
                cases.append(case)
    return cases


def make_backend(name, world):
    if name == "mpi":
        from bench.backends.mpi import MPIBackend

        return MPIBackend()
    from bench.backends.torch_dist import GlooBackend

    return GlooBackend(world, device="cpu", timeout_s=60.0)


def check(be, case, recv, corrupt) -> tuple[int, str]:
    """(wrong elements, note) of this rank's receive buffer after the calls."""
    if corrupt == (case.op.name, be.rank) and case.op.expected(case, be.rank) is not None:
        held = be.read(recv).copy()
        held[len(held) // 2] += 1
        be.write(recv, held)
    expected = case.op.expected(case, be.rank)
    if expected is not None and len(be.read(recv)) != len(expected):
        return len(expected), f"recv holds {len(be.read(recv))} elements, expected {len(expected)}"
    return wrong_elements(be, case, recv), ""


def run_backend(name, world, ops, corrupt, say):
    """[(check label, wrong elements on this rank, note)] for every check on backend `name`."""
    from bench.backends import backend_class

    cls = backend_class(name)
    options = Settings(device="cpu", cuda_graph=False)
    be = make_backend(name, world)
    n = be.size
    barrier = be.control_barrier()
    results = []
    runnable = []
    for op in ops:
        why = op.rank_problem(n) or cls.op_problem(op, options)
        if why:
            say(f"skip {name} {op.name}: {why}")
        else:
            runnable.append(op)
    say(f"{name}: checking {', '.join(op.name for op in runnable)}")
    for dtype in DTYPES[name]:
        itemsize = itemsize_of(dtype)
        cases = [case for op in runnable for case in cases_for(op, n, itemsize)]
        arena = be.alloc(arena_bytes(cases))
        for case in cases:
            where = f"{name} {case.op.name} {dtype} {case.nbytes} B"
            if case.pairing >= 0:
                where += f" pairing {case.pairing}"
            for calls in (1, REPEAT) if idempotent(case) else (1,):
                label = f"{where} after {calls} call{'s' if calls > 1 else ''}"
                try:
                    program, recv = prepare_case(be, case, arena, dtype)
                    barrier()
                    program(calls)
                    be.sync()
                    wrong, note = check(be, case, recv, corrupt)
                except Exception:  # noqa: BLE001 - the others would wait in a collective
                    print(f"spmd_ops: rank {be.rank}: {label}: exception\n{traceback.format_exc()}",
                          file=sys.stderr, flush=True)
                    MPI.COMM_WORLD.Abort(3)
                results.append((label, wrong, note))
    barrier()
    be.finalize()
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backends", default="mpi,gloo",
                   help="comma-separated; gloo is left out when torch is not importable")
    p.add_argument("--ops", default="", help="comma-separated op names (default: every op)")
    args = p.parse_args(argv)
    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    say = (lambda text: print(text, flush=True)) if rank == 0 else (lambda text: None)
    world = detect_world()
    ops = [OPS[name] for name in args.ops.split(",")] if args.ops else list(OPS.values())
    backends = [b for b in args.backends.split(",") if b]
    if "gloo" in backends and importlib.util.find_spec("torch") is None:
        say("skip gloo: torch is not importable")
        backends.remove("gloo")
    corrupt = corrupt_spec()
    mine = []
    for name in backends:
        mine += run_backend(name, world, ops, corrupt, say)
    everyone = comm.gather(mine, root=0)
    failed = 0
    if rank == 0:
        if len({tuple(label for label, _, _ in r) for r in everyone}) != 1:
            print("FAIL the ranks ran different checks: "
                  + ", ".join(f"rank {r}: {len(res)}" for r, res in enumerate(everyone)))
            return int(comm.bcast(1, root=0) > 0)
        for i, (label, _, _) in enumerate(everyone[0]):
            bad = [(r, res[i][1], res[i][2]) for r, res in enumerate(everyone) if res[i][1]]
            if bad:
                failed += 1
                print(f"FAIL {label}: " + "; ".join(
                    f"rank {r}: {w} wrong element{'s' if w != 1 else ''}" + (f" ({note})" if note else "")
                    for r, w, note in bad))
        passed = len(everyone[0]) - failed
        print(f"{passed} passed, {failed} failed on {comm.Get_size()} ranks ({', '.join(backends)})",
              flush=True)
    return int(comm.bcast(failed, root=0) > 0)


if __name__ == "__main__":
    sys.exit(main())
