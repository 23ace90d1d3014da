"""CUDA-graph and device-timer logic on stand-ins for torch.cuda, so it is checked on any
machine: captures are bounded, an empty capture flags its case, --timer cuda times samples
with the device timer and is recorded, and it is refused where buffers are on the host."""
from __future__ import annotations

import argparse
import contextlib
import json
import types
import warnings

import numpy as np
import pytest

from analysis.runsamples import load_run
from bench.backends.torch_cuda import GraphProgram
from bench.harness import Sampling, Sync, measure
from bench.world import World
from bench.ops import get_op
from bench.plan import Plan
from tests.conftest import run_commbench
from tests.fakes import FakeBackend, FakeClock
from tests.runs import BACKENDS


def fake_cuda(log, clock, empty=lambda calls: False):
    """torch.cuda's graph API as far as GraphProgram uses it. A graph replays the calls it
    captured (each costing 1 us of fake time); `empty(calls)` says whether a capture held no
    work, which torch tells by a warning when the capture ends."""
    capturing = []

    class Graph:
        calls = None

        def replay(self):
            log.append(("replay", self.calls))
            clock.advance(1e-6 * self.calls)

    @contextlib.contextmanager
    def graph(g):
        capturing.append(g)
        yield
        capturing.pop()
        if empty(g.calls):
            warnings.warn("The CUDA Graph is empty. This usually means that the graph was "
                          "attempted to be captured on wrong device or stream.", UserWarning, stacklevel=2)

    def program(k):
        if capturing:
            capturing[-1].calls = k
            log.append(("capture", k))
        else:
            log.append(("eager", k))

    stream = types.SimpleNamespace(wait_stream=lambda other: None)
    cuda = types.SimpleNamespace(Stream=lambda device: stream, current_stream=lambda device: stream,
                                 stream=lambda s: contextlib.nullcontext(), graph=graph,
                                 CUDAGraph=Graph, synchronize=lambda device: None)
    return types.SimpleNamespace(cuda=cuda), program


def test_graph_captures_are_bounded_and_replayed_as_often_as_k_needs():
    log, clock = [], FakeClock()
    torch, program = fake_cuda(log, clock)
    run = GraphProgram(torch, program, "cuda:0", most=100)
    run.prepare(250)
    assert log == [("eager", 1), ("capture", 50), ("capture", 100)]
    log.clear()
    run(250)
    assert log == [("replay", 100), ("replay", 100), ("replay", 50)]
    assert sum(calls for what, calls in log) == 250
    log.clear()
    run(300)  # a multiple of the full graph: the rest's graph is dropped, nothing captured anew
    assert log == [("replay", 100)] * 3 and set(run.graphs) == {100}
    assert run.flags == set()


def test_calibration_never_captures_more_than_the_bound():
    log, clock = [], FakeClock()
    torch, program = fake_cuda(log, clock)
    run = GraphProgram(torch, program, "cuda:0", most=64)
    sync = Sync(barrier=lambda: None, allreduce_max=lambda a: a, clock=clock)
    m = measure(run, 1, sync, Sampling(sample_time_s=1e-2, min_samples=3, max_samples=3))
    captures = [calls for what, calls in log if what == "capture"]
    assert m.calls >= 10_000 and max(captures) == 64  # k of 1 us calls for a 10 ms sample
    assert m.agreed_s == pytest.approx([1e-6] * 3)  # replays ran exactly k calls


def test_an_empty_capture_flags_the_case_and_other_warnings_pass_through():
    log, clock = [], FakeClock()
    torch, program = fake_cuda(log, clock, empty=lambda calls: True)
    run = GraphProgram(torch, program, "cuda:0")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        run(1)
    assert run.flags == {"empty-graph"} and said == []
    sync = Sync(barrier=lambda: None, allreduce_max=lambda a: a, clock=clock)
    m = measure(run, 1, sync, Sampling(min_samples=2, max_samples=2), calls=8)
    assert m.flags == ("empty-graph",)

    def loud(k):
        program(k)
        warnings.warn("something else", RuntimeWarning, stacklevel=2)
    run = GraphProgram(torch, loud, "cuda:0")
    with pytest.warns(RuntimeWarning, match="something else"):
        run(2)
    assert run.flags == {"empty-graph"}  # the fake's capture is still empty


def test_a_device_timer_times_the_sample_instead_of_the_host_clock():
    clock, device = FakeClock(), FakeClock()
    started = []

    def device_timer():
        begin = device()
        started.append(begin)
        return lambda: device() - begin

    def run(k):
        clock.advance(1.0)          # the host would see 1 s ...
        device.advance(1e-3 * k)    # ... the device 1 ms per call
    sync = Sync(barrier=lambda: None, allreduce_max=lambda a: a, clock=clock, device_timer=device_timer)
    m = measure(run, 1, sync, Sampling(min_samples=3, max_samples=3), calls=4)
    assert m.agreed_s == pytest.approx([1e-3] * 3) and len(started) == 3


class EventBackend(FakeBackend):
    """A one-rank fake whose 'device' has its own clock and whose programs report an empty
    graph, standing in for nccl under --cuda-graph --timer cuda."""
    device = FakeClock()

    def device_timer(self):
        def start():
            begin = self.device()
            self.device.advance(2e-6)  # two events recorded back to back are 2 us apart

            def stop():
                self.clock.advance(0)
                return self.device() - begin
            return stop
        return start

    def wrap_program(self, program):
        def run(k):
            program(k)
            self.device.advance(1e-5 * k)
        run.flags = {"empty-graph"}
        return run


