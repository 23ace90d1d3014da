"""The machine's ceilings: copy rates measured sanely, line rates read from sysfs, and the
ceiling a summary row is set against."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest

from bench import ceilings
from bench.ops import OPS


def test_copy_rate_is_a_sane_measure_of_the_machine():
    nbytes = 16 << 20
    mine = ceilings.copy_rate(nbytes, repeats=5)
    src, dst = np.ones(nbytes, np.uint8), np.zeros(nbytes, np.uint8)
    best = min(_timed_copy(src, dst) for _ in range(5))
    assert 0.5 < mine / (nbytes / best) < 2.0
    assert 1e8 < mine < 1e12  # 0.1 GB/s .. 1 TB/s: a memory copy, not a clock artefact


def _timed_copy(src, dst):
    t0 = time.perf_counter()
    dst[:] = src
    return time.perf_counter() - t0


def test_line_rates_come_from_sysfs(tmp_path):
    (tmp_path / "net/eth0").mkdir(parents=True)
    (tmp_path / "net/eth0/speed").write_text("25000\n")      # Mb/s
    (tmp_path / "net/lo").mkdir(parents=True)
    (tmp_path / "net/lo/speed").write_text("-1\n")           # declares none
    (tmp_path / "infiniband/mlx5_0/ports/1").mkdir(parents=True)
    (tmp_path / "infiniband/mlx5_0/ports/1/rate").write_text("400 Gb/sec (4X NDR)\n")
    found = {n["device"]: n["rate_Bps"] for n in ceilings.line_rates(tmp_path)}
    assert found == {"eth0": 25e9 / 8, "mlx5_0/1": 400e9 / 8}


CEILINGS = {"copy_one_core_Bps": 10e9,
            "hosts": {"a": {"ranks": 2, "copy_node_Bps": 16e9, "nics": [{"device": "ib0", "rate_Bps": 50e9}]},
                      "b": {"ranks": 2, "copy_node_Bps": 15e9, "nics": [{"device": "ib0", "rate_Bps": 25e9}]}}}


@pytest.mark.parametrize("op, nnodes, split, expected", [
    ("allreduce", 1, "all", ("copy-core", 10e9)),
    ("multipair", 1, "all", ("copy-node", 15e9)),
    ("allreduce", 2, "all", ("nic", 25e9)),       # the slowest line rate
    ("allreduce", 2, "intra", ("copy-core", 10e9)),
])
def test_the_ceiling_that_applies(op, nnodes, split, expected):
    assert ceilings.applicable(CEILINGS, OPS[op], nnodes, split) == expected


def test_efficiency_and_rows_without_bandwidth():
    row = {"split": "all", "busbw_Bps": 5e9, "algbw_Bps": 2.5e9}
    meta = {"ceilings": CEILINGS, "nnodes": 1}
    assert ceilings.columns(row, OPS["allreduce"], meta) == ("copy-core", 0.5)
    name, eff = ceilings.columns({"split": "all", "busbw_Bps": math.nan, "algbw_Bps": math.nan},
                                 OPS["barrier"], meta)
    assert name == "" and math.isnan(eff)
    name, eff = ceilings.columns(row, OPS["allreduce"], {})
    assert name == "" and math.isnan(eff)  # a run without ceilings (or an import)
