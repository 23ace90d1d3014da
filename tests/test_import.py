"""commbench import: nccl-tests (text, JSON), OSU and IMB outputs into run directories.

The sample outputs in tests/data/ were written for these tests to the tools' documented
formats (nccl-tests' table and -J JSON version 2, OSU 7.x text, IMB-MPI1 text)."""
import json
from pathlib import Path

import pytest

from analysis import importers
from analysis.runsamples import load_run
from bench.cli import main as cli
from tests.conftest import run_cli

DATA = Path(__file__).parent / "data"


def do_import(capsys, out, *files, extra=()):
    return run_cli(capsys, "import", *[DATA / f for f in files], "--out", out, *extra)


def case(summary, op, nbytes, nranks=None):
    rows = summary[(summary["op"] == op) & (summary["nbytes"] == nbytes)]
    if nranks is not None:
        rows = rows[rows["nranks"] == nranks]
    assert len(rows) == 1, (op, nbytes, nranks, rows)
    return rows.iloc[0]


def test_nccl_tests_text(tmp_path, capsys):
    rc, out, _ = do_import(capsys, tmp_path / "r", "nccl_all_reduce.txt")
    assert rc == 0 and "imported 12 rows (allreduce)" in out
    meta, samples, summary = load_run(tmp_path / "r")
    assert meta["source"] == "nccl-tests" and meta["backend"]["name"] == "nccl"
    assert meta["nranks"] == 2 and meta["hosts"] == ["node1", "node1"] and meta["nnodes"] == 1
    assert meta["ops"]["allreduce"]["bus_factor"] == "2(n-1)/n"
    assert set(samples["rank"]) == {-1} and set(samples["round"]) == {0}
    # out-of-place time, not in-place; float -> float32; count as printed
    row = case(summary, "allreduce", 2097152)
    assert row["median_s"] == pytest.approx(22.98e-6)
    assert row["dtype"] == "float32" and row["count"] == 524288
    # the tool's own algbw column (GB/s) agrees with S / time; busbw = algbw at n = 2
    assert row["algbw_Bps"] / 1e9 == pytest.approx(91.26, rel=1e-3)
    assert row["busbw_Bps"] == pytest.approx(row["algbw_Bps"])
    assert int(summary["nbytes"].max()) == 33554432 and len(summary) == 12


def test_nccl_tests_json(tmp_path, capsys):
    rc, _, _ = do_import(capsys, tmp_path / "r", "nccl_all_gather.json")
    assert rc == 0
    meta, samples, summary = load_run(tmp_path / "r")
    assert meta["source"] == "nccl-tests-json"
    assert meta["nranks"] == 4 and meta["nnodes"] == 2
    assert meta["env"] == {"NCCL_DEBUG": "WARN", "NCCL_IB_HCA": "mlx5_0"}  # not PATH, HOME
    assert meta["started"] == "2026-11-20 10:11:12"
    doc = json.loads((DATA / "nccl_all_gather.json").read_text())
    for rec in doc["results"]:
        row = case(summary, "allgather", rec["size"])  # nccl-tests' size is already S
        assert row["median_s"] == pytest.approx(rec["out_of_place"]["time"] * 1e-6)
        # the tool rounds to 0.01 GB/s
        assert row["busbw_Bps"] / 1e9 == pytest.approx(rec["out_of_place"]["bus_bw"], rel=2e-3, abs=0.006)


