"""commbench import on outputs as people publish them: old and new layouts of each tool, and
the logs around the tables (prompts, launcher lines, module loads, warnings, NCCL INFO lines,
MPI output tags, Kubernetes preambles, indentation, markdown fences).

The files in tests/data/ used here were written for these tests in the layouts the tools'
sources print (nccl-tests 2.0-era common.cu and 2.13-2.18 util.cu, OSU 5.6 and 7.x
osu_util.c, IMB IMB_output.c / IMB_g_info.c); their numbers come from simple latency /
bandwidth models, not from other people's files."""
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from analysis import importers
from analysis.runsamples import load_run
from tests.conftest import run_cli

DATA = Path(__file__).parent / "data"


def run_import(capsys, out, *files, extra=()):
    return run_cli(capsys, "import", *[f if isinstance(f, Path) else DATA / f for f in files],
                   "--out", out, *extra)


def imported(capsys, tmp_path, *files, extra=()):
    """(meta, samples, summary, stdout) of a successful import."""
    rc, out, err = run_import(capsys, tmp_path / "run", *files, extra=extra)
    assert rc == 0, err
    return (*load_run(tmp_path / "run"), out)


def one(summary, op, nbytes, nranks=None, backend=None):
    rows = summary[(summary["op"] == op) & (summary["nbytes"] == nbytes)]
    if nranks is not None:
        rows = rows[rows["nranks"] == nranks]
    if backend is not None:
        rows = rows[rows["backend"] == backend]
    assert len(rows) == 1, (op, nbytes, nranks, backend, rows)
    return rows.iloc[0]


def file_line(out: str, name: str) -> str:
    lines = [line for line in out.splitlines() if line.startswith(str(DATA / name))]
    assert len(lines) == 1, out
    return lines[0]


# ---------------------------------------------------------------- 1. nccl-tests layouts
def test_nccl_2_0_era_layout_read_by_header_names(tmp_path, capsys):
    """No root column, `error` where newer versions print #wrong, all_gather without redop,
    no program line: the time is the `time` column (135.3 µs at 1 MiB, not algbw's 7.75),
    the op comes from the command line before each run."""
    meta, samples, summary, out = imported(capsys, tmp_path, "nccl_v2.0_log.txt")
    assert set(summary["op"]) == {"allreduce", "allgather"}
    row = one(summary, "allreduce", 1048576, 8)
    assert row["median_s"] == pytest.approx(135.3e-6)
    assert row["algbw_Bps"] / 1e9 == pytest.approx(7.75, abs=0.005)  # the tool's own algbw
    assert one(summary, "allreduce", 8, 8)["median_s"] == pytest.approx(42.00e-6)  # algbw 0.00 there
    assert one(summary, "allreduce", 134217728, 8)["median_s"] == pytest.approx(11983e-6)
    assert one(summary, "allgather", 4194304, 8)["median_s"] == pytest.approx(490.9e-6)
    # 4e-07 deviations with 'Out of bounds values : 0 OK' are passes
    assert (summary["wrong"] == 0).all()
    assert set(samples["calls"]) == {20}  # 'iters: 20', not 'warmup iters: 5'
    assert meta["hosts"] == ["dgx1"] * 8
    assert "allreduce n=8" in out and "allgather n=8" in out


def test_nccl_header_that_cannot_be_mapped_is_refused(tmp_path, capsys):
    text = (DATA / "nccl_all_reduce.txt").read_text().replace("  time ", " tiempo ")
    bad = tmp_path / "renamed.txt"
    bad.write_text(text)
    rc, out, err = run_import(capsys, tmp_path / "r", bad)
    assert rc == 2 and out == "" and len(err.splitlines()) == 1
    assert "header not understood" in err and "time columns" in err


def test_nccl_version_lines_and_layout_2_18(tmp_path, capsys):
    meta, samples, summary, out = imported(capsys, tmp_path, "nccl_v2.18_checks.txt")
    assert meta["versions"] == {"nccl-tests": "2.18.3", "nccl": "22707"}
    # the timestamp column ('2025-03-14 09:26:12', two words) does not shift the others
    assert one(summary, "reduce_scatter", 4194304, 8)["median_s"] == pytest.approx(112.86e-6)
    # -o all: only the sum rows are commbench's reduce_scatter; the others are named
    assert len(summary[summary["op"] == "reduce_scatter"]) == 2
    assert "10 rows of redop avg/max/min/mulsum/prod not imported" in out
    assert set(samples["calls"]) == {100}  # iters: 50 x agg iters: 2


