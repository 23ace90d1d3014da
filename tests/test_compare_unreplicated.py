"""commbench compare on unreplicated data (one (run, round) per side: imports, single-round runs):
a slowdown that neighbouring sizes agree on is reported, a machine's isolated mode switches are
not.

The GB10 fixture pair (tests/data/nccl_all_gather_gb10_{before,after}.txt) is written for these
tests in nccl-tests' text format: all_gather_perf on two GB10 hosts, 8 MiB to 4 GiB, and the same
log after a link setting changed, 7.1x, 7.6x and 7.9x slower at 1, 2 and 4 GiB and within 3%
elsewhere. Before unreplicated verdicts, compare called all ten rows 'not significant'."""
import json

import numpy as np
import pandas as pd
import pytest

from analysis import compare_output, compare_sides, compare_stats
from bench.cli import main as cli
from bench.core.rundir import SAMPLE_COLUMNS
from tests.conftest import QUICK, ROOT, needs_mpi, run_cli, run_commbench
from tests.runs import write_replicated_run, write_synthetic_run

DATA = ROOT / "tests" / "data"
GIB = 1 << 30
SIZES = [4 << (2 * i) for i in range(11)]  # 4 B .. 4 MiB


@pytest.fixture(scope="module")
def gb10(tmp_path_factory):
    base = tmp_path_factory.mktemp("gb10")
    for side in ("before", "after"):
        assert cli(["import", str(DATA / f"nccl_all_gather_gb10_{side}.txt"), "--out", str(base / side)]) == 0
    assert cli(["import", str(DATA / "nccl_all_gather_gb10_before.txt"), "--out", str(base / "again")]) == 0
    return base


@pytest.mark.slow
def test_gb10_slowdown_in_single_imports_fails(gb10, capsys):
    rc, out, _ = run_cli(capsys, "compare", gb10 / "before", gb10 / "after")
    assert rc == 1
    rows = {line.split()[3] + line.split()[4]: line for line in out.splitlines() if line.startswith("nccl")}
    assert len(rows) == 10
    for size in ("1GiB", "2GiB", "4GiB"):
        assert rows[size].endswith("slower, unreplicated: 7.60× at 3/3 sizes"), rows[size]
    for size in ("8MiB", "64MiB", "512MiB"):
        assert "not significant, unreplicated: 0/3 sizes" in rows[size]
    assert "slower: 3, not significant: 7, faster: 0" in out
    assert "noise 1.1 is a stated default" in out

    res = json.loads(run_cli(capsys, "compare", gb10 / "before", gb10 / "after", "--format", "json")[1])
    assert res["noise"] == {"ratio": compare_sides.DEFAULT_NOISE, "source": "default"}
    slow = [r for r in res["rows"] if r["verdict"] == "slower"]
    assert [r["nbytes"] for r in slow] == [GIB, 2 * GIB, 4 * GIB]
    for r in slow:
        assert (r["n_base"], r["n_new"], r["unit"]) == (1, 1, "samples")
        ev = r["evidence"]
        assert ev["agree"] == ev["of"] == 3 and ev["sizes"] == [GIB, 2 * GIB, 4 * GIB]
        assert ev["ratio"] == pytest.approx(7.6, abs=0.01)
        assert ev["threshold"] == pytest.approx(1.1 * 1.1)
    # markdown keeps one cell per column
    md = run_cli(capsys, "compare", gb10 / "before", gb10 / "after", "--format", "markdown")[1]
    table = [line for line in md.splitlines() if line.startswith("| nccl")]
    assert len(table) == 10 and all(line.count("|") == len(compare_output.HEADER) + 1 for line in table)


def test_gb10_identical_imports_pass(gb10, capsys):
    rc, out, _ = run_cli(capsys, "compare", gb10 / "before", gb10 / "again")
    assert rc == 0 and "slower: 0, not significant: 10, faster: 0" in out


