"""commbench run on real ranks, oversubscribed on 2 cores: the run directory, exit codes, faults
and launch paths, on mpi (Open MPI from the `mpi` extra) and, where the test is the same for it,
on gloo (torch on CPU). What each op computes is checked on real ranks without a run, at more
sizes and dtypes, by tests/test_ops_spmd.py."""
import subprocess
import sys

import pytest

from analysis.runsamples import load_run
from bench.ops import OPS
from tests.conftest import QUICK, commbench_env, mpiexec, needs_mpi, run_commbench
from tests.runs import BACKENDS, LIBRARY, check_complete, env_without


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("nranks", [1, 4])
def test_every_op_runs_and_is_recorded(tmp_path, backend, nranks):
    """Every default op the rank count allows (on 1 rank, `all` skips the pair ops), validated
    and recorded by every rank; only the pair writes pingpong rows. The other backend's library
    is unimportable: mpi users need no torch, and the torch launcher and backend nothing from
    the mpi extra."""
    ops = [name for name, op in OPS.items() if op.default and op.rank_problem(nranks) is None]
    out = tmp_path / "run"
    other = LIBRARY["gloo" if backend == "mpi" else "mpi"]
    r = run_commbench("run", "--backend", backend, "-n", nranks, "--dtype", "int32", "--sizes",
                      "4,64K", "--out", out, *QUICK, timeout=300, env=env_without(tmp_path, other))
    assert r.returncode == 0, r.stderr
    meta, samples, summary = check_complete(out, nranks, ops, (backend,))
    assert set(summary.dtype) == {"int32"} and meta["dtype"] == "int32"
    assert set(samples["rank"]) == set(range(nranks))
    pp = samples[samples.op == "pingpong"]
    assert set(pp["rank"]) == ({0, nranks - 1} if nranks > 1 else set())  # only the pair
    if backend == "gloo":
        import torch

        versions = meta["backends"]["gloo"]
        assert versions["torch"] == torch.__version__ and versions["device"] == "cpu"
        assert versions["init_method"] == "env://"


@needs_mpi
@pytest.mark.parametrize("backend", BACKENDS)
def test_inside_an_external_mpiexec(tmp_path, backend):
    out = tmp_path / "run"
    argv = [mpiexec(), "-n", "2", "--oversubscribe", sys.executable, "-m", "bench.cli", "run",
            "--backend", backend, "--ops", "allreduce,bw", "--sizes", "64", "--out", str(out), *QUICK]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=200, env=commbench_env())
    assert r.returncode == 0, r.stderr
    check_complete(out, 2, ["allreduce", "bw"], (backend,))


@needs_mpi
def test_summary_is_printed_with_units(tmp_path):
    r = run_commbench("run", "-n", "2", "--ops", "allgather", "--sizes", "1K", "--out",
                      tmp_path / "r", "--budget", "0.05", "--min-samples", "5")
    assert r.returncode == 0, r.stderr
    assert "median(us)" in r.stdout and "busbw(GB/s)" in r.stdout and "# allgather" in r.stdout
    assert "1024" in r.stdout


@needs_mpi
def test_corrupted_data_is_reported_wrong(tmp_path):
    out = tmp_path / "run"
    r = run_commbench("run", "-n", "2", "--ops", "allreduce,pingpong", "--sizes", "64,1K",
                      "--out", out, *QUICK, env=commbench_env(COMMBENCH_INJECT="corrupt:allreduce:1024:1"))
    assert r.returncode == 1
    assert "failed validation" in r.stderr
    meta, _, summary = load_run(out)
    assert meta["status"] == "wrong"
    wrong = {(row.op, row.nbytes): row.wrong for row in summary.itertuples()}
    assert wrong == {("allreduce", 64): 0, ("allreduce", 1024): 1, ("pingpong", 64): 0, ("pingpong", 1024): 0}