# ---------------------------------------------------------------- 2. text around OSU tables
@pytest.mark.slow
def test_osu_job_log_with_prompts_warnings_and_several_tests(tmp_path, capsys):
    """#SBATCH header, `module load`, set -x lines, an Open MPI warning box and help-message
    lines around six OSU tests: each table is named by its own title."""
    meta, samples, summary, out = imported(capsys, tmp_path, "osu_job_log.txt")
    assert set(summary["op"]) == {"alltoall", "pingpong", "allreduce"}
    assert meta["versions"] == {"osu": "5.6.3"}
    assert one(summary, "pingpong", 0, 2)["median_s"] == pytest.approx(1.05e-6)
    assert one(summary, "pingpong", 65536, 2)["median_s"] == pytest.approx(14.81e-6)
    # the -f columns: Avg (not Min/Max), Iterations as calls
    row = one(summary, "alltoall", 36 * 4096, 36)
    assert row["median_s"] == pytest.approx(180.74e-6)
    assert set(samples.loc[samples["op"] == "alltoall", "calls"]) == {1000}


def test_op_names_only_tables_without_a_title(tmp_path, capsys):
    """--op on a multi-test log relabels nothing (it used to turn every table into it)."""
    _, _, summary, out = imported(capsys, tmp_path, "osu_job_log.txt", extra=["--op", "allreduce"])
    assert set(summary["op"]) == {"alltoall", "pingpong", "allreduce"}
    assert "--op allreduce not used" in file_line(out, "osu_job_log.txt")


# ---------------------------------------------------------------- 3. rank counts from the log
def test_rank_count_of_each_table_from_the_launcher_line_before_it(tmp_path, capsys):
    """alltoall under `mpirun -n 36`, latency under `srun -n2`, allreduce under
    `srun --ntasks=144`; one --nranks does not override what the file says."""
    _, _, summary, out = imported(capsys, tmp_path, "osu_job_log.txt", extra=["--nranks", "8"])
    assert set(zip(summary["op"], summary["nranks"])) == {("alltoall", 36), ("pingpong", 2),
                                                          ("allreduce", 144)}
    line = file_line(out, "osu_job_log.txt")
    assert "alltoall n=36 (mpirun line 11)" in line and "allreduce n=144 (srun line 135)" in line
    assert "--nranks 8 not used" in line


@pytest.mark.parametrize("launcher, n", [
    ("mpirun -np 6 --bind-to core ./osu_allreduce", 6),
    ("$ mpiexec -n 12 -ppn 4 /opt/osu/mpi/collective/osu_allreduce -m 1024", 12),
    ("+ srun --ntasks 24 --cpu-bind=cores osu_allreduce", 24),
    ("srun -N 3 --ntasks-per-node=8 ./osu_allreduce", 24),
    ("user@login1:~$ time mpirun --np=10 ./osu_allreduce -i 100", 10),
])
def test_launcher_spellings(tmp_path, capsys, launcher, n):
    body = (DATA / "osu_allreduce_4ranks.txt").read_text()
    log = tmp_path / "log.txt"
    log.write_text(launcher + "\n" + body)
    _, _, summary, _ = imported(capsys, tmp_path, log)
    assert set(summary["nranks"]) == {n}


def test_sbatch_task_count_for_a_launcher_line_without_one(tmp_path, capsys):
    body = (DATA / "osu_allreduce_4ranks.txt").read_text()
    log = tmp_path / "job.out"
    log.write_text("#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=16\nsrun ./osu_allreduce\n" + body)
    _, _, summary, out = imported(capsys, tmp_path, log)
    assert set(summary["nranks"]) == {32} and "#SBATCH job" in out


def test_program_options_after_the_program_are_not_the_launchers(tmp_path, capsys):
    """`-n 20` after the program is the benchmark's own option: no rank count stated."""
    body = (DATA / "osu_allreduce_4ranks.txt").read_text()
    log = tmp_path / "log.txt"
    log.write_text("mpirun ./osu_allreduce -n 20\n" + body)
    rc, out, err = run_import(capsys, tmp_path / "r", log)
    assert rc == 2 and "give --nranks" in err


