"""commbench check: the shipped figures and their sources, verdicts (meets, below, implausible,
not measured), --min and --baseline, the runs' own ceilings, formats and exit statuses."""
import json
import math
import re

import pytest

from analysis import check_output, check_references
from bench.cli import main as cli
from analysis.known_ops import known_op
from tests.conftest import QUICK, ROOT, needs_mpi, run_cli, run_commbench
from tests.runs import write_run_with_ceilings

GIB = 1 << 30
MIB = 1 << 20


def assert_usage_error(rc, out, err, *parts):
    assert rc == 2 and out == ""
    assert err.startswith("commbench: error: ") and len(err.strip().splitlines()) == 1, err
    for part in parts:
        assert part in err, err


# ---------------------------------------------------------------- nccl-tests logs
def nccl_log(program, ranks, busbw_GBps, hosts=None):
    """nccl-tests text output of `program` (all_reduce_perf, ...) on `ranks` ranks with the given
    busbw (GB/s) per size: {size: busbw}."""
    op = known_op(program.replace("_perf", ""))
    factor = op.bus_factor(ranks)
    hosts = hosts or ["node1"] * ranks
    lines = ["# nccl-tests version 2.17.6 nccl-headers=22803 nccl-library=22803",
             f"# Collective test starting: {program}",
             "# nThread 1 nGpus 1 minBytes 8 maxBytes 17179869184 step: 2(factor) warmup iters: 5 "
             "iters: 20 agg iters: 1 validation: 1 graph: 0",
             "#", "# Using devices"]
    lines += [f"#  Rank {r:2d} Group  0 Pid {4000 + r:6d} on {hosts[r]:>10} device  {r % 8} "
              f"[0000:{r:02x}:00] NVIDIA H100 80GB HBM3" for r in range(ranks)]
    lines += ["#", "#       size         count      type   redop    root     time   algbw   busbw "
              "#wrong     time   algbw   busbw #wrong",
              "#        (B)    (elements)                               (us)  (GB/s)  (GB/s)      "
              "      (us)  (GB/s)  (GB/s)"]
    redop = "sum" if op.reduces else "none"
    for size, busbw in sorted(busbw_GBps.items()):
        algbw = busbw / factor if factor else busbw
        t = size / (algbw * 1e9) * 1e6 if algbw else 10.0
        cols = f"{t:10.1f}  {size / t / 1e3:6.2f}  {busbw:6.2f}       0"
        lines.append(f"{size:12d}  {size // 4:12d}     float  {redop:>6}      -1  {cols}  {cols}")
    lines += ["# Out of bounds values : 0 OK", "# Avg bus bandwidth    : 1.0", "#"]
    return "\n".join(lines) + "\n"


def imported(tmp_path, name, program, ranks, busbw, hosts=None):
    log = tmp_path / f"{name}.txt"
    log.write_text(nccl_log(program, ranks, busbw, hosts))
    assert cli(["import", str(log), "--out", str(tmp_path / name)]) == 0
    return tmp_path / name


# ---------------------------------------------------------------- the shipped figures
def test_every_shipped_figure_cites_its_source():
    refs = check_references.load_expected()
    assert len(refs) >= 8
    for r in refs:
        assert r.kind in ("minimum", "typical") and r.busbw_Bps > 0
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", r.date), r
        assert re.search(r"(Azure/azurehpc-health-checks \S+\.conf|NVIDIA/nccl-tests#\d+)", r.source), r
        assert known_op(r.op) is not None and known_op(r.op).name == r.op
    figures = {(r.system, r.op): r for r in refs}
    h100 = figures["azure-nd-h100-v5", "allreduce"]
    assert (h100.busbw_Bps, h100.nbytes, h100.nranks, h100.kind) == (460e9, 16 * GIB, 8, "minimum")
    assert figures["azure-nd-h200-v5", "allreduce"].busbw_Bps == 431e9
    assert figures["h100-sxm-8", "allreduce"].busbw_Bps == 480e9        # NVLS, no ring bound
    assert math.isnan(figures["h100-sxm-8", "allreduce"].bound_Bps)
    ring = figures["h100-sxm-8-ring", "allreduce"]
    assert (ring.busbw_Bps, ring.bound_Bps) == (370e9, 450e9)
    assert figures["h200-8", "allreduce"].busbw_Bps == 475e9
    assert figures["nic-200g", "allreduce"].per == "nic"
    # shipped with the package
    assert re.search(r'^"analysis" = \[[^\]]*"expected\.csv"', (ROOT / "pyproject.toml").read_text(),
                     re.MULTILINE)


