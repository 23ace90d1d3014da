"""`commbench fit`: synthetic sample times from known parameters (with multiplicative noise and
outlying samples) must give the parameters back within 5% and the break point within one size
step; the algorithm that generated a sweep must be the one selected."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis import models
from analysis.algorithms import fit_algorithms, size_steps
from analysis.hockney import fit_hockney
from analysis.loggp import fit_loggp
from analysis.robust import fit_relative, segment_for
from bench.core.rundir import FITS_COLUMNS
from tests.runs import synthetic_meta

SIZES = 2.0 ** np.arange(0, 23)  # 1 B .. 4 MiB, the default-like geometric sweep


def noisy(rng, t, n=40, sigma=0.03, outliers=0.05):
    """n samples around t: lognormal noise plus a share of slow outliers (2-5x), as a loaded
    machine gives them."""
    x = t * np.exp(rng.normal(0.0, sigma, n))
    bad = rng.random(n) < outliers
    x[bad] *= rng.uniform(2.0, 5.0, bad.sum())
    return x


def two_protocols(a1=1.2e-6, b1=1 / 6e9, a2=4e-6, b2=1 / 14e9, last_eager=4096):
    """Eager (small α, poor bandwidth) up to last_eager, rendezvous (larger α, better
    bandwidth) above: Open MPI's shared-memory step."""
    return np.where(SIZES <= last_eager, a1 + SIZES * b1, a2 + SIZES * b2)


def close(got, want, rel=0.05):
    return abs(got - want) <= rel * abs(want)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.slow
def test_hockney_recovers_parameters_and_break_point(seed):
    rng = np.random.default_rng(seed)
    a1, b1, a2, b2 = 1.2e-6, 1 / 6e9, 4e-6, 1 / 14e9
    truth = two_protocols(a1, b1, a2, b2)
    segs = fit_hockney(SIZES, [noisy(rng, t) for t in truth], n_boot=50, seed=seed)
    assert len(segs) == 2
    true_break = int(np.searchsorted(SIZES, 4096))  # index of the last eager size
    assert abs(segs[0].hi - true_break) <= 1
    for seg, (a, b) in zip(segs, [(a1, b1), (a2, b2)]):
        assert close(seg.theta[0], a), (seg.theta, a)
        assert close(seg.theta[1], b), (seg.theta, b)
        # the bootstrap interval is an interval around the estimate, and not absurdly wide
        assert seg.ci_low[0] <= seg.theta[0] <= seg.ci_high[0]
        assert seg.ci_high[1] - seg.ci_low[1] < 0.2 * seg.theta[1]


def test_hockney_finds_three_protocols():
    """eager -> single copy (CMA) -> a different large-message path, both steps found."""
    rng = np.random.default_rng(7)
    truth = np.select([SIZES <= 4096, SIZES <= 256 * 1024],
                      [1e-6 + SIZES / 5e9, 6e-6 + SIZES / 12e9], 30e-6 + SIZES / 20e9)
    segs = fit_hockney(SIZES, [noisy(rng, t) for t in truth], n_boot=0)
    assert [s.nbytes_hi for s in segs[:-1]] in (
        [4096, 256 * 1024], [4096, 128 * 1024], [8192, 256 * 1024], [2048, 256 * 1024],
        [4096, 512 * 1024])
    assert close(1 / segs[-1].theta[1], 20e9)


@pytest.mark.slow
def test_one_line_stays_one_segment():
    """Noise and outliers alone must not create break points."""
    for seed in range(4):
        rng = np.random.default_rng(100 + seed)
        truth = 2e-6 + SIZES / 10e9
        segs = fit_hockney(SIZES, [noisy(rng, t) for t in truth], n_boot=0)
        assert len(segs) == 1, [(s.nbytes_lo, s.nbytes_hi) for s in segs]
        assert close(segs[0].theta[0], 2e-6) and close(segs[0].theta[1], 1 / 10e9)


