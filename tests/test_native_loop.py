"""The native loop of the mpi backend (bench/native): every op's program is describable and
assembles; on real ranks the native and Python loops give the same validated results for
every op (tests/spmd_native.py, one job per rank count); `commbench run` uses it by default and
says so in meta.json; without a compiler it falls back to the Python loop with a note."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import native
from bench.ops import OPS
from bench.ops.loops import WINDOW, loop
from tests.conftest import QUICK, ROOT, commbench_env, mpiexec, needs_mpi, run_commbench

SCRIPT = ROOT / "tests" / "spmd_native.py"
PRIMITIVES = {"send": native.SEND, "recv": native.RECV, "isend": native.ISEND,
              "irecv": native.IRECV, "barrier": native.BARRIER, "allreduce": native.ALLREDUCE,
              "allreduce_inplace": native.ALLREDUCE, "allgather": native.ALLGATHER,
              "reduce_scatter": native.REDUCE_SCATTER, "alltoall": native.ALLTOALL,
              "broadcast": native.BCAST}


class Describing:
    """A backend whose primitives only say what they are (as the mpi backend's do)."""

    def __getattr__(self, name):
        if name == "waitall":
            return lambda reqs: None

        def primitive(*args):
            step = lambda: None  # noqa: E731
            step.desc = (name, *args)
            return step
        return primitive


def as_row(desc):
    return [PRIMITIVES[desc[0]]]


@pytest.mark.parametrize("nranks", [2, 3, 4])
def test_every_op_assembles_on_every_rank(nranks):
    """No op has a step the native loop cannot run (so none silently stays a Python loop)."""
    be = Describing()
    for op in OPS.values():
        if op.rank_problem(nranks):
            continue
        for case in op.cases(64, nranks, 4):
            for rank in range(nranks):
                program = op.program(be, "send", "recv", "ack", case, rank)
                code, _ = native.assemble(program.steps, as_row)
                assert len(code) == 0 or op.active_in(case, rank), (op.name, rank)
                assert len(code) > 0 or not op.active_in(case, rank), (op.name, rank)


def test_programs_become_instructions():
    be = Describing()
    bw = OPS["bw"].program(be, "s", "r", "a", OPS["bw"].case(64, 2, 4), 0)
    code, maxreq = native.assemble(bw.steps, as_row)
    assert [row[:3].tolist() for row in code] == [[native.REPEAT, WINDOW, 1], [native.ISEND, 0, 0],
                                                  [native.WAITALL, 0, 0], [native.RECV, 0, 0]]
    assert maxreq == WINDOW
    bibw = OPS["bibw"].program(be, "s", "r", "a", OPS["bibw"].case(64, 2, 4), 1)
    code, maxreq = native.assemble(bibw.steps, as_row)
    assert [int(c) for c in code[:, 0]] == [native.REPEAT, native.IRECV, native.REPEAT,
                                            native.ISEND, native.WAITALL]
    assert maxreq == 2 * WINDOW
    op = OPS["prtt_rtts8"]
    case = op.case(1024, 2, 4)
    code, _ = native.assemble(op.program(be, "s", "r", "a", case, 0).steps, as_row)
    spins = [int(row[1]) for row in code if row[0] == native.SPIN]
    assert len(spins) == 7 and set(spins) == {round((10e-6 + 1024 / 0.5e9) * 1e9)}
    assert [int(c) for c in code[:, 0] if c != native.SPIN] == [native.SEND] * 8 + [native.RECV]


def test_a_step_that_says_nothing_keeps_the_python_loop():
    with pytest.raises(native.NotDescribable):
        native.assemble(loop(lambda: None).steps, as_row)


def test_the_python_loop_is_unchanged_in_what_it_calls():
    calls = []
    steps = []
    for name in "ab":
        def step(name=name):
            calls.append(name)
        step.desc = (name,)
        steps.append(step)
    loop(*steps)(3)
    assert calls == list("ababab")


def test_mpicc_is_found_as_documented(tmp_path):
    fake = tmp_path / "bin" / "mpicc"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert native.find_mpicc({"MPICC": str(fake), "PATH": ""}) == (str(fake), "MPICC")
    path, why = native.find_mpicc({"MPICC": str(tmp_path / "missing"), "PATH": str(fake.parent)})
    assert path is None and "MPICC=" in why  # a set MPICC is the only candidate
    beside = Path(sys.executable).parent / "mpicc"
    if not beside.exists():
        assert native.find_mpicc({"PATH": str(fake.parent)}) == (str(fake), "PATH")


def test_the_cache_is_keyed_by_the_library(tmp_path):
    if native.find_mpicc()[0] is None:
        pytest.skip("no mpicc")
    env = {**os.environ, "COMMBENCH_CACHE": str(tmp_path)}
    a, _ = native.plan_build("Open MPI v5.0.1", env)
    b, _ = native.plan_build("Open MPI v5.0.2", env)
    again, _ = native.plan_build("Open MPI v5.0.1", env)
    assert a.path != b.path and a.path == again.path and str(a.path).startswith(str(tmp_path))
    env = {k: v for k, v in os.environ.items() if k != "COMMBENCH_CACHE"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    assert str(native.plan_build("x", env)[0].path).startswith(str(tmp_path / "xdg" / "commbench"))


# ---- on real ranks ----------------------------------------------------------------------------
@needs_mpi
@pytest.mark.parametrize("nranks", [2, 4])
def test_native_and_python_loops_agree(tmp_path, nranks):
    """Every op, native and Python, on one job of nranks ranks; an empty cache each time, so
    the build at first use (one rank per node, under a temporary name) is part of it."""
    argv = [mpiexec(), "-n", str(nranks), "--oversubscribe", "--mca", "mpi_yield_when_idle", "1",
            sys.executable, str(SCRIPT)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT,
                       env=commbench_env(OMP_NUM_THREADS="1", COMMBENCH_CACHE=str(tmp_path)))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "FAIL" not in r.stdout, r.stdout
    runnable = {name for name, op in OPS.items() if op.rank_problem(nranks) is None}
    listed = [line for line in r.stdout.splitlines() if line.startswith("native: ")]
    assert listed and set(listed[0][len("native: "):].split(", ")) == runnable, r.stdout
    assert f"0 failed on {nranks} ranks" in r.stdout
    built = list((tmp_path / "native").glob("*/*"))
    assert [p.name for p in built] == [native.LIBRARY_NAME]  # no temporary left behind


def run_meta(out):
    return json.loads((Path(out) / "meta.json").read_text())


@needs_mpi
def test_run_uses_the_native_loop_and_records_it(tmp_path):
    cache = tmp_path / "cache"
    env = commbench_env(COMMBENCH_CACHE=str(cache))
    r = run_commbench("run", "-n", "2", "--ops", "pingpong,allreduce,prtt_rtts8", "--sizes", "4",
                      "--out", tmp_path / "native", *QUICK, env=env)
    assert r.returncode == 0, r.stderr
    meta = run_meta(tmp_path / "native")
    assert meta["status"] == "complete" and meta["method"]["loop"] == {"mpi": "native"}
    assert meta["backend"]["loop"] == "native"
    assert meta["backend"]["native_loop"]["library"].startswith(str(cache))
    assert "native" in meta["method"]["loops"]
    # MPI_THREAD_FUNNELED (1 in Open MPI and MPICH), not mpi4py's default MULTIPLE (3): only
    # the main thread calls MPI, and MULTIPLE costs every call a lock (issue 29)
    assert meta["backend"]["thread_level"] == 1
    # ... unless mpi4py's own variable asks for another level (SERIALIZED: 2)
    r = run_commbench("run", "-n", "2", "--ops", "pingpong", "--sizes", "4", "--loop", "python",
                      "--out", tmp_path / "python", *QUICK,
                      env={**env, "MPI4PY_RC_THREAD_LEVEL": "serialized"})
    assert r.returncode == 0, r.stderr
    meta = run_meta(tmp_path / "python")
    assert meta["method"]["loop"] == {"mpi": "python"} and meta["backend"]["thread_level"] == 2


def env_without_compiler(tmp_path):
    """No mpicc: MPICC names a missing file, PATH holds no mpicc, the cache is empty."""
    path = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if d and not (Path(d) / "mpicc").exists()]
    return commbench_env(MPICC=str(tmp_path / "no" / "mpicc"), PATH=os.pathsep.join(path),
                         COMMBENCH_CACHE=str(tmp_path / "cache"))


@needs_mpi
def test_without_a_compiler_the_python_loop_runs_with_a_note(tmp_path):
    quick = [a for a in QUICK if a != "-q"]
    r = run_commbench("run", "-n", "2", "--ops", "pingpong,allreduce", "--sizes", "4", "--out",
                      tmp_path / "run", *quick, env=env_without_compiler(tmp_path))
    assert r.returncode == 0, r.stderr
    notes = [line for line in r.stderr.splitlines() if "native loop" in line]
    assert len(notes) == 1 and notes[0].startswith("commbench: note: no native loop (MPICC=")
    assert notes[0].endswith("using the Python loop")
    meta = run_meta(tmp_path / "run")
    assert meta["status"] == "complete" and meta["method"]["loop"] == {"mpi": "python"}
    assert "MPICC" in meta["backend"]["native_loop"]["unavailable"]
    assert not (tmp_path / "cache" / "native").exists() or not any((tmp_path / "cache").rglob("*.so"))


@needs_mpi
def test_loop_native_without_a_compiler_is_refused(tmp_path):
    r = run_commbench("run", "-n", "2", "--ops", "pingpong", "--loop", "native", "--out",
                      tmp_path / "run", *QUICK, env=env_without_compiler(tmp_path))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--loop native" in lines[0] and "MPICC" in lines[0], r.stderr
