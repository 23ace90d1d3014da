"""Backends: the small set of primitives every op is built from. A backend module is imported
only when that backend is used, and imports its library (mpi4py, torch) only when created."""
from __future__ import annotations

import importlib

from bench.core.errors import UsageError

# name -> "module:Class"
BACKENDS = {
    "mpi": "bench.backends.mpi:MPIBackend",
    # torch.distributed; "torch-mpi" is torch's own MPI process group ("mpi" is mpi4py's)
    "gloo": "bench.backends.torch_dist:GlooBackend",
    "nccl": "bench.backends.torch_dist:NCCLBackend",
    "ucc": "bench.backends.torch_dist:UCCBackend",
    "torch-mpi": "bench.backends.torch_dist:TorchMPIBackend",
}

def backend_class(name: str):
    try:
        module, cls = BACKENDS[name].split(":")
    except KeyError:
        raise UsageError(f"no such backend {name!r}; known: {', '.join(BACKENDS)}") from None
    return getattr(importlib.import_module(module), cls)


class _Recorder:
    """Stands in for a backend while an op builds its program, to learn which primitives the
    op uses (so backends can refuse ops by primitive, with no per-op code anywhere). Any name
    counts: a primitive no backend has is then refused by name, not met as a traceback."""

    def __init__(self):
        self.used = set()

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        self.used.add(name)
        if name == "waitall":
            return lambda reqs: None
        return lambda *args, **kw: (lambda *a, **k: None)


def primitives_of(op) -> set:
    """The primitives op's program calls, on any rank (built for 2 ranks, nothing run)."""
    rec = _Recorder()
    if op.rank_problem(2) is None:
        case = op.case(64, 2, 4)
        for rank in (0, 1):
            op.program(rec, None, None, None, case, rank)
    else:
        case = op.case(64, 1, 4)
        op.program(rec, None, None, None, case, 0)
    return rec.used