def test_list_shows_figures_and_sources(capsys):
    rc, out, _ = run_cli(capsys, "check", "--list")
    assert rc == 0
    assert "azure-nd-h100-v5  allreduce  8  16 GiB: 460 GB/s (minimum)" in out
    assert "NVIDIA/nccl-tests#212" in out and "(2024-05-06)" in out


# ---------------------------------------------------------------- verdicts
def test_azure_threshold_meets_and_is_missed(tmp_path, capsys):
    good = imported(tmp_path, "good", "all_reduce_perf", 8, {GIB: 300.0, 16 * GIB: 470.0})
    bad = imported(tmp_path, "bad", "all_reduce_perf", 8, {GIB: 300.0, 16 * GIB: 400.0})
    rc, out, _ = run_cli(capsys, "check", good, "--expect", "azure-nd-h100-v5")
    assert rc == 0, out
    row = next(line for line in out.splitlines() if line.startswith("good"))
    assert "16 GiB" in row and "470" in row and "meets: 102% of 460" in row
    assert "[1] azure-nd-h100-v5:" in out and "conf/nd96isr_h100_v5.conf" in out
    rc, out, _ = run_cli(capsys, "check", bad, "--expect", "azure-nd-h100-v5")
    assert rc == 1
    assert "below: 87% of 460, 13% short" in out
    assert "meets: 0, below: 1, implausible: 0, not measured: 0" in out
    assert "imported runs carry no measured ceilings" in out


@pytest.mark.slow
def test_a_published_peak_is_set_against_the_best_size(tmp_path, capsys):
    sizes = {256 * MIB: 300.0, GIB: 430.0, 8 * GIB: 470.0}
    run = imported(tmp_path, "h100", "all_reduce_perf", 8, sizes)
    rc, out, _ = run_cli(capsys, "check", run, "--expect", "h100-sxm-8")
    assert rc == 0
    assert "8 GiB (peak)" in out and "meets: 98% of 480 (typical)" in out
    assert "not applicable to these runs" in out and "h100-sxm-8 allgather (8 ranks)" in out
    slow = imported(tmp_path, "slow", "all_reduce_perf", 8, {GIB: 380.0, 8 * GIB: 400.0})
    rc, out, _ = run_cli(capsys, "check", slow, "--expect", "h100-sxm-8")
    assert rc == 1 and "below: 83% of 480 (typical), 17% short; needs 432" in out
    # a wider tolerance lets it through
    assert run_cli(capsys, "check", slow, "--expect", "h100-sxm-8", "--tolerance", "0.2")[0] == 0


def test_busbw_above_the_ring_line_rate_is_implausible(tmp_path, capsys):
    run = imported(tmp_path, "ag", "all_gather_perf", 8, {GIB: 400.0, 4 * GIB: 460.0})
    rc, out, _ = run_cli(capsys, "check", run, "--expect", "h100-sxm-8")
    assert rc == 1
    assert "implausible: above 450 GB/s, the line rate this figure assumes" in out
    assert "NVLS (NVLink SHARP), SHARP and tree algorithms exceed the ring bound" in out


def test_one_rank_collectives_are_no_ops(tmp_path, capsys):
    ar = imported(tmp_path, "ar1", "all_reduce_perf", 1, {64 * MIB: 0.0})
    bc = imported(tmp_path, "bc1", "broadcast_perf", 1, {64 * MIB: 900.0})
    rc, out, _ = run_cli(capsys, "check", ar, bc, "--min", "allreduce:64M=10G", "--min", "bcast:64M=10G")
    assert rc == 1
    rows = [line for line in out.splitlines() if line.startswith(("ar1", "bc1"))]
    assert len(rows) == 2
    assert all("implausible: 1 rank:" in line and "(a no-op)" in line for line in rows)


def test_a_size_the_run_lacks_is_not_measured(tmp_path, capsys):
    run = imported(tmp_path, "short", "all_reduce_perf", 8, {GIB: 470.0, 8 * GIB: 480.0})
    rc, out, _ = run_cli(capsys, "check", run, "--expect", "azure-nd-h100-v5")
    assert rc == 1
    assert "not measured: no row at 16 GiB; the run measured 1 GiB to 8 GiB" in out


