"""`commbench sweep`: one run per rank count into DIR/n<count>, then fit and predict on it."""
from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from bench.core.errors import UsageError
from bench.sweep import parse_counts, run_options
from tests.conftest import commbench_env, needs_mpi, run_commbench


def test_run_options_drop_what_the_sweep_sets():
    argv = ["sweep", "--nranks", "2,4", "--ops", "allreduce", "--out", "d", "-q"][1:]
    assert run_options(argv) == ["--ops", "allreduce", "-q"]
    assert run_options(["--nranks=2,4", "--out=d", "--sizes", "4:64"]) == ["--sizes", "4:64"]
    assert run_options(["-n", "2,3", "--budget", "0.1"]) == ["--budget", "0.1"]


def test_parse_counts():
    assert parse_counts("4,2,2") == [2, 4]
    for bad in ("", "2,x", "0,2"):
        with pytest.raises(UsageError):
            parse_counts(bad)


def test_bad_sweep_input_is_one_line_before_any_run(tmp_path):
    r = run_commbench("sweep", "--nranks", "2,x", "--out", tmp_path / "s", timeout=240)
    assert r.returncode == 2 and "malformed --nranks" in r.stderr
    r = run_commbench("sweep", "--nranks", "2,3", "--ops", "multipair", "--out", tmp_path / "s", timeout=240)
    assert r.returncode == 2 and "even number" in r.stderr
    assert not (tmp_path / "s").exists()


@needs_mpi
def test_sweep_fit_predict_and_loggp_on_real_ranks(tmp_path):
    """One small sweep (2 and 3 ranks, oversubscribed) with allreduce and the four prtt ops:
    the runs land in DIR/n<count>, the prtt ops validate and really idle, fit writes Hockney,
    algorithm and LogGP rows, predict answers for an unmeasured count."""
    prtt = ["prtt_rtt1", "prtt_rttn8", "prtt_rtts8", "prtt_rttr8"]
    out = tmp_path / "sweep"
    r = run_commbench("sweep", "--nranks", "2,3", "--ops", ",".join(["allreduce"] + prtt),
                   "--sizes", "4,1K,16K", "--budget", "0.05", "--min-samples", "5",
                   "--sample-time", "0.0002", "--no-noise", "-q", "--out", out, timeout=240)
    assert r.returncode == 0, r.stderr
    for p in (2, 3):
        meta = json.loads((out / f"n{p}" / "meta.json").read_text())
        assert meta["nranks"] == p and meta["status"] == "complete"
        assert meta["ops"]["prtt_rtts8"]["delay_s0"] > 0  # the fit reads d(S) from here
    assert json.loads((out / "sweep.json").read_text())["nranks"] == [2, 3]

    from bench.ops.prtt import prtt_delay_s

    summary = pd.read_csv(out / "n2" / "summary.csv")
    assert (summary.wrong == 0).all() and set(prtt) <= set(summary.op)
    med = summary.set_index(["op", "nbytes"]).median_s
    for size in (4, 1024, 16384):  # 7 idle waits of d(S) at least
        assert med["prtt_rtts8", size] >= 7 * prtt_delay_s(size)
        assert med["prtt_rttr8", size] >= 7 * prtt_delay_s(size)

    r = run_commbench("fit", out, "--bootstrap", "10", timeout=240)
    assert r.returncode == 0, r.stderr
    assert "loggp" in r.stdout
    fits = pd.read_csv(out / "fits.csv")
    assert set(fits[fits.model == "hockney"].nranks) == {2, 3}
    assert (fits[(fits.nranks == 0) & (fits.param == "selected")].value == 1).any()
    loggp = fits[fits.model == "loggp"]
    assert set(loggp.nranks) == {2, 3}
    assert {"g_s", "G_s_per_byte", "L_s", "o_s_s", "o_r_s"} <= set(loggp.param)
    r = run_commbench("predict", "--fits", out, "--op", "allreduce", "--nranks", "16",
                   "--nbytes", "1K", timeout=240)
    assert r.returncode == 0, r.stderr
    assert "time" in r.stdout and "extrapolated" in r.stdout
    # a second sweep into the same directory would mix runs: refused before running
    r = run_commbench("sweep", "--nranks", "2", "--ops", "allreduce", "--out", out, timeout=240)
    assert r.returncode == 2 and "exists" in r.stderr
    # ... unless forced: each run then replaces its own directory
    r = run_commbench("sweep", "--nranks", "2", "--ops", "allreduce", "--sizes", "4", "--budget",
                   "0.05", "--min-samples", "5", "--no-noise", "-q", "--force", "--out", out, timeout=240)
    assert r.returncode == 0, r.stderr
    assert set(pd.read_csv(out / "n2" / "summary.csv").op) == {"allreduce"}


def test_sweep_refuses_slurm_without_slurm(tmp_path):
    """--slurm where sbatch is not on PATH: one line, exit 2, nothing written."""
    env = {**commbench_env(), "PATH": str(tmp_path)}  # an empty directory: no sbatch
    r = subprocess.run([sys.executable, "-m", "bench.cli", "sweep", "--slurm", "--nranks", "2,4",
                        "--ops", "allreduce", "--out", tmp_path / "s"], capture_output=True,
                       text=True, timeout=60, env=env)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        "commbench: error: --slurm: no Slurm here (sbatch not on PATH); run the sweep without "
        "--slurm, or from a Slurm login node"]
    assert not (tmp_path / "s").exists()


def test_run_options_drop_the_sweeps_slurm_options():
    argv = ["--slurm", "--sbatch", "-N 4", "--nranks", "2,4", "--sbatch=-p x", "--budget", "1",
            "--ranks-per-node", "2"]
    assert run_options(argv) == ["--budget", "1"]


def test_slurm_batch_script_places_whole_nodes(tmp_path):
    from bench.slurm import batch_script

    script = batch_script(tmp_path, [2, 6], ["-q"], ["srun", "--mpi=pmix"], python="py",
                          ranks_per_node=2)
    assert "#SBATCH --nodes=3\n#SBATCH --ntasks-per-node=2\n" in script
    assert (f"srun --mpi=pmix -n 6 -N 3 --ntasks-per-node=2 py -m bench.cli run --out {tmp_path}/n6 -q"
            in script)
    with pytest.raises(UsageError, match="3 ranks do not fill whole nodes"):
        batch_script(tmp_path, [2, 3], [], ["srun"], ranks_per_node=2)


def test_ranks_per_node_needs_slurm(tmp_path):
    r = run_commbench("sweep", "--nranks", "2", "--ranks-per-node", "2", "--ops", "allreduce",
                   "--out", tmp_path / "s", timeout=240)
    assert r.returncode == 2 and "it needs --slurm" in r.stderr
