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
