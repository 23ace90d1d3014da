"""What the tests of `commbench run` on real ranks share: the backends they are parametrised
over (each skipped where its library is missing), the check that a run directory holds a
complete, validated run, and environments that hide a package from the ranks."""
import importlib.util

import pytest

from analysis.runsamples import load_run
from tests.conftest import commbench_env, needs_mpi

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")

# The backends of tests that are the same for mpi and gloo, and the library each one needs
# (which the other does not: a test may hide it from the other backend's ranks).
BACKENDS = [pytest.param("mpi", marks=needs_mpi), pytest.param("gloo", marks=needs_torch)]
LIBRARY = {"mpi": "mpi4py", "gloo": "torch"}


def check_complete(out, nranks, ops, backends):
    """A complete run on one host: every backend measured every op in `ops`, no element failed
    validation, and every summary row has samples, a positive median inside its interval."""
    meta, samples, summary = load_run(out)
    assert meta["status"] == "complete" and meta["nranks"] == nranks and meta["nnodes"] == 1
    assert len(meta["hosts"]) == nranks
    assert set(summary.backend) == set(backends)
    for be in backends:
        assert set(summary[summary.backend == be].op) == set(ops), be
    assert (summary.wrong == 0).all() and (summary.samples >= 1).all()
    assert (summary.median_s > 0).all()
    assert (summary.ci_low_s <= summary.median_s).all() and (summary.median_s <= summary.ci_high_s).all()
    return meta, samples, summary


def env_without(tmp_path, name, **extra):
    """commbench_env with package `name` shadowed by one that cannot be imported."""
    pkg = tmp_path / "poison" / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(f"raise ImportError('{name} must not be needed here')\n")
    env = commbench_env(**extra)
    env["PYTHONPATH"] = str(tmp_path / "poison") + ":" + env["PYTHONPATH"]
    return env