@pytest.mark.slow
def test_per_nic_figures_need_the_nic_count(tmp_path, capsys):
    hosts = ["a"] * 8 + ["b"] * 8
    run = imported(tmp_path, "two", "all_reduce_perf", 16, {GIB: 80.0, 8 * GIB: 92.0}, hosts)
    rc, out, err = run_cli(capsys, "check", run, "--expect", "nic-200g")
    assert_usage_error(rc, out, err, "per NIC", "--nics N")
    rc, out, _ = run_cli(capsys, "check", run, "--expect", "nic-200g", "--nics", "4")
    assert rc == 0 and "meets: 96% of 96 (typical)" in out and "24 GB/s per NIC" in out
    tree = imported(tmp_path, "tree", "all_reduce_perf", 16, {8 * GIB: 110.0}, hosts)
    rc, out, _ = run_cli(capsys, "check", tree, "--expect", "nic-200g", "--nics", "4")
    assert rc == 1 and "implausible: above 100 GB/s" in out and "NCCL_ALGO=Ring" in out
    # a figure across nodes does not apply to a run on one node
    one = imported(tmp_path, "one", "all_reduce_perf", 8, {8 * GIB: 300.0})
    rc, out, err = run_cli(capsys, "check", one, "--expect", "nic-200g", "--nics", "4")
    assert_usage_error(rc, out, err, "nothing to check")


# ---------------------------------------------------------------- commbench runs and ceilings
def test_min_on_a_commbench_run_shows_its_ceilings(tmp_path, capsys):
    run = write_run_with_ceilings(tmp_path / "run", rate=4e9)
    rc, out, _ = run_cli(capsys, "check", run, "--min", "allreduce:4M=1G", "--min", "allreduce:4K=2G")
    assert rc == 1
    r4m = next(line for line in out.splitlines() if " 4 MiB " in line)
    # busbw = 4 MiB / the median sample (2 µs + 4 MiB / 4 GB/s, x 1.002: the middle of 5
    # samples); 2 ranks: bus factor 1; the ceiling: one core's 5 GB/s
    busbw = 4 * MIB / ((2e-6 + 4 * MIB / 4e9) * 1.002)
    assert f"{busbw / 1e9:.4g}" in r4m and f"{busbw / 5e9:.0%}" in r4m and "meets" in r4m
    assert "below: " in next(line for line in out.splitlines() if " 4 KiB " in line)
    assert "ceilings of" in out and "one core copies 5.0 GB/s" in out
    assert "[1] --min: stated on the command line; allreduce busbw 1 GB/s minimum, at 4 MiB" in out


def test_copy_ceiling_cache_and_memory(tmp_path, capsys):
    """Above one core's copy rate: at 4 MiB the message fits in the caches (a note, no verdict);
    at 128 MiB above the node's copy rate it is implausible; GPU buffers are not held to it."""
    run = write_run_with_ceilings(tmp_path / "fast", rate=20e9)
    rc, out, _ = run_cli(capsys, "check", run, "--min", "allreduce:4M=1G", "--min", "allreduce:128M=1G")
    lines = out.splitlines()
    r4m = next(line for line in lines if " 4 MiB " in line)
    r128 = next(line for line in lines if " 128 MiB " in line)
    assert "meets" in r4m and "4 MiB fits in the caches" in r4m
    assert "implausible: faster than the node copies memory (8 GB/s" in r128
    assert rc == 1
    gpu = write_run_with_ceilings(tmp_path / "gpu", rate=20e9, meta_extra={"settings": {"device": "cuda"}})
    rc, out, _ = run_cli(capsys, "check", gpu, "--min", "allreduce:128M=1G")
    assert rc == 0 and "the host's copy rate is no ceiling for GPU buffers" in out


def test_above_the_nic_line_rate_across_nodes(tmp_path, capsys):
    nic = {"device": "mlx5_0/1", "rate_Bps": 12.5e9, "source": "/sys/class/infiniband"}
    extra = {"nnodes": 2, "hosts": ["a", "b"],
             "ceilings": {"method": "synthetic", "copy_one_core_Bps": 5e9,
                          "hosts": {"a": {"ranks": 1, "copy_node_Bps": 8e9, "nics": [nic, nic]},
                                    "b": {"ranks": 1, "copy_node_Bps": 8e9, "nics": [nic]}}}}
    run = write_run_with_ceilings(tmp_path / "run", rate=20e9, meta_extra=extra)
    rc, out, _ = run_cli(capsys, "check", run, "--min", "allreduce:128M=1G")
    assert rc == 1
    assert "% of the slowest declared line rate (meta.json → ceilings)" in out
    assert "several NICs (the ceiling is one NIC's declared rate)" in out


def test_baseline_runs_as_references(tmp_path, capsys):
    base = write_run_with_ceilings(tmp_path / "base", rate=4e9)
    same = write_run_with_ceilings(tmp_path / "same", rate=3.9e9)
    slow = write_run_with_ceilings(tmp_path / "slow", rate=2e9)
    rc, out, _ = run_cli(capsys, "check", same, "--baseline", base)
    assert rc == 0 and out.count("(baseline)") == 3
    assert "[1] baseline: each case against the median busbw" in out and str(base) in out
    assert "`commbench compare BASE NEW`" in out
    rc, out, _ = run_cli(capsys, "check", slow, "--baseline", base)
    assert rc == 1 and "below: 5" in out and "short; needs" in out


