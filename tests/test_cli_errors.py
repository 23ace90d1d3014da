"""Bad input: one line on stderr, exit 2, no traceback, before any rank starts."""
import pytest

from tests.conftest import run_commbench


@pytest.mark.parametrize("args, message", [
    (["run", "--ops", "allredcue"], "no such op 'allredcue'; did you mean allreduce"),
    (["run", "--backend", "carrier-pigeon"], "no such backend 'carrier-pigeon'; known: mpi"),
    (["run", "--sizes", "-4"], "malformed size '-4'"),
    (["run", "--sizes", "1K:abc"], "malformed size 'abc'"),
    (["run", "--sizes", "64T"], "more than 80% of the"),
    (["run", "-n", "3", "--ops", "multipair"], "multipair needs an even number of ranks, got 3"),
    (["run", "-n", "1", "--ops", "pingpong"], "pingpong needs at least 2 ranks"),
    (["run", "-n", "0"], "-n must be at least 1"),
    (["run", "--dtype", "complex64"], "backend mpi has no dtype 'complex64'"),
    (["run", "--timeout", "-1"], "--timeout must be positive"),
    (["run", "--nranks", "two"], "invalid int value"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    r = run_commbench(*args, timeout=60, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("commbench: error:"), r.stderr
    assert message in lines[0]
    assert not (tmp_path / "results").exists()  # nothing started, nothing written