class Backend:
    """What a backend provides. Data-plane methods return *prepared* zero-argument callables
    (like MPI persistent requests), so the timed loop pays for the call and nothing else.

    control plane (untimed): rank, size, allreduce_max, gather, bcast, abort, finalize,
                             control_barrier (what the harness waits on before each sample)
    buffers: alloc, view, write, read, sync
    data plane: allreduce, allreduce_inplace, allgather, reduce_scatter, alltoall, broadcast,
                barrier, send, recv, isend, irecv (their callables start a request and return it),
                waitall (a plain function of a list of requests)
    """
    name = ""
    launcher = "mpi"   # how local ranks are started: "mpi" (mpiexec) or "torch" (own spawner)
    dtypes: tuple[str, ...] = ()
    devices: tuple[str, ...] = ("cpu",)   # where buffers may live (--device)
    default_device = "cpu"
    graphs = False     # can capture a sample's k calls in a CUDA graph (--cuda-graph)
    unsupported: dict = {}  # primitive -> why this backend lacks it
    rank_memory = 64 << 20  # about what one rank process needs besides its buffers (bytes)
    loop = "python"    # how program(k) runs its k calls (meta.json → method.loop)

    @classmethod
    def problem(cls) -> str | None:
        """Why this backend cannot run here (a missing package), found without importing it."""
        return None

    @classmethod
    def check_dtype(cls, dtype: str) -> None:
        if dtype not in cls.dtypes:
            raise UsageError(f"backend {cls.name} has no dtype {dtype!r}; known: {', '.join(cls.dtypes)}")

    @classmethod
    def device_of(cls, settings) -> str:
        """Where this backend's buffers live with these settings (bench.settings.Settings)."""
        return settings.device or cls.default_device

    @classmethod
    def check_options(cls, settings) -> None:
        """Reject settings this backend cannot honour (raise UsageError), before ranks start."""
        device = cls.device_of(settings)
        if device not in cls.devices:
            raise UsageError(f"backend {cls.name} has no --device {device} (it runs on "
                             f"{', '.join(cls.devices)})")
        if settings.timer == "cuda" and device != "cuda":
            raise UsageError(f"--timer cuda needs buffers on a GPU (--device cuda); backend "
                             f"{cls.name} runs on {device}")
        if settings.cuda_graph and not cls.graphs:
            raise UsageError(f"--cuda-graph: backend {cls.name} cannot capture CUDA graphs "
                             "(it needs a backend that enqueues work on the GPU: nccl, --device cuda)")

    @classmethod
    def op_problem(cls, op, settings) -> str | None:
        """Why this backend cannot run `op` with these settings, or None."""
        unsupported = cls.unsupported_for(settings)
        for prim in sorted(primitives_of(op)):
            if prim in unsupported:
                return unsupported[prim]
            if not cls.has_primitive(prim):
                return f"backend {cls.name} has no {prim} primitive"
        return None

    @classmethod
    def unsupported_for(cls, settings) -> dict:
        """primitive -> why this backend lacks it with these settings (by default
        `unsupported`, whatever the settings)."""
        return cls.unsupported

    @classmethod
    def check_ranks(cls, settings, ranks_here: int) -> None:
        """Refuse (UsageError) more ranks on one host than this backend can place there."""

    @classmethod
    def has_primitive(cls, name: str) -> bool:
        """Whether this backend implements the data-plane primitive `name` (the base class
        declares them all; a backend implements what it can)."""
        return name in PRIMITIVES and getattr(cls, name) is not getattr(Backend, name)

    @classmethod
    def create(cls, world, settings):
        """The backend on this rank, configured by the run's settings (bench.settings)."""
        return cls(world)

    def sync(self) -> None:
        """Wait until work issued so far has finished (device backends); host backends: no-op."""

    def device_timer(self):
        """For --timer cuda: a function that starts timing on the device and returns the
        function that stops it and gives the seconds between; None where buffers are on the host."""
        return None

    def device_copy_rate(self, nbytes: int, repeats: int) -> float | None:
        """Bytes per second of a copy of nbytes within the device that holds the buffers (best
        of `repeats`), the ceiling of their bandwidth (bench.ceilings); None where buffers are
        on the host (their ceiling is the host's copy rate). Local: no other rank takes part."""
        return None

    def control_barrier(self):
        """The barrier the harness runs before each sample (untimed); the data-plane one by
        default. Device backends give a host barrier, so ranks start a sample together."""
        return self.barrier()

    def wrap_program(self, program):
        """Hook to change how program(k) runs (CUDA graph capture); identity by default."""
        return program

    def finalize(self) -> None:
        """Release the library's resources at the end of a run (collective on some)."""

    # --- what every backend implements (the harness and bench.rank_loop call these) ---------------
    rank: int
    size: int

    def versions(self) -> dict:
        """Library versions and settings, for meta.json."""
        raise NotImplementedError

    def allreduce_max(self, array):
        """Elementwise max over ranks of a small float64 array (untimed agreement)."""
        raise NotImplementedError

    def gather(self, obj):
        """obj of every rank, as a list at rank 0 (None elsewhere)."""
        raise NotImplementedError

    def bcast(self, obj):
        """Rank 0's obj on every rank."""
        raise NotImplementedError

    def abort(self, code: int) -> None:
        """End the whole job with this exit status."""
        raise NotImplementedError

    def alloc(self, nbytes: int):
        """This rank's arena: nbytes, page aligned, every page touched."""
        raise NotImplementedError

    def view(self, arena, offset: int, count: int, dtype: str):
        """count elements of dtype at byte offset of the arena (a buffer the primitives take)."""
        raise NotImplementedError

    def write(self, buf, values) -> None:
        raise NotImplementedError

    def read(self, buf):
        """buf's contents as a numpy array on the host."""
        raise NotImplementedError

    def count_wrong(self, buf, expected) -> int:
        """Elements of buf that differ from `expected` (bench.ops.data.count_wrong), where the
        backend can count them; by default on the host copy (read)."""
        from bench.ops.data import count_wrong

        return count_wrong(self.read(buf), expected)

    # --- data plane: each returns a prepared zero-argument callable ---------------------------
    def allreduce(self, send, recv):
        raise NotImplementedError

    def allreduce_inplace(self, buf):
        raise NotImplementedError

    def allgather(self, send, recv):
        raise NotImplementedError

    def reduce_scatter(self, send, recv):
        raise NotImplementedError

    def alltoall(self, send, recv):
        raise NotImplementedError

    def broadcast(self, buf, root):
        raise NotImplementedError

    def barrier(self):
        raise NotImplementedError

    def send(self, buf, peer):
        raise NotImplementedError

    def recv(self, buf, peer):
        raise NotImplementedError

    def isend(self, buf, peer):
        """Its callable starts the send and returns the request."""
        raise NotImplementedError

    def irecv(self, buf, peer):
        raise NotImplementedError

    def waitall(self, requests) -> None:
        """A plain function of a list of requests (not a prepared callable)."""
        raise NotImplementedError


# The data-plane primitives: what ops may call on a backend (declared on Backend above).
PRIMITIVES = ("allreduce", "allreduce_inplace", "allgather", "reduce_scatter", "alltoall",
              "broadcast", "barrier", "send", "recv", "isend", "irecv", "waitall")
