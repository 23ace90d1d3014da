"""The machine's ceilings: copy rates measured sanely, line rates read from sysfs, and the
ceiling a summary row is set against."""
from __future__ import annotations

import math
import types

import pytest

from bench import ceilings
from bench.core.runmeta import IN_CACHE_BYTES, applies, describe_ceilings
from bench.ops import OPS


def test_copy_rate_is_a_sane_measure_of_the_machine():
    mine = ceilings.copy_rate(16 << 20, repeats=5)
    assert 1e8 < mine < 1e12  # 0.1 GB/s .. 1 TB/s: a memory copy, not a clock artefact


def test_the_copy_ceiling_is_the_best_copy_and_keeps_its_spread():
    """A clock that says how long each copy took: the page-touching first copy is not timed,
    the ceiling is the fastest copy, the spread min / median / max of all of them."""
    durations = iter([0.004, 0.002, 0.008, 0.002, 0.004])  # seconds per copy, 2 reads each
    ticks = []

    def clock():
        if not ticks:
            ticks.extend([0.0, next(durations)])
        return ticks.pop(0)

    rates = ceilings.copy_rates(1 << 20, repeats=5, clock=clock)
    assert rates == [(1 << 20) / d for d in (0.004, 0.002, 0.008, 0.002, 0.004)]
    got = ceilings.spread(rates)
    assert got == {"min": (1 << 20) / 0.008, "median": (1 << 20) / 0.004, "max": (1 << 20) / 0.002}
    assert "median 0.3, slowest 0.1" in describe_ceilings(
        {"copy_one_core_Bps": got["max"], "copy_one_core_spread_Bps": got})


def test_a_copy_ceiling_is_no_limit_for_messages_in_the_caches():
    """bibw at 512 KiB beat one core's copy rate by 7x: that share is printed nowhere, and a
    share below 100%, or of a size beyond the caches, or of a line rate, still is."""
    row = {"ceiling": "copy-core", "efficiency": 7.3, "nbytes": 512 << 10}
    assert not applies(row)
    assert applies({**row, "efficiency": 0.7})
    assert applies({**row, "nbytes": IN_CACHE_BYTES})
    assert applies({**row, "ceiling": "nic"})


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
                      "b": {"ranks": 2, "copy_node_Bps": 15e9,
                            "nics": [{"device": "ib0", "rate_Bps": 25e9}]}}}


@pytest.mark.parametrize("op, nnodes, split, expected", [
    ("allreduce", 1, "all", ("copy-core", 10e9)),
    ("multipair", 1, "all", ("copy-node", 15e9)),
    ("allreduce", 2, "all", ("nic", 25e9)),       # the slowest line rate
    ("allreduce", 2, "intra", ("copy-core", 10e9)),
    ("allreduce", 2, "inter", ("nic", 25e9)),
    ("allreduce", 2, "group:2:1", ("copy-core", 10e9)),  # a node's two ranks
    ("allreduce", 2, "group:2:2", ("nic", 25e9)),        # one rank of each node
])
def test_the_ceiling_that_applies(op, nnodes, split, expected):
    meta = {"hosts": ["a", "a", "b", "b"][:2 * nnodes] if nnodes > 1 else ["a", "a"],
            "nnodes": nnodes}
    across = ceilings.spans_nodes(split, meta)
    assert ceilings.applicable(CEILINGS, OPS[op], across) == expected
    # without a host map (an older run): any split but intra of a multi-node run crosses nodes
    if not split.startswith("group"):
        assert ceilings.spans_nodes(split, {"nnodes": nnodes}) == across


