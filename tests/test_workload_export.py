"""`commbench workload --export simai`: SimAI-Analytical's busbw file from measured or
predicted times."""
from __future__ import annotations

from analysis.transformer_schedule import Row
from analysis.workload_time import Timed, simai_busbw
from bench.cli import main as cli


def row(op, group, size, nbytes, phase="backward"):
    return Row(phase, op, group, size, nbytes, 1, False, "")


def test_busbw_file_takes_the_largest_size_of_each_group_and_op():
    rows = [row("allreduce", "tp", 8, 1 << 20), row("allreduce", "tp", 8, 64 << 20),
            row("allgather", "dp", 4, 16 << 20), row("alltoall", "ep", 2, 8 << 20),
            row("pingpong", "pp", 2, 4 << 20)]
    times = [1e-3, 0.1, 2e-3, 1e-3, 1e-4]
    timed = {r.key(): Timed(t, t, t, "m") for r, t in zip(rows, times)}
    text = simai_busbw(rows, timed).splitlines()
    assert text[0] == "commbench" and text[1] == "TP:"
    # allreduce at 64 MiB over 8 ranks: S / t x 2(n-1)/n, in GB/s
    assert text[2] == f"allreduce,: {(64 << 20) / 0.1 * 2 * 7 / 8 / 1e9:.4g}"
    assert "reducescatter,: null" in text and text[text.index("DP:") + 2] == \
        f"allgather,: {(16 << 20) / 2e-3 * 3 / 4 / 1e9:.4g}"
    assert text[text.index("EP:") + 4] == f"alltoall,: {(8 << 20) / 1e-3 / 2 / 1e9:.4g}"
    assert text[-2:] == ["PP:", f"busbw: {(4 << 20) / 1e-4 / 1e9:.4g}"]


def test_export_needs_bandwidths(capsys, tmp_path):
    rc = cli(["workload", "--model", "Llama-3-8B", "--tp", "2", "--export", "simai",
              "--out", str(tmp_path / "w")])
    assert rc == 2 and "--export simai needs bandwidths" in capsys.readouterr().err
