"""The native loop against the Python loop on real ranks, in ONE job (as tests/spmd_ops.py):
every op that can run on the job's N ranks, at spmd_ops' sizes and MPI dtypes, is built once
with the Python loop (`--loop python`) and once with the native one, each run for 1 and 3
calls, each checked exactly as `commbench run` checks it (bench.rank_loop: prepare_case /
wrong_elements), and the two receive buffers compared element by element.

    mpiexec -n 4 python tests/spmd_native.py [--ops allreduce,bw]

The native backend is made as `commbench run` makes it (MPIBackend.create, which builds and
loads the library collectively); a check fails when its program is not native on a rank that
has anything to run, so the native path cannot silently be skipped. Rank 0 prints one line
per failure, "native: <ops>" and "N passed, M failed on R ranks"; exit 1 on any failure.
"""
from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mpi4py import MPI  # noqa: E402

from bench.backends.mpi import MPIBackend  # noqa: E402
from bench.ops import OPS  # noqa: E402
from bench.plan import arena_bytes, itemsize_of  # noqa: E402
from bench.rank_loop import prepare_case, wrong_elements  # noqa: E402
from bench.settings import Settings  # noqa: E402
from spmd_ops import DTYPES, REPEAT, cases_for  # noqa: E402


def run_once(be, case, arena, dtype, calls):
    """(wrong elements, a copy of recv, program) after program(calls) on backend be."""
    program, recv = prepare_case(be, case, arena, dtype)
    be.barrier()()
    program(calls)
    got = None if recv is None else be.read(recv).copy()
    return wrong_elements(be, case, recv), got, program


def spin_check(native_be, say) -> list:
    """A program of one ("spin", d) step (as bench.ops.prtt's ops make) waits d per call: the
    calibrated C busy wait. A busy wait on the clock is never shorter than asked, but a loaded
    machine can only make it longer: the per-call time is the best of short batches (a batch
    of 10 calls, 0.2 ms, that no other process interrupted), tried until one falls within the
    bounds or 2 s pass, so a slow machine retries where a wrong spin (none, or several times
    too long in every batch) still fails."""
    from bench.ops.loops import loop

    out = []
    if native_be.rank != 0:
        return out
    d, calls = 20e-6, 10
    spin = lambda: None  # noqa: E731 - only its description runs
    spin.desc = ("spin", d)
    program = native_be.wrap_program(loop(spin))
    best, batches = float("inf"), 0
    give_up = time.perf_counter() + 2.0
    ok = False
    while not ok and (batches < 20 or time.perf_counter() < give_up):
        t0 = time.perf_counter()
        program(calls)
        best = min(best, (time.perf_counter() - t0) / calls)
        batches += 1
        ok = getattr(program, "loop", "") == "native" and 0.95 * d <= best <= 1.25 * d
        if best < 0.95 * d:
            break  # shorter than asked: no load explains it
    say(f"spin: {d * 1e6:.1f} us asked, {best * 1e6:.2f} us per call (best of {batches} "
        f"batches of {calls})")
    out.append(("native spin of 20 us", 0 if ok else 1,
                f"{best * 1e6:.2f} us per call" if not ok else ""))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ops", default="", help="comma-separated op names (default: every op)")
    args = p.parse_args(argv)
    comm = MPI.COMM_WORLD
    rank, n = comm.Get_rank(), comm.Get_size()
    say = (lambda text: print(text, flush=True)) if rank == 0 else (lambda text: None)
    ops = [OPS[name] for name in args.ops.split(",")] if args.ops else list(OPS.values())
    ops = [op for op in ops if op.rank_problem(n) is None]
    python_be = MPIBackend()
    native_be = MPIBackend.create(None, Settings(loop="native", quiet=True))
    say(f"library: {native_be.native.path}")
    say("native: " + ", ".join(op.name for op in ops))
    mine = []
    for dtype in DTYPES["mpi"]:
        cases = [case for op in ops for case in cases_for(op, n, itemsize_of(dtype))]
        arena = python_be.alloc(arena_bytes(cases))
        for case in cases:
            where = f"{case.op.name} {dtype} {case.nbytes} B"
            if case.pairing >= 0:
                where += f" pairing {case.pairing}"
            for calls in (1, REPEAT):
                label = f"{where} after {calls} call{'s' if calls > 1 else ''}"
                try:
                    wrong_py, got_py, _ = run_once(python_be, case, arena, dtype, calls)
                    wrong_nat, got_nat, program = run_once(native_be, case, arena, dtype, calls)
                except Exception:  # noqa: BLE001 - the others would wait in a collective
                    print(f"spmd_native: rank {rank}: {label}: exception\n{traceback.format_exc()}",
                          file=sys.stderr, flush=True)
                    comm.Abort(3)
                notes = []
                busy = bool(getattr(program, "steps", None))
                if busy and getattr(program, "loop", "") != "native":
                    notes.append("the program is not native")
                if calls == 1 or case.send_count or not case.op.reduces:  # idempotent: check
                    if wrong_py or wrong_nat:
                        notes.append(f"wrong elements: python {wrong_py}, native {wrong_nat}")
                if (got_py is None) != (got_nat is None) or (
                        got_py is not None and not (got_py == got_nat).all()):
                    notes.append("python and native results differ")
                mine.append((label, len(notes), "; ".join(notes)))
    mine += spin_check(native_be, say)
    everyone = comm.gather(mine, root=0)
    failed = 0
    if rank == 0:
        labels = {tuple(sorted(label for label, _, _ in r if label != "native spin of 20 us"))
                  for r in everyone}
        if len(labels) != 1:
            print("FAIL the ranks ran different checks")
            failed = 1
        merged = {}
        for r, results in enumerate(everyone):
            for label, bad, note in results:
                merged.setdefault(label, [])
                if bad:
                    merged[label].append(f"rank {r}: {note}")
        for label, notes in merged.items():
            if notes:
                failed += 1
                print(f"FAIL {label}: " + "; ".join(notes))
        print(f"{len(merged) - failed} passed, {failed} failed on {n} ranks", flush=True)
    return int(comm.bcast(failed, root=0) > 0)


if __name__ == "__main__":
    sys.exit(main())
