"""torch.distributed backends: gloo, nccl, ucc and torch's own MPI process group ("torch-mpi",
since "mpi" is mpi4py's). One class, parametrised by the torch backend name; torch is imported
only when a backend is created or asked about its options.

Semantics and timing, so results compare with the MPI backend and with nccl-tests:
- allreduce is out of place, as the op defines it: torch reduces in place, so the prepared call
  is `recv.copy_(send); all_reduce(recv)`, and the copy is part of the timed call (as in
  nccl-tests' out-of-place mode, where NCCL reads send and writes recv). allgather,
  reduce_scatter and alltoall are out of place in torch itself (all_gather_single,
  reduce_scatter_single, all_to_all_single); broadcast is in place.
- barrier is dist.barrier; on nccl that is a one-element all-reduce on the GPU that the host
  waits for (under --cuda-graph: the all-reduce alone, which a graph can hold).
- The harness waits on a host barrier of a gloo group before each sample, and device work is
  timed with the host clock after torch.cuda.synchronize() (as nccl-tests), so a sample covers
  the k calls from the first launch to the end of the last kernel.
- --cuda-graph (nccl, --device cuda): the k calls of a sample run as replays of CUDA graphs of
  at most GRAPH_CALLS calls each, captured before the clock starts (after one eager warm-up
  call that creates the communicators): latency without launch cost, like nccl-tests -G.
  A capture that holds no GPU work marks the case `empty-graph`.
- --timer cuda (--device cuda): a sample is timed by CUDA events recorded on the current stream
  before and after the k calls (torch makes that stream wait for the collectives' own).
- Control traffic (agreement on sample times, gathering results) goes over a gloo group on the
  host, so no device synchronisation sneaks into it.
- CPU buffers are one anonymous mmap arena per rank, as in the MPI backend (same page backing,
  so mpi and gloo compare on equal buffers); CUDA buffers are one torch.empty arena per rank.

Here: the process group and the primitives; buffers in torch_buffers.py, CUDA timing and
graph capture in torch_cuda.py.
"""
from __future__ import annotations

import copy
import datetime
import importlib.util
import os
import sys
from functools import partial

import numpy as np

from bench.backends import Backend
from bench.backends.torch_buffers import TorchBuffers
from bench.backends.torch_cuda import TorchCudaTiming
from bench.core.errors import UsageError
from bench.settings import DEFAULT_TIMEOUT_S

_CONTROL: dict = {}  # the gloo control group, shared by every torch backend of the run


def _torch_problem(name: str) -> str | None:
    if importlib.util.find_spec("torch") is None:
        return (f"backend {name} needs torch: pip install 'commbench[torch]' (choose the torch "
                "build first: a CPU build such as torch==2.13.0 is enough for gloo)")
    return None


