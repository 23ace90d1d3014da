"""The timing harness, the stop rule and the whole rank loop on a fake one-rank backend with
an injected clock: every number below is exact."""
import argparse

import numpy as np
import pytest

from analysis.run_frames import sample_times
from analysis.runsamples import load_run
from bench.core.stats import median_ci, median_ci_ranks
from bench.harness import Sampling, Sync, calibrate, measure, stop_reason
from bench.world import World
from bench.plan import Plan
from bench.ops import get_op
from bench.rank_loop import run_spmd
from bench.settings import settings_of
from tests.fakes import FakeBackend, FakeClock

COST = 2.0 ** -19  # seconds per fake call


def fake_sync(clock, costs):
    """Each run(k) costs k * next(costs) seconds of fake time."""
    costs = iter(costs)

    def run(k):
        clock.advance(k * next(costs))
    return run, Sync(barrier=lambda: None, allreduce_max=lambda a: np.array(a, float), clock=clock)


def constant(cost):
    while True:
        yield cost


def test_calibration_reaches_the_sample_time_from_a_warm_measurement():
    clock = FakeClock()
    run, sync = fake_sync(clock, constant(COST))
    settings = Sampling(sample_time_s=2.0 ** -10)
    k = calibrate(run, sync, settings)
    assert k * COST >= settings.sample_time_s
    assert k * COST < 1.01 * settings.sample_time_s + COST


def test_calibration_is_not_fooled_by_one_slow_cold_call():
    clock = FakeClock()
    run, sync = fake_sync(clock, [1e-3] + [COST] * 100)  # first call 2000x slower
    k = calibrate(run, sync, Sampling(sample_time_s=1e-3))
    assert k * COST >= 1e-3


def test_constant_times_stop_at_the_minimum_count_with_exact_values():
    clock = FakeClock()
    run, sync = fake_sync(clock, constant(COST))
    m = measure(run, ops_per_call=2, sync=sync, settings=Sampling(min_samples=7), calls=100)
    assert m.calls == 100
    assert m.stop == "ci"
    assert m.local_s == [COST / 2] * 7 and m.agreed_s == [COST / 2] * 7