@pytest.mark.slow
def test_osu_point_to_point(tmp_path, capsys):
    assert do_import(capsys, tmp_path / "lat", "osu_latency.txt")[0] == 0
    _, _, lat = load_run(tmp_path / "lat")
    assert case(lat, "pingpong", 1, 2)["median_s"] == pytest.approx(0.17e-6)
    assert case(lat, "pingpong", 8192)["median_s"] == pytest.approx(1.49e-6)
    assert len(lat) == 23 and set(lat["dtype"]) == {"int8"}

    assert do_import(capsys, tmp_path / "bw", "osu_bw.txt")[0] == 0
    _, _, bw = load_run(tmp_path / "bw")
    row = case(bw, "bw", 4194304, 2)
    assert row["algbw_Bps"] == pytest.approx(14997.32e6)  # the printed MB/s, 1 MB = 1e6 B

    assert do_import(capsys, tmp_path / "bibw", "osu_bibw.txt")[0] == 0
    _, _, bibw = load_run(tmp_path / "bibw")
    row = case(bibw, "bibw", 2 * 4194304, 2)  # S counts both directions
    assert row["algbw_Bps"] == pytest.approx(26995.17e6)

    assert do_import(capsys, tmp_path / "mbw", "osu_mbw_mr.txt")[0] == 0
    _, _, mbw = load_run(tmp_path / "mbw")
    row = case(mbw, "multipair", 2 * 1048576, 4)  # 2 pairs: 4 ranks, S = both pairs' bytes
    assert row["algbw_Bps"] == pytest.approx(23972.57e6)
    assert row["msg_rate_per_s"] == pytest.approx(22862.02, rel=1e-5)  # OSU's Messages/s


def test_osu_collectives_need_the_rank_count(tmp_path, capsys):
    rc, out, err = do_import(capsys, tmp_path / "r", "osu_allreduce_4ranks.txt")
    assert rc == 2 and out == "" and "give --nranks" in err and len(err.splitlines()) == 1
    rc, _, _ = do_import(capsys, tmp_path / "r", "osu_allreduce_4ranks.txt",
                         "osu_allgather_barrier_4ranks.txt", extra=["--nranks", "4"])
    assert rc == 0
    _, _, summary = load_run(tmp_path / "r")
    assert case(summary, "allreduce", 1024, 4)["median_s"] == pytest.approx(0.34e-6)  # Avg column
    assert case(summary, "allreduce", 4, 4)["dtype"] == "int32"
    # OSU allgather size is per rank; S is the whole output
    assert case(summary, "allgather", 4 * 4096, 4)["median_s"] == pytest.approx(1.43e-6)
    assert case(summary, "barrier", 0, 4)["median_s"] == pytest.approx(0.85e-6)


@pytest.mark.slow
def test_imb(tmp_path, capsys):
    assert do_import(capsys, tmp_path / "r", "imb_mpi1.txt")[0] == 0
    meta, samples, summary = load_run(tmp_path / "r")
    assert meta["versions"] == {"imb": "2021.7"} and meta["backend"]["name"] == "mpi"
    assert set(summary["op"]) == {"pingpong", "allreduce", "allgather", "barrier"}
    assert case(summary, "pingpong", 1024, 2)["median_s"] == pytest.approx(0.29e-6)
    # one block per process count; t_avg; reductions in MPI_FLOAT
    assert case(summary, "allreduce", 4096, 2)["median_s"] == pytest.approx(0.71e-6)
    assert case(summary, "allreduce", 4096, 4)["median_s"] == pytest.approx(0.91e-6)
    assert case(summary, "allreduce", 4096, 4)["dtype"] == "float32"
    assert case(summary, "allgather", 4 * 1024, 4)["median_s"] == pytest.approx(0.78e-6)
    assert case(summary, "barrier", 0, 4)["median_s"] == pytest.approx(1.2e-6)
    assert set(samples.loc[samples["op"] == "pingpong", "calls"]) >= {1000}


@pytest.mark.slow
def test_same_case_twice_becomes_two_rounds(tmp_path, capsys):
    rc, _, _ = do_import(capsys, tmp_path / "r", "osu_latency.txt", "osu_latency.txt")
    assert rc == 0
    _, samples, summary = load_run(tmp_path / "r")
    assert sorted(set(samples["round"])) == [0, 1] and (summary["rounds"] == 2).all()


@pytest.mark.parametrize("name, fmt", [
    ("nccl_all_reduce.txt", "nccl-tests"), ("nccl_all_gather.json", "nccl-tests-json"),
    ("osu_latency.txt", "osu"), ("osu_allreduce_4ranks.txt", "osu"), ("imb_mpi1.txt", "imb"),
])
def test_format_is_detected(name, fmt):
    assert importers.detect_format((DATA / name).read_text()) == fmt