def test_run_records_the_device_timer_and_the_flags_programs_raise(tmp_path):
    from bench.rank_loop import run_spmd
    from bench.settings import settings_of

    args = argparse.Namespace(nranks=None, backend="fake", ops="allreduce", sizes="64", dtype="int32",
                              out=str(tmp_path / "run"), timeout=0, repeats=1, seed=7, ci_target=0.02,
                              min_samples=5, max_samples=100, budget=1.0, sample_time=2.0 ** -12,
                              quiet=True, noise=False, ceilings=False, device=None, cuda_graph=False,
                              timer="cuda")
    plan = Plan([EventBackend], [get_op("allreduce")], [64], "int32",
                Sampling(sample_time_s=args.sample_time, min_samples=5, max_samples=20), 1, False, {},
                settings=settings_of(args))
    assert run_spmd(plan, World("fake", 0, 1), argv=["run"], clock=EventBackend.clock).rc == 0
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["timer"]["name"] == "CUDA events" and meta["settings"]["timer"] == "cuda"
    assert meta["timer"]["measured_resolution_s"] == pytest.approx(2e-6)
    assert "measured_resolution_s" in meta["timer"]["host"]
    summary = load_run(tmp_path / "run")[2]
    assert summary["flags"].iloc[0] == "no-op;empty-graph"
    # the device's time (10 us per call, plus the 2 us between its events), not the host's
    assert np.median(load_run(tmp_path / "run")[1].time_s) < 1.3e-5
    # the summary over several launches keeps what the programs raised
    from bench.local_launcher import add_launch, merge_launches

    wrong, raised = {}, {}
    add_launch(tmp_path / "run", wrong, raised)
    merge_launches(tmp_path / "run", wrong, raised)
    assert load_run(tmp_path / "run")[2]["flags"].iloc[0] == "no-op;empty-graph"


@pytest.mark.parametrize("backend", BACKENDS)
def test_timer_cuda_needs_gpu_buffers(tmp_path, backend):
    r = run_commbench("run", "--backend", backend, "--timer", "cuda", "--out", tmp_path / "x", timeout=60)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        f"commbench: error: --timer cuda needs buffers on a GPU (--device cuda); backend "
        f"{backend} runs on cpu"]


def test_an_empty_graph_prints_no_bandwidth_and_is_implausible():
    from analysis.check_verdicts import implausible_reason
    from bench.core.tables import format_summary

    row = dict(backend="nccl", op="broadcast", nranks=2, dtype="float32", nbytes=1 << 30, count=1 << 28,
               median_s=4e-12, ci_low_s=4e-12, ci_high_s=4e-12, algbw_Bps=2.7e20, busbw_Bps=2.7e20,
               msg_rate_per_s=2.5e11, wrong=0, samples=10, efficiency=float("nan"), flags="empty-graph")
    line = format_summary([row]).splitlines()[-1]
    assert "[empty-graph]" in line and "270000000000.00" not in line and "2.7e+11" not in line
    why = implausible_reason(None, types.SimpleNamespace(**row), None, 1)
    assert "captured no GPU work (flag empty-graph)" in why


def test_graph_program_captures_outside_the_timed_region():
    """One eager warm-up, one capture per new k, prepared by the harness before its clock
    starts; replays otherwise."""
    log, clock = [], FakeClock()
    torch, program = fake_cuda(log, clock)
    run = GraphProgram(torch, program, "cuda:0")
    run(1)  # the validation call: warm-up, capture, replay
    assert log == [("eager", 1), ("capture", 1), ("replay", 1)]
    log.clear()
    starts = []
    sync = Sync(barrier=lambda: starts.append(len(log)), allreduce_max=lambda a: a, clock=clock)
    measure(run, 1, sync, Sampling(min_samples=3, max_samples=3), calls=4)
    assert log == [("capture", 4)] + [("replay", 4)] * 3
    assert starts[0] == 1  # the capture happened before the first sample's barrier


def test_the_check_call_is_one_replay_on_the_initial_data():
    """prepare_case runs a graph's warm-up and capture (which run the op) before it writes
    the initial data, so the validation call is exactly one replay: an op that is not
    idempotent (in-place allreduce on several ranks) is checked on what one call did."""
    from bench.rank_loop import prepare_case

    log, clock = [], FakeClock()
    torch, fake_program = fake_cuda(log, clock)

    class GraphBackend(FakeBackend):
        def write(self, buf, values):
            log.append(("write", len(buf)))
            super().write(buf, values)

        def wrap_program(self, program):
            return GraphProgram(torch, fake_program, "cuda:0")

    be = GraphBackend()
    case = get_op("allreduce").case(4096, 1, 4)
    program, recv = prepare_case(be, case, be.alloc(1 << 16), "int32")
    assert log[:2] == [("eager", 1), ("capture", 1)] and log[2][0] == "write"
    log.clear()
    program(1)
    assert log == [("replay", 1)]


def test_an_idle_rank_raises_no_flags_for_the_pair_that_ran():
    """pingpong on 3 ranks: rank 1 sits out and its (empty) graph is no finding about the
    case; the ranks that ran report theirs."""
    from bench.harness import Measurement
    from bench.rank_loop import _gather_rows

    case = get_op("pingpong").case(64, 3, 4)
    m = Measurement(calls=4, local_s=[1e-6], flags=("empty-graph",))
    for rank, active in ((0, True), (1, False), (2, True)):
        be = types.SimpleNamespace(rank=rank, gather=lambda obj: [obj])
        job = types.SimpleNamespace(case=case, be=be, world=None, world_of=None)
        (got,) = _gather_rows(job, rank, m, 0)
        assert got[4] == (("empty-graph",) if active else ()) and (got[1] is None) != active
