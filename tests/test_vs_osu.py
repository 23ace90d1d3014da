"""The pure parts of tests/benchmarks/vs_osu.py (commbench side by side with OSU 7.4): reading
OSU's table, commbench's windows from a run's samples, the levels and the verdicts; and its whole
flow with stand-in OSU binaries against a real `commbench run` under mpiexec."""
import importlib.util
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import commbench_env, needs_mpi

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "benchmarks" / "vs_osu.py"

spec = importlib.util.spec_from_file_location("vs_osu", SCRIPT)
vs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(vs)

# osu_latency 7.4 with -z (FLOAT_PRECISION=4); without it, the first two columns
LATENCY = """\
# OSU MPI Latency Test v7.4
# Datatype: MPI_CHAR.
# Size       Avg Latency(us)     P50 Tail Lat(us)     P90 Tail Lat(us)     P99 Tail Lat(us)
1                     0.1700               0.1600               0.1900               0.2500
64                    0.1930               0.1900               0.2100               0.3000
"""
BW = """\
# OSU MPI Bandwidth Test v7.4
# Size      Bandwidth (MB/s)     P50 Tail BW(MB/s)     P90 Tail BW(MB/s)     P99 Tail BW(MB/s)
1048576             12000.00             12100.00             11000.00              9000.00
"""


def test_osu_tables_read_as_average_and_median_then_seconds_per_op():
    assert vs.parse_osu(LATENCY) == {1: 0.17, 64: 0.193}
    assert vs.parse_osu("# Size  Avg Latency(us)\n4   0.25\n") == {4: 0.25}
    assert vs.osu_seconds("pingpong", 1, 0.17) == pytest.approx(0.17e-6)
    avg, = vs.parse_osu(BW).values()
    # MB/s is 10^6 B/s: one 1 MiB message at 12000 MB/s takes 87.4 us
    assert vs.osu_seconds("bw", 1048576, avg) == pytest.approx(1048576 / 12e9)


def test_commbench_windows_are_per_round_medians_of_the_max_over_ranks_and_osus_reading():
    rows = []
    for rnd, base in ((0, 1.0), (1, 2.0)):
        for sample in range(3):
            for rank, extra in ((0, 0.0), (1, 0.1 * sample)):
                rows.append({"op": "pingpong", "nbytes": 4, "round": rnd, "sample": sample,
                             "rank": rank, "time_s": base + extra})
    samples = pd.DataFrame(rows)
    summary = pd.DataFrame([{"op": "pingpong", "nbytes": 4, "median_s": 1.5}])
    # round 0: max over ranks 1.0, 1.1, 1.2 -> 1.1; round 1: 2.0, 2.1, 2.2 -> 2.1
    (headline, rounds, osu_read, max_r0), = vs.commbench_windows(samples, summary, "pingpong").values()
    assert (headline, rounds) == (1.5, [1.1, 2.1])
    # OSU's point-to-point reading: rank 0's mean, (1 * 3 + 2 * 3) / 6; the max over ranks'
    # median (1.6: 1.0 1.1 1.2 2.0 2.1 2.2) / rank 0's (1.5)
    assert osu_read == pytest.approx(1.5) and max_r0 == pytest.approx(1.6 / 1.5)
    summary["op"] = samples["op"] = "allreduce"
    # collectives: the mean over ranks, then over samples: 1.5 + mean(0, .05, .1) = 1.55
    assert vs.commbench_windows(samples, summary, "allreduce")[4][2] == pytest.approx(1.55)


def two_levels(rng, fast, slow, n_fast, n_slow, spread=0.03):
    return list(np.concatenate([fast * (1 + spread * rng.standard_normal(n_fast)),
                                slow * (1 + spread * rng.standard_normal(n_slow))]))


def test_each_tool_is_read_at_the_quiet_end_whatever_share_of_windows_was_slow():
    rng = np.random.default_rng(0)
    # the machine at 0.17 us or 0.40 us; commbench's windows mostly slow, OSU's mostly fast
    cb = two_levels(rng, 0.165e-6, 0.39e-6, 8, 22)
    osu = two_levels(rng, 0.175e-6, 0.41e-6, 28, 12)
    ratio, (lo, hi), text, verdict = vs.judge("pingpong", cb, osu)
    # the quiet ends, 0.165 / 0.175, not the headlines' 0.39 / 0.175
    assert ratio == pytest.approx(0.165 / 0.175, rel=0.05)
    assert lo <= ratio <= hi and verdict == "met"
    assert text.endswith("of 30/40")


