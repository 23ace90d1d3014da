"""Hostile launch settings, checked before any rank starts: a launcher variable that is
malformed, blank or no program (MPIEXEC), one the launcher cannot do without (HOME) or one
pointing at no usable directory (TMPDIR) is one `commbench: error:` line naming the variable,
exit 2, and no run directory left behind; a launcher that fails before any rank records
anything is an abort (3), never a verdict (1), and leaves no directory holding only its lock;
names commbench could not read back (control characters, bytes that are not UTF-8) are refused
up front, for every verb that names a new directory; --sizes 0 is refused, not measured as one
element; the memory guard counts every backend's buffers and the libraries' temporaries on
every rank of the host."""
from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from bench.cli import main as cli
from tests.conftest import QUICK, ROOT, commbench_env, needs_mpi, run_commbench
from tests.runs import write_small_run

pytestmark = pytest.mark.timeout(60)

RUN = ["run", "-n", "2", "--ops", "allreduce", "--sizes", "4", *QUICK]


def assert_one_line(r, code, *needles):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("commbench: "), r.stderr
    assert "Traceback" not in r.stderr
    for needle in needles:
        assert needle in r.stderr, (needle, r.stderr)


def not_executable(tmp_path):
    path = tmp_path / "mpiexec"
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o644)
    return str(path)


@pytest.mark.parametrize("value, needles", [
    ('mpiexec "-x', ["MPIEXEC", "cannot be split", "quot"]),
    ("mpiexec --mca btl 'self", ["MPIEXEC", "cannot be split"]),
    ("mpiexec \\", ["MPIEXEC", "cannot be split"]),
    ("", ["MPIEXEC", "blank"]),
    ("   ", ["MPIEXEC", "blank"]),
    ("\t\n", ["MPIEXEC", "blank"]),
    ("-n 4", ["MPIEXEC", "'-n' is not an executable program"]),
    ("/etc/passwd", ["MPIEXEC", "not an executable program"]),
    ("/", ["MPIEXEC", "not an executable program"]),
    ("no-such-launcher-xyz --oversubscribe", ["MPIEXEC", "not an executable program"]),
    (not_executable, ["MPIEXEC", "not an executable program"]),
])
def test_a_bad_mpiexec_is_one_line_before_any_rank(tmp_path, value, needles):
    value = value(tmp_path) if callable(value) else value
    out = tmp_path / "run"
    r = run_commbench(*RUN, "--out", out, env=commbench_env(MPIEXEC=value), timeout=30)
    assert_one_line(r, 2, *needles)
    assert not out.exists()


def env_without_home():
    env = commbench_env()
    env.pop("HOME", None)
    return env


@pytest.mark.parametrize("env, needles", [
    (env_without_home, ["HOME is not set"]),
    (lambda: commbench_env(HOME=""), ["HOME is not set"]),
    (lambda: commbench_env(TMPDIR="/etc/passwd"), ["TMPDIR", "not a directory"]),
    (lambda: commbench_env(TMPDIR="/dev/null"), ["TMPDIR", "not a directory"]),
])
def test_what_the_launcher_needs_from_the_environment_is_checked_first(tmp_path, env, needles):
    out = tmp_path / "run"
    r = run_commbench(*RUN, "--out", out, env=env(), timeout=30)
    assert_one_line(r, 2, *needles)
    assert not out.exists()


def test_a_torch_run_checks_tmpdir_too(tmp_path):
    pytest.importorskip("torch")
    r = run_commbench(*RUN, "--backend", "gloo", "--out", tmp_path / "run",
                      env=commbench_env(TMPDIR="/etc/passwd"), timeout=30)
    assert_one_line(r, 2, "TMPDIR")


@pytest.mark.parametrize("launcher", ["/bin/false", "/bin/true"])
@pytest.mark.parametrize("existing", [False, True])
def test_a_launcher_that_starts_no_rank_is_an_abort_and_leaves_nothing(tmp_path, launcher, existing):
    out = tmp_path / "run"
    if existing:
        out.mkdir()
    r = run_commbench(*RUN, "--out", out, env=commbench_env(MPIEXEC=launcher), timeout=30)
    assert r.returncode == 3, r.stderr  # not 1: that would read as "wrong results"
    assert "no rank started the run" in r.stderr
    if existing:
        assert os.listdir(out) == []  # the user's directory stays, empty: no lock file
    else:
        assert not out.exists()


# ---------------------------------------------------------------- names that cannot be read back
BAD_NAMES = [b"new\nline", b"tab\there", b"esc\x1b[31m", b"cr\rhere", b"latin\xe9", b"bad\xff\xfe"]


