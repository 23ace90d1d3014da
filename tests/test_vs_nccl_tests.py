"""The pure parts of tests/benchmarks/vs_nccl_tests.py (commbench side by side with nccl-tests),
on CPU: reading nccl-tests' -J JSON (format 3, as 2.19.6 writes it) and its printed table,
reading commbench's summary.csv, pairing and the targets, the build recipe's pieces; that the
script stops with exit 2 and one line without a GPU; and its whole flow with stand-ins for the
GPU (fake nccl-tests binaries, commbench on gloo)."""
import importlib.util
import json
import math
import os
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import commbench_env, needs_torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "benchmarks" / "vs_nccl_tests.py"
DATA = ROOT / "tests" / "data"

spec = importlib.util.spec_from_file_location("vs_nccl_tests", SCRIPT)
vs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(vs)

# nccl-tests 2.19.6 stdout on one GPU (src/util.cu's formats), with -J
TEXT_2_19_6 = """\
# Writing JSON output to /o/nccl-tests/eager/broadcast_perf.json
# nccl-tests version 2.19.6 nccl-headers=22807 nccl-library=22807
# Collective test starting: broadcast_perf
# nThread 1 nGpus 1 minBytes 4 maxBytes 131072 step: 2(factor) warmup iters: 5 iters: 50 agg iters: 1 validation: 1 graph: 0 unalign: 0
#
# Using devices
#  Rank  0 Group  0 Pid   4242 on      gpu-a device  0 [0000:18:00] NVIDIA H100 80GB HBM3
#
#                                                              out-of-place                       in-place          
#       size         count      type   redop    root     time   algbw   busbw  #wrong     time   algbw   busbw  #wrong 
#        (B)    (elements)                               (us)  (GB/s)  (GB/s)             (us)  (GB/s)  (GB/s)         
           4             1     float    none       0     5.61    0.00    0.00       0     0.21    0.02    0.02       0
       65536         16384     float    none       0     6.90    9.50    9.50       0     0.22  297.89  297.89       0
      131072         32768     float    none       0     7.40   17.71   17.71     N/A     0.22  595.78  595.78     N/A
# Out of bounds values : 0 OK
# Avg bus bandwidth    : 131.23 
#
# Collective test concluded: broadcast_perf
"""


def json_v3(program="/b/bin/all_reduce_perf", results=None, graph=0):
    """A -J file as nccl-tests 2.19.6 writes it (src/util.cu: format version 3, booleans as
    strings, devices inside config, a NaN time as the string "nan", nwrong null when not
    checked)."""
    results = results if results is not None else [
        (4, 6.02, 5.98, 0), (65536, 7.1, 6.95, 0), (1 << 20, 12.5, 12.25, 0)]

    def part(t, wrong):
        return {"time": "nan" if t != t else t, "alg_bw": 0.000665, "bus_bw": 0.0,
                "nwrong": None if wrong is None else float(wrong)}

    doc = {
        "version": 3, "start_time": "2026-05-01 10:00:00",
        "args": [program, "-b", "4", "-e", "1048576", "-f", "2", "-g", "1", "-d", "float", "-o",
                 "sum", "-c", "1", "-n", "50", "-w", "5", "-J", "x.json"],
        "env": ["PATH=/usr/bin", "NCCL_DEBUG=WARN"], "nccl_version": 22807,
        "config": {"nthreads": 1, "ngpus": 1, "minimum_bytes": 4, "maximum_bytes": 1048576,
                   "step_factor": 2, "warmup_iters": 5, "iterations": 50,
                   "aggregated_iterations": 1, "validation": 1, "graph": graph,
                   "blocking_collectives": "false", "per_iter_timing": "false", "per_iter_skip": 0,
                   "parallel_init": "false",
                   "devices": [{"rank": 0, "group": 0, "pid": 4242, "hostname": "gpu-a", "device": 0,
                                "device_hex": "0000:18:00", "device_info": "NVIDIA H100 80GB HBM3"}]},
        "results": [{"size": size, "count": size // 4, "type": "float", "redop": "sum",
                     "root": "    -1", "out_of_place": part(oop, wrong), "in_place": part(ip, wrong),
                     "actual_iterations": 50, "experiment_name": "all_reduce"}
                    for size, oop, ip, wrong in results],
        "out_of_bounds": {"count": 0, "okay": "true"},
        "average_bus_bandwidth": {"bandwidth": 0.0, "okay": "unchecked"},
        "end_time": "2026-05-01 10:00:03"}
    return json.dumps(doc, separators=(",", ":"))


