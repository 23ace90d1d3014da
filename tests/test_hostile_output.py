"""Standard output that cannot be written: a full device (/dev/full), a closed descriptor
(`>&-`), a pipe whose reader has gone. Every verb then ends with exit status 4 (EXIT_OUTPUT:
not 0, 1, 2 or 3, so a CI gate never takes it for a pass or a verdict) and one
`commbench: error:` line on stderr, never a traceback; a verdict's output that did get out keeps
its exit status."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from analysis.run_frames import summarize_samples, write_run_dir_from_frames
from bench.cli import EXIT_OUTPUT
from bench.ops import OPS
from tests.conftest import QUICK, ROOT, commbench_env, needs_mpi
from tests.runs import small_samples, write_small_run

pytestmark = pytest.mark.timeout(120)


def run_with_busbw(path, slowdown=1.0, seed=0):
    """A synthetic run with bus bandwidths (check needs them) and rounds enough for compare
    to find a 3x slowdown significant."""
    df = small_samples(rounds=8, seed=seed)
    df["time_s"] *= slowdown
    write_small_run(path, df)
    summary = summarize_samples(df, bus_factor=lambda op, n: OPS[op].bus_factor(n))
    meta = json.loads((path / "meta.json").read_text())
    return write_run_dir_from_frames(path, meta, df, summary)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("output")
    return {"run": run_with_busbw(base / "run"),
            "slower": run_with_busbw(base / "slower", 3.0, seed=1), "base": base}


def verbs(runs):
    run, slower = str(runs["run"]), str(runs["slower"])
    return {
        "compare": ["compare", run, slower],  # slower: a verdict of 1 when written
        "check": ["check", slower, "--baseline", run],
        "check-list": ["check", "--list"],
        "predict": ["predict", "--fits", run, "--op", "allreduce", "--nranks", "2", "--nbytes", "4096"],
        "fit": ["fit", run, "--bootstrap", "0"],
        "import": ["import", str(ROOT / "tests" / "data" / "nccl_all_reduce.txt"), "--out",
                   str(runs["base"] / "imported"), "--force"],
        "version": ["--version"],
        "help": ["compare", "--help"],
    }


def run_with_stdout(argv, stdout):
    return subprocess.run([sys.executable, "-m", "bench.cli", *argv], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=100, env=commbench_env())


def assert_output_error(r, *needles):
    assert r.returncode == EXIT_OUTPUT, (r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    assert lines and lines[-1].startswith("commbench: error: could not write the output"), r.stderr
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr
    assert sum(line.startswith("commbench: error") for line in lines) == 1, r.stderr
    for needle in needles:
        assert needle in r.stderr


VERBS = ["compare", "check", "check-list", "predict", "fit", "import", "version", "help"]


def test_exit_output_is_no_other_status():
    assert EXIT_OUTPUT not in (0, 1, 2, 3)


@pytest.mark.parametrize("verb", VERBS)
def test_a_full_device(runs, verb):
    with open("/dev/full", "w") as full:
        r = run_with_stdout(verbs(runs)[verb], full)
    assert_output_error(r, "No space left on device")


@pytest.mark.parametrize("verb", VERBS)
def test_a_closed_stdout(runs, verb):
    argv = [sys.executable, "-m", "bench.cli", *verbs(runs)[verb]]
    # the shell's `>&-`: descriptor 1 is not open at all in the command
    r = subprocess.run(["sh", "-c", '"$@" >&-', "sh", *argv], stderr=subprocess.PIPE, text=True,
                       timeout=100, env=commbench_env())
    assert_output_error(r, "closed")


@pytest.mark.parametrize("verb", ["compare", "check", "check-list", "fit", "help"])
def test_a_pipe_whose_reader_is_gone(runs, verb):
    read, write = os.pipe()
    os.close(read)
    try:
        r = run_with_stdout(verbs(runs)[verb], write)
    finally:
        os.close(write)
    assert_output_error(r, "Broken pipe")


def test_a_verdict_that_was_written_keeps_its_status(runs):
    r = run_with_stdout(verbs(runs)["compare"], subprocess.PIPE)
    assert r.returncode == 1 and "slower" in r.stdout.lower(), r.stderr
    r = run_with_stdout(["compare", str(runs["run"]), str(runs["run"])], subprocess.PIPE)
    assert r.returncode == 0, r.stderr


@needs_mpi
def test_a_run_whose_tables_cannot_be_shown_keeps_its_results(tmp_path):
    out = tmp_path / "run"
    with open("/dev/full", "w") as full:
        r = run_with_stdout(["run", "--ops", "allreduce", "--sizes", "4,64", *QUICK[:-1],
                             "--out", str(out)], full)  # not -q: the tables go to stdout
    assert_output_error(r, "No space left on device")
    assert json.loads((out / "meta.json").read_text())["status"] == "complete"