# ---------------------------------------------------------------- synthetic single-value sides
def make_run(path, seed, scale=lambda op, n: 1.0, flip=0.08, sd=0.05, samples=1, sizes=SIZES,
             noise=None):
    """One value per case (samples=1, like an import) or one round of samples: 2 µs + S / 5 GB/s
    with lognormal run-to-run noise `sd` per case, and, with probability `flip`, the case caught
    in another latency mode (1.5x to 8x slower or faster: what identical single-round runs on
    this machine's shared VM show at single sizes)."""
    rng = np.random.default_rng(seed)
    rows = []
    for op in ("allreduce", "pingpong"):
        for n in sizes:
            f = scale(op, n) * float(np.exp(rng.normal(0, sd)))
            if rng.random() < flip:
                mode = rng.uniform(1.5, 8.0)
                f *= mode if rng.random() < 0.5 else 1 / mode
            for s in range(samples):
                t = (2e-6 + n / 5e9) * f * float(np.exp(rng.normal(0, 0.02)))
                rows.append(("mpi", op, "float32", n, 2, "all", 0, s, -1, 1, t))
    df = pd.DataFrame(rows, columns=SAMPLE_COLUMNS)
    fields = {}  # meta.json's, beyond synthetic_meta's
    if noise is not None:
        fields["noise"] = {"timer": {"measured_resolution_s": 1e-8},
                         "jitter_per_rank": [{"quantum_s": 5e-5, "p99_over_median": 1.2,
                                              "interrupted_share": 0.01}],
                         "pingpong": {"size_bytes": 8, "burst_medians_s": [1e-6, noise * 1e-6],
                                      "max_over_min": noise, "cv": 0.1}}
    return write_synthetic_run(path, df, nranks=2, **fields)


@pytest.mark.parametrize("samples", [1, 20])
@pytest.mark.slow
def test_identical_single_round_sides_pass_at_least_5_in_6(tmp_path, samples):
    pairs = 30
    failed = []
    for i in range(pairs):
        a = make_run(tmp_path / f"a{i}", 2 * i, samples=samples)
        b = make_run(tmp_path / f"b{i}", 2 * i + 1, samples=samples)
        res = compare_sides.compare_runs([a], [b])
        if res["exit_status"]:
            failed.append([(r["op"], r["nbytes"], round(r["ratio"], 2)) for r in res["rows"]
                           if r["verdict"] == "slower"])
    # 5 in 6 is the requirement; the rule does far better (0 of 150 single-value pairs and 1 of
    # 150 single-round pairs of 20 samples failed when it was tuned)
    assert len(failed) <= pairs // 15, failed


@pytest.mark.slow
def test_a_real_slowdown_over_a_range_of_sizes_is_found(tmp_path):
    base = make_run(tmp_path / "base", 1)
    new = make_run(tmp_path / "new", 2, scale=lambda op, n: 1.5 if n >= 4096 else 1.0)
    res = compare_sides.compare_runs([base], [new])
    large = [r for r in res["rows"] if r["nbytes"] >= 4096]
    small = [r for r in res["rows"] if r["nbytes"] < 1024]
    assert sum(r["verdict"] == "slower" for r in large) >= len(large) - 2
    assert not any(r["verdict"] == "slower" for r in small)
    assert res["exit_status"] == 1


@pytest.mark.slow
def test_faster_is_mirrored(tmp_path):
    base = make_run(tmp_path / "base", 1, flip=0)
    new = make_run(tmp_path / "new", 2, flip=0, scale=lambda op, n: 0.4)
    res = compare_sides.compare_runs([base], [new])
    assert {r["verdict"] for r in res["rows"]} == {"faster"} and res["exit_status"] == 0
    assert compare_output.verdict_text(res["rows"][0]).startswith("faster, unreplicated: 0.")


@pytest.mark.slow
def test_measured_noise_raises_the_bar(tmp_path):
    """A side whose own noise calibration saw a 3x spread: 2x everywhere is within it."""
    base = make_run(tmp_path / "base", 1, flip=0, noise=3.0)
    new = make_run(tmp_path / "new", 2, flip=0, scale=lambda op, n: 2.0)
    res = compare_sides.compare_runs([base], [new])
    assert res["noise"] == {"ratio": 3.0, "source": "measured"}
    assert {r["verdict"] for r in res["rows"]} == {"not significant"}
    assert any("noise 3 is the larger of the two sides' own measurement" in n for n in res["notes"])
    quiet = make_run(tmp_path / "quiet", 3, flip=0, noise=1.02)
    res = compare_sides.compare_runs([quiet], [new])
    assert res["noise"]["ratio"] == pytest.approx(1.02)
    assert {r["verdict"] for r in res["rows"]} == {"slower"}