def summary_csv(rows, backend="nccl"):
    """summary.csv as commbench writes it (its own writer and columns)."""
    from bench.core import rundir

    full = []
    for op, nbytes, median_s, flags, *rest in rows:
        row = {c: "" for c in rundir.WRITTEN_SUMMARY_COLUMNS}
        row.update(backend=rest[0] if rest else backend, op=op, dtype="float32", nbytes=nbytes,
                   nranks=1, split=rest[1] if len(rest) > 1 else "all", median_s=median_s,
                   wrong=0, flags=flags, samples=10, rounds=1)
        full.append(row)
    return rundir.csv_text(rundir.WRITTEN_SUMMARY_COLUMNS, full)


# ---------------------------------------------------------------- reading nccl-tests
def test_json_v3_times_per_op_and_size():
    times = vs.nccl_tests_json(json_v3())
    assert set(times) == {("allreduce", 4), ("allreduce", 65536), ("allreduce", 1 << 20)}
    assert times[("allreduce", 65536)] == {"oop": 7.1, "ip": 6.95, "wrong": 0.0}


def test_json_nan_time_unchecked_wrong_and_other_types():
    doc = json.loads(json_v3(results=[(4, math.nan, 5.0, None), (8, 6.0, 5.5, 3)]))
    doc["results"].append(dict(doc["results"][1], size=16, type="half"))
    times = vs.nccl_tests_json(json.dumps(doc))
    assert math.isnan(times[("allreduce", 4)]["oop"]) and times[("allreduce", 4)]["ip"] == 5.0
    assert math.isnan(times[("allreduce", 4)]["wrong"])      # -c 0: not checked
    assert times[("allreduce", 8)]["wrong"] == 6.0            # out of place + in place
    assert ("allreduce", 16) not in times                     # not float32


def test_json_v3_is_what_commbench_import_reads():
    from analysis.importers import nccl

    imp = nccl.parse_json(json_v3(graph=10))
    assert [(r.op, r.nbytes, r.nranks) for r in imp.rows] == [
        ("allreduce", 4, 1), ("allreduce", 65536, 1), ("allreduce", 1 << 20, 1)]
    assert imp.rows[1].time_s == pytest.approx(7.1e-6)


def test_json_that_is_not_whole_raises():
    with pytest.raises(ValueError):
        vs.nccl_tests_json(json_v3()[:-40])
    with pytest.raises(ValueError):
        vs.nccl_tests_json('{"version": 3}')


def test_text_2_19_6_both_columns():
    times = vs.nccl_tests_text(TEXT_2_19_6)
    assert times[("broadcast", 4)] == {"oop": 5.61, "ip": 0.21, "wrong": 0.0}
    assert times[("broadcast", 65536)]["ip"] == 0.22
    assert math.isnan(times[("broadcast", 131072)]["wrong"])  # N/A


@pytest.mark.parametrize("name, op, size, oop, ip", [
    ("nccl_all_reduce.txt", "allreduce", 8, 9.00, 8.70),
    ("nccl_all_gather_gb10_after.txt", "allgather", 8388608, 748.7, 746.9),
])
def test_text_fixtures_of_the_importer(name, op, size, oop, ip):
    times = vs.nccl_tests_text((DATA / name).read_text())
    assert times[(op, size)]["oop"] == oop and times[(op, size)]["ip"] == ip