def test_robust_to_an_outlying_size():
    """One size 40% slow in every sample (a THP or cache effect) barely moves the line."""
    rng = np.random.default_rng(5)
    truth = 2e-6 + SIZES / 10e9
    samples = [noisy(rng, t) for t in truth]
    samples[12] = samples[12] * 1.4
    segs = fit_hockney(SIZES, samples, n_boot=0, min_points=3, max_segments=1)
    assert close(segs[0].theta[0], 2e-6) and close(segs[0].theta[1], 1 / 10e9)
    # without the robust loss the same point moves α by more: the test can tell them apart
    X = np.column_stack([np.ones_like(SIZES), SIZES])
    med = np.array([np.median(s) for s in samples])
    plain = fit_relative(X, med, robust=False)
    robust = fit_relative(X, med)
    assert abs(robust[0] - 2e-6) < abs(plain[0] - 2e-6)


@pytest.mark.parametrize("factor", [1.3, 3.0])
@pytest.mark.slow
def test_an_outlying_size_does_not_create_a_break_point(factor):
    """A size 30% or 3x slow in all its samples is not a protocol change: still 2 segments."""
    for seed in range(3):
        rng = np.random.default_rng(200 + seed)
        samples = [noisy(rng, t) for t in two_protocols()]
        k = int(rng.integers(0, len(SIZES)))
        samples[k] = samples[k] * factor
        segs = fit_hockney(SIZES, samples, n_boot=0)
        assert [s.nbytes_hi for s in segs] == [4096, SIZES[-1]], (k, factor)


def test_segment_for_uses_geometric_midpoints():
    bounds = [(1, 4096), (8192, 4 << 20)]
    assert segment_for(4096, bounds) == 0
    assert segment_for(5000, bounds) == 0
    assert segment_for(6000, bounds) == 1
    assert segment_for(1 << 40, bounds) == 1
    assert segment_for(0, bounds) == 0


def sweep_cases(rng, op, small, large, counts=(2, 3, 4, 6, 8), last_small=4096, params=None):
    """{(p, n): samples}: algorithm `small` up to last_small, `large` above."""
    (p_small, p_large) = params or ([1e-6, 1 / 5e9, 0], [3e-6, 1 / 10e9, 0])
    sizes = 2.0 ** np.arange(2, 23)
    cases = {}
    for p in counts:
        t = np.where(sizes <= last_small, models.predict(op, small, p, sizes, p_small),
                     models.predict(op, large, p, sizes, p_large))
        for n, tt in zip(sizes, t):
            cases[(p, n)] = noisy(rng, tt, n=30)
    return cases


@pytest.mark.slow
def test_algorithm_identification_by_held_out_rank_counts():
    rng = np.random.default_rng(11)
    cases = sweep_cases(rng, "allreduce", "recursive_doubling", "ring")
    res = fit_algorithms("allreduce", cases, n_boot=30)
    assert len(res) == 2
    (seg0, fits0), (seg1, fits1) = res
    assert abs(np.log2(seg0.nbytes_hi) - 12) <= 1
    best0 = next(f for f in fits0 if f.selected)
    best1 = next(f for f in fits1 if f.selected)
    assert best0.name == "recursive_doubling" and best1.name == "ring"
    assert close(best0.theta[0], 1e-6) and close(best0.theta[1], 1 / 5e9)
    assert close(best1.theta[0], 3e-6) and close(best1.theta[1], 1 / 10e9)
    assert best1.loo_rel_error < 0.05
    others = [f.loo_rel_error for f in fits1 if not f.selected]
    assert min(others) > 2 * best1.loo_rel_error
    assert set(best1.heldout) == {2, 3, 4, 6, 8}


@pytest.mark.parametrize("op,algs", [("alltoall", ("bruck", "pairwise")),
                                     ("broadcast", ("binomial", "scatter_allgather")),
                                     ("broadcast", ("binomial", "linear")),
                                     ("reduce_scatter", ("recursive_halving", "ring")),
                                     ("allgather", ("recursive_doubling", "ring"))])