def test_bad_input_is_one_line_exit_2(tmp_path, capsys):
    rc, _, err = do_import(capsys, tmp_path / "r", "osu_latency.txt", extra=["--format", "csv"])
    assert rc == 2 and err.strip() == (
        "commbench: error: no such format 'csv'; known: nccl-tests, nccl-tests-json, osu, imb")
    junk = tmp_path / "junk.txt"
    junk.write_text("# nothing\n# here\n")
    rc = cli(["import", str(junk), "--out", str(tmp_path / "j")])
    assert rc == 2 and "cannot tell the format" in capsys.readouterr().err
    rc = cli(["import", str(junk), "--format", "osu", "--out", str(tmp_path / "j")])
    assert rc == 2 and "osu: no result rows" in capsys.readouterr().err
    rc = cli(["import", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "j")])
    assert rc == 2 and "nope.txt" in capsys.readouterr().err
    # an existing run is not overwritten without --force
    assert do_import(capsys, tmp_path / "r", "osu_latency.txt")[0] == 0
    rc, _, err = do_import(capsys, tmp_path / "r", "osu_latency.txt")
    assert rc == 2 and "--force" in err
    assert do_import(capsys, tmp_path / "r", "osu_bw.txt", extra=["--force"])[0] == 0


def test_nccl_text_without_header_needs_op(tmp_path, capsys):
    lines = [line for line in (DATA / "nccl_all_reduce.txt").read_text().splitlines()
             if "Collective test" not in line]
    bare = tmp_path / "bare.txt"
    bare.write_text("\n".join(lines) + "\n")
    rc = cli(["import", str(bare), "--out", str(tmp_path / "a")])
    assert rc == 2 and "--op" in capsys.readouterr().err
    rc = cli(["import", str(bare), "--op", "allreduce", "--out", str(tmp_path / "b")])
    assert rc == 0


@pytest.mark.slow
def test_imported_runs_can_be_compared(tmp_path, capsys):
    """Same file twice: nothing differs; the note says the test ran on single samples."""
    do_import(capsys, tmp_path / "a", "imb_mpi1.txt")
    do_import(capsys, tmp_path / "b", "imb_mpi1.txt")
    rc = cli(["compare", str(tmp_path / "a"), str(tmp_path / "b")])
    out = capsys.readouterr().out
    assert rc == 0 and "slower: 0" in out and "raw samples" in out
    assert "is imported from imb" in out


@pytest.mark.slow
def test_nccl_text_with_several_runs_pasted(tmp_path, capsys):
    """Two runs of all_reduce_perf and one of all_gather_perf in one log."""
    text = (DATA / "nccl_all_reduce.txt").read_text()
    gather = text.replace("all_reduce_perf", "all_gather_perf").replace("     sum  ", "    none  ")
    log = tmp_path / "log.txt"
    log.write_text(text + text + gather)
    assert cli(["import", str(log), "--out", str(tmp_path / "r")]) == 0
    _, samples, summary = load_run(tmp_path / "r")
    assert set(summary["op"]) == {"allreduce", "allgather"}
    assert (summary.loc[summary["op"] == "allreduce", "rounds"] == 2).all()
    assert (summary.loc[summary["op"] == "allgather", "rounds"] == 1).all()


def test_one_rank_imports_are_flagged_no_op(tmp_path, capsys):
    one = tmp_path / "one_gpu.txt"  # the same table from a run on one GPU
    one.write_text("".join(line for line in (DATA / "nccl_all_reduce.txt").read_text().splitlines(True)
                           if "Rank  1 " not in line))
    rc = cli(["import", str(one), "--out", str(tmp_path / "r")])
    summary = load_run(tmp_path / "r")[2]
    assert rc == 0 and set(summary["nranks"]) == {1} and set(summary["flags"]) == {"no-op"}
    rc, _, _ = do_import(capsys, tmp_path / "two", "nccl_all_reduce.txt")
    assert set(load_run(tmp_path / "two")[2]["flags"].fillna("")) == {""}
