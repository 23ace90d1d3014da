"""A one-rank backend on plain numpy and a clock that moves only when the backend works, so
the harness can be tested exactly, without MPI and without time passing."""
from __future__ import annotations

import numpy as np

from bench.backends import Backend


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class FakeBackend(Backend):
    """Rank 0 of 1: every collective is a copy, and every data-plane call costs `cost(nbytes)`
    seconds of fake time."""
    name = "fake"
    launcher = "fake"
    dtypes = ("int32", "float32", "float64")
    clock = FakeClock()
    cost = staticmethod(lambda nbytes: 2.0 ** -19 + nbytes * 2.0 ** -33)
    corrupt = False  # make every collective produce a wrong element

    def __init__(self, world=None):
        self.rank, self.size = 0, 1
        self.calls = 0

    def allreduce_max(self, array):
        return np.array(array, dtype=float)

    def gather(self, obj):
        return [obj]

    def bcast(self, obj):
        return obj

    def abort(self, code):
        raise SystemExit(code)

    def versions(self):
        return {"library": "fake"}

    def alloc(self, nbytes):
        return np.zeros(nbytes, dtype=np.uint8)

    def view(self, arena, offset, count, dtype):
        return arena[offset:offset + count * np.dtype(dtype).itemsize].view(dtype)

    def write(self, buf, values):
        buf[...] = values

    def read(self, buf):
        return np.asarray(buf)

    def _costly(self, nbytes, work=lambda: None):
        def call():
            self.calls += 1
            work()
            self.clock.advance(self.cost(nbytes))
        return call

    def _copy(self, send, recv):
        def work():
            recv[...] = send
            if self.corrupt:
                recv[0] += 1
        return self._costly(recv.nbytes, work)

    allreduce = allgather = reduce_scatter = alltoall = _copy

    def broadcast(self, buf, root):
        return self._costly(buf.nbytes)

    def barrier(self):
        return self._costly(0)


class FaultyFleet:
    """A stand-in for measuring groups of nodes at once, for the tests and benchmarks of
    analysis.finder only (never a backend): a group's time is 1 ms × the largest slowdown among
    its members and the links between them × lognormal noise (sigma `noise`), and with
    probability `spike_p` a transient spike multiplies it by a factor drawn from `spike`."""

    def __init__(self, nnodes, bad_nodes=(), slowdown=3.0, bad_links=(), link_slowdown=3.0,
                 noise=0.03, spike_p=0.0, spike=(1.5, 3.0), seed=0):
        width = len(str(nnodes - 1))
        self.nodes = [f"node{i:0{width}d}" for i in range(nnodes)]
        self.factor = {n: 1.0 for n in self.nodes}
        for n in bad_nodes:
            self.factor[self.nodes[n] if isinstance(n, int) else n] = slowdown
        self.links = {frozenset(self.nodes[i] if isinstance(i, int) else i for i in pair)
                      for pair in bad_links}
        self.link_slowdown, self.noise = link_slowdown, noise
        self.spike_p, self.spike = spike_p, spike
        self.rng = np.random.default_rng(seed)
        self.calls = 0

    def bad(self) -> list:
        return sorted(n for n, f in self.factor.items() if f != 1.0)

    def __call__(self, groups) -> np.ndarray:
        self.calls += 1
        slow = np.array([max(max(self.factor[n] for n in g),
                             self.link_slowdown if any(frozenset((a, b)) in self.links
                                                       for i, a in enumerate(g) for b in g[i + 1:])
                             else 1.0) for g in groups])
        t = 1e-3 * slow * np.exp(self.rng.normal(0, self.noise, len(groups)))
        hit = self.rng.random(len(groups)) < self.spike_p
        t[hit] *= self.rng.uniform(*self.spike, int(hit.sum()))
        return t
