"""Round trip: a commbench run's own numbers (tests/data/commbench_run_n2.csv: the summary of
a 2-rank mpi run) printed in each tool's layout, as that tool prints them (its columns, widths
and precision), import back to the same op, S, rank count and time, to the precision the
tool prints. This checks the size conversions (per-rank blocks, both directions, pairs) and
the time derivations (latency, MB/s, Msg/sec) against each other."""
import json
from pathlib import Path

import pandas as pd
import pytest

from analysis.runsamples import load_run
from bench.cli import main as cli
from bench.ops import OPS

DATA = Path(__file__).parent / "data"
RUN = pd.read_csv(DATA / "commbench_run_n2.csv", comment="#")
N = 2


def cases(*ops):
    rows = RUN[RUN["op"].isin(ops)]
    return [(r["op"], int(r["nbytes"]), int(r["count"]), float(r["median_s"])) for _, r in rows.iterrows()]


def half_ulp(text: str) -> float:
    """Half a unit of the last digit printed."""
    decimals = len(text.split(".")[1]) if "." in text else 0
    return 0.5 * 10.0 ** -decimals


def tool_size(op, s):
    """The size the tools print for S (bench.ops: S = s_of_tool_size(size))."""
    size = next(x for x in (s, s // N, s // 2) if OPS[op].s_of_tool_size(x, N) == s)
    return size


# ---------------------------------------------------------------- nccl-tests
def nccl_time(us: float) -> str:
    """nccl-tests' time field (util.cu getFloatStr, width 7)."""
    if us < 1e5:
        return f"{us:7.2f}" if us < 1e4 else f"{us:7.1f}"
    return f"{us:7.0f}"


def nccl_text(old: bool):
    lines, expect = [], []
    for op in ("allreduce", "allgather", "reduce_scatter", "alltoall", "broadcast"):
        stem = OPS[op].tool_names["nccl-tests"]
        reduces = OPS[op].reduces
        if old:  # 2.0 era: per-op headers, no program line, 'error'
            cols = ["size", "count", "type"] + (["redop"] if reduces or op == "alltoall" else []) \
                + (["root"] if op == "broadcast" else []) \
                + ["time", "algbw", "busbw", "error", "time", "algbw", "busbw", "error"]
            lines += [f"$ ./build/{stem}_perf -b 4 -e 4M -f 4 -g 2",
                      "# nThread 1 nGpus 2 minBytes 4 maxBytes 4194304 step: 4(factor) warmup iters: 5 "
                      "iters: 20 validation: 1 ", "#", "# Using devices"]
            lines += [f"#   Rank {r:2d} Pid {900:6d} on {'node1':>10} device {r:2d} [0x{0x18 + r:02x}] "
                      "Tesla V100-SXM2-16GB" for r in range(N)]
        else:
            cols = ["size", "count", "type", "redop", "root", "time", "algbw", "busbw", "#wrong",
                    "time", "algbw", "busbw", "#wrong"]
            lines += ["# nccl-tests version 2.18.3 nccl-headers=22707 nccl-library=22707",
                      f"# Collective test starting: {stem}_perf",
                      "# nThread 1 nGpus 2 minBytes 4 maxBytes 4194304 step: 4(factor) warmup iters: 5 "
                      "iters: 20 agg iters: 1 validation: 1 graph: 0", "#", "# Using devices"]
            lines += [f"#  Rank {r:2d} Group  0 Pid {900:6d} on {'node1':>10} device {r:2d} "
                      f"[0000:{0x18 + r:02x}:00] NVIDIA H100 80GB HBM3" for r in range(N)]
        lines += ["#", "# " + "  ".join(f"{c:>8}" for c in cols)]
        for _op, s, count, t in cases(op):
            us = t * 1e6
            fields = {"size": str(s), "count": str(count), "type": "float",
                      "redop": "sum" if reduces else "none", "root": "0" if op == "broadcast" else "-1"}
            head = [fields[c] for c in cols if c in fields]
            algbw = s / us / 1e3
            body = [nccl_time(us), f"{algbw:.2f}", f"{algbw:.2f}", "0e+00" if old else "0"] * 2
            lines.append("  ".join(f"{w:>8}" for w in head + body))
            expect.append((op, s, t, half_ulp(nccl_time(us)) * 1e-6))
        lines += ["# Out of bounds values : 0 OK", "# Avg bus bandwidth    : 1.234 ", "#"]
    return "\n".join(lines) + "\n", expect


def nccl_json(op):
    stem = OPS[op].tool_names["nccl-tests"]
    results, expect = [], []
    for _, s, count, t in cases(op):
        us = float(f"{t * 1e6:f}")  # nccl-tests writes doubles with %lf
        part = {"time": us, "alg_bw": s / us / 1e3, "bus_bw": s / us / 1e3, "nwrong": 0.0}
        results.append({"size": s, "count": count, "type": "float", "redop": "sum", "root": "    -1",
                        "out_of_place": part, "in_place": dict(part), "actual_iterations": 20,
                        "experiment_name": stem})
        expect.append((op, s, t, 0.5e-6 * 1e-6))
    doc = {"version": 2, "start_time": "2026-11-27 13:14:51",
           "args": [f"./build/{stem}_perf", "-J", "x.json"],
           "env": [], "nccl_version": 22707,
           "config": {"iterations": 20, "aggregated_iterations": 1,
                      "devices": [{"rank": r, "hostname": "node1"} for r in range(N)]},
           "results": results}
    return json.dumps(doc), expect


# ---------------------------------------------------------------- OSU 7.x
OSU_COLLECTIVES = {"allreduce": "Allreduce", "allgather": "Allgather", "reduce_scatter": "Reduce_scatter",
                   "alltoall": "All-to-All Personalized Exchange", "broadcast": "Broadcast"}


def osu_text():
    lines, expect = [], []
    lines += ["$ mpirun -np 2 ./osu_latency", "# OSU MPI Latency Test v7.4", "# Datatype: MPI_CHAR.",
              f"{'# Size':<10}{'Latency (us)':>20}"]
    for op, s, _, t in cases("pingpong"):
        lines.append(f"{s:<10d}{t * 1e6:20.2f}")
        expect.append((op, s, t, 0.005e-6))
    for op, title in (("bw", "Bandwidth"), ("bibw", "Bi-Directional Bandwidth")):
        lines += [f"$ mpirun -np 2 ./osu_{op}", f"# OSU MPI {title} Test v7.4", "# Datatype: MPI_CHAR.",
                  f"{'# Size':<10}{'Bandwidth (MB/s)':>20}"]
        for _, s, _, t in cases(op):
            mb = f"{s / t / 1e6:.2f}"
            lines.append(f"{tool_size(op, s):<10d}{mb:>20}")
            expect.append((op, s, t, t * half_ulp(mb) / float(mb)))
    lines += ["$ mpirun -np 2 ./osu_mbw_mr", "# OSU MPI Multiple Bandwidth / Message Rate Test v7.4",
              "# [ pairs: 1 ] [ window size: 64 ]", "# Datatype: MPI_CHAR.",
              f"{'# Size':<10}{'MB/s':>20}{'Messages/s':>20}"]
    for op, s, _, t in cases("multipair"):
        mb = f"{s / t / 1e6:.2f}"
        lines.append(f"{tool_size(op, s):<10d}{mb:>20}{1 / t:20.2f}")
        expect.append((op, s, t, t * half_ulp(mb) / float(mb)))
    for op, name in OSU_COLLECTIVES.items():
        lines += [f"$ mpirun -np 2 ./osu_{op}", f"# OSU MPI {name} Latency Test v7.4",
                  "# Datatype: MPI_FLOAT.", f"{'# Size':<10}{'Avg Latency(us)':>20}"]
        for _, s, _, t in cases(op):
            lines.append(f"{tool_size(op, s):<10d}{t * 1e6:20.2f}")
            expect.append((op, s, t, 0.005e-6))
    lines += ["$ mpirun -np 2 ./osu_barrier", "# OSU MPI Barrier Latency Test v7.4", "# Avg Latency(us)"]
    for op, s, _, t in cases("barrier"):
        lines.append(f"{t * 1e6:17.2f}")
        expect.append((op, s, t, 0.005e-6))
    return "\n".join(lines) + "\n", expect


# ---------------------------------------------------------------- IMB 2021
IMB_NAMES = {"allreduce": "Allreduce", "allgather": "Allgather", "alltoall": "Alltoall",
             "reduce_scatter": "Reduce_scatter", "broadcast": "Bcast"}


def imb_text():
    w = 13
    lines = ["#----------------------------------------------------------------",
             "#    Intel(R) MPI Benchmarks 2021.7, MPI-1 part", "#" + "-" * 64,
             "# MPI Version           : 3.1", "#", "# MPI_Datatype                   :   MPI_BYTE",
             "# MPI_Datatype for reductions    :   MPI_FLOAT", "#"]
    expect = []

    def block(name, cols):
        lines.extend(["#" + "-" * 50, f"# Benchmarking {name}", f"# #processes = {N}", "#" + "-" * 50,
                      "".join(f"{c:>{w}}" for c in cols)])

    block("PingPong", ["#bytes", "#repetitions", "t[usec]", "Mbytes/sec"])
    for op, s, _, t in cases("pingpong"):
        lines.append(f"{s:{w}d}{1000:{w}d}{t * 1e6:{w}.2f}{s / t / 1e6:{w}.2f}")
        expect.append((op, s, t, 0.005e-6))
    for op, name in IMB_NAMES.items():
        block(name, ["#bytes", "#repetitions", "t_min[usec]", "t_max[usec]", "t_avg[usec]"])
        for _, s, _, t in cases(op):
            us = t * 1e6
            lines.append(f"{tool_size(op, s):{w}d}{1000:{w}d}{us * 0.9:{w}.2f}{us * 1.1:{w}.2f}{us:{w}.2f}")
            expect.append((op, s, t, 0.005e-6))
    block("Barrier", ["#repetitions", "t_min[usec]", "t_max[usec]", "t_avg[usec]"])
    for op, s, _, t in cases("barrier"):
        lines.append(f"{1000:{w}d}{t * 0.9e6:{w}.2f}{t * 1.1e6:{w}.2f}{t * 1e6:{w}.2f}")
        expect.append((op, s, t, 0.005e-6))
    for op, name, msgs in (("multipair", "Uniband", 1), ("bibw", "Biband", 2)):
        block(name, ["#bytes", "#repetitions", "Mbytes/sec", "Msg/sec"])
        for _, s, _, t in cases(op):
            rate = msgs / t  # messages per second over all pairs (IMB: scale_bw x pairs / time)
            size = tool_size(op, s)
            mb, msg = f"{rate * size / 1e6:.2f}", f"{rate:.0f}"
            lines.append(f"{size:{w}d}{1000:{w}d}{mb:>{w}}{msg:>{w}}")
            expect.append((op, s, t, t * max(half_ulp(mb) / float(mb), half_ulp(msg) / float(msg))))
    return "\n".join(lines) + "\n", expect


# ---------------------------------------------------------------- the round trip
def check(summary, expect, backend):
    assert len(summary) == len(expect)
    assert set(summary["backend"]) == {backend} and set(summary["nranks"]) == {N}
    got = {(op, int(s)): t for op, s, t in zip(summary["op"], summary["nbytes"], summary["median_s"])}
    for op, s, t, tol in expect:
        assert (op, s) in got, (op, s)
        assert abs(got[(op, s)] - t) <= tol * (1 + 1e-9) + 1e-15, (op, s, got[(op, s)], t, tol)


@pytest.mark.parametrize("layout", ["nccl-2.18", "nccl-2.0", "osu-7.4", "imb-2021"])
@pytest.mark.slow
def test_round_trip_text(tmp_path, capsys, layout):
    text, expect = {"nccl-2.18": lambda: nccl_text(old=False), "nccl-2.0": lambda: nccl_text(old=True),
                    "osu-7.4": osu_text, "imb-2021": imb_text}[layout]()
    path = tmp_path / f"{layout}.txt"
    path.write_text(text)
    rc = cli(["import", str(path), "--out", str(tmp_path / "r")])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "malformed" not in out.out and "skipped" not in out.out, out.out
    _, samples, summary = load_run(tmp_path / "r")
    check(summary, expect, "nccl" if layout.startswith("nccl") else "mpi")
    if layout.startswith("nccl"):
        assert set(summary["dtype"]) == {"float32"} and set(samples["calls"]) == {20}
        assert (summary["wrong"] == 0).all()


@pytest.mark.parametrize("op", ["allreduce", "allgather", "reduce_scatter", "alltoall", "broadcast"])
def test_round_trip_nccl_json(tmp_path, capsys, op):
    text, expect = nccl_json(op)
    path = tmp_path / f"{op}.json"
    path.write_text(text)
    assert cli(["import", str(path), "--out", str(tmp_path / "r")]) == 0, capsys.readouterr().err
    check(load_run(tmp_path / "r")[2], expect, "nccl")