# ---------------------------------------------------------------- 4. tests with no commbench op
@pytest.mark.slow
def test_one_sided_tests_are_skipped_by_name(tmp_path, capsys):
    _, _, summary, out = imported(capsys, tmp_path, "osu_job_log.txt")
    line = file_line(out, "osu_job_log.txt")
    for title in ("MPI_Get latency", "MPI_Put Latency", "MPI_Put Bandwidth", "MPI_Accumulate latency",
                  "MPI_Fetch_and_op latency"):
        assert f"'OSU {title} Test v5.6.3'" in line
    assert "one-sided (MPI RMA) test: no commbench op" in line
    assert "bw" not in set(summary["op"])  # 'MPI_Put Bandwidth' is not osu_bw


@pytest.mark.parametrize("title, op", [
    ("# OSU MPI Allreduce Latency Test v7.4", "allreduce"),
    ("# OSU MPI-CUDA Bi-Directional Bandwidth Test v5.6.3", "bibw"),
    ("# OSU MPI Multiple Bandwidth / Message Rate Test v7.4", "multipair"),
    ("# OSU MPI All-to-All Personalized Exchange Latency Test v5.6.2", "alltoall"),
    ("# OSU MPI Reduce_scatter Latency Test v7.1", "reduce_scatter"),
    ("# OSU MPI Gather Latency Test v7.4", "gather"),
    ("# OSU MPI Non-blocking Allreduce Latency Test v7.4", None),
    ("# OSU MPI Allgatherv Latency Test v7.4", None),
    ("# OSU MPI%s All-to-Allv Personalized Exchange Latency Test", None),
    ("# OSU MPI Multi-threaded Latency Test v7.4", None),
    ("# OSU MPI_Put Bi-directional Bandwidth Test v7.4", None),
    ("# OSU MPI Reduce_scatter_block Latency Test v7.4", None),
])
def test_titles(title, op):
    assert importers.osu.title_op(title)[0] == op


# ---------------------------------------------------------------- 5. tags, INFO lines, 0.00 bandwidths
def test_tagged_output_after_many_info_lines(tmp_path, capsys):
    """`mpirun --tag-output` prefixes, the header after more than 20000 characters of NCCL
    INFO lines, and rows whose algbw prints as 0.00: all read, with their time."""
    lines = (DATA / "nccl_tagged_info.log").read_text().splitlines()
    info = [line for line in lines if "NCCL INFO" in line]
    at = max(i for i, line in enumerate(lines) if "NCCL INFO" in line and "Init COMPLETE" in line)
    padded = lines[:at] + info * 30 + lines[at:]
    log = tmp_path / "tagged.log"
    log.write_text("\n".join(padded) + "\n")
    text = log.read_text()
    assert text.index("#       size") > 20000
    assert importers.detect_format(text) == "nccl-tests"
    meta, samples, summary, _ = imported(capsys, tmp_path, log)
    assert len(summary) == 10 and set(summary["nranks"]) == {4}
    assert one(summary, "allreduce", 8)["median_s"] == pytest.approx(24.30e-6)
    assert one(summary, "allreduce", 32)["median_s"] == pytest.approx(24.30e-6)
    assert one(summary, "allreduce", 1048576)["median_s"] == pytest.approx(131.3e-6)
    assert meta["hosts"] == ["nccl-test-worker-0"] * 2 + ["nccl-test-worker-1"] * 2


@pytest.mark.slow
def test_kubernetes_launcher_log_with_tags_and_device_buffers(tmp_path, capsys):
    meta, _, summary, out = imported(capsys, tmp_path, "osu_k8s_gpu_bw.log")
    assert set(summary["backend"]) == {"mpi-DD"}  # never merged with host-buffer results
    row = one(summary, "bw", 4194304, 2)
    assert row["algbw_Bps"] == pytest.approx(21541.37e6, rel=1e-6)
    table = meta["import"]["files"][0]["tables"][0]
    assert table["buffers"] == "D D" and table["title"] == "OSU MPI-CUDA Bandwidth Test v7.3"
    assert "[mpi-DD]" in out


