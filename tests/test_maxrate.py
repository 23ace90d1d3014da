"""The max-rate model (Gropp, Olson & Samfass 2016): ranks of a node that send at once share
what the node moves in total, R. From synthetic sweeps of a known max-rate model the fit must
give R back within 10% and predict larger counts; where the limit does not bind, everything is
the contention-free model it was before; the machine's ceilings (copy rates, NIC line rates)
supply a limit the times cannot show, unless the times contradict it."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from analysis import algorithms, models
from analysis.fit_pipeline import fit_times
from analysis.node_limits import machine_limits
from analysis.fits_csv import check_fits
from analysis.predict_hierarchical import predict_hierarchical
from analysis.predict_interval import interval
from analysis.predict_op import predict
from bench.core.errors import RunDirError, UsageError

SIZES = 2.0 ** np.arange(10, 23)  # 1 KiB .. 4 MiB
LINK = [3e-6, 1e-10, 0.0]         # α 3 µs, 1/β 10 GB/s


def noisy(rng, t, n=20, sigma=0.03):
    return t * np.exp(rng.normal(0.0, sigma, n))


def frame(rng, counts, op="allreduce", alg="ring", params=LINK, rate=None, split="all",
          sizes=SIZES, fn=None):
    """Sample times of a sweep from `alg`'s formula (with the limit R = rate, if given)."""
    rows = []
    for p in counts:
        for n in sizes:
            t = float(fn(p, n)) if fn else float(
                models.predict(op, alg, p, n, list(params) + [rate or math.inf]))
            for i, x in enumerate(noisy(rng, t)):
                rows.append(("mpi", op, "float32", int(n), p, split, 0, i, x))
    return pd.DataFrame(rows, columns=["backend", "op", "dtype", "nbytes", "nranks", "split",
                                       "round", "sample", "time_s"])


def rows_of(fits, op, model, param, split="all"):
    return fits[(fits.op == op) & (fits.model == model) & (fits.param == param)
                & (fits.split == split) & (fits.nranks == 0)]


# ---------------------------------------------------------------- the formula
def test_max_rate_formula():
    """t = a·α + b·max(β, k/R) + c·γ for algorithms where every rank sends; no R (or an R
    that does not bind) is the contention-free formula."""
    p, n = np.array([2, 4, 8, 16]), 1 << 20
    free = models.predict("allreduce", "ring", p, n, LINK)
    limited = models.predict("allreduce", "ring", p, n, LINK + [4e10])
    X = models.design_matrix("allreduce", "ring", p, n)
    want = X[:, 0] * LINK[0] + X[:, 1] * np.maximum(LINK[1], p / 4e10)
    assert np.allclose(limited, want)
    assert np.allclose(limited[:2], free[:2]) and (limited[2:] > free[2:]).all()
    assert np.allclose(models.predict("allreduce", "ring", p, n, LINK + [math.inf]), free)
    assert np.allclose(models.predict("allreduce", "ring", p, n,
                                      {"alpha_s": 3e-6, "beta_s_per_byte": 1e-10}), free)


def test_binomial_tree_loads_the_node_step_by_step():
    """A binomial broadcast sends from 1, 2, 4, ... ranks: only its late rounds hit the limit,
    so it slows less than an algorithm in which every rank always sends."""
    p, n, rate = 16, 1 << 20, 4e10  # k* = R·β = 4
    free = float(models.predict("broadcast", "binomial", p, n, LINK))
    got = float(models.predict("broadcast", "binomial", p, n, LINK + [rate]))
    rounds = [max(LINK[1], k / rate) for k in (1, 2, 4, 8)]
    assert got == pytest.approx(4 * LINK[0] + n * sum(rounds))
    assert 1 < got / free < 16 / 4


# ---------------------------------------------------------------- fitting R
@pytest.mark.parametrize("seed,counts,rate", [(0, (2, 4, 6, 8, 12, 16), 4e10),
                                               (1, (2, 3, 4, 6, 8), 3e10),
                                               (2, (2, 4, 8), 5e10)])
