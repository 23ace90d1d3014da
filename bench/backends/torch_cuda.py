"""CUDA timing and graph capture of a torch backend: device synchronisation, CUDA-event timers,
the device copy rate, and --cuda-graph programs (GraphProgram). TorchCudaTiming is a mixin of
TorchBackend (bench/backends/torch_dist.py), which sets self.torch, self.device and
self.cuda_graph."""
from __future__ import annotations

import warnings
from functools import partial

from bench.core.rundir import EMPTY_GRAPH


class TorchCudaTiming:
    """sync, device_timer, device_copy_rate and wrap_program: no-ops on the CPU."""

    def sync(self):
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def device_timer(self):
        if self.device.type != "cuda":
            return None
        event = partial(self.torch.cuda.Event, enable_timing=True)

        def start():
            begin, end = event(), event()
            begin.record()

            def stop():
                end.record()
                end.synchronize()
                return begin.elapsed_time(end) * 1e-3  # torch gives milliseconds
            return stop
        return start

    def device_copy_rate(self, nbytes, repeats):
        if self.device.type != "cuda":
            return None
        torch = self.torch
        src = torch.ones(nbytes, dtype=torch.uint8, device=self.device)
        dst = torch.empty_like(src)
        dst.copy_(src)  # first touch
        start, best = self.device_timer(), float("inf")
        for _ in range(repeats):
            stop = start()
            dst.copy_(src)
            best = min(best, stop())
        return nbytes / best if best > 0 else float("nan")

    # --- CUDA graphs -------------------------------------------------------------------------
    def wrap_program(self, program):
        if not self.cuda_graph:
            return program
        return GraphProgram(self.torch, program, self.device)


GRAPH_CALLS = 100  # calls one CUDA graph holds at most (a sample replays it as often as k needs)


class GraphProgram:
    """program(k) run from CUDA graphs: k // g replays of a graph of g = min(k, GRAPH_CALLS)
    calls, then one replay of a graph of the rest. A capture thus never holds more than
    GRAPH_CALLS calls (a capture of thousands takes seconds, and calibration tries several k),
    at most two graphs are kept, and `prepare(k)` (which the harness calls before its clock
    starts) captures what k needs. A capture that recorded no GPU work (an op that moves nothing,
    such as broadcast on one rank) is remembered in `flags`: its replays time nothing."""

    def __init__(self, torch, program, device, most=GRAPH_CALLS):
        self.torch, self.program, self.device, self.most = torch, program, device, most
        self.graphs = {}   # calls -> its captured graph
        self.plan = None   # (k, g, full replays, rest)
        self.warm = False
        self.flags = set()

    def prepare(self, k):
        if self.plan and self.plan[0] == k:
            return
        if not self.warm:
            self._warm_up()
        g = min(k, self.most)
        full, rest = divmod(k, g)
        wanted = {g, rest} - {0}
        self.graphs = {calls: graph for calls, graph in self.graphs.items() if calls in wanted}
        for calls in sorted(wanted - set(self.graphs)):
            self.graphs[calls] = self._capture(calls)
        self.plan = (k, g, full, rest)

    def __call__(self, k):
        if not self.plan or self.plan[0] != k:
            self.prepare(k)
        _, g, full, rest = self.plan
        replay = self.graphs[g].replay
        for _ in range(full):
            replay()
        if rest:
            self.graphs[rest].replay()

    def _warm_up(self):
        # One eager call on a side stream first: NCCL creates communicators (p2p ones
        # lazily) on first use, which must not happen inside a capture.
        torch = self.torch
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            self.program(1)
        torch.cuda.current_stream(self.device).wait_stream(side)
        torch.cuda.synchronize(self.device)
        self.warm = True

    def _capture(self, calls):
        torch = self.torch
        graph = torch.cuda.CUDAGraph()
        # torch warns "The CUDA Graph is empty" when a capture holds no node (its only sign)
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            with torch.cuda.graph(graph):
                self.program(calls)
        torch.cuda.synchronize(self.device)
        for warning in said:
            if "graph is empty" in str(warning.message).lower():
                self.flags.add(EMPTY_GRAPH)
            else:
                warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                       warning.lineno)
        return graph