# ---------------------------------------------------------------- 6. indented, title-less
@pytest.mark.slow
def test_indented_markdown_paste(tmp_path, capsys):
    """Two fenced, indented OSU outputs from a README: device and host buffers stay apart."""
    assert importers.detect_format((DATA / "osu_docs_gpu_latency.md").read_text()) == "osu"
    _, _, summary, _ = imported(capsys, tmp_path, "osu_docs_gpu_latency.md")
    assert set(summary["backend"]) == {"mpi", "mpi-DD"}
    assert (summary["rounds"] == 1).all()
    assert one(summary, "pingpong", 0, 2, "mpi-DD")["median_s"] == pytest.approx(2.08e-6)
    assert one(summary, "pingpong", 0, 2, "mpi")["median_s"] == pytest.approx(0.21e-6)


def test_indented_nccl_table(tmp_path, capsys):
    text = "Output:\n\n```\n" + "".join("    " + line + "\n" for line in
                                      (DATA / "nccl_all_reduce.txt").read_text().splitlines()) + "```\n"
    doc = tmp_path / "README.md"
    doc.write_text(text)
    _, _, summary, _ = imported(capsys, tmp_path, doc)
    assert one(summary, "allreduce", 2097152, 2)["median_s"] == pytest.approx(22.98e-6)


def test_osu_xccl_output_without_a_title(tmp_path, capsys):
    """osu_xccl_bw prints '#Using NCCL' and a header only: detected; the op must be named;
    the backend is the library the file names, not mpi."""
    assert importers.detect_format((DATA / "osu_xccl_bw.txt").read_text()) == "osu"
    rc, out, err = run_import(capsys, tmp_path / "a", "osu_xccl_bw.txt")
    assert rc == 2 and "no title" in err and "--op" in err and len(err.splitlines()) == 1
    meta, _, summary, out = imported(capsys, tmp_path, "osu_xccl_bw.txt", extra=["--op", "bw"])
    assert set(summary["backend"]) == {"nccl"} and meta["backend"]["name"] == "nccl"
    assert set(summary["op"]) == {"bw"} and set(summary["nranks"]) == {2}
    assert one(summary, "bw", 4194304)["algbw_Bps"] == pytest.approx(18936.55e6, rel=1e-6)


# ---------------------------------------------------------------- 7. IMB Uniband / Biband
@pytest.mark.slow
def test_imb_uniband_and_biband(tmp_path, capsys):
    """Eight blocks: Uniband on 2-16 processes is multipair; Biband on 2 is bibw, on more it
    has no commbench op and is named. The time comes from Msg/sec (or Mbytes/sec where that
    prints more digits, in the unit the rows show)."""
    meta, _, summary, out = imported(capsys, tmp_path, "imb_uniband_biband.txt")
    assert meta["versions"] == {"imb": "2019 Update 6"}
    assert set(zip(summary["op"], summary["nranks"])) == {
        ("multipair", 2), ("multipair", 4), ("multipair", 8), ("multipair", 16), ("bibw", 2)}
    for n in (2, 4, 8, 16):
        pairs = n // 2
        for size in (0, 1, 4096, 4194304):
            model = (0.24 + size / 11500.0) * (1 + 0.08 * (pairs - 1)) * 1e-6  # how the file was made
            row = one(summary, "multipair", pairs * size, n)
            assert row["median_s"] == pytest.approx(model, rel=1e-5)
    row = one(summary, "multipair", 8 * 65536, 16)
    assert row["msg_rate_per_s"] == pytest.approx(863511, rel=1e-6)  # IMB's own Msg/sec
    assert one(summary, "bibw", 2 * 4194304, 2)["median_s"] == pytest.approx(
        (0.24 + 4194304 / 11500.0) * 1.15e-6, rel=1e-5)
    line = file_line(out, "imb_uniband_biband.txt")
    for n in (4, 8, 16):
        assert f"Benchmarking Biband on {n} processes" in line
    assert "no commbench op" in line


@pytest.mark.slow
def test_imb_benchmark_without_an_op_is_named(tmp_path, capsys):
    text = (DATA / "imb_mpi1.txt").read_text().replace("Benchmarking Allgather", "Benchmarking Exchange")
    log = tmp_path / "imb.txt"
    log.write_text(text)
    _, _, summary, out = imported(capsys, tmp_path, log)
    assert "allgather" not in set(summary["op"])
    assert "Benchmarking Exchange on 4 processes" in out and "no commbench op" in out