def test_buffers_on_a_gpu_are_held_to_the_gpus_own_copy_rate():
    """Never to the host's copy rate (an NVLink allreduce beats that); without a measured
    device copy rate (an older run) no ceiling applies."""
    row = {"backend": "nccl", "split": "all", "busbw_Bps": 400e9, "algbw_Bps": 200e9}
    meta = {"hosts": ["a", "a"], "nnodes": 1, "backends": {"nccl": {"device": "cuda"}},
            "ceilings": {**CEILINGS, "copy_device_Bps": {"nccl": 2e12}}}
    assert ceilings.columns(row, OPS["allreduce"], meta) == ("copy-device", 0.2)
    name, eff = ceilings.columns(row, OPS["allreduce"], {**meta, "ceilings": CEILINGS})
    assert name == "" and math.isnan(eff)
    assert "the GPU of nccl copies 2000.0 GB/s" in describe_ceilings(meta["ceilings"])


@pytest.mark.slow
def test_measure_records_the_copy_rate_of_each_backends_gpu(monkeypatch):
    """One rank: host copies, plus the device copy of each backend that has one (the fake
    stands in for torch's CUDA-event timed copy)."""
    from tests.fakes import FakeBackend

    class OnGpu(FakeBackend):
        name = "gpu"

        def device_copy_rate(self, nbytes, repeats):
            return 3e12

    monkeypatch.setattr(ceilings, "COPY_BYTES", 1 << 20)
    sync = types.SimpleNamespace(barrier=lambda: None)
    found = ceilings.measure(FakeBackend(), sync, [FakeBackend(), OnGpu()])
    assert found["copy_device_Bps"] == {"gpu": 3e12} and found["copy_one_core_Bps"] > 0
    assert "copy_device_Bps" not in ceilings.measure(FakeBackend(), sync, [FakeBackend()])


def test_efficiency_and_rows_without_bandwidth():
    row = {"split": "all", "busbw_Bps": 5e9, "algbw_Bps": 2.5e9}
    meta = {"ceilings": CEILINGS, "nnodes": 1}
    assert ceilings.columns(row, OPS["allreduce"], meta) == ("copy-core", 0.5)
    name, eff = ceilings.columns({"split": "all", "busbw_Bps": math.nan, "algbw_Bps": math.nan},
                                 OPS["barrier"], meta)
    assert name == "" and math.isnan(eff)
    name, eff = ceilings.columns(row, OPS["allreduce"], {})
    assert name == "" and math.isnan(eff)  # a run without ceilings (or an import)


def test_numbers_that_cannot_be_true_are_flagged():
    from bench import plausible

    meta = {"timer": {"measured_resolution_s": 50e-9}}
    base = {"nranks": 2, "nbytes": 1 << 20, "median_s": 1e-4, "ceiling": "copy-core", "efficiency": 0.5}
    assert plausible.flags(base, OPS["allreduce"], 100, meta) == ""
    assert plausible.flags({**base, "nranks": 1}, OPS["broadcast"], 100, meta) == "no-op"
    assert plausible.flags({**base, "median_s": 1e-12}, OPS["allreduce"], 1000, meta) == "below-timer"
    big = {**base, "nbytes": 64 << 20, "efficiency": 1.5}
    assert plausible.flags(big, OPS["allreduce"], 10, meta) == "above-ceiling"
    in_cache = {**base, "nbytes": 64 << 10, "efficiency": 1.5}
    assert plausible.flags(in_cache, OPS["allreduce"], 10, meta) == ""  # caches beat memory
    nic = {**in_cache, "ceiling": "nic"}
    assert plausible.flags(nic, OPS["allreduce"], 10, meta) == "above-ceiling"


def test_flagged_rows_print_no_bandwidth():
    from bench.core.tables import format_summary

    row = dict(backend="mpi", op="broadcast", nranks=1, dtype="float32", nbytes=4, count=1,
               median_s=1e-8, ci_low_s=1e-8, ci_high_s=1e-8, algbw_Bps=4e8, busbw_Bps=4e8,
               msg_rate_per_s=1e8, wrong=0, samples=10, efficiency=0.05, flags="no-op")
    line = format_summary([row]).splitlines()[-1]
    assert "[no-op]" in line and "0.40" not in line