# ---------------------------------------------------------------- bad input, formats
@pytest.mark.parametrize("extra, message", [
    ([], "nothing to check against"),
    (["--expect", "dgx-z9"], "no such system 'dgx-z9'; known: azure-nd-h100-v5"),
    (["--min", "allreduce:16G"], "expected OP:SIZE=RATE"),
    (["--min", "allreduce=16G"], "expected OP:SIZE=RATE"),
    (["--min", "allreduz:16G=1G"], "no such op 'allreduz'"),
    (["--min", "allreduce:16Q=1G"], "malformed size '16Q'"),
    (["--min", "allreduce:16G=400Gb"], "malformed rate '400Gb'"),
    (["--min", "allreduce:16G=0"], "must be a positive number"),
    (["--min", "barrier:4K=1G"], "barrier moves no data"),
    (["--min", "pingpong:4K=1G"], "nothing to check: no case of the runs matches"),
    (["--min", "allreduce:4K=1G", "--format", "xml"], "no such format 'xml'"),
    (["--min", "allreduce:4K=1G", "--tolerance", "1.5"], "--tolerance must be"),
])
def test_bad_input_exits_2(tmp_path, capsys, extra, message):
    run = write_run_with_ceilings(tmp_path / "run")
    rc, out, err = run_cli(capsys, "check", run, *extra)
    assert_usage_error(rc, out, err, message)


def test_bad_run_dirs_exit_2(tmp_path, capsys):
    rc, out, err = run_cli(capsys, "check", tmp_path / "missing", "--min", "allreduce:4K=1G")
    assert_usage_error(rc, out, err, "missing: no such run directory")
    rc, out, err = run_cli(capsys, "check", "--min", "allreduce:4K=1G")
    assert_usage_error(rc, out, err, "give the run directories")


def test_parse_rate_is_si_bytes_per_second():
    assert check_references.parse_rate("400G") == 4e11
    assert check_references.parse_rate("12.5G") == 12.5e9
    assert check_references.parse_rate("3e9") == 3e9
    assert check_references.parse_rate("800MB/s") == 8e8
    ref = check_references.parse_min("all_reduce:16G=460G")
    assert (ref.op, ref.nbytes, ref.busbw_Bps, ref.kind) == ("allreduce", 16 * GIB, 460e9, "minimum")


def test_markdown_and_json(tmp_path, capsys):
    evil = tmp_path / "ru|n`<b>x</b>[l](u)"
    run = write_run_with_ceilings(evil, backend="mp|i")
    rc, out, _ = run_cli(capsys, "check", run, "--baseline", run, "--format", "markdown")
    assert rc == 0
    lines = out.splitlines()
    assert lines[2] == "| " + " | ".join(check_output.HEADER) + " |"
    table = [line for line in lines[4:] if line.startswith("| ")]
    assert len(table) == 3
    for line in table + lines[:1]:
        assert len(re.findall(r"(?<!\\)\|", line)) == (len(check_output.HEADER) + 1 if line.startswith("|") else 0)
        assert "<b>" not in line and not re.search(r"(?<!\\)`", line)
    assert "<b>" not in out and "&lt;b&gt;" in out
    rc, out, _ = run_cli(capsys, "check", run, "--baseline", run, "--min", "allreduce:1G=1G",
                         "--format", "json")
    res = json.loads(out)
    assert rc == 1 and res["exit_status"] == 1
    assert res["counts"] == {"meets": 3, "below": 0, "implausible": 0, "not measured": 1}
    assert {r["kind"] for r in res["references"]} == {"baseline", "minimum"}
    assert all(r["backend"] == "mp|i" for r in res["rows"])


# ---------------------------------------------------------------- a real run
@needs_mpi
def test_check_a_real_run(tmp_path, capsys):
    quick = [a for a in QUICK if a != "--no-ceilings"]  # measure the ceilings
    out_dir = tmp_path / "run"
    r = run_commbench("run", "-n", "2", "--ops", "allreduce", "--sizes", "4K,64K", *quick,
                      "--out", out_dir, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    rc, out, _ = run_cli(capsys, "check", out_dir, "--min", "allreduce:64K=1K")
    assert rc == 0, out
    row = next(line for line in out.splitlines() if " 64 KiB " in line)
    assert re.search(r"\d+%", row) and "meets" in row  # a share of the measured ceiling
    assert "ceilings of" in out and "one core copies" in out