def test_series_shorter_than_the_window_gets_no_verdict(tmp_path):
    base = make_run(tmp_path / "base", 1, flip=0, sizes=[1 << 20, 1 << 22])
    new = make_run(tmp_path / "new", 2, flip=0, sizes=[1 << 20, 1 << 22], scale=lambda op, n: 7.0)
    res = compare_sides.compare_runs([base], [new])
    assert {r["verdict"] for r in res["rows"]} == {"not significant"} and res["exit_status"] == 0
    assert any("series of fewer than 3 sizes" in n for n in res["notes"])


@pytest.mark.slow
def test_isolated_mode_switches_are_not_a_slowdown(tmp_path):
    """Two neighbouring sizes caught in a slow mode (seen on this machine: 6.1x and 4.3x at 64 B
    and 1 KiB in identical runs) are not three."""
    slow = {64: 6.1, 1024: 4.3}
    base = make_run(tmp_path / "base", 1, flip=0)
    new = make_run(tmp_path / "new", 2, flip=0, scale=lambda op, n: slow.get(n, 1.0))
    res = compare_sides.compare_runs([base], [new])
    assert res["exit_status"] == 0
    row = next(r for r in res["rows"] if r["op"] == "allreduce" and r["nbytes"] == 64)
    assert compare_output.verdict_text(row) == "not significant, unreplicated: 2/3 sizes beyond 1.21×"


@pytest.mark.slow
def test_replicated_cases_keep_the_rank_test(tmp_path):
    """With rounds on both sides nothing changes: no evidence, the test of round medians."""
    base = write_replicated_run(tmp_path / "base", seed=1)
    new = write_replicated_run(tmp_path / "new", seed=2, scale=lambda op, n, r: 1.5 if n >= 4096 else 1.0)
    res = compare_sides.compare_runs([base], [new])
    assert all(r["unit"] == "rounds" and "evidence" not in r for r in res["rows"])
    assert [r["verdict"] for r in res["rows"]] == ["not significant"] * 3 + ["slower"] * 2


def test_smallest_p_of_many_samples():
    assert compare_stats.smallest_p(5000, 5000) == 0.0
    assert compare_stats.smallest_p(2, 2) == pytest.approx(1 / 6)


# ---------------------------------------------------------------- real runs of this machine
@needs_mpi
def test_real_single_round_runs_compare_by_samples(tmp_path):
    """Two real single-round runs (--launches 1 --repeats 1) compare sample by sample, with a
    verdict for every row; a run against itself is never slower. How often two such runs of an
    unchanged machine disagree is a property of the machine, not of this code: CI's loaded
    cores showed it, so the bound (5 of 6 pairs pass) is measured by
    tests/benchmarks/check_compare_noise.py --unreplicated on a quiet machine."""
    quick = [a for a in QUICK if a not in ("--budget", "0.05")]
    runs = []
    for i in range(2):
        out = tmp_path / f"r{i}"
        r = run_commbench("run", "-n", "2", "--ops", "allreduce,pingpong", "--sizes", "4:64K:4",
                          *quick, "--budget", "0.1", "--out", out, timeout=180)
        assert r.returncode == 0, r.stderr[-2000:]
        runs.append(out)
    res = compare_sides.compare_runs([runs[0]], [runs[1]])
    assert all(r["unit"] == "samples" for r in res["rows"])
    assert {r["verdict"] for r in res["rows"]} <= {"slower", "faster", "not significant"}
    assert len(res["rows"]) == 2 * 8
    itself = compare_sides.compare_runs([runs[0]], [runs[0]])
    assert {r["verdict"] for r in itself["rows"]} == {"not significant"}
    assert itself["exit_status"] == 0