def test_a_method_a_third_slower_is_caught_in_any_mix_of_levels():
    rng = np.random.default_rng(3)
    osu = two_levels(rng, 0.17e-6, 0.4e-6, 25, 15)
    cb = [1.3 * v for v in two_levels(rng, 0.17e-6, 0.4e-6, 10, 20)]
    ratio, _, _, verdict = vs.judge("pingpong", cb, osu)
    assert ratio == pytest.approx(1.3, rel=0.05) and verdict == "MISSED"


@pytest.mark.parametrize("cb_factor, verdict", [(0.95, "met"), (1.30, "MISSED"),
                                                (1.05, "not significant")])
def test_verdicts_say_not_significant_before_missed(cb_factor, verdict):
    rng = np.random.default_rng(1)
    osu = list(0.2e-6 * (1 + 0.02 * rng.standard_normal(40)))
    cb = list(cb_factor * 0.2e-6 * (1 + 0.02 * rng.standard_normal(30)))
    assert vs.judge("allreduce", cb, osu)[3] == verdict


def test_bandwidth_target_is_097_of_osus_rate():
    rng = np.random.default_rng(4)
    osu = list(100e-6 * (1 + 0.005 * rng.standard_normal(12)))
    faster = list(102e-6 * (1 + 0.005 * rng.standard_normal(12)))   # 0.98x OSU's rate
    slower = list(110e-6 * (1 + 0.005 * rng.standard_normal(12)))   # 0.91x
    assert vs.judge("bw", faster, osu)[3] == "met"
    assert vs.judge("bw", slower, osu)[3] == "MISSED"


def test_fewer_than_ten_windows_of_either_is_not_judged():
    ratio, _, text, verdict = vs.judge("pingpong", [1e-6] * 30, [1e-6] * 9)
    assert ratio is None and verdict == "not judged (fewer than 10 windows)" and text == "30/9"


def test_unknown_op_is_refused_with_the_known_ones():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--ops", "pingpong,nope"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "no OSU counterpart for nope; known: pingpong, bw, allreduce, allgather" in proc.stderr


FAKE_OSU = """\
#!/bin/sh
# a stand-in OSU binary: prints a table from rank 0, at {us} us (or MB/s) per size
[ "${{OMPI_COMM_WORLD_RANK:-${{PMI_RANK:-0}}}}" = 0 ] || exit 0
echo "# stand-in for {name}"
for s in {sizes}; do echo "$s {us}"; done
"""


@needs_mpi
def test_whole_flow_with_stand_in_osu_binaries(tmp_path):
    sizes = {"osu_latency": "1 2 4 8 16 32 64", "osu_bw": "1048576 2097152 4194304",
             "osu_allreduce": "1 2 4 8 16 32 64", "osu_allgather": "1 2 4 8 16 32 64"}
    for name, values in sizes.items():
        path = tmp_path / name
        path.write_text(FAKE_OSU.format(name=name, sizes=values, us="1.0"))
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    env = commbench_env()
    env["OSU_DIR"] = str(tmp_path)
    proc = subprocess.run([sys.executable, str(SCRIPT), "--rounds", "2", "--osu-launches", "5",
                           "--ops", "bw", "--no-probe"], capture_output=True, text=True,
                          env=env, timeout=300, cwd=tmp_path)
    out = proc.stdout
    assert f"# OSU 7.4: {tmp_path}" in out, proc.stderr
    rows = [line for line in out.splitlines() if line.startswith("bw ")]
    assert [int(line.split()[1]) for line in rows] == [1048576, 2097152, 4194304]
    # a stand-in at 1 MB/s takes a second per MiB: commbench's 12 windows (2 runs of 3 launches
    # of 2 rounds) are far faster than its 10
    for line in rows:
        assert " of 12/10 " in line and line.endswith("bw >= 0.97x OSU: met"), out
    assert "3 of 3 targets met; 0 missed" in out
    assert proc.returncode == 0, proc.stderr