@pytest.mark.slow
def test_node_rate_recovered_within_10_percent(seed, counts, rate):
    rng = np.random.default_rng(seed)
    f = fit_times(frame(rng, counts, rate=rate), n_boot=20)
    r = rows_of(f, "allreduce", "ring", models.RATE)
    assert len(r) >= 1
    assert (abs(r.value / rate - 1) <= 0.10).all(), r.value
    assert (r.ci_low <= r.value).all() and (r.value <= r.ci_high).all()
    assert (rows_of(f, "allreduce", "ring", "node_rate_origin").value == 0).all()
    sel = f[(f.param == "selected") & (f.value == 1)]
    assert set(sel.model) == {"ring"}
    # a larger count follows the limit: without it the prediction would be far too fast
    got = predict(f, "allreduce", 32, 1 << 22)
    want = float(models.predict("allreduce", "ring", 32, 1 << 22, LINK + [rate]))
    free = float(models.predict("allreduce", "ring", 32, 1 << 22, LINK))
    assert abs(got.time_s / want - 1) <= 0.10 and want > 1.5 * free
    assert got.low_s <= want <= got.high_s
    assert any("node limit binds" in x for x in got.notes)


@pytest.mark.slow
def test_node_rate_of_a_binomial_broadcast():
    rng = np.random.default_rng(4)
    rate = 2.5e10  # k* = 2.5: rounds with 4 and 8 senders are node-bound
    f = fit_times(frame(rng, (2, 4, 8, 16), op="broadcast", alg="binomial", rate=rate),
                  n_boot=0)
    sel = f[(f.op == "broadcast") & (f.param == "selected") & (f.value == 1)]
    assert set(sel.model) == {"binomial"}
    r = rows_of(f, "broadcast", "binomial", models.RATE)
    assert len(r) and (abs(r.value / rate - 1) <= 0.10).all(), r.value


@pytest.mark.slow
def test_no_limit_is_the_old_contention_free_fit():
    """Times without contention: no limit row (not even for a wrong algorithm, which a limit
    would bend towards the right one), and every row as the fit without the max-rate model
    gives it (fits.csv of existing sweeps only gains per-count rows)."""
    rng = np.random.default_rng(5)
    times = frame(rng, (2, 3, 4, 8))
    f = fit_times(times, n_boot=20)
    assert not (f.param == models.RATE).any()
    cases = {k: g.time_s.to_numpy() for k, g in times.groupby(["nranks", "nbytes"])}
    plain = algorithms.fit_algorithms("allreduce", cases, n_boot=20, limit=False)
    for k, (_seg, fits) in enumerate(plain):
        for fit in fits:
            got = f[(f.model == fit.name) & (f.segment == k) & (f.nranks == 0)]
            for i, param in enumerate(("alpha_s", "beta_s_per_byte")):
                row = got[got.param == param].iloc[0]
                assert row.value == fit.theta[i]
                assert (row.ci_low, row.ci_high) == (fit.ci_low[i], fit.ci_high[i])
            assert got[got.param == "loo_rel_error"].value.iloc[0] == fit.loo_rel_error
            assert got[got.param == "selected"].value.iloc[0] == float(fit.selected)


@pytest.mark.slow
def test_a_limit_that_does_not_bind_changes_nothing_measured():
    """A copy ceiling saturating beyond the measured counts: the same α, β and held-out errors
    as without it, the same predictions where it does not bind, slower ones where it does."""
    rng = np.random.default_rng(6)
    times = frame(rng, (2, 3, 4))
    plain = fit_times(times, n_boot=10)
    machine = {"saturation": 6.0}
    limited = fit_times(times, n_boot=10, machine=machine)
    key = ["model", "segment", "nranks", "param"]
    both = plain.merge(limited, on=key, suffixes=("", "_lim"))
    assert len(both) == len(plain)
    assert np.allclose(both.value, both.value_lim, equal_nan=True)
    rate = rows_of(limited, "allreduce", "ring", models.RATE)
    origin = rows_of(limited, "allreduce", "ring", "node_rate_origin")
    assert len(rate) and (origin.value == 1).all()
    kstar = rate.value.iloc[-1] * rows_of(limited, "allreduce", "ring",
                                          "beta_s_per_byte").value.iloc[-1]
    assert kstar == pytest.approx(6.0)
    for p in (4, 6):
        assert predict(limited, "allreduce", p, 1 << 22).time_s == pytest.approx(
            predict(plain, "allreduce", p, 1 << 22).time_s)
    slow = predict(limited, "allreduce", 16, 1 << 22)
    assert slow.time_s > 1.5 * predict(plain, "allreduce", 16, 1 << 22).time_s
    assert any("none of the measured counts" in x for x in slow.notes)