@pytest.mark.slow
def test_other_collectives_identified(op, algs):
    rng = np.random.default_rng(3)
    cases = sweep_cases(rng, op, *algs)
    res = fit_algorithms(op, cases, n_boot=0)
    chosen = [next(f.name for f in fits if f.selected) for _, fits in res]
    assert chosen[0] == algs[0] and chosen[-1] == algs[1]


def test_rank_counts_that_are_not_powers_of_two_fold_in():
    """Recursive doubling and halving fold the p − p' ranks beyond a power of two in and out
    again: two more rounds of n (one more reduction), so 3 ranks cost more than 4; at powers
    of two the textbook formulas; trees and Bruck keep ⌈lg p⌉ rounds."""
    p = np.array([2, 3, 4, 5, 6, 8, 12, 16])
    lg2 = np.log2([2, 2, 4, 4, 4, 8, 8, 16])  # lg p'
    fold = np.array([0, 1, 0, 1, 1, 0, 1, 0])
    q = 2.0 ** lg2

    def X(op, alg):
        return models.design_matrix(op, alg, p, 1.0)
    assert np.allclose(X("allreduce", "recursive_doubling"),
                       np.column_stack([lg2 + 2 * fold, lg2 + 2 * fold, lg2 + fold]))
    assert np.allclose(X("allreduce", "rabenseifner"),
                       np.column_stack([2 * lg2 + 2 * fold, 2 * (q - 1) / q + 2 * fold,
                                        (q - 1) / q + fold]))
    assert np.allclose(X("reduce_scatter", "recursive_halving"),
                       np.column_stack([lg2 + 2 * fold, (q - 1) / q + fold * (1 + 1 / p),
                                        (q - 1) / q + fold]))
    assert np.allclose(X("reduce", "rabenseifner"),
                       np.column_stack([2 * lg2 + fold, 2 * (q - 1) / q + fold,
                                        (q - 1) / q + fold]))
    rd = models.predict("allreduce", "recursive_doubling", p, 1 << 20, [1e-6, 1e-9, 1e-10])
    assert rd[1] > rd[2]  # 3 ranks slower than 4
    assert np.allclose(X("alltoall", "bruck")[:, 0], np.ceil(np.log2(p)))
    assert np.allclose(X("broadcast", "binomial")[:, 0], np.ceil(np.log2(p)))
    # max-rate: the main rounds load p' ranks, the fold rounds the p − p' folded ones
    for alg in ("recursive_doubling", "rabenseifner"):
        w, k = models.senders("allreduce", alg, [3, 4, 6])
        assert np.allclose(w.sum(axis=1), 1.0)
        assert np.allclose(k[0], [2, 1]) and np.allclose(k[1, :1], [4]) and w[1, 0] == 1.0
        assert np.allclose(k[2], [4, 2])
    w, k = models.senders("reduce", "rabenseifner", [6])
    assert np.isclose(w.sum(), 1.0) and k.max() <= 4 and np.isclose(k[0, -1], 2)
    # linear broadcast: only the root sends
    assert np.allclose(models.senders("broadcast", "linear", [8])[1], 1.0)


@pytest.mark.parametrize("op,alg", [("allreduce", "recursive_doubling"),
                                    ("allreduce", "rabenseifner"),
                                    ("broadcast", "linear")])
@pytest.mark.slow
def test_predicted_beyond_non_powers_of_two(op, alg):
    """A sweep over 2, 3, 4 and 5 ranks (two of them folded) predicts 6 ranks from the
    algorithm that made it."""
    rng = np.random.default_rng(8)
    params = [2e-6, 1 / 4e9, 1 / 8e9]
    sizes = 2.0 ** np.arange(10, 23)
    cases = {(p, n): noisy(rng, float(models.predict(op, alg, p, n, params)), n=30)
             for p in (2, 3, 4, 5) for n in sizes}
    res = fit_algorithms(op, cases, n_boot=0)
    for seg, fits in res:
        best = next(f for f in fits if f.selected)
        assert best.name == alg
        mid = np.sqrt(seg.nbytes_lo * seg.nbytes_hi)
        got = models.predict(op, alg, 6, mid, list(best.theta))
        assert close(got, models.predict(op, alg, 6, mid, params)), (seg, best.theta)