def test_read_nccl_tests_prefers_json_then_log():
    times, which = vs.read_nccl_tests(json_v3(), TEXT_2_19_6)
    assert which == "json" and ("allreduce", 4) in times
    times, which = vs.read_nccl_tests(json_v3()[:-10], TEXT_2_19_6)  # cut short: killed
    assert which == "log" and ("broadcast", 4) in times
    assert vs.read_nccl_tests(None, "Segmentation fault\n") == ({}, "none")


# ---------------------------------------------------------------- commbench's summary
def test_read_summary_keeps_the_backend_and_world():
    text = summary_csv([("allreduce", 4, 8e-6, "no-op"),
                        ("broadcast", 4, 2e-6, "no-op;empty-graph"),
                        ("allreduce", 4, 1.0, "", "gloo"),
                        ("allreduce", 8, 1.0, "", "nccl", "intra")])
    rows = vs.read_summary(text)
    assert set(rows) == {("allreduce", 4), ("broadcast", 4)}
    assert rows[("allreduce", 4)]["us"] == pytest.approx(8.0)
    assert rows[("broadcast", 4)]["flags"] == "no-op;empty-graph"
    assert rows[("broadcast", 4)]["nranks"] == 1


# ---------------------------------------------------------------- targets and pairing
@pytest.mark.parametrize("mode, nbytes, ratio, want", [
    ("eager", 65536, 1.049, "meets"),
    ("eager", 65536, 1.06, "MISS: slower"),
    ("eager", 1 << 30, 0.94, "MISS: faster"),
    ("eager", 65535, 3.0, ""),               # eager below 64 KiB: no target
    ("graph", 65535, 1.3, "meets"),
    ("graph", 4, 1.31, "MISS: slower"),
    ("graph", 4, 0.5, "meets"),
    ("graph", 65536, 1.2, "MISS: slower"),   # from 64 KiB on the 5% target holds in graph mode too
])
def test_targets(mode, nbytes, ratio, want):
    assert vs.verdict(ratio, vs.target(mode, nbytes)) == want


def test_verdict_order():
    assert vs.verdict(1.0, "5%", wrong=2) == "WRONG"
    assert vs.verdict(math.nan, "5%") == "no partner"
    assert vs.verdict(3.0, "5%", nothing=True) == "moves nothing"
    assert vs.moves_nothing("broadcast", 1) and vs.moves_nothing("allreduce_inplace", 1)
    assert not vs.moves_nothing("broadcast", 2) and not vs.moves_nothing("allreduce", 1, "no-op")
    assert vs.moves_nothing("allreduce", 1, "no-op;empty-graph")


def test_pair_columns_ratios_and_partners():
    nccl = {("allreduce", 65536): {"oop": 10.0, "ip": 8.0, "wrong": 0.0},
            ("allreduce", 4): {"oop": 5.0, "ip": 4.0, "wrong": 0.0},
            ("broadcast", 65536): {"oop": 7.0, "ip": 0.2, "wrong": 0.0}}
    cb = vs.read_summary(summary_csv([
        ("allreduce", 65536, 10.3e-6, "no-op"), ("allreduce", 4, 9e-6, "no-op"),
        ("allreduce", 1 << 20, 20e-6, "no-op"), ("allreduce_inplace", 65536, 8.1e-6, "no-op"),
        ("broadcast", 65536, 3e-6, "no-op")]))
    rows = vs.pair("eager", nccl, cb, ["allreduce", "allreduce_inplace", "broadcast"])
    got = {(r["op"], r["nbytes"]): r for r in rows}
    assert [(r["op"], r["nbytes"]) for r in rows] == [
        ("allreduce", 4), ("allreduce", 65536), ("allreduce", 1 << 20),
        ("allreduce_inplace", 4), ("allreduce_inplace", 65536), ("broadcast", 65536)]
    assert got[("allreduce", 65536)]["ratio"] == pytest.approx(1.03)
    assert got[("allreduce", 65536)]["verdict"] == "meets"
    assert got[("allreduce", 4)]["verdict"] == ""                  # eager, small
    assert got[("allreduce", 1 << 20)]["verdict"] == "no partner"  # nccl-tests lacks it
    assert got[("allreduce_inplace", 65536)]["compared"] == "in-place"
    assert got[("allreduce_inplace", 65536)]["ratio"] == pytest.approx(8.1 / 8.0)
    assert got[("allreduce_inplace", 65536)]["verdict"] == "moves nothing"
    assert got[("allreduce_inplace", 4)]["verdict"] == "no partner"  # commbench lacks it
    assert got[("broadcast", 65536)]["ratio"] == pytest.approx(15.0)  # against in place
    assert got[("broadcast", 65536)]["flags"] == "no-op"
    assert [(r["op"], r["nbytes"]) for r in vs.misses(rows)] == [
        ("allreduce", 1 << 20), ("allreduce_inplace", 4)]

    table = vs.format_table("eager", rows)
    lines = table.splitlines()
    assert lines[0].startswith("eager") and lines[1].split()[:2] == ["op", "size"]
    assert "64 KiB" in table and "moves nothing" in table and "no-op" in table
    assert lines[-1].startswith("eager: 1 of 2 judged rows meet their target; 2 fail: ")
    csv_rows = vs.csv_text(rows).splitlines()
    assert csv_rows[0].startswith("mode,op,nbytes,nccl_oop_us,nccl_ip_us")
    assert len(csv_rows) == 1 + len(rows)


