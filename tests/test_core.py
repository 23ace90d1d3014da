"""bench.core: the numpy-only statistics agree with scipy's, and the run-directory format
round-trips through its one writer and its readers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from bench.core import raw_samples, run_writer, rundir, summarize
from bench.core.samples import block_of, encode
from bench.core.stats import binom_half_ppf, kde_silverman, modes, peaks_with_prominence


@pytest.mark.slow
def test_binomial_quantile_matches_scipy():
    binom = pytest.importorskip("scipy.stats").binom
    for q in (0.025, 0.005):
        for n in list(range(1, 1200)) + [5000, 20001]:
            assert binom_half_ppf(q, n) == int(binom.ppf(q, n, 0.5)), (q, n)


@pytest.mark.slow
def test_density_and_peaks_match_scipy():
    stats, signal = pytest.importorskip("scipy.stats"), pytest.importorskip("scipy.signal")
    rng = np.random.default_rng(7)
    for _ in range(100):
        parts = [rng.normal(rng.uniform(-1, 1), rng.uniform(0.01, 0.3), rng.integers(5, 200))
                 for _ in range(rng.integers(1, 4))]
        x = np.concatenate(parts)
        grid = np.linspace(x.min(), x.max(), 512)
        mine = kde_silverman(x, grid)
        np.testing.assert_allclose(mine, stats.gaussian_kde(x, bw_method="silverman")(grid), rtol=1e-9)
        padded = np.concatenate([[0.0], mine, [0.0]])
        theirs, _ = signal.find_peaks(padded, prominence=0.05 * mine.max())
        assert list(peaks_with_prominence(padded, 0.05 * mine.max())) == list(theirs)
    plateau = np.array([0, 1, 1, 1, 0, 2, 2, 0, 3, 0.0])
    assert list(peaks_with_prominence(plateau, 0.0)) == [2, 5, 8]
    assert list(peaks_with_prominence(plateau, 1.5)) == [5, 8]


def test_two_latency_modes_are_found():
    rng = np.random.default_rng(3)
    times = np.concatenate([rng.normal(1e-6, 2e-8, 300), rng.normal(2e-6, 4e-8, 200)])
    found = modes(times)
    assert len(found) == 2 and found[0][1] == 300 and abs(found[1][0] / 2e-6 - 1) < 0.02


def sample(op, nbytes, rnd, i, rank, t):
    return dict(backend="mpi", op=op, dtype="float32", nbytes=nbytes, nranks=2, split="all",
                round=rnd, sample=i, rank=rank, calls=1, time_s=t)


def test_summary_is_the_median_of_per_sample_maxima_over_ranks():
    rows = [sample("allreduce", 8, r, i, rank, (i + 1) * 1e-6 + rank * 1e-7)
            for r in range(2) for i in range(5) for rank in range(2)]
    (row,) = summarize.summary_rows(rows, bus_factor=lambda op, n: 1.0)
    assert row["samples"] == 10 and row["rounds"] == 2
    assert row["median_s"] == pytest.approx(3.1e-6) and row["max_s"] == pytest.approx(5.1e-6)
    assert row["algbw_Bps"] == pytest.approx(8 / 3.1e-6) and math.isnan(row["count"])


def test_written_run_reads_back(tmp_path):
    samples = [sample("pingpong", 4, 0, i, rank, 1e-6 * (1 + i)) for i in range(3) for rank in (0, 1)]
    summary = summarize.summary_rows(samples)
    run_writer.write_run_dir(tmp_path, rundir.new_meta("r1", ["commbench", "import"], "complete"),
                         samples, summary)
    assert rundir.load_meta(tmp_path)["schema"] == rundir.SCHEMA
    back = raw_samples.read_samples(tmp_path)
    def key(row):
        return tuple(row[c] for c in rundir.SAMPLE_COLUMNS)

    assert sorted(map(key, back)) == sorted(map(key, samples))  # every column, exactly
    assert all(r["peer"] == -1 for r in back)  # a column added later gets its default
    with open(tmp_path / "samples.bin", "ab") as f:
        f.write(encode(block_of(("mpi", "pingpong", "float32", 4, 2, "all"), 1, [0, 1], [-1, -1],
                                [[1e-6] * 3] * 2, 1))[:-5])  # a torn last block
    assert len(raw_samples.read_samples(tmp_path)) == len(samples)


def test_a_schema_1_run_reads_back(tmp_path):
    samples = [sample("pingpong", 4, 0, i, rank, 1e-6 * (1 + i)) for i in range(3) for rank in (0, 1)]
    run_writer.write_run_dir(tmp_path, {**rundir.new_meta("r1", [], "complete"), "schema": rundir.SCHEMA_CSV},
                         samples, summarize.summary_rows(samples))
    assert not (tmp_path / "samples.bin").exists()
    back = raw_samples.read_samples(tmp_path)
    assert [r["time_s"] for r in back] == [s["time_s"] for s in samples]  # the file's order
    with open(tmp_path / "samples.csv", "a") as f:
        f.write("mpi,pingpong,float32,4,2,all,0,9,0,1,")  # a torn last line
    assert len(raw_samples.read_samples(tmp_path)) == len(samples)


def test_the_writer_sorts_summary_rows_by_the_op_registry(tmp_path):
    writer = run_writer.RunWriter(tmp_path, rundir.new_meta("r", []))
    rows = [dict(backend="mpi", op=op, split="all", nbytes=n) for op, n in
            (("pingpong", 8), ("allreduce", 64), ("allreduce", 8))]
    writer.write_summary(rows, op_order=["allreduce", "pingpong"])
    lines = (tmp_path / "summary.csv").read_text().splitlines()
    assert [line.split(",")[1:4] for line in lines[1:]] == [
        ["allreduce", "", "8"], ["allreduce", "", "64"], ["pingpong", "", "8"]]
