"""commbench run on real ranks (Open MPI from the `mpi` extra), oversubscribed on 2 cores."""
import subprocess

import pytest

from analysis.rundir import load_run
from bench.ops import OPS
from tests.conftest import QUICK, commbench_env, mpiexec, needs_mpi, run_commbench

pytestmark = needs_mpi


def _check_complete(out, nranks, ops):
    meta, samples, summary = load_run(out)
    assert meta["status"] == "complete" and meta["nranks"] == nranks and meta["nnodes"] == 1
    assert len(meta["hosts"]) == nranks
    assert set(summary.op) == set(ops)
    assert (summary.wrong == 0).all() and (summary.samples >= 1).all()
    assert (summary.median_s > 0).all()
    assert (summary.ci_low_s <= summary.median_s).all() and (summary.median_s <= summary.ci_high_s).all()
    return meta, samples, summary


@pytest.mark.parametrize("nranks", [1, 2, 4])
def test_every_op_runs_and_validates(tmp_path, nranks):
    ops = [name for name, op in OPS.items() if op.default and op.rank_problem(nranks) is None]
    out = tmp_path / "run"
    r = run_commbench("run", "-n", nranks, "--sizes", "4,4K,64K", "--out", out, *QUICK, timeout=240)
    assert r.returncode == 0, r.stderr
    meta, samples, summary = _check_complete(out, nranks, ops)
    assert set(samples["rank"]) == set(range(nranks))
    pp = samples[samples.op == "pingpong"]
    if nranks > 1:
        assert set(pp["rank"]) == {0, nranks - 1}  # only the pair writes rows


def test_inside_an_external_mpiexec(tmp_path):
    out = tmp_path / "run"
    argv = [mpiexec(), "-n", "2", "--oversubscribe", __import__("sys").executable, "-m", "bench.cli",
            "run", "--ops", "allreduce,bw", "--sizes", "64", "--out", str(out), *QUICK]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=commbench_env())
    assert r.returncode == 0, r.stderr
    _check_complete(out, 2, ["allreduce", "bw"])


def test_summary_is_printed_with_units(tmp_path):
    r = run_commbench("run", "-n", "2", "--ops", "allgather", "--sizes", "1K", "--out",
                      tmp_path / "r", "--budget", "0.05", "--min-samples", "5")
    assert r.returncode == 0, r.stderr
    assert "median(us)" in r.stdout and "busbw(GB/s)" in r.stdout and "# allgather" in r.stdout
    assert "1024" in r.stdout


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


def test_failing_rank_aborts_the_job_and_keeps_finished_cases(tmp_path):
    out = tmp_path / "run"
    r = run_commbench("run", "-n", "2", "--ops", "allreduce,broadcast", "--sizes", "64,4K",
                      "--out", out, *QUICK, env=commbench_env(COMMBENCH_INJECT="raise:broadcast:4096:1"),
                      timeout=120)
    assert r.returncode == 3
    assert "rank 1 failed in broadcast at 4096 B on mpi: RuntimeError: injected failure" in r.stderr
    meta, samples, summary = load_run(out)
    assert meta["status"] == "aborted"
    assert {(o, b) for o, b in zip(summary.op, summary.nbytes)} == {
        ("allreduce", 64), ("allreduce", 4096), ("broadcast", 64)}
    assert len(samples) > 0


def test_hung_rank_is_caught_by_the_watchdog(tmp_path):
    out = tmp_path / "run"
    r = run_commbench("run", "-n", "2", "--ops", "allreduce", "--sizes", "64,4K", "--out", out,
                      "--timeout", "10", *QUICK, env=commbench_env(COMMBENCH_INJECT="hang:allreduce:4096:0"),
                      timeout=120)
    assert r.returncode == 3
    assert "timeout: allreduce at 4096 B on mpi made no progress for 10 s" in r.stderr
    meta, _, summary = load_run(out)
    assert meta["status"] == "aborted" and "allreduce at 4096 B" in meta["error"]
    assert list(summary.nbytes) == [64]


def test_noise_calibration_is_stored_and_printed(tmp_path):
    out = tmp_path / "noise"
    r = run_commbench("noise", "--out", out, "--budget", "0.05", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "# noise: timer step" in r.stdout and "ping-pong over 8 bursts" in r.stdout
    meta, _, summary = load_run(out)
    noise = meta["noise"]
    assert len(noise["jitter_per_rank"]) == 2
    assert all(j["p99_over_median"] >= 1 for j in noise["jitter_per_rank"])
    assert len(noise["pingpong"]["burst_medians_s"]) == 8 and noise["pingpong"]["max_over_min"] >= 1
    assert set(meta["contention"]["hosts"]) == set(meta["hosts"])
    assert list(summary.op) == ["barrier"]


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
    assert meta["status"] == "wrong" and [l["index"] for l in meta["launches"]] == [0, 1]
    assert sorted(samples["round"].unique()) == [0, 1, 2, 3]
    assert (summary.rounds == 4).all()
    wrong = {(row.op, row.nbytes): row.wrong for row in summary.itertuples()}
    assert wrong == {("allreduce", 64): 0, ("allreduce", 1024): 4, ("pingpong", 64): 0, ("pingpong", 1024): 0}