# ---------------------------------------------------------------- options and the build
def test_sizes_and_command_lines(tmp_path):
    assert vs.size_range("4:1G") == (4, 1 << 30, 2)
    assert vs.size_range("64K:1M:4") == (65536, 1 << 20, 4)
    for bad in ("4,8", "8:4", "4:1G:1", "x:1G"):
        with pytest.raises(vs.Problem):
            vs.size_range(bad)
    assert vs.gencode((9, 0)) == "-gencode=arch=compute_90,code=sm_90"
    assert vs.gencode((10, 0)) == "-gencode=arch=compute_100,code=sm_100"
    eager = vs.nccl_tests_argv(tmp_path / "all_reduce_perf", (4, 1 << 30, 2), "eager", tmp_path / "a.json")
    assert eager[1:] == ["-b", "4", "-e", str(1 << 30), "-f", "2", "-g", "1", "-d", "float",
                         "-o", "sum", "-c", "1", "-n", "50", "-w", "5", "-J", str(tmp_path / "a.json")]
    graph = vs.nccl_tests_argv("x", (4, 8, 2), "graph", "g.json", graph_launches=7)
    assert graph[-4:] == ["-G", "7", "-J", "g.json"]


def test_nccl_home_and_make_line(tmp_path):
    pkg = tmp_path / "site" / "nvidia" / "nccl"
    (pkg / "include").mkdir(parents=True)
    (pkg / "include" / "nccl.h").write_text("/* */\n")
    (pkg / "lib").mkdir()
    (pkg / "lib" / "libnccl.so.2").write_bytes(b"\x7fELF")
    home = vs.make_nccl_home(pkg, tmp_path / "build" / "nccl_home")
    vs.make_nccl_home(pkg, home)  # again: replaces its links
    assert (home / "include" / "nccl.h").is_file()
    assert os.readlink(home / "lib" / "libnccl.so") == str((pkg / "lib" / "libnccl.so.2").resolve())
    assert (home / "lib" / "libnccl.so.2").resolve() == (pkg / "lib" / "libnccl.so.2").resolve()
    argv = vs.build_argv(tmp_path / "src", tmp_path / "bin", home, Path("/cuda"), Path("/cuda/bin/nvcc"),
                         vs.gencode((9, 0)), 16)
    assert argv[:4] == ["make", "-C", str(tmp_path / "src" / "src"), "-j16"]
    assert f"BUILDDIR={tmp_path / 'bin'}" in argv and f"NCCL_HOME={home}" in argv
    assert "NVCC_GENCODE=-gencode=arch=compute_90,code=sm_90" in argv and "CUDA_HOME=/cuda" in argv
    assert argv[-5:] == [str(tmp_path / "bin" / b) for b in vs.BINARIES]
    env = vs.library_env(home, Path("/cuda"))
    assert env["LD_LIBRARY_PATH"].split(":")[:2] == [str(home / "lib"), "/cuda/lib64"]