@pytest.mark.parametrize("backend", BACKENDS)
def test_failing_rank_aborts_the_job_and_keeps_finished_cases(tmp_path, backend):
    out = tmp_path / "run"
    r = run_commbench("run", "--backend", backend, "-n", "2", "--ops", "allreduce,broadcast",
                      "--sizes", "64,4K", "--out", out, *QUICK, timeout=120,
                      env=commbench_env(COMMBENCH_INJECT="raise:broadcast:4096:1"))
    assert r.returncode == 3
    assert f"rank 1 failed in broadcast at 4096 B on {backend}: RuntimeError: injected failure" in r.stderr
    meta, samples, summary = load_run(out)
    assert meta["status"] == "aborted"
    assert {(o, b) for o, b in zip(summary.op, summary.nbytes)} == {
        ("allreduce", 64), ("allreduce", 4096), ("broadcast", 64)}
    assert len(samples) > 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_hung_rank_ends_the_job(tmp_path, backend):
    """Rank 0 hangs in a case: rank 0's watchdog aborts the job; on gloo rank 1's process group
    timeout (the same limit) may come first."""
    out = tmp_path / "run"
    r = run_commbench("run", "--backend", backend, "-n", "2", "--ops", "allreduce", "--sizes",
                      "64,4K", "--timeout", "5", "--out", out, *QUICK, timeout=120,
                      env=commbench_env(COMMBENCH_INJECT="hang:allreduce:4096:0"))
    assert r.returncode == 3
    watchdog = f"timeout: allreduce at 4096 B on {backend} made no progress for 5 s" in r.stderr
    group_timeout = "rank 1 failed in allreduce at 4096 B on gloo" in r.stderr and "Timed out" in r.stderr
    assert watchdog or (backend == "gloo" and group_timeout), r.stderr
    meta, _, summary = load_run(out)
    assert meta["status"] == "aborted" and "allreduce at 4096 B" in meta["error"]
    assert list(summary.nbytes) == [64]


@needs_mpi
def test_noise_calibration_is_stored_and_printed(tmp_path):
    out = tmp_path / "noise"
    r = run_commbench("noise", "--out", out, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "# noise: timer step" in r.stdout and "ping-pong over 8 bursts" in r.stdout
    assert "# barrier" not in r.stdout and "median(us)" not in r.stdout  # its one line alone
    for option in ("--ops", "--sizes", "--budget"):  # noise has its own few options
        bad = run_commbench("noise", option, "1", "--out", tmp_path / "x", timeout=60)
        assert bad.returncode == 2 and "unrecognized arguments" in bad.stderr
    meta, _, summary = load_run(out)
    noise = meta["noise"]
    assert len(noise["jitter_per_rank"]) == 2
    assert all(j["p99_over_median"] >= 1 for j in noise["jitter_per_rank"])
    assert len(noise["pingpong"]["burst_medians_s"]) == 8 and noise["pingpong"]["max_over_min"] >= 1
    assert set(meta["contention"]["hosts"]) == set(meta["hosts"])
    assert list(summary.op) == ["barrier"]


@needs_mpi
def test_several_launches_make_one_run(tmp_path):
    """--launches restarts the ranks; rounds continue, the summary covers every launch and
    wrong results of every launch count."""
    out = tmp_path / "run"
    quick = [a for a in QUICK if a != "-q"]
    quick[quick.index("--launches") + 1] = "2"
    quick[quick.index("--repeats") + 1] = "2"  # shuffled rounds: every launch must agree on the order
    r = run_commbench("run", "-n", "2", "--ops", "allreduce,pingpong", "--sizes", "64,1K",
                      "--out", out, *quick, env=commbench_env(COMMBENCH_INJECT="corrupt:allreduce:1024:1"),
                      timeout=180)
    assert r.returncode == 1, r.stderr
    assert r.stdout.count("# allreduce") == 1  # one table, printed after the last launch
    meta, samples, summary = load_run(out)
    assert meta["status"] == "wrong" and [launch["index"] for launch in meta["launches"]] == [0, 1]
    assert sorted(samples["round"].unique()) == [0, 1, 2, 3]
    assert (summary.rounds == 4).all()
    wrong = {(row.op, row.nbytes): row.wrong for row in summary.itertuples()}
    assert wrong == {("allreduce", 64): 0, ("allreduce", 1024): 4, ("pingpong", 64): 0, ("pingpong", 1024): 0}


@needs_mpi
@pytest.mark.timeout(120)
def test_notes_about_the_plan_are_said_once_per_run(tmp_path):
    """Three launches, one rounded size: the 'sizes rounded' note is printed once, not once
    per launch."""
    quick = [a for a in QUICK if a != "-q"]
    quick[quick.index("--launches") + 1] = "3"
    r = run_commbench("run", "-n", "2", "--ops", "allreduce", "--sizes", "6,64",
                      "--out", tmp_path / "run", *quick, timeout=110)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("sizes rounded") == 1, r.stderr