class TorchBackend(TorchBuffers, TorchCudaTiming, Backend):
    name = ""
    torch_backend = ""   # the name torch.distributed knows it by
    launcher = "torch"
    dtypes = ("int8", "uint8", "int32", "int64", "float16", "bfloat16", "float32", "float64")
    devices: tuple[str, ...] = ("cpu", "cuda")
    default_device = "cpu"
    graphs = False
    rank_memory = 512 << 20  # a rank with torch loaded
    # Post the non-blocking sends and receives of a window together (batch_isend_irecv, an NCCL
    # group) when waiting for them. Needed on nccl: there each p2p call is a kernel on one
    # stream per peer pair, so bibw's "64 receives, then 64 sends" on both sides would wait
    # on each other for ever. COMMBENCH_TORCH_BATCH_P2P=1/0 overrides it.
    batch_p2p = False
    unsupported_on_cuda: dict = {}  # primitive -> why it cannot run on CUDA tensors
    one_gpu_per_rank = False        # the library refuses two ranks on one GPU

    # --- before any rank starts ------------------------------------------------------------
    @classmethod
    def problem(cls):
        missing = _torch_problem(cls.name)
        if missing or cls.torch_backend == "gloo":
            return missing  # gloo is in every torch build: no need to import torch to know
        import torch
        import torch.distributed as dist

        available = {"nccl": "is_nccl_available", "ucc": "is_ucc_available",
                     "mpi": "is_mpi_available"}[cls.torch_backend]
        if not dist.is_available() or not getattr(dist, available)():
            return f"torch {torch.__version__} has no {cls.torch_backend} backend"
        return None

    @classmethod
    def check_options(cls, settings):
        super().check_options(settings)
        if cls.device_of(settings) == "cuda":
            import torch

            if not torch.cuda.is_available():
                build = "" if torch.version.cuda else f" (torch {torch.__version__} is a CPU build)"
                raise UsageError(f"backend {cls.name} with --device cuda: no CUDA device visible{build}")

    @classmethod
    def op_problem(cls, op, settings):
        if settings.cuda_graph and op.host_steps:
            return f"{op.name} runs host code between its calls, which a CUDA graph cannot hold"
        return super().op_problem(op, settings)

    @classmethod
    def unsupported_for(cls, settings) -> dict:
        if cls.device_of(settings) == "cuda" and cls.unsupported_on_cuda:
            return {**cls.unsupported, **cls.unsupported_on_cuda}
        return cls.unsupported

    @classmethod
    def check_ranks(cls, settings, ranks_here: int) -> None:
        """nccl: one GPU per rank; more ranks on a host than GPUs visible is refused (NCCL
        would stop the job with "Duplicate GPU detected")."""
        if cls.one_gpu_per_rank and cls.device_of(settings) == "cuda":
            import torch

            visible = torch.cuda.device_count()
            if ranks_here > visible:
                raise UsageError(f"backend {cls.name}: {ranks_here} ranks on this host but "
                                 f"{visible} GPU(s) visible; {cls.name} needs one GPU per rank")

    @classmethod
    def create(cls, world, settings):
        return cls(world, device=cls.device_of(settings), cuda_graph=settings.cuda_graph,
                   timeout_s=settings.timeout_s)

    # --- setup -----------------------------------------------------------------------------
    def __init__(self, world, device="cpu", cuda_graph=False, timeout_s=DEFAULT_TIMEOUT_S):
        import torch
        import torch.distributed as dist

        self.torch, self.dist, self.cuda_graph = torch, dist, cuda_graph
        override = os.environ.get("COMMBENCH_TORCH_BATCH_P2P", "")
        self.batch_p2p = override == "1" if override in ("0", "1") else type(self).batch_p2p
        if device == "cuda":
            self.device = torch.device("cuda", _cuda_index(torch.cuda.device_count(), world.local_rank))
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")
        # The process group's own timeout: a collective that waits longer raises on this rank
        # (and the commbench watchdog, with the same limit, ends a rank stuck outside torch).
        timeout = self.timeout = datetime.timedelta(seconds=timeout_s)
        self._global = None  # world rank of each rank of this backend's group (None: the same)
        if not dist.is_initialized():
            if self.torch_backend == "mpi":
                dist.init_process_group("mpi")  # ranks and world from the MPI launcher
                self.init_method = "mpi"
            else:
                from bench.backends.mpi import agree_address
                from bench.world import rendezvous

                mpi4py = importlib.util.find_spec("mpi4py") is not None
                kw = rendezvous(world, agree=agree_address if mpi4py else None)
                self.init_method = kw["init_method"].split("://")[0] + "://"
                dist.init_process_group(self.torch_backend, timeout=timeout, **kw)
            self.group = None  # the default group
        else:  # a second torch backend in the same run: its own group over the same ranks
            self.group = dist.new_group(backend=self.torch_backend, timeout=timeout)
            self.init_method = "new_group"
        self.rank, self.size = dist.get_rank(), dist.get_world_size()
        if dist.get_backend() in ("gloo", "mpi"):
            self.control = None  # the default group already runs on the host
        else:
            if "group" not in _CONTROL:
                _CONTROL["group"] = dist.new_group(backend="gloo", timeout=timeout)
            self.control = _CONTROL["group"]
        if self.device.type == "cuda":
            self._one = torch.ones(1, dtype=torch.float32, device=self.device)
        # torch >= 2.13 names the out-of-place collectives *_single; older ones *_tensor
        self._all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
        self._reduce_scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor

    # --- control plane (untimed) -----------------------------------------------------------
    def allreduce_max(self, array):
        t = self.torch.from_numpy(np.array(array, dtype=np.float64))
        self.dist.all_reduce(t, op=self.dist.ReduceOp.MAX, group=self.control)
        return t.numpy()

    def gather(self, obj):
        out = [None] * self.size if self.rank == 0 else None
        self.dist.gather_object(obj, out, dst=self._g(0), group=self.control)
        return out

    def bcast(self, obj):
        box = [obj]
        self.dist.broadcast_object_list(box, src=self._g(0), group=self.control)
        return box[0]

    def _g(self, rank):
        """torch names peers and roots by world rank, also in a sub-group."""
        return rank if self._global is None else self._global[rank]

    def split(self, color, key):
        """This backend on the group of the ranks with the same color, ordered by key
        (collective: torch has every rank take part in creating every group)."""
        dist = self.dist
        everyone = [None] * self.size
        dist.all_gather_object(everyone, (color, key, self._g(self.rank)), group=self.control)
        mine = None
        for c in sorted({c for c, _, _ in everyone}):
            ranks = [g for _, _, g in sorted((e for e in everyone if e[0] == c), key=lambda e: (e[1], e[2]))]
            group = self._new_group(ranks, self.torch_backend)
            control = group if self.torch_backend == "gloo" else self._new_group(ranks, "gloo")
            if c == color:
                mine = group, control
        sub = copy.copy(self)
        sub.group, sub.control = mine
        # the group's own numbering is the authority (it follows the order given, by key)
        sub.rank, sub.size = dist.get_rank(sub.group), dist.get_world_size(sub.group)
        sub._global = [dist.get_global_rank(sub.group, r) for r in range(sub.size)]
        sub.init_method = "split"
        return sub

    def _new_group(self, ranks, backend):
        try:  # group ranks in the order given (by key), not sorted by world rank
            return self.dist.new_group(ranks=ranks, backend=backend, timeout=self.timeout,
                                       sort_ranks=False)
        except TypeError:  # older torch: sorted, so order by world rank
            return self.dist.new_group(ranks=sorted(ranks), backend=backend, timeout=self.timeout)

    def control_barrier(self):
        return partial(self.dist.barrier, group=self.control)

    def abort(self, code):
        # The launcher (torchrun, mpiexec, commbench's own) ends the other ranks when one exits
        # with an error; a collective waiting on this rank would otherwise time out by itself.
        sys.stderr.flush()
        os._exit(code)

    def finalize(self):
        if self.group is None and self.dist.is_initialized():
            self.dist.destroy_process_group()

    def versions(self):
        torch = self.torch
        info = {"library": f"torch {torch.__version__} {self.torch_backend}",
                "torch": torch.__version__, "torch_backend": self.torch_backend,
                "device": self.device.type, "init_method": self.init_method,
                "cuda": torch.version.cuda, "allreduce": "recv.copy_(send) + all_reduce(recv)",
                "p2p_windows": "batch_isend_irecv" if self.batch_p2p else "isend/irecv each"}
        if self.device.type == "cuda":
            info.update(cuda_device=torch.cuda.get_device_name(self.device),
                        cuda_graph=bool(self.cuda_graph),
                        buffers="one torch.empty arena per rank on its GPU, zero-filled before timing",
                        timing="host clock after torch.cuda.synchronize(), or CUDA events "
                               "(--timer cuda: settings.timer)")
        if self.torch_backend == "nccl":
            try:
                info["nccl"] = ".".join(map(str, torch.cuda.nccl.version()))
            except Exception:  # noqa: BLE001 - informational only
                pass
        info["nccl_env"] = {k: v for k, v in sorted(os.environ.items()) if k.startswith("NCCL_")}
        return info


    # --- data plane ------------------------------------------------------------------------
    # Arguments go positionally (orders as in torch 2.x): a partial with keywords takes
    # CPython's slow call path and torch's logging wrapper rebuilds the keyword dict on every
    # call, about 1 us per call that a bare loop does not pay.
    def allreduce(self, send, recv):
        all_reduce, group, copy, total = self.dist.all_reduce, self.group, recv.copy_, self.dist.ReduceOp.SUM

        def call():
            copy(send)  # out of place, as the op defines it; torch reduces in place
            all_reduce(recv, total, group)
        return call

    def allreduce_inplace(self, buf):
        return partial(self.dist.all_reduce, buf, self.dist.ReduceOp.SUM, self.group)

    def allgather(self, send, recv):
        return partial(self._all_gather, recv, send, self.group)

    def reduce_scatter(self, send, recv):
        return partial(self._reduce_scatter, recv, send, self.dist.ReduceOp.SUM, self.group)

    def alltoall(self, send, recv):
        return partial(self.dist.all_to_all_single, recv, send, None, None, self.group)

    def broadcast(self, buf, root):
        return partial(self.dist.broadcast, buf, self._g(root), self.group)

    def barrier(self):
        if self.device.type == "cuda" and self.cuda_graph:
            # dist.barrier waits on the host, which a graph cannot hold: the GPU-side part only
            return partial(self.dist.all_reduce, self._one, self.dist.ReduceOp.SUM, self.group)
        if self.torch_backend == "nccl":
            return partial(self.dist.barrier, self.group, False, [self.device.index])
        return partial(self.dist.barrier, self.group)

    def send(self, buf, peer):
        return partial(self.dist.send, buf, self._g(peer), self.group)

    def recv(self, buf, peer):
        return partial(self.dist.recv, buf, self._g(peer), self.group)

    def isend(self, buf, peer):
        if self.batch_p2p:
            op = self.dist.P2POp(self.dist.isend, buf, self._g(peer), self.group)
            return lambda: op  # posted by waitall, with the rest of the window
        return partial(self.dist.isend, buf, self._g(peer), self.group)

    def irecv(self, buf, peer):
        if self.batch_p2p:
            op = self.dist.P2POp(self.dist.irecv, buf, self._g(peer), self.group)
            return lambda: op
        return partial(self.dist.irecv, buf, self._g(peer), self.group)

    def waitall(self, requests):
        if self.batch_p2p:
            requests = self.dist.batch_isend_irecv(requests)
        for request in requests:
            request.wait()