def test_source_tree_from_tarball_or_folder(tmp_path):
    tree = tmp_path / "t" / "nccl-tests"
    (tree / "src").mkdir(parents=True)
    (tree / "src" / "Makefile").write_text("build:\n")
    (tree / "src" / "common.mk").write_text("\n")
    tgz = tmp_path / "nccl-tests-src.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(tree, arcname="nccl-tests")
    got = vs.source_tree(tgz, tmp_path / "build")
    assert got == tmp_path / "build" / "src" / "nccl-tests" and (got / "src" / "Makefile").is_file()
    assert vs.source_tree(tree, tmp_path / "build2") == tree


@pytest.mark.slow
def test_step_timeout_stops_the_whole_group(tmp_path):
    log = tmp_path / "step.log"
    pidfile = tmp_path / "child.pid"
    start = time.monotonic()
    rc, _ = vs.run_step(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], log, timeout=1)
    assert rc == 124 and time.monotonic() - start < 15
    assert "timed out after 1 s" in log.read_text()
    child = int(pidfile.read_text())
    for _ in range(50):
        if not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the background child of the step survived its timeout")


def test_cuda_home_from_nvcc_itself(tmp_path):
    wrapper = tmp_path / "bin" / "nvcc"  # a wrapper script, as /usr/local/bin/nvcc can be
    wrapper.parent.mkdir()
    wrapper.write_text("#!/bin/sh\necho '#$ _NVVM_BRANCH_=nvvm' >&2\n"
                       "echo '#$ _HERE_=/opt/cuda-13.0/bin' >&2\n")
    wrapper.chmod(0o755)
    assert vs.cuda_home(wrapper) == Path("/opt/cuda-13.0")
    wrapper.write_text("#!/bin/sh\nexit 1\n")
    assert vs.cuda_home(wrapper) == tmp_path  # else: above the binary's bin/
    assert vs.find_nvcc() is None or vs.find_nvcc().name == "nvcc"


@pytest.mark.slow  # starts Python
def test_gpu_query_failures_are_one_line_problems(monkeypatch):
    monkeypatch.setattr(vs, "GPU_QUERY", "import no_such_torch_module")
    with pytest.raises(vs.Problem, match="^no GPU: torch cannot tell .*no_such_torch_module"):
        vs.gpu_info()
    monkeypatch.setattr(vs, "GPU_QUERY", "print('{\"torch\": \"9.9\", \"available\": false}')")
    with pytest.raises(vs.Problem, match=r"torch 9.9: torch.cuda.is_available\(\) is false"):
        vs.gpu_info()


def test_no_gpu_exits_2_with_one_line(tmp_path):
    torch = pytest.importorskip("torch")

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the script would run")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], capture_output=True,
                          text=True, timeout=120, env=commbench_env(), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("vs_nccl_tests: no GPU"), proc.stderr
    assert not out.exists()  # nothing written before the check


