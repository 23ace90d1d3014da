"""Backends: the small set of primitives every op is built from. A backend module is imported
only when that backend is used, and imports its library (mpi4py, torch) only when created."""
from __future__ import annotations

import importlib

from bench.errors import UsageError

# name -> "module:Class"
BACKENDS = {
    "mpi": "bench.backends.mpi:MPIBackend",
}


def backend_class(name: str):
    try:
        module, cls = BACKENDS[name].split(":")
    except KeyError:
        raise UsageError(f"no such backend {name!r}; known: {', '.join(BACKENDS)}") from None
    return getattr(importlib.import_module(module), cls)


class Backend:
    """What a backend provides. Data-plane methods return *prepared* zero-argument callables
    (like MPI persistent requests), so the timed loop pays for the call and nothing else.

    control plane (untimed): rank, size, allreduce_max, gather, bcast, abort, finalize
    buffers: alloc, view, write, read, sync
    data plane: allreduce, allgather, reduce_scatter, alltoall, broadcast, barrier,
                send, recv, isend, irecv (their callables start a request and return it),
                waitall (a plain function of a list of requests)
    """
    name = ""
    launcher = "mpi"   # how local ranks are started: "mpi" (mpiexec) or "torch" (own spawner)
    dtypes: tuple[str, ...] = ()

    @classmethod
    def problem(cls) -> str | None:
        """Why this backend cannot run here (a missing package), found without importing it."""
        return None

    @classmethod
    def check_dtype(cls, dtype: str) -> None:
        if dtype not in cls.dtypes:
            raise UsageError(f"backend {cls.name} has no dtype {dtype!r}; known: {', '.join(cls.dtypes)}")

    def sync(self) -> None:
        """Wait until work issued so far has finished (device backends); host backends: no-op."""