def _cuda_index(visible: int, local_rank: int) -> int:
    """The GPU of this rank: LOCAL_RANK's, or the only visible one (a launcher that gives each
    rank its own CUDA_VISIBLE_DEVICES)."""
    if visible == 0:
        raise UsageError("--device cuda: no CUDA device visible to this rank")
    if visible == 1:
        return 0
    if local_rank >= visible:
        raise UsageError(f"local rank {local_rank} has no GPU of its own: {visible} visible "
                         "(one GPU per rank)")
    return local_rank


class GlooBackend(TorchBackend):
    name = torch_backend = "gloo"
    unsupported_on_cuda = {p: "gloo sends no CUDA tensors point to point (its collectives take "
                              "them): use --device cpu, or nccl" for p in ("send", "recv", "isend", "irecv")}


class NCCLBackend(TorchBackend):
    name = torch_backend = "nccl"
    devices = ("cuda",)
    default_device = "cuda"
    graphs = True
    batch_p2p = True
    one_gpu_per_rank = True


class UCCBackend(TorchBackend):
    name = torch_backend = "ucc"


class TorchMPIBackend(TorchBackend):
    """torch's MPI process group (a torch built from source against an MPI): started by mpiexec."""
    name = "torch-mpi"
    torch_backend = "mpi"
    launcher = "mpi"
    unsupported = {"reduce_scatter": "torch's mpi backend has no reduce_scatter"}