@pytest.mark.slow
def test_a_ceiling_the_times_contradict_is_dropped():
    """The copy ceiling says 2 ranks saturate the node, but the times at 3 and 4 ranks show no
    contention (messages in cache): no limit."""
    rng = np.random.default_rng(7)
    f = fit_times(frame(rng, (2, 3, 4, 6)), n_boot=0, machine={"saturation": 2.0})
    assert not (f.param == models.RATE).any()


@pytest.mark.slow
def test_inter_node_line_rate_bounds_the_ranks_of_a_node():
    """Across nodes (split inter, one rank per node, q local ranks' communicators at once) the
    NIC's declared line rate bounds what q ranks send together; a rate that the measured times
    beat is no limit of this network."""
    rng = np.random.default_rng(8)
    link = [20e-6, 1 / 2e9, 0.0]
    inter = frame(rng, (2, 4, 8), params=link, split="inter")
    nic = 5e9  # 2 ranks per node at 2 GB/s each: 4 GB/s < 5 GB/s, not binding when measured
    machine = {"nic_Bps": nic, "ranks_per_node": {4: 2, 8: 2, 16: 2},
               "nodes": {4: 2, 8: 4, 16: 8}}
    f = fit_times(inter, n_boot=10, machine=machine)
    r = rows_of(f, "allreduce", "ring", models.RATE, split="inter")
    assert len(r) and (r.value == nic).all()
    assert (rows_of(f, "allreduce", "ring", "node_rate_origin", split="inter").value == 2).all()
    too_slow = fit_times(inter, n_boot=0, machine={**machine, "nic_Bps": 1e9})
    assert not (too_slow.param == models.RATE).any()


def test_machine_limits_from_meta(tmp_path):
    def meta(nranks, hosts, one=10e9):
        return {"nranks": nranks, "nnodes": len(hosts),
                "ceilings": {"copy_one_core_Bps": one,
                             "hosts": {f"h{i}": h for i, h in enumerate(hosts)}}}
    runs = [tmp_path / "n2", tmp_path / "n8"]
    saturated = [meta(2, [{"ranks": 2, "copy_node_Bps": 19e9, "nics": []}]),
                 meta(8, [{"ranks": 8, "copy_node_Bps": 40e9,
                           "nics": [{"device": "eth0", "rate_Bps": 1.25e9},
                                    {"device": "ib0", "rate_Bps": 12.5e9}]}])]
    got = machine_limits(runs, saturated)
    assert got["saturation"] == pytest.approx(4.0) and got["nic_Bps"] == 12.5e9
    assert got["ranks_per_node"] == {2: 2, 8: 8}
    linear = [saturated[0], meta(8, [{"ranks": 8, "copy_node_Bps": 76e9, "nics": []}])]
    assert machine_limits(runs, linear)["saturation"] is None
    older = [{"nranks": 2}, {"nranks": 8}]  # runs from before the ceilings: none known
    assert machine_limits(runs, older) == {"ranks_per_node": {2: 2, 8: 8}, "nodes": {2: 1, 8: 1},
                                           "saturation": None, "nic_Bps": None}
    bad = [meta(2, [{"ranks": "two", "copy_node_Bps": 1e9}])]
    with pytest.raises(RunDirError, match="ceilings: malformed"):
        machine_limits(runs[:1], bad)


@pytest.mark.parametrize("contended", [True, False])
@pytest.mark.slow
def test_fit_of_a_sweep_reads_the_ceilings(tmp_path, contended):
    """commbench fit on a sweep whose runs measured the copy ceiling (2.5 ranks' copies
    saturate the node): with times that show it, a limit near it; with times that show no
    contention at all, none (the ceiling's DRAM copy is not what these messages hit)."""
    from bench.cli import main
    from test_fit import write_run

    rng = np.random.default_rng(9)
    rate = 2.5 / LINK[1] if contended else math.inf
    for p in (2, 3, 4):
        t = models.predict("allgather", "ring", p, SIZES, LINK + [rate])
        write_run(tmp_path / f"n{p}", {("allgather", n): noisy(rng, x, n=15)
                                       for n, x in zip(SIZES, t)}, nranks=p)
        meta = json.loads((tmp_path / f"n{p}" / "meta.json").read_text())
        meta["ceilings"] = {"copy_one_core_Bps": 10e9, "hosts": {
            "h": {"ranks": p, "copy_node_Bps": min(p, 2.5) * 10e9, "nics": []}}}
        (tmp_path / f"n{p}" / "meta.json").write_text(json.dumps(meta))
    assert main(["fit", str(tmp_path), "--bootstrap", "0"]) == 0
    fits = pd.read_csv(tmp_path / "fits.csv")
    check_fits(fits, tmp_path / "fits.csv")
    r = rows_of(fits, "allgather", "ring", models.RATE)
    if contended:
        assert len(r) and (abs(r.value / rate - 1) <= 0.10).all()
    else:
        assert not len(r)