# ---------------------------------------------------------------- 8. IMB metadata
@pytest.mark.slow
def test_imb_4_0_version(tmp_path, capsys):
    meta, _, summary, _ = imported(capsys, tmp_path, "imb_v4.0.txt")
    assert meta["versions"] == {"imb": "4.0"}
    assert set(summary["op"]) == {"pingpong", "allreduce", "barrier"}
    assert one(summary, "pingpong", 1024, 2)["median_s"] == pytest.approx(1.43e-6)


@pytest.mark.slow
def test_two_imb_runs_are_two_backends_not_two_rounds(tmp_path, capsys):
    meta, _, summary, out = imported(capsys, tmp_path, "imb_two_libraries.txt")
    assert meta["versions"] == {"imb": "2019 Update 9, 2021.3"}
    assert set(summary["backend"]) == {"mpi-imb2019u9", "mpi-imb2021.3"}
    assert meta["backend"]["name"] == "mpi-imb2019u9,mpi-imb2021.3"
    assert (summary["rounds"] == 1).all()
    assert one(summary, "pingpong", 0, 2, "mpi-imb2019u9")["median_s"] == pytest.approx(1.31e-6)
    assert one(summary, "pingpong", 0, 2, "mpi-imb2021.3")["median_s"] == pytest.approx(1.62e-6)
    assert "2 IMB runs of different versions" in out


@pytest.mark.slow
def test_same_imb_run_twice_is_still_two_rounds(tmp_path, capsys):
    text = (DATA / "imb_v4.0.txt").read_text()
    log = tmp_path / "twice.txt"
    log.write_text(text + text)
    _, _, summary, _ = imported(capsys, tmp_path, log)
    assert set(summary["backend"]) == {"mpi"} and (summary["rounds"] == 2).all()


# ---------------------------------------------------------------- what the report line says
@pytest.mark.slow
def test_one_line_per_file(tmp_path, capsys):
    _, _, _, out = imported(capsys, tmp_path, "osu_job_log.txt", "imb_mpi1.txt", "nccl_v2.0_log.txt")
    lines = out.splitlines()
    assert len(lines) == 4 and lines[-1].startswith("imported ")
    assert lines[1].startswith(str(DATA / "imb_mpi1.txt") + ": imb: 85 rows from 5 tables")


@pytest.mark.slow
def test_a_file_holding_two_formats_says_so(tmp_path, capsys):
    log = tmp_path / "both.log"
    log.write_text((DATA / "nccl_all_reduce.txt").read_text() + (DATA / "osu_latency.txt").read_text())
    _, _, summary, out = imported(capsys, tmp_path, log)
    assert set(summary["op"]) == {"allreduce"}
    assert "also holds osu output (line 28): not imported; import it with --format osu" in out
    _, _, summary, _ = imported(capsys, tmp_path / "b", log, extra=["--format", "osu"])
    assert set(summary["op"]) == {"pingpong"}


@pytest.mark.slow
def test_meta_records_what_was_imported_and_skipped(tmp_path, capsys):
    meta, _, _, _ = imported(capsys, tmp_path, "osu_job_log.txt")
    files = meta["import"]["files"]
    assert len(files) == 1 and files[0]["format"] == "osu"
    assert [t["op"] for t in files[0]["tables"]] == ["alltoall", "pingpong", "allreduce"]
    assert files[0]["tables"][0]["nranks_from"] == "mpirun line 11"
    assert len(files[0]["skipped"]) == 5
    json.dumps(meta)  # all plain data


def test_unknown_op_is_refused(tmp_path, capsys):
    rc, _, err = run_import(capsys, tmp_path / "r", "osu_xccl_bw.txt", extra=["--op", "allredcue"])
    assert rc == 2 and "--op: no such op 'allredcue'" in err and len(err.splitlines()) == 1
    _, _, summary, _ = imported(capsys, tmp_path, "osu_xccl_bw.txt", extra=["--op", "all_reduce"])
    assert set(summary["op"]) == {"allreduce"}  # an alias is the op's name


@pytest.mark.slow
def test_no_sample_is_nan_or_infinite(tmp_path, capsys):
    _, samples, summary, _ = imported(capsys, tmp_path, "nccl_v2.0_log.txt", "osu_job_log.txt",
                                      "imb_uniband_biband.txt", "nccl_v2.18_checks.txt")
    assert samples["time_s"].map(math.isfinite).all() and (samples["time_s"] > 0).all()
    assert not pd.isna(summary["median_s"]).any()


