"""Drain lines for Slurm (analysis.slurm), without a cluster; tests/test_slurm.py applies them
to the Slurm test cluster."""
import shlex
import subprocess
import sys

import pytest

from analysis.slurm import drain, drain_argv, drain_line
from bench.core.errors import UsageError
from tests.conftest import commbench_env


def test_drain_line_is_one_ready_scontrol_command():
    line = drain_line(["node2", "node1", "node2", "gpu7"], "pairs: 2.1x the median node")
    assert line == ('scontrol update NodeName=node[1-2],gpu7 State=DRAIN '
                    'Reason="pairs: 2.1x the median node"')
    # what a shell makes of the line is exactly the argv drain runs
    assert shlex.split(line) == drain_argv(["node1", "node2", "gpu7"], "pairs: 2.1x the median node")


def test_reason_cannot_break_out_of_its_quotes():
    line = drain_line(["n01"], 'slow "link" $(reboot) `x` \\ !\nsecond line')
    words = shlex.split(line)
    assert len(words) == 5 and words[-1].startswith("Reason=")
    assert not set('"$`\\!\n') & set(words[-1])
    assert "second line" in words[-1]


@pytest.mark.parametrize("hosts, reason, says", [
    ([], "x", "no hosts"), (["node 1"], "x", "not a host name"), (["n;rm"], "x", "not a host name"),
    (["n1"], "  ", "needs a reason")])
def test_bad_drains_are_refused(hosts, reason, says):
    with pytest.raises(UsageError, match=says):
        drain_line(hosts, reason)


def test_nothing_is_drained_unless_asked(tmp_path):
    # no --apply: the line only, even where scontrol would be found (here: a fake that fails)
    fake = tmp_path / "scontrol"
    fake.write_text("#!/bin/sh\necho called >&2\nexit 1\n")
    fake.chmod(0o755)
    assert drain(["n1"], "r").startswith("scontrol update NodeName=n1")
    with pytest.raises(UsageError, match="scontrol did not drain n1: called"):
        drain(["n1"], "r", apply=True, scontrol=str(fake))


def test_command_line_refuses_apply_without_slurm(tmp_path):
    env = commbench_env(PATH=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "analysis.slurm", "n[1-3]", "--reason", "slow",
                        "--apply"], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith("commbench: error: --apply: scontrol not on PATH")
    r = subprocess.run([sys.executable, "-m", "analysis.slurm", "n[1-3]", "--reason", "slow"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0
    assert r.stdout == 'scontrol update NodeName=n[1-3] State=DRAIN Reason="slow"\n'