def run_bytes(argv, cwd, timeout=30):
    """The CLI with arguments given as bytes (names that are not UTF-8 reach it as they would
    from a shell)."""
    return subprocess.run([sys.executable.encode(), b"-m", b"bench.cli", *argv], cwd=cwd,
                          capture_output=True, timeout=timeout, env=commbench_env())


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
@pytest.mark.parametrize("verb", ["run", "import", "sweep"])
def test_names_commbench_cannot_read_back_are_refused_up_front(tmp_path, name, verb):
    data = str(ROOT / "tests" / "data" / "nccl_all_reduce.txt").encode()
    argv = {"run": [b"run", b"--ops", b"allreduce", b"--sizes", b"4", b"-q", b"--out", name],
            "import": [b"import", data, b"--out", name],
            "sweep": [b"sweep", b"-n", b"2", b"--ops", b"allreduce", b"--sizes", b"4", b"-q",
                      b"--out", name]}[verb]
    r = run_bytes(argv, tmp_path)
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("commbench: error: --out"), err
    assert "UTF-8" in err or "control character" in err
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", [b"work\nhere", b"work\xff"], ids=repr)
def test_a_working_directory_that_cannot_be_read_back_is_refused_too(tmp_path, name):
    cwd = os.path.join(bytes(tmp_path), name)
    os.mkdir(cwd)
    r = run_bytes([b"run", b"--ops", b"allreduce", b"--sizes", b"4", b"-q"], cwd)
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 2 and "its absolute path" in err and len(err.splitlines()) == 1, err
    assert os.listdir(cwd) == []


def test_a_report_of_a_run_reads_what_run_wrote_under_a_readable_odd_name(tmp_path):
    """Spaces, quotes, commas and non-ASCII UTF-8 are names commbench can read back: taken."""
    run = write_small_run(tmp_path / "r ü, 'q' \"d\"")
    for argv in (["report", run, "--no-fit"], ["compare", run, run], ["fit", run, "--bootstrap", "0"],
                 ["predict", "--fits", run, "--op", "allreduce", "--nranks", "2", "--nbytes", "64"]):
        r = run_commbench(*argv, timeout=60)
        assert r.returncode in (0, 1) and "error" not in r.stderr, (argv, r.stderr)