def test_bad_options_exit_2_before_anything(capsys):
    assert vs.main(["--sizes", "4,8"]) == 2
    assert vs.main(["--ops", "allreduce,pingpong"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "pingpong" in err[1]


# ---------------------------------------------------------------- the whole flow, stand-ins for the GPU
FAKE_NCCL_TESTS = textwrap.dedent("""\
    #!{python}
    # a stand-in for an nccl-tests binary: its flags checked, its text and -J file written
    import json, os, sys
    prog = os.path.basename(sys.argv[0])
    a = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    assert a["-g"] == "1" and a["-d"] == "float" and a["-c"] == "1", a
    assert "nccl_home/lib" in os.environ["LD_LIBRARY_PATH"]
    lo, hi, f = int(a["-b"]), int(a["-e"]), int(a["-f"])
    sizes = []
    while lo <= hi:
        sizes.append(lo)
        lo *= f
    t = {{s: 20.0 + s / 1e3 for s in sizes}}
    print("# nccl-tests version 2.19.6 nccl-headers=22807 nccl-library=22807")
    print("# Collective test starting: " + prog)
    print("#  Rank  0 Group  0 Pid   4242 on      gpu-a device  0 [0000:18:00] FAKE")
    print("#       size         count      type   redop    root     time   algbw   busbw  #wrong"
          "     time   algbw   busbw  #wrong")
    for s in sizes:
        print("%12d  %12d  %8s  %6s  %6s  %7.2f  %6.2f  %6.2f  %6d  %7.2f  %6.2f  %6.2f  %6d"
              % (s, s // 4, "float", "sum", "-1", t[s], 0, 0, 0, t[s] * 0.9, 0, 0, 0))
    if prog == "alltoall_perf":
        sys.exit(3)  # crashes before writing its JSON: the log is read instead
    doc = {{"version": 3, "args": sys.argv, "config": {{"iterations": 50, "graph": int(a.get("-G", 0)),
           "devices": [{{"rank": 0, "hostname": "gpu-a"}}]}},
           "results": [{{"size": s, "count": s // 4, "type": "float", "redop": "sum", "root": "    -1",
                         "out_of_place": {{"time": t[s], "nwrong": 0.0}},
                         "in_place": {{"time": t[s] * 0.9, "nwrong": 0.0}}}} for s in sizes]}}
    with open(a["-J"], "x") as fh:
        json.dump(doc, fh)
    """)


@pytest.mark.ranks
@needs_torch  # the stand-in run uses gloo
@pytest.mark.slow
def test_whole_flow_with_stand_ins(tmp_path, monkeypatch, capsys):
    bindir = tmp_path / "build" / "bin"
    bindir.mkdir(parents=True)
    for name in vs.BINARIES:
        (bindir / name).write_text(FAKE_NCCL_TESTS.format(python=sys.executable))
        (bindir / name).chmod(0o755)
    pkg = tmp_path / "nccl"
    (pkg / "include").mkdir(parents=True)
    (pkg / "lib").mkdir()
    (pkg / "lib" / "libnccl.so.2").write_bytes(b"")
    need = {"bindir": bindir, "capability": (9, 0), "gpu": "stand-in", "build": False,
            "nvcc": None, "cuda_home": None, "nccl": pkg}
    monkeypatch.setattr(vs, "preflight", lambda args: need)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "out"
    rc = vs.main(["--build", str(tmp_path / "build"), "--out", str(out), "--backend", "gloo",
                  "--modes", "eager", "--sizes", "4:64:4", "--timeout", "240",
                  "--run-args", "--budget 0.05 --min-samples 5 --sample-time 0.0002 -q"])
    printed = capsys.readouterr().out
    assert rc == 1, printed   # alltoall_perf failed; the fake times are not commbench's
    assert "nccl-tests alltoall_perf eager: exit 3" in printed
    rows = list(__import__("csv").DictReader((out / "comparison.csv").open()))
    assert {(r["op"], int(r["nbytes"])) for r in rows} == {
        (op, s) for op in vs.DEFAULT_OPS.split(",") for s in (4, 16, 64)}
    for r in rows:
        assert r["nccl_oop_us"] and r["commbench_us"] and r["ratio"], r
        assert "no-op" in r["flags"]
    by = {(r["op"], int(r["nbytes"])): r for r in rows}
    bcast = by[("broadcast", 64)]
    assert float(bcast["nccl_ip_us"]) == pytest.approx(float(bcast["nccl_oop_us"]) * 0.9, rel=0.01)
    assert by[("alltoall", 16)]["nccl_oop_us"]  # from its log
    assert (out / "comparison.txt").read_text().startswith("eager")
    imported = (out / "nccl-tests-eager" / "summary.csv").read_text()
    assert "allreduce" in imported and "alltoall" in imported
    assert (out / "commbench-eager" / "summary.csv").is_file()
    assert (out / "report" / "index.html").is_file()
    assert (out / "nccl-tests" / "eager" / "all_reduce_perf.json").is_file()