@pytest.mark.slow
def test_a_damaged_node_rate_is_refused(tmp_path):
    rng = np.random.default_rng(10)
    f = fit_times(frame(rng, (2, 4, 8), rate=4e10), n_boot=0)
    assert (f.param == models.RATE).any()
    bad = f.copy()
    bad.loc[bad.param == models.RATE, "value"] = -1.0
    with pytest.raises(RunDirError, match="node_rate_Bps"):
        check_fits(bad, tmp_path / "fits.csv")


# ---------------------------------------------------------------- selection and intervals
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.slow
def test_no_switch_the_held_out_error_does_not_support(seed):
    """Recursive doubling at every size, its latency gone above 16 KiB: there ring fits the
    held-out counts as well, so the range above keeps recursive doubling."""
    rng = np.random.default_rng(seed)
    small, large = [2e-6, 1 / 5e9, 0], [0.0, 1 / 10e9, 0]
    sizes = 2.0 ** np.arange(6, 21)

    def fn(p, n):
        return models.predict("allgather", "recursive_doubling", p, n,
                              small if n <= 16384 else large)
    cases = {(p, n): noisy(rng, float(fn(p, n)), n=10) for p in (2, 4, 8) for n in sizes}
    res = algorithms.fit_algorithms("allgather", cases, n_boot=0)
    assert [next(f.name for f in fits if f.selected) for _, fits in res] == [
        "recursive_doubling"] * len(res)


def test_a_well_supported_switch_still_happens():
    rng = np.random.default_rng(11)
    sizes = 2.0 ** np.arange(6, 21)
    fast, slow = [1e-6, 1 / 5e9, 0], [3e-6, 1 / 10e9, 0]

    def fn(p, n):
        return (models.predict("allgather", "recursive_doubling", p, n, fast) if n <= 4096
                else models.predict("allgather", "ring", p, n, slow))
    cases = {(p, n): noisy(rng, float(fn(p, n)), n=10) for p in (2, 3, 4, 8) for n in sizes}
    res = algorithms.fit_algorithms("allgather", cases, n_boot=0)
    chosen = [next(f.name for f in fits if f.selected) for _, fits in res]
    assert chosen[0] == "recursive_doubling" and chosen[-1] == "ring"


def test_predict_says_when_the_algorithm_changes_and_covers_it():
    """When another algorithm fits the nearest measured count best, predict says so and its
    prediction lies inside the interval."""
    rng = np.random.default_rng(12)
    f = fit_times(frame(rng, (2, 4, 8), op="allgather", alg="ring",
                        sizes=2.0 ** np.arange(6, 16)), n_boot=0)
    plain = predict(f, "allgather", 16, 4096)
    assert plain.model == "ring" and not any("changes" in x for x in plain.notes)
    # make recursive doubling the best fit at 8 ranks (as if the library switched there)
    doctored = f.copy()
    at8 = (doctored.param == "count_rel_rms") & (doctored.nranks == 8)
    doctored.loc[at8 & (doctored.model == "ring"), "value"] = 0.2
    doctored.loc[at8 & (doctored.model == "recursive_doubling"), "value"] = 0.01
    got = predict(doctored, "allgather", 16, 4096)
    assert got.model == "ring"
    assert any("algorithm changes" in x and "recursive_doubling" in x for x in got.notes)
    rd = predict(doctored, "allgather", 16, 4096, model="recursive_doubling")
    assert got.low_s <= rd.time_s <= got.high_s


def test_interval_combines_parameters_and_error():
    lo, hi = interval(10.0, 10.0, 10.0, 0.1)
    assert lo == pytest.approx(10 / 1.1 ** 1.645) and hi == pytest.approx(10 * 1.1 ** 1.645)
    lo2, hi2 = interval(10.0, 9.0, 12.0, 0.1)
    assert lo2 < lo and hi2 > hi and hi2 < 12 * 1.1 ** 1.645