# ---------------------------------------------------------------- sizes and memory (no ranks)
@pytest.mark.parametrize("sizes", ["0", "0:1K", "8,0", "0K", "00"])
def test_size_zero_is_refused_not_measured_as_one_element(capsys, tmp_path, sizes):
    rc = cli(["run", "--ops", "allreduce", "--sizes", sizes, "-q", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and "0 B moves no data" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


@needs_mpi
def test_rounded_sizes_are_said_even_with_quiet(tmp_path):
    r = run_commbench(*RUN[:-len(QUICK)], "--sizes", "6", *QUICK, "--out", tmp_path / "r", timeout=60)
    assert r.returncode == 0, r.stderr
    assert "6->4" in r.stderr


GiB = 1 << 30


@pytest.mark.parametrize("argv", [
    ["--ops", "allgather", "--sizes", "6G"],                  # 3 G send + 6 G recv + 6 G scratch
    ["--backend", "mpi,mpi", "--sizes", "4G"],                # alltoall 4 + 4 + 4 G
    ["--backend", "mpi,gloo", "--ops", "allreduce", "--sizes", "3G"],  # two arenas + scratch
    ["--ops", "reduce_scatter", "--sizes", "5G"],
    ["-n", "8", "--ops", "allreduce", "--sizes", "1G"],
])
def test_the_memory_guard_counts_every_buffer_of_every_backend_and_rank(monkeypatch, capsys, tmp_path, argv):
    """On a host with 20 GiB available (80%: 16 GiB): each run needs more once every buffer is
    counted, and is refused before any rank starts (the ranks would otherwise fill memory)."""
    from bench import plan

    if "gloo" in argv[1:2]:
        pytest.importorskip("torch")
    monkeypatch.setattr(plan, "mem_available", lambda: 20 * GiB)
    rc = cli(["run", *argv, "-q", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and "GiB of buffers" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


def test_the_memory_guard_lets_what_fits_through(monkeypatch):
    from bench import plan
    from bench.cli import build_parser

    monkeypatch.setattr(plan, "mem_available", lambda: 20 * GiB)
    args = build_parser("run").parse_args(["run", "--ops", "allgather", "--sizes", "1G"])
    p = plan.make_plan(args)
    cases = plan.check_fits(p, 2, 2)
    buffers, _ = plan.memory_needed(p, cases, 2)
    assert buffers == 2 * ((512 << 20) + GiB + 4096 + GiB)  # send + recv + ack + scratch, 2 ranks
    p2 = plan.make_plan(build_parser("run").parse_args(["run", "--ops", "pingpong", "--sizes", "1G"]))
    assert plan.memory_needed(p2, plan.check_fits(p2, 2, 2), 2)[0] == 2 * (2 * GiB + 4096)


def test_a_lock_file_is_only_a_regular_file_of_ours(tmp_path):
    """A FIFO planted as the lock of a directory neither blocks a reader nor counts as a run
    in progress."""
    from bench.core import run_lock, rundir

    os.mkfifo(tmp_path / rundir.LOCK)
    assert not run_lock.in_progress(tmp_path)
    assert stat.S_ISFIFO(os.stat(tmp_path / rundir.LOCK).st_mode)


@pytest.mark.parametrize("verb", ["report", "fit", "compare", "links", "check", "predict"])
def test_a_run_renamed_to_bytes_that_are_not_utf8_is_one_line_for_every_verb(tmp_path, verb):
    good = write_small_run(tmp_path / "good")
    bad = os.path.join(bytes(tmp_path), b"run\xff")
    os.rename(bytes(good), bad)
    argv = {"report": [b"report", bad], "fit": [b"fit", bad, b"--bootstrap", b"0"],
            "compare": [b"compare", bad, bad], "links": [b"links", bad],
            "check": [b"check", bad, b"--baseline", bad],
            "predict": [b"predict", b"--fits", bad, b"--op", b"allreduce", b"--nranks", b"2",
                        b"--nbytes", b"64"]}[verb]
    r = run_bytes(argv, tmp_path)
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 2 and len(err.splitlines()) == 1, err
    assert "run\\xff" in err and "not UTF-8" in err


def test_a_run_renamed_to_a_name_with_a_newline_is_read_back_by_every_verb(tmp_path):
    run = write_small_run(tmp_path / "good").rename(tmp_path / "line\nbreak")
    for argv in (["report", run], ["compare", run, run], ["fit", run, "--bootstrap", "0"],
                 ["predict", "--fits", run, "--op", "allreduce", "--nranks", "2", "--nbytes", "64"]):
        r = run_commbench(*argv, timeout=60)
        assert r.returncode == 0 and "Traceback" not in r.stderr, (argv, r.stderr)


@pytest.mark.parametrize("plant", ["fifo", "link", "dir"])
def test_a_lock_that_is_no_regular_file_is_one_line(tmp_path, capsys, plant):
    from bench.core import rundir

    out = tmp_path / "run"
    out.mkdir()
    lock = out / rundir.LOCK
    {"fifo": lambda: os.mkfifo(lock), "link": lambda: lock.symlink_to(tmp_path / "elsewhere"),
     "dir": lambda: lock.mkdir()}[plant]()
    rc = cli(["import", str(ROOT / "tests" / "data" / "nccl_all_reduce.txt"), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.splitlines()) == 1 and rundir.LOCK in err, err
    assert not (tmp_path / "elsewhere").exists()


# ---------------------------------------------------------------- outside launchers' variables
@pytest.mark.parametrize("env, needles", [
    ({"RANK": "abc", "WORLD_SIZE": "2"}, ["RANK='abc'", "torchrun", "not whole numbers"]),
    ({"RANK": "0", "WORLD_SIZE": "two"}, ["WORLD_SIZE='two'"]),
    ({"RANK": "2", "WORLD_SIZE": "2"}, ["rank 2 is not one of 2 ranks"]),
    ({"RANK": "-1", "WORLD_SIZE": "2"}, ["not one of 2 ranks"]),
    ({"OMPI_COMM_WORLD_RANK": "", "OMPI_COMM_WORLD_SIZE": "4"}, ["OMPI_COMM_WORLD_RANK=''", "openmpi"]),
    ({"PMI_RANK": "1", "PMI_SIZE": "1 "}, ["hydra"]),
    ({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "x"}, ["LOCAL_RANK='x'"]),
])
def test_a_malformed_launcher_world_is_refused_not_taken_for_no_launcher(env, needles):
    from bench.core.errors import UsageError
    from bench.world import detect_world

    with pytest.raises(UsageError) as raised:
        detect_world(env)
    for needle in needles:
        assert needle in str(raised.value)


@pytest.mark.parametrize("addr, port, needle", [
    ("127.0.0.1", "abc", "MASTER_PORT"), ("127.0.0.1", "70000", "MASTER_PORT"),
    ("127.0.0.1", "0", "MASTER_PORT"), ("host name", "29500", "MASTER_ADDR"),
    ("  ", "29500", "MASTER_ADDR"),
])
def test_a_malformed_rendezvous_address_names_the_variable(addr, port, needle):
    from bench.core.errors import UsageError
    from bench.world import World, rendezvous

    with pytest.raises(UsageError, match=needle):
        rendezvous(World("openmpi", 0, 2), {"MASTER_ADDR": addr, "MASTER_PORT": port})


def test_a_malformed_world_is_one_line_before_anything_starts(tmp_path):
    out = tmp_path / "run"
    r = run_commbench(*RUN, "--out", out, env=commbench_env(RANK="zero", WORLD_SIZE="2"), timeout=30)
    assert_one_line(r, 2, "RANK='zero'")
    assert not out.exists()
