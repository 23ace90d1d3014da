"""commbench import on broken input: rows that cannot be read are counted and named (never a
traceback, never a silent drop), nothing NaN or infinite becomes a sample, results checks are
kept as the tool reported them, and files are read in bounded memory with a stated limit."""
import json
import math
import tracemalloc
from pathlib import Path

import pandas as pd
import pytest

from analysis import importers
from analysis.importers import records
from analysis.runsamples import load_run
from bench.cli import main as cli
from tests.conftest import run_cli

DATA = Path(__file__).parent / "data"


def run(capsys, tmp_path, text_or_path, *extra, name="input.txt"):
    """(rc, stdout, stderr, summary or None) of importing a text written to a file."""
    path = text_or_path
    if not isinstance(text_or_path, Path):
        path = tmp_path / name
        path.write_text(text_or_path)
    out = tmp_path / "run"
    rc, stdout, stderr = run_cli(capsys, "import", path, "--out", out, "--force", *extra)
    summary = load_run(out)[2] if rc == 0 else None
    return rc, stdout, stderr, summary


def edit_rows(text: str, edits: dict) -> str:
    """Replace whole data rows, found by their first word (the size)."""
    lines = []
    for line in text.splitlines():
        words = line.split()
        lines.append(edits.get(words[0], line) if words and not line.startswith("#") else line)
    return "\n".join(lines) + "\n"


NCCL = (DATA / "nccl_all_reduce.txt").read_text()


