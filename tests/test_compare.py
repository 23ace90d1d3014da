"""commbench compare: verdicts, units of replication, formats, exit statuses."""
import json

import pytest

from analysis import compare_sides, compare_stats
from analysis.runsamples import load_run
from tests.conftest import run_cli
from tests.runs import SMALL_SIZES as SIZES
from tests.runs import write_replicated_run

def test_synthetic_run_dir_is_readable(tmp_path):
    meta, samples, summary = load_run(write_replicated_run(tmp_path / "a", rounds=2, samples=5))
    assert len(samples) == len(SIZES) * 2 * 5 * 2
    assert list(summary["nbytes"]) == SIZES and (summary["rounds"] == 2).all()


@pytest.mark.slow
def test_same_configuration_is_not_significant(tmp_path, capsys):
    base = write_replicated_run(tmp_path / "base", seed=1)
    new = write_replicated_run(tmp_path / "new", seed=2)
    rc, out, _ = run_cli(capsys, "compare", base, new)
    assert rc == 0
    assert sum(line.endswith("not significant") for line in out.splitlines()) == len(SIZES)
    assert "slower: 0, not significant: 5, faster: 0" in out


@pytest.mark.slow
def test_slower_beyond_factor_fails_and_names_the_cases(tmp_path, capsys):
    base = write_replicated_run(tmp_path / "base", seed=1)
    new = write_replicated_run(tmp_path / "new", seed=2, scale=lambda op, n, r: 1.5 if n >= 4096 else 1.0)
    rc, out, _ = run_cli(capsys, "compare", base, new)
    assert rc == 1
    rows = {line.split()[3] + line.split()[4]: line for line in out.splitlines()[2:2 + len(SIZES)]}
    assert rows["4KiB"].endswith("slower") and rows["32KiB"].endswith("slower")
    assert rows["8B"].endswith("not significant")


@pytest.mark.slow
def test_faster_and_changes_within_the_factor(tmp_path):
    base = write_replicated_run(tmp_path / "base", seed=1, noise=0.005)
    faster = write_replicated_run(tmp_path / "faster", seed=2, noise=0.005, scale=lambda *a: 0.6)
    slightly = write_replicated_run(tmp_path / "slightly", seed=3, noise=0.005, scale=lambda *a: 1.05)
    res = compare_sides.compare_runs([base], [faster])
    assert {r["verdict"] for r in res["rows"]} == {"faster"} and res["exit_status"] == 0
    assert all(0.55 < r["ratio_ci_low"] <= r["ratio"] <= r["ratio_ci_high"] < 0.65 for r in res["rows"])
    # 5% slower is clearly real here, but within --factor 1.1: not a failure
    res = compare_sides.compare_runs([base], [slightly])
    assert {r["verdict"] for r in res["rows"]} == {"not significant"}
    # ... and a failure with --factor 1.02
    res = compare_sides.compare_runs([base], [slightly], factor=1.02)
    assert {r["verdict"] for r in res["rows"]} == {"slower"} and res["exit_status"] == 1


@pytest.mark.slow
def test_latency_modes_per_round_do_not_make_a_verdict(tmp_path):
    """The VM switches latency modes for seconds at a time: whole rounds at 1x or 1.9x. With
    round medians as units the test sees that spread; on raw samples it would not."""
    base_modes, new_modes = [1, 1, 1, 1.9, 1.9], [1.9, 1.9, 1.9, 1, 1]
    base = write_replicated_run(tmp_path / "base", seed=1, scale=lambda op, n, r: base_modes[r])
    new = write_replicated_run(tmp_path / "new", seed=2, scale=lambda op, n, r: new_modes[r])
    res = compare_sides.compare_runs([base], [new])
    assert all(r["unit"] == "rounds" and r["n_base"] == 5 for r in res["rows"])
    assert all(r["ratio"] > 1.5 for r in res["rows"])  # the medians alone would say "slower"
    assert {r["verdict"] for r in res["rows"]} == {"not significant"}


def test_single_round_falls_back_to_samples_with_a_note(tmp_path, capsys):
    base = write_replicated_run(tmp_path / "base", rounds=1, seed=1)
    new = write_replicated_run(tmp_path / "new", rounds=1, seed=2, scale=lambda *a: 1.3)
    rc, out, _ = run_cli(capsys, "compare", base, new)
    assert rc == 1
    assert "20/20 samples" in out
    assert "note: 5 of 5 cases were tested on raw samples" in out