def test_noisy_times_sample_until_the_interval_is_narrow():
    rng = np.random.default_rng(1)
    noise = COST * (1 + 0.2 * rng.random(100000))
    clock = FakeClock()
    run, sync = fake_sync(clock, noise)
    settings = Sampling(min_samples=10, ci_target=0.02, budget_s=1e9)
    m = measure(run, 1, sync, settings, calls=10)
    med, lo, hi = median_ci(m.agreed_s)
    assert m.stop == "ci" and (hi - lo) / med <= 0.02
    assert len(m.agreed_s) > 10
    # one batch earlier the interval was still too wide
    assert stop_reason(m.agreed_s[: len(m.agreed_s) * 2 // 3], 10, 0.0, settings) == ""


def test_budget_ends_sampling_before_the_interval_is_narrow():
    rng = np.random.default_rng(2)
    clock = FakeClock()
    run, sync = fake_sync(clock, 1e-3 * (1 + rng.random(100000)))  # ±50%: never 2% in budget
    m = measure(run, 1, sync, Sampling(budget_s=0.5), calls=10)
    assert m.stop == "budget"
    assert 0.5 <= clock.now < 0.5 + 3 * 10 * 2e-3  # at most a few samples over


def test_stop_rule_reasons():
    s = Sampling(min_samples=5, max_samples=50, ci_target=0.02, budget_s=1.0)
    assert stop_reason([1.0] * 4, 4, 0.1, s) == ""            # too few
    assert stop_reason([1.0] * 5, 5, 0.1, s) == "ci"
    assert stop_reason([1.0, 2.0] * 10, 20, 0.1, s) == ""     # wide
    assert stop_reason([1.0, 2.0] * 10, 20, 1.0, s) == "budget"
    assert stop_reason([1.0, 2.0] * 25, 50, 0.1, s) == "max_samples"


def test_median_ci_ranks_match_the_binomial_table():
    assert median_ci_ranks(10) == (1, 8)    # x(2)..x(9), 97.9% coverage
    assert median_ci_ranks(5) == (0, 4)     # too few for 95%: min..max
    assert median_ci_ranks(100) == (39, 60)


ARGV = ["run", "--fake"]  # the command line the rank loop records in meta.json


def _args(**over):
    base = dict(nranks=None, backend="fake", ops="allreduce,barrier", sizes="4,64", dtype="int32",
                out=None, timeout=0, repeats=1, seed=7, ci_target=0.02, min_samples=5,
                max_samples=100, budget=1.0, sample_time=2.0 ** -12, quiet=True, noise=False)
    base.update(over)
    return argparse.Namespace(**base)


def _plan(args):
    return Plan([FakeBackend], [get_op(o) for o in args.ops.split(",")], [4, 64], args.dtype,
                Sampling(sample_time_s=args.sample_time, min_samples=args.min_samples,
                         budget_s=args.budget / args.repeats), args.repeats,
                settings=settings_of(args))


@pytest.mark.slow
def test_rank_loop_writes_exact_rows_and_summary(tmp_path):
    FakeBackend.corrupt = False
    args = _args(out=str(tmp_path / "run"))
    assert run_spmd(_plan(args), World("fake", 0, 1), argv=ARGV, clock=FakeBackend.clock).rc == 0
    meta, samples, summary = load_run(tmp_path / "run")
    assert meta["status"] == "complete" and meta["nranks"] == 1 and meta["schema"] == 2
    assert meta["argv"] == ["commbench", *ARGV]
    assert list(summary[["op", "nbytes"]].itertuples(index=False, name=None)) == [
        ("allreduce", 4), ("allreduce", 64), ("barrier", 0)]
    for row in summary.itertuples():
        cost = FakeBackend.cost(row.nbytes)
        assert row.median_s == cost and row.ci_low_s == cost and row.wrong == 0
        assert row.samples == 5 and row.rounds == 1
    ar4 = summary[(summary.op == "allreduce") & (summary.nbytes == 4)].iloc[0]
    assert ar4.algbw_Bps == 4 / FakeBackend.cost(4)
    assert np.isnan(ar4.busbw_Bps) or ar4.busbw_Bps == 0  # 2(n-1)/n = 0 on one rank
    assert len(samples) == 15 and set(samples["rank"]) == {0}
    assert (samples.calls * samples.time_s >= args.sample_time).all()
    assert sample_times(samples).time_s.tolist() == samples.time_s.tolist()


@pytest.mark.slow
def test_rounds_shuffle_cases_and_are_recorded(tmp_path):
    FakeBackend.corrupt = False
    args = _args(out=str(tmp_path / "run"), repeats=3, ops="allreduce")
    assert run_spmd(_plan(args), World("fake", 0, 1), argv=ARGV, clock=FakeBackend.clock).rc == 0
    meta, samples, summary = load_run(tmp_path / "run")
    assert sorted(samples["round"].unique()) == [0, 1, 2]
    assert (summary.rounds == 3).all()
    assert meta["settings"]["seed"] == 7


@pytest.mark.slow
def test_wrong_results_are_counted_and_fail_the_run(tmp_path):
    FakeBackend.corrupt = True
    try:
        args = _args(out=str(tmp_path / "run"))
        assert run_spmd(_plan(args), World("fake", 0, 1), argv=ARGV, clock=FakeBackend.clock).rc == 1
    finally:
        FakeBackend.corrupt = False
    meta, _, summary = load_run(tmp_path / "run")
    assert meta["status"] == "wrong"
    wrong = dict(zip(summary.op + summary.nbytes.astype(str), summary.wrong))
    assert wrong == {"allreduce4": 1, "allreduce64": 1, "barrier0": 0}


@pytest.mark.slow
def test_torn_last_block_is_dropped(tmp_path):
    FakeBackend.corrupt = False
    args = _args(out=str(tmp_path / "run"))
    run_spmd(_plan(args), World("fake", 0, 1), argv=ARGV, clock=FakeBackend.clock)
    path = tmp_path / "run" / "samples.bin"
    whole = len(load_run(tmp_path / "run")[1])
    data = path.read_bytes()
    first = data[:data.find(b"CBSBLOCK", 8)] if data.count(b"CBSBLOCK") > 1 else data
    path.write_bytes(data + first[:-5])  # the first block again, cut short
    assert len(load_run(tmp_path / "run")[1]) == whole


def test_modes_find_two_latency_modes_and_only_one_in_a_skewed_distribution():
    from bench.core.stats import modes

    rng = np.random.default_rng(0)
    two = np.concatenate([1e-6 * np.exp(rng.normal(0, 0.02, 300)), 2e-6 * np.exp(rng.normal(0, 0.02, 200))])
    found = modes(two)
    assert [n for _, n in found] == [300, 200]
    assert abs(found[0][0] - 1e-6) < 0.02e-6 and abs(found[1][0] - 2e-6) < 0.04e-6
    assert len(modes(1e-6 * (1 + rng.exponential(0.3, 1000)))) == 1  # one mode with a long tail
    assert len(modes(np.full(50, 1e-6))) == 1
    tail = np.concatenate([1e-6 * np.exp(rng.normal(0, 0.03, 500)), 1e-6 * (1 + rng.exponential(2, 20))])
    assert len(modes(tail)) == 1  # 4% stragglers are not a mode
