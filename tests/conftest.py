"""What every test may use: the commbench command line in-process and in a subprocess, the
environment ranks need, what is installed (MPI, torch), and the two tiers.

The tiers (markers in pyproject.toml): `needs_mpi`, the emulated-cluster marks (`multinode`,
`slurm`) and tests/runs.py's BACKENDS mark a test `ranks`. A test is `slow` when it starts
ranks, imports torch (`needs_torch`), reaches a name that starts a process (PROCESS_NAMES:
itself, its fixtures, or a function of tests/ they call), or is marked so by hand (seconds
in-process); every other test is `fast`, and fails if it starts Python or ranks after all.
`pytest -m fast` is the quick tier, the plain `pytest` runs both."""
import importlib.util
import inspect
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def commbench_env(**extra):
    env = dict(os.environ)
    env.update({"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                "OMPI_MCA_rmaps_base_oversubscribe": "1", "PYTHONPATH": str(ROOT)})
    env.pop("COMMBENCH_INJECT", None)
    env.update(extra)
    return env


def run_commbench(*args, timeout=120, env=None, cwd=None):
    """Run the commbench CLI in a subprocess; a hang fails the test instead of stalling CI."""
    return subprocess.run([sys.executable, "-m", "bench.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env or commbench_env(), cwd=cwd)


def run_cli(capsys, *argv):
    """`commbench ARGV...` in-process: (exit status, stdout, stderr), without what was printed
    before it (an import's output). A hang fails the test through its timeout."""
    from bench.cli import main

    capsys.readouterr()
    rc = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


# ---- what is installed ----------------------------------------------------------------------
def mpiexec():
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def have_mpi():
    """mpi4py and an mpiexec to start its ranks."""
    return importlib.util.find_spec("mpi4py") is not None and mpiexec() is not None


NO_MPI = "mpi4py and mpiexec not installed"
# A test that starts MPI ranks: tier `ranks`, skipped without MPI (pytest_collection_modifyitems).
needs_mpi = pytest.mark.needs_mpi
# mpi4py alone (a backend's methods without a communicator); no ranks are started.
needs_mpi4py = pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None, reason="mpi4py not installed")
# A test that imports torch (seconds): tier slow, skipped without torch.
needs_torch = pytest.mark.needs_torch

# Fast sampling settings so SPMD tests take seconds, not minutes.
QUICK = ["--launches", "1", "--repeats", "1", "--budget", "0.05", "--min-samples", "5",
         "--sample-time", "0.0002", "--no-noise", "--no-ceilings", "-q"]


# ---- the tiers ------------------------------------------------------------------------------
# Names whose use starts a process: a test that reaches one (itself, its fixtures, or a function
# of tests/ they call) is `slow`.
PROCESS_NAMES = {"subprocess", "multiprocessing", "Popen", "fork", "posix_spawn", "run_commbench", "mpiexec"}


def _names(code) -> set:
    """The global and attribute names a code object and the functions nested in it use."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def starts_processes(func, seen=None) -> bool:
    """Whether `func`, or a function of tests/ that it names, uses one of PROCESS_NAMES."""
    seen = set() if seen is None else seen
    func = inspect.unwrap(func)
    if not isinstance(func, types.FunctionType) or func in seen:
        return False
    seen.add(func)
    names = _names(func.__code__)
    if names & PROCESS_NAMES:
        return True
    return any(starts_processes(func.__globals__[name], seen) for name in names
               if _in_tests(func.__globals__.get(name)))


def _in_tests(obj) -> bool:
    """A function defined under tests/ (test modules import as top-level modules: no package)."""
    code = getattr(inspect.unwrap(obj), "__code__", None) if callable(obj) else None
    return code is not None and Path(code.co_filename).is_relative_to(ROOT / "tests")


def _fixture_functions(item):
    info = getattr(item, "_fixtureinfo", None)
    for defs in (info.name2fixturedefs.values() if info else ()):
        for fixturedef in defs:
            if _in_tests(fixturedef.func) and fixturedef.argname != "_fast_tests_start_no_process":
                yield fixturedef.func


LAUNCHERS = {"mpiexec", "mpirun", "orterun", "prterun", "srun", "salloc", "sbatch", "torchrun"}


def starts_python_or_ranks(argv) -> bool:
    """A Python (commbench, a rank, a script) or a launcher other than its --version: what makes
    a test take seconds. Other tools (uname, a stand-in nvidia-smi) take milliseconds."""
    name = Path(argv[0]).name if argv else ""
    if name in LAUNCHERS:
        return "--version" not in argv
    return name.startswith("python") or (bool(argv) and argv[0] == sys.executable)


@pytest.fixture(autouse=True)
def _fast_tests_start_no_process(request, monkeypatch):
    """A fast test that starts Python or ranks after all (through commbench's own code, say)
    fails, naming the mark it lacks."""
    if request.node.get_closest_marker("fast") is None:
        return
    execute = subprocess.Popen._execute_child

    def guarded(self, args, *rest, **kwargs):
        argv = [os.fsdecode(a) for a in ([args] if isinstance(args, (str, bytes, os.PathLike)) else args)]
        if starts_python_or_ranks(argv):
            pytest.fail(f"a test of the fast tier started a process ({' '.join(argv)[:200]}): mark "
                        "it needs_mpi (MPI ranks), ranks (other ranks) or slow (tests/conftest.py)",
                        pytrace=False)
        return execute(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "_execute_child", guarded)


def pytest_collection_modifyitems(session, config, items):
    mpi, torch = have_mpi(), importlib.util.find_spec("torch") is not None
    for item in items:
        if item.get_closest_marker("needs_mpi") is not None:
            item.add_marker(pytest.mark.ranks)
            if not mpi:
                item.add_marker(pytest.mark.skip(reason=NO_MPI))
        if item.get_closest_marker("needs_torch") is not None:
            item.add_marker(pytest.mark.slow)
            if not torch:
                item.add_marker(pytest.mark.skip(reason="torch not installed"))
        if any(item.get_closest_marker(m) is not None for m in ("multinode", "slurm")):
            item.add_marker(pytest.mark.ranks)
        if item.get_closest_marker("ranks") is not None or any(
                starts_processes(f) for f in (getattr(item, "function", None), *_fixture_functions(item))):
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.fast)
    # Multi-node tests time a shaped network; other CPU load on 2 cores distorts that, so they
    # run after every other test.
    items.sort(key=lambda item: item.get_closest_marker("multinode") is not None)  # stable