@pytest.mark.slow
def test_several_run_dirs_per_side_use_runs_as_units(tmp_path, capsys):
    base = [write_replicated_run(tmp_path / f"b{i}", rounds=1, seed=i) for i in range(3)]
    new = [write_replicated_run(tmp_path / f"n{i}", rounds=1, seed=10 + i, scale=lambda *a: 2.0)
           for i in range(4)]
    rc, out, _ = run_cli(capsys, "compare", *base, "--new", *new, "--format", "json")
    res = json.loads(out)
    assert rc == 1 and res["exit_status"] == 1
    assert all(r["unit"] == "rounds" and (r["n_base"], r["n_new"]) == (3, 4) for r in res["rows"])
    assert res["counts"] == {"slower": 5, "not significant": 0, "faster": 0}
    assert res["base"] == [str(p) for p in base]


def test_too_few_rounds_can_never_be_significant(tmp_path):
    base = write_replicated_run(tmp_path / "base", rounds=2, seed=1)
    new = write_replicated_run(tmp_path / "new", rounds=2, seed=2, scale=lambda *a: 3.0)
    res = compare_sides.compare_runs([base], [new])
    assert {r["verdict"] for r in res["rows"]} == {"not significant"}
    assert any("too few rounds" in n for n in res["notes"])
    assert compare_stats.smallest_p(2, 2) == pytest.approx(1 / 6)


@pytest.mark.slow
def test_markdown_format_and_ops_filter(tmp_path, capsys):
    base = write_replicated_run(tmp_path / "base", ops=("allreduce", "pingpong"), seed=1)
    new = write_replicated_run(tmp_path / "new", ops=("allreduce", "pingpong"), seed=2)
    rc, out, _ = run_cli(capsys, "compare", base, new, "--format", "markdown", "--ops", "pingpong")
    assert rc == 0
    lines = out.splitlines()
    assert lines[2].startswith("| backend | op | ranks | size |")
    assert lines[3].startswith("|---|")
    table = [line for line in lines if line.startswith("| mpi")]
    assert len(table) == len(SIZES) and all("| pingpong |" in line for line in table)


@pytest.mark.slow
def test_unmatched_cases_are_reported(tmp_path):
    base = write_replicated_run(tmp_path / "base", ops=("allreduce", "pingpong"), seed=1)
    new = write_replicated_run(tmp_path / "new", ops=("allreduce",), seed=2)
    res = compare_sides.compare_runs([base], [new])
    assert len(res["rows"]) == len(SIZES)
    assert "not compared: 5 cases only in BASE, 0 only in NEW" in res["notes"]


@pytest.mark.parametrize("extra, message", [
    (["--format", "xml"], "no such format 'xml'; known: text, markdown, json"),
    (["--factor", "0.9"], "--factor must be at least 1"),
    (["--alpha", "1.5"], "--alpha must be between 0 and 1"),
])
def test_bad_options_exit_2(tmp_path, capsys, extra, message):
    base = write_replicated_run(tmp_path / "base", rounds=1, samples=3)
    rc, out, err = run_cli(capsys, "compare", base, base, *extra)
    assert rc == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1


def test_bad_run_dirs_exit_2(tmp_path, capsys):
    a = write_replicated_run(tmp_path / "a", rounds=1, samples=3)
    b = write_replicated_run(tmp_path / "b", rounds=1, samples=3, backend="gloo")
    rc, _, err = run_cli(capsys, "compare", a, tmp_path / "missing")
    assert rc == 2 and "missing: no such run directory" in err
    rc, _, err = run_cli(capsys, "compare", a, b)
    assert rc == 2 and "no case in common" in err
    rc, _, err = run_cli(capsys, "compare", a, a, b)
    assert rc == 2 and "--new" in err


@pytest.mark.slow
def test_settings_that_differ_are_named_first(tmp_path, capsys):
    """--loop python against native (and a numpy upgrade): the first line names both, before
    any verdict; identical settings print no such line."""
    base = write_replicated_run(tmp_path / "base", seed=1)
    new = write_replicated_run(tmp_path / "new", seed=2, scale=lambda op, n, r: 1.6)
    for path, loop, numpy_version in ((base, "native", "2.4.6"), (new, "python", "2.5.0")):
        meta = json.loads((path / "meta.json").read_text())
        meta.update(method={"loop": {"mpi": loop}}, versions={"numpy": numpy_version},
                    settings={"dtype": "float32", "loop": None if loop == "native" else loop})
        (path / "meta.json").write_text(json.dumps(meta))
    rc, out, _ = run_cli(capsys, "compare", base, new)
    first = out.splitlines()[0]
    assert rc == 1 and first.startswith("settings differ (BASE vs NEW)")
    assert "loop: mpi native vs mpi python" in first and "numpy: 2.4.6 vs 2.5.0" in first
    assert "dtype" not in first  # the same on both sides
    rc, out, _ = run_cli(capsys, "compare", base, base)
    assert not out.startswith("settings differ")
