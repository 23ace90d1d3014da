"""The Python API (analysis.api, analysis/README.md, "Python API"): a run or sweep directory as
DataFrames; fit, predict, check and compare from Python give what the commands give; the
example there runs as written."""
import re
import subprocess
import sys

import pytest

from analysis import api as cb
from analysis.api import RunFailed
from bench.core.errors import RunDirError, UsageError
from tests.conftest import ROOT, commbench_env, needs_mpi
from tests.runs import SMALL_SIZES as SIZES
from tests.runs import write_replicated_run, write_run_with_ceilings


def test_a_run_and_a_sweep_load_as_frames(tmp_path):
    run = cb.load(write_replicated_run(tmp_path / "run", rounds=2, samples=5))
    assert not run.is_sweep and run.meta["run_id"] == "run" and run.fits is None
    assert list(run.summary.nbytes) == SIZES and len(run.samples) == len(SIZES) * 2 * 5 * 2
    assert len(run.times) == len(SIZES) * 2 * 5  # max over the 2 ranks per sample
    sweep = tmp_path / "sweep"
    for n in (2, 4):
        write_replicated_run(sweep / f"n{n}", rounds=2, samples=5, nranks=n)
    both = cb.load(sweep)
    assert both.is_sweep and set(both.meta) == {"n2", "n4"}
    assert sorted(both.summary.nranks.unique()) == [2, 4]
    with pytest.raises(RunDirError):
        cb.load(tmp_path / "nothing")


@pytest.mark.slow
def test_fit_predict_check_and_compare_from_python(tmp_path):
    base = cb.load(write_replicated_run(tmp_path / "base", seed=1))
    fits = base.fit(bootstrap=0)
    assert (tmp_path / "base" / "fits.csv").exists() and set(fits.model) == {"hockney"}
    assert cb.load(tmp_path / "base").fits.equals(fits)
    # the synthetic truth: 2 µs + S / 5 GB/s
    got = cb.predict(fits, "allreduce", nranks=2, nbytes="4K")
    assert got.time_s == pytest.approx(2e-6 + 4096 / 5e9, rel=0.05)
    assert cb.predict(tmp_path / "base", "all_reduce", 2, 4096).time_s == got.time_s
    checked = cb.load(write_run_with_ceilings(tmp_path / "checked", rate=4e9))  # busbw 4 GB/s at 4 MiB
    verdicts = checked.check(minimum=["allreduce:4M=3G", "allreduce:4M=5GB/s"])
    assert list(verdicts.verdict) == ["meets", "below"] and verdicts.attrs["exit_status"] == 1
    slower = write_replicated_run(tmp_path / "new", seed=2, scale=lambda op, n, r: 1.5)
    diff = cb.compare(base, slower)
    assert set(diff.verdict) == {"slower"} and diff.attrs["exit_status"] == 1
    assert diff.attrs["differs"] == []  # the same settings on both sides
    with pytest.raises(UsageError):
        base.check()


@needs_mpi
@pytest.mark.timeout(180)
def test_run_from_python_returns_its_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    for key, value in commbench_env().items():
        if key.startswith("OMPI"):
            monkeypatch.setenv(key, value)
    res = cb.run(out=tmp_path / "r", ops="pingpong", sizes="64,1K", launches=1, repeats=1,
                 budget=0.05, min_samples=5, sample_time=0.0002, noise=False, ceilings=False)
    assert res.path == tmp_path / "r" and res.meta["status"] == "complete"
    assert list(res.summary.nbytes) == [64, 1024] and (res.summary.wrong == 0).all()
    with pytest.raises(UsageError, match="did you mean pingpong"):
        cb.run(out=tmp_path / "bad", ops="pingpnog")
    assert issubclass(RunFailed, RuntimeError)


def readme_example() -> str:
    text = (ROOT / "analysis" / "README.md").read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@needs_mpi
@pytest.mark.timeout(300)
def test_the_readme_example_runs(tmp_path):
    """The example as the README prints it, in a fresh interpreter in an empty directory."""
    r = subprocess.run([sys.executable, "-c", readme_example()], capture_output=True, text=True,
                       cwd=tmp_path, env=commbench_env(), timeout=280)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "pingpong 16 KiB:" in r.stdout and "verdict" in r.stdout
    assert (tmp_path / "api" / "native" / "fits.csv").exists()
    assert (tmp_path / "api" / "python" / "meta.json").exists()
    native = cb.load(tmp_path / "api" / "native").meta["method"]["loop"]["mpi"]
    if native == "native":  # where mpicc builds the native loop, the two runs differ in it
        assert "loop: mpi native vs mpi python" in r.stdout