@pytest.mark.slow
def test_gamma_is_not_invented_when_unidentifiable():
    """In every allreduce model β and γ scale alike: γ must come out 0 (folded into β)."""
    rng = np.random.default_rng(2)
    cases = sweep_cases(rng, "allreduce", "ring", "ring", params=([2e-6, 1e-10, 5e-11],) * 2)
    (seg, fits), = fit_algorithms("allreduce", cases, n_boot=0)
    ring = next(f for f in fits if f.name == "ring")
    assert ring.theta[2] == 0.0
    # ring: 2n(p-1)/p·β + n(p-1)/p·γ  ->  effective β = β + γ/2
    assert close(ring.theta[1], 1e-10 + 5e-11 / 2)


PRTT_SIZES = 2.0 ** np.arange(2, 19)


def synthetic_prtt(rng, L=0.8e-6, o_s=0.3e-6, o_r=0.25e-6, g=0.5e-6, G=1 / 8e9, n=8,
                   delay=lambda s: 20e-6 + s / 0.5e9, sizes=PRTT_SIZES):
    """The LogGP round trips of `fit_loggp`'s docstring, with noise."""
    out = {}
    for s in sizes:
        one_way = o_s + L + (s - 1) * G + o_r
        rtt1 = 2 * one_way
        gall = g + (s - 1) * G
        d = delay(s)
        exact = {"rtt1": rtt1, "rttn": rtt1 + (n - 1) * gall,
                 "rtts": rtt1 + (n - 1) * max(o_s + d, gall),
                 "rttr": rtt1 + (n - 1) * max(o_r + d, gall)}
        for kind, t in exact.items():
            out[(kind, s)] = noisy(rng, t, n=200, sigma=0.01, outliers=0.03)
    return out


def test_loggp_recovers_parameters():
    rng = np.random.default_rng(4)
    res = fit_loggp(synthetic_prtt(rng), 8, lambda s: 20e-6 + s / 0.5e9, n_boot=50)
    (seg,) = res["segments"]
    assert close(seg.theta[0], 0.5e-6) and close(seg.theta[1], 1 / 8e9)
    sc = res["scalars"]
    # overheads are small differences of large round trips (d = 20 µs): 10% here
    assert close(sc["o_s_s"][0], 0.3e-6, 0.10) and close(sc["o_r_s"][0], 0.25e-6, 0.10)
    assert close(sc["L_s"][0], 0.8e-6, 0.10)
    for k, (v, lo, hi) in sc.items():
        assert lo <= v <= hi, k


def test_loggp_finds_a_protocol_change_in_the_gap():
    rng = np.random.default_rng(8)
    a = synthetic_prtt(rng, g=0.5e-6, G=1 / 8e9, sizes=2.0 ** np.arange(2, 13))
    b = synthetic_prtt(rng, g=3e-6, G=1 / 15e9, sizes=2.0 ** np.arange(13, 21))
    res = fit_loggp({**a, **b}, 8, lambda s: 20e-6 + s / 0.5e9, n_boot=0)
    segs = res["segments"]
    assert len(segs) == 2 and abs(np.log2(segs[0].nbytes_hi) - 12) <= 1
    assert close(segs[1].theta[1], 1 / 15e9)