# ---------------------------------------------------------------- more of the same patterns
def test_nccl_program_with_no_commbench_op_is_named(tmp_path, capsys):
    text = (DATA / "nccl_all_reduce.txt").read_text()
    log = tmp_path / "two.log"
    log.write_text(text + text.replace("all_reduce_perf", "hypercube_perf"))
    _, _, summary, out = imported(capsys, tmp_path, log)
    assert set(summary["op"]) == {"allreduce"} and (summary["rounds"] == 1).all()
    assert "(hypercube_perf): no commbench op for this nccl-tests program" in out


def test_osu_validation_column(tmp_path, capsys):
    log = tmp_path / "v.txt"
    log.write_text("# OSU MPI Allreduce Latency Test v7.4\n# Datatype: MPI_INT.\n"
                   "# Size       Avg Latency(us)        Validation\n"
                   "4                       1.23              Pass\n"
                   "8                       1.25              Fail\n")
    _, _, summary, _ = imported(capsys, tmp_path, log, extra=["--nranks", "4"])
    assert dict(zip(summary["nbytes"], summary["wrong"])) == {4: 0, 8: 1}


def test_a_failed_tests_launcher_line_is_not_the_next_tables(tmp_path, capsys):
    """osu_get_latency under srun -n2 printed its title and died; the allreduce after it has
    no launcher line of its own, so its rank count is not taken from the failed test's."""
    log = tmp_path / "log.txt"
    log.write_text("srun -n2 ./osu_get_latency\n# OSU MPI_Get latency Test v7.4\n"
                   "srun: error: node1: task 1: Segmentation fault\n"
                   + (DATA / "osu_allreduce_4ranks.txt").read_text())
    rc, out, err = run_import(capsys, tmp_path / "r", log)
    assert rc == 2 and "give --nranks" in err and "no result rows" in err


@pytest.mark.slow
def test_title_less_table_after_a_titled_one(tmp_path, capsys):
    """An XCCL table pasted after an MPI one: the second has no title, so --op names it (and
    only it); '#Using NCCL' before its header makes it nccl's."""
    log = tmp_path / "both.txt"
    log.write_text((DATA / "osu_latency.txt").read_text() + (DATA / "osu_xccl_bw.txt").read_text())
    _, _, summary, out = imported(capsys, tmp_path, log, extra=["--op", "bw"])
    assert set(zip(summary["op"], summary["backend"])) == {("pingpong", "mpi"), ("bw", "nccl")}


@pytest.mark.parametrize("prefix, ending", [
    ("[1,0]<stdout>:", "\n"),             # Open MPI --tag-output
    ("[0] ", "\n"),                       # Hydra / Intel MPI -prepend-rank
    ("  0: ", "\n"),                      # srun --label
    ("2025-05-01T12:00:00.123456789Z ", "\n"),  # kubectl logs --timestamps
    ("2025-05-01T12:00:00.123Z [1,0]<stdout>:", "\n"),
    ("> ", "\n"),                         # a quoted paste
    ("\t", "\r\n"),                       # indented, Windows line ends
])
@pytest.mark.slow
def test_line_prefixes(tmp_path, capsys, prefix, ending):
    lines = (DATA / "osu_latency.txt").read_text().splitlines()
    log = tmp_path / "log.txt"
    log.write_bytes("".join(prefix + line + ending for line in lines).encode())
    _, _, summary, _ = imported(capsys, tmp_path, log)
    assert len(summary) == 23 and one(summary, "pingpong", 8192, 2)["median_s"] == pytest.approx(1.49e-6)


def test_launcher_messages_are_not_launcher_lines(tmp_path, capsys):
    body = (DATA / "osu_allreduce_4ranks.txt").read_text()
    log = tmp_path / "log.txt"
    log.write_text("mpirun -np 16 ./osu_allreduce\n"
                   "mpirun noticed that process rank 3 with PID 0 on node n1 exited on signal 9\n"
                   "srun: Job step aborted: Waiting up to 32 seconds for job step to finish.\n" + body)
    _, _, summary, _ = imported(capsys, tmp_path, log)
    assert set(summary["nranks"]) == {16}
