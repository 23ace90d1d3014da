"""`commbench predict`: from fits of synthetic sweeps, a held-out rank count and sizes inside a
size range must come back within a few percent, with an interval that holds the truth."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import models
from analysis.fit_pipeline import fit_times
from analysis.predict_op import predict
from bench.core.errors import UsageError


def noisy(rng, t, n=20, sigma=0.03):
    return t * np.exp(rng.normal(0.0, sigma, n))


SIZES = 2.0 ** np.arange(2, 23)
SMALL = [1e-6, 1 / 5e9, 0]
LARGE = [3e-6, 1 / 10e9, 0]


def truth(p, n):
    """recursive doubling up to 4 KiB, ring above: what the fits should find."""
    n = np.asarray(n, dtype=float)
    return np.where(n <= 4096, models.predict("allreduce", "recursive_doubling", p, n, SMALL),
                    models.predict("allreduce", "ring", p, n, LARGE))


def times_frame(rng, counts, op="allreduce", split="all", fn=truth):
    rows = []
    for p in counts:
        for n in SIZES:
            for i, t in enumerate(noisy(rng, float(fn(p, n)))):
                rows.append(("mpi", op, "float32", int(n), p, split, 0, i, t))
    return pd.DataFrame(rows, columns=["backend", "op", "dtype", "nbytes", "nranks", "split",
                                       "round", "sample", "time_s"])


@pytest.fixture(scope="module")
def fits():
    rng = np.random.default_rng(21)
    return fit_times(times_frame(rng, (2, 3, 4, 8)), n_boot=40)


@pytest.mark.parametrize("p,n", [(6, 64.0), (6, 1 << 20), (16, 1 << 20), (64, 1 << 30)])
@pytest.mark.slow
def test_predicts_unmeasured_rank_counts(fits, p, n):
    got = predict(fits, "allreduce", p, n)
    want = float(truth(p, n))
    assert abs(got.time_s - want) <= 0.05 * want
    assert got.low_s <= want <= got.high_s
    assert got.model == ("recursive_doubling" if n <= 4096 else "ring")
    extrapolated = any("extrapolated" in w for w in got.warnings)
    assert extrapolated == (p > 8 or n > SIZES[-1])


@pytest.mark.slow
def test_bandwidth_is_size_over_time(fits):
    got = predict(fits, "allreduce", 4, 1 << 20)
    bw, lo, hi = got.bandwidth(1 << 20)
    assert bw == pytest.approx((1 << 20) / got.time_s)
    assert lo <= bw <= hi


def test_forced_model_and_hockney(fits):
    ring = predict(fits, "allreduce", 6, 64.0, model="ring")
    assert ring.model == "ring"
    h = predict(fits, "allreduce", 4, 1 << 20, model="hockney")
    want = float(truth(4, 1 << 20))
    assert h.model == "hockney" and abs(h.time_s - want) <= 0.05 * want
    with pytest.raises(UsageError, match="no 'bruck' fit"):
        predict(fits, "allreduce", 4, 64, model="bruck")


@pytest.mark.slow
def test_single_run_only_predicts_its_own_rank_count():
    rng = np.random.default_rng(5)
    f = fit_times(times_frame(rng, (4,)), n_boot=0)
    got = predict(f, "allreduce", 4, 1 << 16)
    assert got.model == "hockney"
    assert abs(got.time_s - float(truth(4, 1 << 16))) <= 0.05 * float(truth(4, 1 << 16))
    with pytest.raises(UsageError, match="sweep"):
        predict(f, "allreduce", 8, 1 << 16)
    with pytest.raises(UsageError, match="no fits for op"):
        predict(f, "alltoall", 4, 1 << 16)


def test_point_to_point_at_any_rank_count():
    rng = np.random.default_rng(6)
    f = fit_times(times_frame(rng, (2,), op="pingpong",
                              fn=lambda p, n: 1e-6 + n / 12e9), n_boot=0)
    got = predict(f, "pingpong", 64, 1 << 20)
    assert abs(got.time_s - (1e-6 + 2**20 / 12e9)) <= 0.05 * got.time_s


@pytest.mark.slow
def test_hierarchical_allreduce_adds_intra_and_inter_levels():
    rng = np.random.default_rng(7)
    intra = times_frame(rng, (2, 4, 8))
    inter_params = [20e-6, 1 / 2e9, 0]
    inter = times_frame(rng, (2, 4, 8), split="inter",
                        fn=lambda p, n: models.predict("allreduce", "ring", p, n, inter_params))
    f = fit_times(pd.concat([intra, inter]), n_boot=10)
    q, nodes, n = 8, 16, float(1 << 24)
    got = predict(f, "allreduce", q * nodes, n, ranks_per_node=q)
    want = (float(models.predict("allreduce", "ring", q, n, LARGE))
            + float(models.predict("allreduce", "ring", nodes, n / q, inter_params)))
    assert abs(got.time_s - want) <= 0.05 * want
    assert got.model.startswith("hierarchical")
    # without inter-node fits the hierarchical model refuses instead of guessing
    with pytest.raises(UsageError, match="inter-node"):
        predict(fit_times(intra, n_boot=0), "allreduce", 64, n, ranks_per_node=8)


def test_predict_command(tmp_path, capsys, fits):
    from bench.cli import main

    fits.to_csv(tmp_path / "fits.csv", index=False)
    assert main(["predict", "--fits", str(tmp_path), "--op", "allreduce", "--nranks", "1024",
                 "--nbytes", "1G"]) == 0
    out = capsys.readouterr().out
    assert "ring" in out and "GB/s" in out and "extrapolated" in out
    assert main(["predict", "--fits", str(tmp_path), "--op", "allreduce", "--nranks", "4",
                 "--nbytes", "1Q"]) == 2
    assert "malformed size" in capsys.readouterr().err


@pytest.mark.slow
def test_gamma_from_allgather_beta_in_the_same_sweep():
    """β and γ of allreduce separate when the sweep also has allgather: β pinned from it."""
    rng = np.random.default_rng(8)
    beta, gamma = 1e-10, 5e-11
    ag = times_frame(rng, (2, 3, 4, 8), op="allgather",
                     fn=lambda p, n: models.predict("allgather", "ring", p, n, [3e-6, beta, 0]))
    ar = times_frame(rng, (2, 3, 4, 8), op="allreduce",
                     fn=lambda p, n: models.predict("allreduce", "ring", p, n,
                                                    [3e-6, beta, gamma]))
    f = fit_times(pd.concat([ag, ar]), n_boot=20)
    ring = f[(f.op == "allreduce") & (f.model == "ring") & (f.nranks == 0)]
    g = ring[ring.param == "gamma_s_per_byte"]
    assert len(g) >= 1
    # γ is the small difference of two fitted slopes: 10%
    assert (abs(g.value - gamma) <= 0.10 * gamma).all(), g.value
    assert (g.ci_low <= g.value).all() and (g.value <= g.ci_high).all()
    got = predict(f, "allreduce", 16, 1 << 20)
    want = float(models.predict("allreduce", "ring", 16, 1 << 20, [3e-6, beta, gamma]))
    assert abs(got.time_s - want) <= 0.05 * want


@pytest.mark.slow
def test_hierarchical_from_single_runs_and_the_inter_node_link():
    """Intra: the allreduce Hockney fit at q ranks (one run, split intra); inter: the ring
    formula with α, β of pingpong across nodes (split inter)."""
    rng = np.random.default_rng(9)
    q, nodes, n = 4, 8, float(1 << 24)
    intra = times_frame(rng, (q,), split="intra")
    link = [20e-6, 1 / 1e9, 0]
    inter = times_frame(rng, (2,), op="pingpong", split="inter",
                        fn=lambda p, s: link[0] + s * link[1])
    f = fit_times(pd.concat([intra, inter]), n_boot=20)
    got = predict(f, "allreduce", q * nodes, n, ranks_per_node=q)
    want = float(truth(q, n)) + float(models.predict("allreduce", "ring", nodes, n / q, link))
    assert abs(got.time_s - want) <= 0.05 * want
    assert got.low_s <= want <= got.high_s
    assert "pingpong" in got.model