# ---------------------------------------------------------------- run directories and CLI
def write_run(path, cases, backend="mpi", nranks=2, ranks_reporting=2):
    """A minimal run directory as commbench run writes it: {(op, nbytes): samples}. Each
    sample is split over ranks so that the max over ranks is the given time."""
    path.mkdir(parents=True)
    (path / "meta.json").write_text(json.dumps(synthetic_meta(path, nranks, nnodes=1, ops={})))
    rows = []
    for (op, nbytes), times in cases.items():
        for i, t in enumerate(times):
            for rank in range(ranks_reporting):
                rows.append(("mpi" if backend == "mpi" else backend, op, "float32", int(nbytes),
                             nranks, "all", 0, i, rank, 1, t * (1.0 if rank == 0 else 0.9)))
    pd.DataFrame(rows, columns=["backend", "op", "dtype", "nbytes", "nranks", "split", "round",
                                "sample", "rank", "calls", "time_s"]).to_csv(
        path / "samples.csv", index=False)


@pytest.mark.slow
def test_fit_command_writes_tidy_fits_csv(tmp_path, capsys):
    from bench.cli import main

    rng = np.random.default_rng(9)
    truth = two_protocols()
    cases = {("pingpong", n): noisy(rng, t, n=20) for n, t in zip(SIZES, truth)}
    write_run(tmp_path / "run", cases)
    assert main(["fit", str(tmp_path / "run"), "--bootstrap", "20"]) == 0
    out = capsys.readouterr().out
    assert "pingpong" in out and "GB/s" in out
    fits = pd.read_csv(tmp_path / "run" / "fits.csv")
    assert list(fits.columns) == FITS_COLUMNS
    h = fits[(fits.model == "hockney") & (fits.op == "pingpong")]
    assert sorted(h.segment.unique()) == [0, 1]
    beta = h[(h.param == "beta_s_per_byte") & (h.segment == 1)].iloc[0]
    assert close(beta.value, 1 / 14e9) and beta.ci_low <= beta.value <= beta.ci_high
    assert h[h.segment == 0].nbytes_hi.iloc[0] in (2048, 4096, 8192)


@pytest.mark.slow
def test_fit_command_on_a_sweep_directory(tmp_path):
    from bench.cli import main

    rng = np.random.default_rng(10)
    sizes = 2.0 ** np.arange(2, 21)
    for p in (2, 3, 4):
        t = models.predict("allgather", "ring", p, sizes, [3e-6, 1e-10, 0])
        write_run(tmp_path / f"n{p}", {("allgather", n): noisy(rng, x, n=15)
                                       for n, x in zip(sizes, t)}, nranks=p)
    assert main(["fit", str(tmp_path), "--bootstrap", "10"]) == 0
    fits = pd.read_csv(tmp_path / "fits.csv")
    assert set(fits[fits.model == "hockney"].nranks) == {2, 3, 4}
    alg = fits[(fits.nranks == 0) & (fits.param == "selected") & (fits.value == 1)]
    assert set(alg.model) == {"ring"}
    held = fits[(fits.param == "heldout_rel_error") & (fits.model == "ring")]
    assert set(held.nranks) == {2, 3, 4} and (held.value < 0.05).all()


