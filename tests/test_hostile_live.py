"""Verbs against a run in progress, and derived files that outlive their data. A run directory
whose lock another process holds (a run going on) is refused by every verb that reads it
(exit 2, one line: half a run is not read as a whole one) and by every verb that writes into it
(run --force, import --force, sweep --force: nothing of the live run is removed or mixed in).
fits.csv records the data it was fitted from (fits.source.json); fits whose data has changed
since (more samples, another run, another import, another status) are refitted where a verb
may fit (predict), else not used and said so (report), never silently reused."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pytest

from analysis.fits_source import stale_reason
from bench.core.rundir import FITS_SOURCE
from bench.cli import main as cli
from bench.core import raw_samples, run_lock, rundir
from tests.conftest import ROOT, commbench_env, needs_mpi, run_cli
from tests.runs import small_samples, write_small_run

pytestmark = pytest.mark.timeout(90)

DATA = ROOT / "tests" / "data"


@pytest.fixture
def live(tmp_path):
    """A run directory with status running whose lock another process holds (as the local
    launcher, or rank 0 under mpirun, holds it for the whole run)."""
    run = write_small_run(tmp_path / "live", status="running")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom bench.core.run_lock import RunLock\n"
         "lock = RunLock(sys.argv[1])\nprint('locked', flush=True)\ntime.sleep(120)\n", str(run)],
        stdout=subprocess.PIPE, text=True, env=commbench_env())
    assert holder.stdout.readline().strip() == "locked"
    yield run
    holder.kill()
    holder.wait()


def snapshot(run):
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != rundir.LOCK}


def cli_err(capsys, argv):
    rc, _, err = run_cli(capsys, *argv)
    return rc, err


def assert_live_refused(rc, err, needle="still writing it"):
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("commbench: error: "), err
    assert needle in err, err


@pytest.mark.parametrize("argv", [
    ["fit", "{run}", "--bootstrap", "0"],
    ["report", "{run}", "--no-fit", "--out", "{tmp}/report"],
    ["report", "{run}", "--out", "{tmp}/report"],
    ["check", "{run}", "--min", "allreduce:64=1K"],
    ["check", "{other}", "--baseline", "{run}"],
    ["compare", "{other}", "{run}"],
    ["compare", "{run}", "{other}"],
    ["links", "{run}"],
    ["predict", "--fits", "{run}", "--op", "allreduce", "--nranks", "2", "--nbytes", "64"],
])
def test_every_verb_refuses_a_run_in_progress(live, tmp_path, capsys, argv):
    other = write_small_run(tmp_path / "other")
    before = snapshot(live)
    argv = [a.format(run=live, other=other, tmp=tmp_path) for a in argv]
    assert_live_refused(*cli_err(capsys, argv))
    assert snapshot(live) == before  # no fits.csv, no report written into it
    assert not (tmp_path / "report").exists()


def test_a_sweep_directory_with_a_run_in_progress_is_refused(live, tmp_path, capsys):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    shutil.copytree(write_small_run(tmp_path / "n4", small_samples(nranks=4)), sweep / "n4")
    (sweep / "n2").symlink_to(live)
    for argv in (["fit", sweep, "--bootstrap", "0"],
                 ["predict", "--fits", sweep, "--op", "allreduce", "--nranks", "8", "--nbytes", "64"]):
        assert_live_refused(*cli_err(capsys, argv))
    assert not (sweep / "fits.csv").exists()


def test_writers_never_clear_nor_mix_into_a_run_in_progress(live, tmp_path, capsys):
    before = snapshot(live)
    rc, err = cli_err(capsys, ["import", DATA / "nccl_all_reduce.txt", "--out", live, "--force"])
    assert_live_refused(rc, err, "in use by another commbench run")
    rc, err = cli_err(capsys, ["run", "--ops", "allreduce", "--sizes", "4", "-q", "--out", live,
                               "--force"])
    assert_live_refused(rc, err, "in use by another commbench run")
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "n2").symlink_to(live)
    rc, err = cli_err(capsys, ["sweep", "-n", "2", "--ops", "allreduce", "--sizes", "4", "-q",
                               "--out", sweep, "--force"])
    assert_live_refused(rc, err, "in use by a commbench run in progress")
    assert not (sweep / "sweep.json").exists()
    assert snapshot(live) == before


def test_once_the_lock_is_free_the_run_is_read_again(tmp_path, capsys):
    """A run left `running` by a crash (nobody holds its lock) is readable, as before."""
    run = write_small_run(tmp_path / "crashed", status="running")
    lock = run_lock.RunLock(run)
    lock.release()
    rc, err = cli_err(capsys, ["fit", run, "--bootstrap", "0"])
    assert rc == 0, err


# ---------------------------------------------------------------- stale derived files
def predict(capsys, fits):
    rc = cli(["predict", "--fits", str(fits), "--op", "allreduce", "--nranks", "2", "--nbytes", "4096"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return captured.err


def later(path):
    """Make sure a rewrite gets another modification time, even on a coarse clock."""
    time.sleep(0.01)
    return path


@pytest.fixture
def fitted(tmp_path, capsys):
    run = write_small_run(tmp_path / "run")
    assert cli(["fit", str(run), "--bootstrap", "0"]) == 0
    capsys.readouterr()
    assert (run / FITS_SOURCE).exists() and stale_reason(run) is None
    return run


def append_samples(run):
    extra = small_samples(seed=5)
    extra["round"] += 2
    with open(later(run / "samples.csv"), "a") as f:
        extra.assign(peer=-1).to_csv(f, header=False, index=False)


def reimport(run, capsys):
    assert cli(["import", str(DATA / "nccl_all_reduce.txt"), "--out", str(run), "--force"]) == 0
    capsys.readouterr()


def test_import_force_starts_afresh_and_the_old_fits_go_with_it(fitted, capsys):
    """import --force into a fitted run (as run --force): a new run, no fits of the old one."""
    reimport(fitted, capsys)
    assert not (fitted / "fits.csv").exists() and not (fitted / FITS_SOURCE).exists()
    assert stale_reason(fitted) is None


def set_status(run, status):
    meta = json.loads((run / "meta.json").read_text())
    meta["status"] = status
    (run / "meta.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("change, why", [
    (lambda run, capsys: append_samples(run), "samples.csv changed"),
    (lambda run, capsys: set_status(run, "aborted"), "complete when fitted, aborted now"),
    (lambda run, capsys: (later(run / "summary.csv")).write_text(
        (run / "summary.csv").read_text() + ""), None),  # same bytes, new mtime: still stale
])
@pytest.mark.slow
def test_fits_of_changed_data_are_refitted_or_not_used(fitted, capsys, change, why):
    assert "fitting" not in predict(capsys, fitted)  # fresh: used as it is
    change(fitted, capsys)
    reason = stale_reason(fitted)
    assert reason and (why is None or why in reason), reason
    rc = cli(["report", str(fitted), "--out", str(fitted.parent / "report")])
    err = capsys.readouterr().err
    assert rc == 0 and "is stale" in err and "not used" in err, err
    err = predict(capsys, fitted)
    assert "is stale" in err and "fitting it now" in err, err
    assert stale_reason(fitted) is None  # refitted and recorded
    assert "fitting" not in predict(capsys, fitted)


@pytest.mark.slow
def test_a_new_run_in_a_fitted_sweep_makes_its_fits_stale(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    write_small_run(sweep / "n2")
    write_small_run(sweep / "n4", small_samples(nranks=4))
    assert cli(["fit", str(sweep), "--bootstrap", "0"]) == 0
    capsys.readouterr()
    assert stale_reason(sweep) is None
    write_small_run(sweep / "n8", small_samples(nranks=8))
    assert "n8: a run fitted after" in stale_reason(sweep)
    shutil.rmtree(sweep / "n8")
    shutil.rmtree(sweep / "n4")
    assert stale_reason(sweep) == "a fitted run is gone"


def test_fits_of_unknown_origin_are_used_as_before(fitted, capsys):
    (fitted / FITS_SOURCE).unlink()
    append_samples(fitted)
    assert stale_reason(fitted) is None
    assert "fitting" not in predict(capsys, fitted)


# ---------------------------------------------------------------- a real run
@needs_mpi
@pytest.mark.timeout(180)
def test_a_real_run_in_progress_is_refused_and_stays_its_own(tmp_path):
    from tests.runs import start_long_run, wait_for_samples

    out = tmp_path / "run"
    proc = start_long_run(out)
    try:
        wait_for_samples(proc, out)
        env = commbench_env()
        for argv in (["fit", out, "--bootstrap", "0"], ["check", out, "--min", "allreduce:64=1K"],
                     ["import", DATA / "nccl_all_reduce.txt", "--out", out, "--force"]):
            r = subprocess.run([sys.executable, "-m", "bench.cli", *map(str, argv)],
                               capture_output=True, text=True, timeout=60, env=env)
            assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
        assert not (out / "fits.csv").exists()
        proc.terminate()
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    samples = raw_samples.read_samples(out)
    assert samples and {s["backend"] for s in samples} == {"mpi"}  # no imported rows in it
    r = subprocess.run([sys.executable, "-m", "bench.cli", "fit", str(out), "--bootstrap", "0"],
                       capture_output=True, text=True, timeout=60, env=commbench_env())
    assert r.returncode == 0, r.stderr  # the run is over (aborted): readable again
