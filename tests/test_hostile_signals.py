"""SIGHUP (a closed terminal, a lost ssh session) ends a run as SIGTERM does: sent to the
`commbench` parent alone or to its whole process group, with MPI or torch ranks, to a sweep:
the parent and every rank and launcher end within seconds, exit status 128 + 1, and meta.json
says `aborted` with the signal, the finished cases kept."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from bench.core import raw_samples, run_lock
from tests.conftest import ROOT, commbench_env, needs_mpi, needs_torch
from tests.runs import wait_for_samples

pytestmark = pytest.mark.timeout(150)

LONG = ["--ops", "allreduce", "--sizes", "4:1M:2", "--budget", "60", "--min-samples", "4000",
        "--sample-time", "0.0002", "--max-samples", "5000", "--launches", "1", "--no-noise",
        "--no-ceilings", "-q"]


def start(argv):
    """commbench in a session of its own (so the test can signal its whole process group)."""
    return subprocess.Popen([sys.executable, "-m", "bench.cli", *map(str, argv)],
                            env=commbench_env(), cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def processes_of(out) -> list[int]:
    """PIDs of every process whose command line names `out` (parent, launcher, ranks)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if str(out).encode() in cmd:
            found.append(int(entry))
    return found


def wait_gone(out, seconds=20.0):
    deadline = time.monotonic() + seconds
    while processes_of(out) and time.monotonic() < deadline:
        time.sleep(0.2)
    return processes_of(out)


def stop_and_check(proc, out, to_group, sig=signal.SIGHUP):
    try:
        wait_for_samples(proc, out)
        t0 = time.monotonic()
        if to_group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert time.monotonic() - t0 < 30
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + sig, err
    assert wait_gone(out) == [], "processes left running"
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "aborted" and signal.Signals(sig).name in meta["error"], meta
    assert raw_samples.read_samples(out)  # finished cases kept
    assert not run_lock.in_progress(out)
    return err


@needs_mpi
@pytest.mark.parametrize("to_group", [False, True], ids=["parent", "group"])
def test_sighup_ends_an_mpi_run_and_marks_it_aborted(tmp_path, to_group):
    out = tmp_path / "run"
    err = stop_and_check(start(["run", *LONG, "--out", out]), out, to_group)
    assert "interrupted by SIGHUP" in err


@needs_torch
@pytest.mark.parametrize("to_group", [False, True], ids=["parent", "group"])
def test_sighup_ends_a_torch_run_and_marks_it_aborted(tmp_path, to_group):
    out = tmp_path / "run"
    stop_and_check(start(["run", "--backend", "gloo", *LONG, "--out", out]), out, to_group)


@needs_mpi
@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
def test_a_signal_to_a_sweep_ends_its_run_and_the_sweep(tmp_path, sig):
    sweep = tmp_path / "sweep"
    proc = start(["sweep", "-n", "2,3", *LONG, "--out", sweep])
    stop_and_check(proc, sweep / "n2", to_group=False, sig=sig)
    assert not (sweep / "n3").exists()  # the sweep stopped instead of going on


@needs_mpi
@pytest.mark.parametrize("target", ["launcher", "rank0"])
def test_under_mpiexec_rank0_records_the_signal_that_ends_the_job(tmp_path, target):
    """Under an outside launcher no commbench parent watches: SIGHUP to mpiexec (which passes
    SIGTERM to the ranks), or SIGTERM to rank 0 itself, still leaves the run marked aborted,
    even while rank 0 sits inside a collective."""
    from tests.conftest import mpiexec
    from tests.runs import rank_pids

    out = tmp_path / "run"
    proc = subprocess.Popen([mpiexec(), "-n", "2", sys.executable, "-m", "bench.cli", "run",
                             *LONG, "--out", str(out)], env=commbench_env(), cwd=ROOT,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for_samples(proc, out)
        if target == "launcher":
            proc.send_signal(signal.SIGHUP)
        else:
            os.kill(rank_pids(out)[0], signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0, err
    assert wait_gone(out) == [], "processes left running"
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "aborted" and "interrupted by SIG" in meta["error"], meta
    assert raw_samples.read_samples(out)