@pytest.mark.parametrize("holdout", [8, 16])
@pytest.mark.slow
def test_held_out_coverage_is_near_the_claim(holdout):
    """Sweeps of noisy max-rate times with a per-size bias (as real libraries have): held-out
    count predicted from the others, the interval holds most measured medians."""
    inside, total = 0, 0
    for seed in range(4):
        rng = np.random.default_rng(100 + seed)
        bias = dict(zip(SIZES, np.exp(rng.normal(0, 0.04, SIZES.size))))
        counts = (2, 4, 8, 16)

        def fn(p, n, bias=bias):
            return bias[n] * models.predict("allreduce", "ring", p, n, LINK + [4e10])
        times = frame(rng, counts, fn=fn)
        train = fit_times(times[times.nranks != holdout], n_boot=20)
        for n in SIZES:
            want = float(np.median(times[(times.nranks == holdout)
                                         & (times.nbytes == n)].time_s))
            got = predict(train, "allreduce", holdout, n)
            inside += got.low_s <= want <= got.high_s
            total += 1
    assert inside / total >= 0.75


# ---------------------------------------------------------------- hierarchical
@pytest.mark.parametrize("op,alg", [("allgather", "ring"), ("reduce_scatter", "ring"),
                                    ("alltoall", "pairwise"), ("broadcast", "binomial")])
@pytest.mark.slow
def test_hierarchical_covers_more_ops(op, alg):
    rng = np.random.default_rng(13)
    intra_p, inter_p = [2e-6, 1 / 20e9, 0], [20e-6, 1 / 2e9, 0]
    intra = frame(rng, (2, 4, 8), op=op, alg=alg, params=intra_p, split="intra")
    inter = frame(rng, (2, 4, 8), op=op, alg=alg, params=inter_p, split="inter")
    f = fit_times(pd.concat([intra, inter]), n_boot=0)
    q, nodes, n = 8, 4, float(1 << 22)
    got = predict(f, op, q * nodes, n, ranks_per_node=q)
    levels = {"allgather": [("inter", nodes, n / q), ("intra", q, n)],
              "reduce_scatter": [("intra", q, n), ("inter", nodes, n / q)],
              "alltoall": [("intra", q, n), ("inter", nodes, n)],
              "broadcast": [("inter", nodes, n / q), ("intra", q, n)]}[op]
    want = sum(float(models.predict(op, alg, p, s, intra_p if split == "intra" else inter_p))
               for split, p, s in levels)
    assert abs(got.time_s / want - 1) <= 0.05
    assert got.model.startswith("hierarchical") and got.low_s <= want <= got.high_s
    with pytest.raises(UsageError, match="hierarchical model covers"):
        predict_hierarchical(f, "gather", q * nodes, n, q)


def test_hierarchical_inter_level_shares_the_nic():
    """The inter-node ring with the pingpong link: q ranks of a node at once through a NIC of
    R bytes/s cost at least q/R per byte; one rank per node does not see the limit."""
    rng = np.random.default_rng(14)
    link = [20e-6, 1 / 2e9, 0.0]
    intra = frame(rng, (4,), split="intra")
    ping = frame(rng, (2,), op="pingpong", split="inter",
                 fn=lambda p, s: link[0] + s * link[1])
    nic = 5e9
    f = fit_times(pd.concat([intra, ping]), n_boot=0, machine={"nic_Bps": nic})
    assert (f[(f.op == "pingpong") & (f.param == models.RATE)].value == nic).all()
    q, nodes, n = 4, 8, float(1 << 24)
    got = predict(f, "allreduce", q * nodes, n, ranks_per_node=q)
    inter = float(models.predict("allreduce", "ring", nodes, n / q, link + [nic], per_node=q,
                                 spread=True))
    want = float(models.predict("allreduce", "ring", q, n, LINK)) + inter
    assert abs(got.time_s / want - 1) <= 0.05
    assert inter > 1.2 * float(models.predict("allreduce", "ring", nodes, n / q, link))


@pytest.mark.slow
def test_predict_command_prints_the_limit(tmp_path, capsys):
    from bench.cli import main

    rng = np.random.default_rng(15)
    fit_times(frame(rng, (2, 4, 8), rate=4e10), n_boot=10).to_csv(tmp_path / "fits.csv",
                                                                   index=False)
    assert main(["predict", "--fits", str(tmp_path), "--op", "allreduce", "--nranks", "16",
                 "--nbytes", "4M"]) == 0
    out = capsys.readouterr().out
    assert "node limit R" in out and "90% prediction interval" in out
    assert "note       the node limit binds" in out
    assert "nan" not in out.lower() and "inf" not in out.lower()