def nccl_row(size, count="", time="9.00", wrong="0", time_ip="8.70", wrong_ip="0", extra=""):
    count = count or str(int(size) // 4)
    return (f"{size:>12}  {count:>12}  float  sum  -1  {time:>7}  0.00  0.00  {wrong:>5}"
            f"  {time_ip:>7}  0.00  0.00  {wrong_ip:>5}{extra}")


# ---------------------------------------------------------------- malformed rows
@pytest.mark.slow
def test_malformed_nccl_rows_are_counted_and_named(tmp_path, capsys):
    text = edit_rows(NCCL, {
        "32": nccl_row("32", count="eight"),
        "128": nccl_row("128", time="inf"),
        "512": nccl_row("512", time="-9.01"),
        "2048": nccl_row("2048", time="N/A"),
        "8192": nccl_row("8192", time="0.00"),
        "32768": nccl_row("32768")[:-7],  # cut short
    })
    rc, out, err, summary = run(capsys, tmp_path, text)
    assert rc == 0 and err == ""
    assert len(summary) == 6 and summary["median_s"].map(math.isfinite).all()
    line = out.splitlines()[0]
    assert "6 malformed rows not imported" in line and "and 3 more" in line
    assert "'32 eight float" in line and "size or count is not a whole number" in line
    assert "no finite time" in line
    # every reason, when each row is the only bad one
    for size, row, why in [("512", nccl_row("512", time="-9.01"), "negative time"),
                           ("8192", nccl_row("8192", time="0.00"), "time printed as zero"),
                           ("32768", nccl_row("32768")[:-7], "12 fields, the header names 13")]:
        rc, out, _, _ = run(capsys, tmp_path, edit_rows(NCCL, {size: row}))
        assert rc == 0 and "1 malformed row not imported: line" in out and why in out


@pytest.mark.slow
def test_malformed_osu_and_imb_rows(tmp_path, capsys):
    osu = edit_rows((DATA / "osu_latency.txt").read_text(), {
        "64": "64   nan", "128": "128  -0.18", "256": "256   inf", "512": "512  0.00",
        "1024": "1024  abc", "2048": "2048  1.2  3.4"})
    rc, out, err, summary = run(capsys, tmp_path, osu)
    assert rc == 0 and "6 malformed rows" in out and len(summary) == 23 - 6
    imb = (DATA / "imb_mpi1.txt").read_text().replace(
        "      1048576           10       141.83       173.35       157.59",
        '      1048576 out-of-mem.; needed X=   0.067 GB; use flag "-mem X" or MAX_MEM_USAGE>=X')
    rc, out, _, summary = run(capsys, tmp_path, imb)
    assert rc == 0 and "IMB ran out of memory" in out
    assert len(summary[(summary["op"] == "allreduce") & (summary["nranks"] == 4)]) == 19


def test_nothing_readable_is_one_line_exit_2(tmp_path, capsys):
    osu = "# OSU MPI Latency Test v7.4\n# Size       Avg Latency(us)\n1  inf\n2  -1.0\n"
    rc, out, err, _ = run(capsys, tmp_path, osu)
    assert rc == 2 and out == "" and len(err.splitlines()) == 1
    assert "no result rows imported" in err and "no finite time" in err


# ---------------------------------------------------------------- results checks
def test_in_place_wrong_is_kept_and_na_is_unknown(tmp_path, capsys):
    text = edit_rows(NCCL, {"8": nccl_row("8", wrong="2", wrong_ip="5"),
                            "32": nccl_row("32", wrong_ip="3"),
                            "128": nccl_row("128", wrong="N/A", wrong_ip="N/A"),
                            "512": nccl_row("512", wrong="-1", wrong_ip="-1")})
    rc, _, _, summary = run(capsys, tmp_path, text)
    wrong = dict(zip(summary["nbytes"], summary["wrong"]))
    assert wrong[8] == 7 and wrong[32] == 3  # out of place + in place
    assert math.isnan(wrong[128]) and math.isnan(wrong[512])  # not checked: unknown, not 0
    assert wrong[2048] == 0
    csv = (tmp_path / "run" / "summary.csv").read_text().splitlines()
    assert csv[3].split(",")[15] == ""  # written as unknown


@pytest.mark.slow
def test_validation_off_run_and_reported_wrongs(tmp_path, capsys):
    rc, out, _, summary = run(capsys, tmp_path, DATA / "nccl_v2.18_checks.txt")
    ar = summary[summary["op"] == "allreduce"].set_index("nbytes")["wrong"]
    assert ar[16384] == 3 and ar[1048576] == 1 and ar[1024] == 0  # in place, out of place
    assert summary.loc[summary["op"] == "broadcast", "wrong"].isna().all()  # -c 0
    assert "nccl-tests reported 2 out-of-bounds results" in out


@pytest.mark.slow
def test_2_0_era_error_column(tmp_path, capsys):
    """`error` is the largest deviation: flagged ('*') counts, unflagged is a pass only when
    the footer says no value was out of bounds."""
    text = (DATA / "nccl_v2.0_log.txt").read_text()
    flagged = text.replace("    135.3    7.75   13.56  4e-07    134.9    7.77   13.60  4e-07",
                           "    135.3    7.75   13.56  3e+00*    134.9    7.77   13.60  4e-07")
    _, _, _, summary = run(capsys, tmp_path, flagged)
    ar = summary[summary["op"] == "allreduce"].set_index("nbytes")["wrong"]
    assert ar[1048576] == 1 and ar[524288] == 0
    unknown = text.replace("# Out of bounds values : 0 OK", "# Out of bounds values : 3 FAILED", 1)
    _, _, _, summary = run(capsys, tmp_path, unknown)
    ar = summary[summary["op"] == "allreduce"].set_index("nbytes")["wrong"]
    assert ar[8] == 0 and math.isnan(ar[1048576])  # 0e+00 passes; 4e-07 unknown


def test_calls_are_the_timed_iterations_not_the_warmup(tmp_path, capsys):
    _, _, _, summary = run(capsys, tmp_path, DATA / "nccl_all_reduce.txt")
    samples = load_run(tmp_path / "run")[1]
    assert set(samples["calls"]) == {20}  # '# nThread ... warmup iters: 5 iters: 20'


# ---------------------------------------------------------------- malformed JSON
BASE = json.loads((DATA / "nccl_all_gather.json").read_text())


def doc(change):
    d = json.loads(json.dumps(BASE))
    change(d)
    return json.dumps(d)


@pytest.mark.parametrize("make, message", [
    (lambda: doc(lambda d: d.update(config="abc")), "'config' is a string, expected an object"),
    (lambda: doc(lambda d: d["config"].update(devices={"0": 1})), "'devices' is an object, expected a list"),
    (lambda: doc(lambda d: d.update(results=[5, "x"])), "results[0]: a number, not an object"),
    (lambda: doc(lambda d: d.pop("results")), "no 'results' list"),
    (lambda: '{"results": ' + "[" * 100000 + "]" * 100000 + "}", "nested too deeply"),
    (lambda: "[1, 2]", "the document is a list, expected an object"),
    (lambda: '{"results": [', "not JSON"),
])
@pytest.mark.slow
def test_malformed_json_is_one_line_exit_2(tmp_path, capsys, make, message):
    rc, out, err, _ = run(capsys, tmp_path, make(), "--format", "nccl-tests-json", name="bad.json")
    assert rc == 2 and out == "" and len(err.splitlines()) == 1 and message in err, err


@pytest.mark.slow
def test_malformed_json_results_are_counted(tmp_path, capsys):
    def change(d):
        d["results"][1] = 5
        del d["results"][2]["size"]
        d["results"][3]["out_of_place"]["time"] = "nan"     # how nccl-tests writes NaN
        d["results"][4]["out_of_place"]["time"] = float("inf")
        d["results"][5]["in_place"]["nwrong"] = 4
        d["results"][6]["out_of_place"]["nwrong"] = None    # not checked
    rc, out, _, summary = run(capsys, tmp_path, doc(change), name="r.json")
    assert rc == 0 and "4 malformed rows not imported" in out
    assert "results[1]: a number, not an object" in out and "results[2]: no whole-number 'size'" in out
    assert len(summary) == 4 and summary["median_s"].map(math.isfinite).all()
    wrong = dict(zip(summary["nbytes"], summary["wrong"]))
    assert wrong[4194304] == 4 and math.isnan(wrong[33554432])


def test_json_cpu_time_is_not_the_ops_time(tmp_path, capsys):
    def change(d):
        for r in d["results"]:
            r["out_of_place"]["cpu_time"] = r["out_of_place"].pop("time")
    rc, _, err, _ = run(capsys, tmp_path, doc(change), name="c.json")
    assert rc == 2 and "cpu_time" in err and "CPU launch time" in err


# ---------------------------------------------------------------- files, limits, memory
def test_unreadable_inputs(tmp_path, capsys):
    rc, _, err, _ = run(capsys, tmp_path, tmp_path)  # a directory
    assert rc == 2 and "not a file" in err
    rc, _, err, _ = run(capsys, tmp_path, "")
    assert rc == 2 and "cannot tell the format" in err
    binary = tmp_path / "core.bin"
    binary.write_bytes(bytes(range(256)) * 64)
    rc, _, err, _ = run(capsys, tmp_path, binary)
    assert rc == 2 and "binary data, not a text log" in err and len(err.splitlines()) == 1
    latin = tmp_path / "latin1.txt"
    latin.write_bytes(b"caf\xe9 r\xe9sultats\n" + (DATA / "osu_latency.txt").read_bytes())
    assert run(capsys, tmp_path, latin)[0] == 0


def test_a_bad_file_among_good_ones_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("# OSU MPI Allreduce Latency Test v7.4\n# Size  Avg Latency(us)\n4  1.0\n")
    rc = cli(["import", str(DATA / "osu_latency.txt"), str(bad), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(f"commbench: error: {bad}: ") and "--nranks" in err
    assert not (tmp_path / "r").exists()


def test_size_limit_is_stated(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(importers, "MAX_TEXT_BYTES", 500)
    rc, _, err, _ = run(capsys, tmp_path, DATA / "osu_latency.txt")
    assert rc == 2 and "larger than the 500 B commbench import reads from one file" in err
    monkeypatch.setattr(importers.nccl, "MAX_JSON_BYTES", 2048)
    rc, _, err, _ = run(capsys, tmp_path, DATA / "nccl_all_gather.json")
    assert rc == 2 and "larger than the 2 KiB" in err


def test_row_limit_is_stated(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(records, "MAX_ROWS", 10)
    rc, _, err, _ = run(capsys, tmp_path, DATA / "nccl_all_reduce.txt")
    assert rc == 2 and "more than 10 result rows" in err


@pytest.mark.slow
def test_long_log_is_read_in_bounded_memory(tmp_path):
    """A 4 MB log (NCCL INFO lines, one 1 MB line with no newline break, then the table):
    Python allocations while reading it stay far below its size."""
    info = "gpu-a:4100:4100 [0] NCCL INFO Channel 00/02 :    0   1   2   3   4   5   6   7\n" * 40000
    log = tmp_path / "long.log"
    log.write_text(info + "x" * (1 << 20) + "\n" + NCCL)
    assert log.stat().st_size > 4e6
    tracemalloc.start()
    try:
        imp = importers.parse_file(log)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(imp.rows) == 12
    assert peak < 600_000, peak


def test_no_nan_or_inf_ever_reaches_the_samples():
    rows = [importers.Row(op="allreduce", nbytes=8, nranks=2, time_s=t) for t in (1e-6, 2e-6)]
    imp = importers.Imported(tool="osu", backend="mpi", rows=rows)
    samples, _ = importers.to_frames([imp])
    assert len(samples) == 2 and not pd.isna(samples["time_s"]).any()
    imp.rows.append(importers.Row(op="allreduce", nbytes=8, nranks=2, time_s=float("inf")))
    with pytest.raises(Exception, match="finite positive"):
        importers.to_frames([imp])


def test_row_limit_counts_all_files(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(records, "MAX_ROWS", 30)
    rc = cli(["import", str(DATA / "osu_latency.txt"), str(DATA / "osu_latency.txt"),
              "--out", str(tmp_path / "r")])
    assert rc == 2 and "more than 30 result rows" in capsys.readouterr().err


def test_json_other_redops_are_one_note(tmp_path, capsys):
    def change(d):
        for r in d["results"][:5]:
            r["redop"] = "max"
    rc, out, _, summary = run(capsys, tmp_path, doc(change), name="m.json")
    assert rc == 0 and len(summary) == 3
    assert "5 results of redop max not imported (commbench's reductions are sums)" in out