def test_fit_command_rejects_a_non_run(tmp_path, capsys):
    from bench.cli import main

    assert main(["fit", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a commbench run directory" in err and len(err.strip().splitlines()) == 1


def test_sizes_rounded_per_rank_count_are_one_step():
    idx, starts = size_steps([1020, 1024, 2040, 2048, 4096, 0, 4])
    assert list(idx) == [2, 2, 3, 3, 4, 0, 1]
    assert list(starts) == [0, 4, 1020, 2040, 4096]
    idx, starts = size_steps([1000, 1040, 1060])  # 1060 is 6% above the step's first size
    assert list(idx) == [0, 0, 1] and list(starts) == [1000, 1060]


@pytest.mark.slow
def test_fit_table_shows_the_node_rate_limit():
    """A sweep whose times show the max-rate limit: the table gives R, k* = R·β and where R
    comes from; rows per rank count stay out of the table."""
    from analysis.fit import format_table
    from analysis.fit_pipeline import fit_times

    rng = np.random.default_rng(12)
    sizes = 2.0 ** np.arange(10, 23)
    rows = []
    for p in (2, 4, 8):
        t = models.predict("allreduce", "ring", p, sizes, [3e-6, 1e-10, 0, 4e10])
        for n, x in zip(sizes, t):
            for i, s in enumerate(noisy(rng, x, n=15, outliers=0)):
                rows.append(("mpi", "allreduce", "float32", int(n), p, "all", 0, i, s))
    times = pd.DataFrame(rows, columns=["backend", "op", "dtype", "nbytes", "nranks", "split",
                                        "round", "sample", "time_s"])
    text = format_table(fit_times(times, n_boot=10))
    line = next(x for x in text.splitlines() if " ring " in x and "n*" in x)
    import re
    got = re.search(r"node ([\d.]+) GB/s .*\(k\* ([\d.]+), fitted\)", line)
    assert got, line
    assert abs(float(got[1]) / 40 - 1) < 0.05 and abs(float(got[2]) / 4 - 1) < 0.05
    assert "nan" not in text and " inf" not in text


def test_a_failed_loggp_fit_is_left_out_and_the_rest_stays_readable(tmp_path, capsys):
    """A machine so loaded that the delay never exceeds the gap: LogGP's o_s, o_r and L cannot
    be fitted. fits.csv leaves them out (with a note), keeps g and G and the other ops' fits,
    and its own reader takes it."""
    from analysis.fit_pipeline import fit_times, load_fits
    from analysis.fits_source import save_fits

    rng = np.random.default_rng(5)
    prtt = synthetic_prtt(rng, g=40e-6, sizes=2.0 ** np.arange(2, 8))  # gap 40 µs > d ≈ 20 µs
    rows = [("mpi", f"prtt_{kind}{'' if kind == 'rtt1' else 8}", "float32", int(s), 2, "all", 0,
             i, t) for (kind, s), ts in prtt.items() for i, t in enumerate(ts[:30])]
    rows += [("mpi", "allreduce", "float32", int(s), 2, "all", 0, i, t) for s in SIZES[:8]
             for i, t in enumerate(noisy(rng, 2e-6 + s * 1e-10, n=20))]
    times = pd.DataFrame(rows, columns=["backend", "op", "dtype", "nbytes", "nranks", "split",
                                        "round", "sample", "time_s"])
    fits = fit_times(times, n_boot=10)
    assert "o_s, o_r and L not fitted" in capsys.readouterr().err
    loggp = fits[fits.model == "loggp"]
    assert {"g_s", "G_s_per_byte"} <= set(loggp.param)
    assert not {"L_s", "o_s_s", "o_r_s"} & set(loggp.param)
    assert (fits.op == "allreduce").any()
    save_fits(tmp_path, fits)
    assert len(load_fits(tmp_path)) == len(fits)


def test_rows_no_reader_takes_are_never_written(capsys):
    """usable_fits: a row check_fits refuses (a NaN L, a negative β) is dropped with a note
    naming it; every other row stays."""
    from analysis.fits_csv import check_fits, usable_fits

    def row(param, value):
        return dict(zip(FITS_COLUMNS, ["mpi", "pingpong", 2, "all", "hockney", 0, 4, 64, param,
                                       value, np.nan, np.nan]))
    fits = pd.DataFrame([row("alpha_s", 1e-6), row("beta_s_per_byte", -1.0),
                         {**row("L_s", np.nan), "model": "loggp", "segment": -1}],
                        columns=FITS_COLUMNS)
    with pytest.raises(Exception, match="must be"):
        check_fits(fits, "fits.csv")
    kept = usable_fits(fits)
    assert list(kept.param) == ["alpha_s"]
    err = capsys.readouterr().err
    assert "beta_s_per_byte" in err and "L_s" in err and "left out" in err
    check_fits(kept, "fits.csv")
