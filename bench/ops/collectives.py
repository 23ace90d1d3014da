"""The collectives commbench measures: allreduce (out of place and in place), allgather,
reduce_scatter, alltoall, broadcast and barrier. Each is one call of the backend's prepared
primitive (Op.program); what S means and the bus factor follow nccl-tests."""
from __future__ import annotations

import numpy as np

from bench.ops.data import Periodic, constant, values
from bench.ops.op import Op, PerRankBlocks


class AllReduce(Op):
    """Sum over ranks, out of place. S = bytes of the array on each rank; busbw = algbw·2(n−1)/n."""
    name = "allreduce"
    primitive = "allreduce"
    aliases: tuple[str, ...] = ("all_reduce",)
    tool_names = {"nccl-tests": "all_reduce", "imb": "allreduce", "osu": r"\ballreduce\b"}
    reduces = True
    s_means = "bytes of the array on each rank"
    bus_factor_text = "2(n-1)/n"

    def bus_factor(self, n):
        return 2 * (n - 1) / n

    def expected(self, case, rank):
        return sum(values(r, case.recv_count) for r in range(case.nranks))


class AllReduceInPlace(AllReduce):
    """Sum over ranks, in place (torch's all_reduce as DDP uses it, MPI_IN_PLACE, nccl-tests'
    in-place mode): no copy of the input. The first call is the one checked; later calls reduce
    the previous result, so the values grow (wrap or saturate), which does not change the time.
    S = bytes of the array on each rank; busbw = algbw·2(n−1)/n."""
    name = "allreduce_inplace"
    primitive = "allreduce_inplace"
    aliases, tool_names = (), {}  # other tools' allreduce is the out-of-place one
    default = False  # run by name: `--ops all` keeps the out-of-place allreduce

    def counts(self, nbytes, n, itemsize):
        return 0, max(1, nbytes // itemsize)

    def s_bytes(self, case):
        return case.recv_count * case.itemsize

    def initial(self, case, rank):
        return None, values(rank, case.recv_count)

    def call_args(self, send, recv):
        return (recv,)


class AllGather(PerRankBlocks):
    """Every rank's block to every rank. S = bytes of the whole output (block × n);
    busbw = algbw·(n−1)/n."""
    name = "allgather"
    primitive = "allgather"
    aliases = ("all_gather",)
    tool_names = {"nccl-tests": "all_gather", "imb": "allgather", "osu": r"\ballgather\b"}
    beta_source = 1
    s_means = "bytes of the whole output (per-rank block x n)"

    def block_counts(self, block, n):
        return block, block * n

    def s_bytes(self, case):
        return case.recv_count * case.itemsize

    def expected(self, case, rank):
        return Periodic.concat(values(r, case.send_count) for r in range(case.nranks))


class ReduceScatter(PerRankBlocks):
    """Sum over ranks, block r to rank r. S = bytes of the whole input (block × n);
    busbw = algbw·(n−1)/n."""
    name = "reduce_scatter"
    primitive = "reduce_scatter"
    aliases = ("reducescatter", "reduce_scatter_block")
    tool_names = {"nccl-tests": "reduce_scatter", "imb": "reduce_scatter", "osu": r"\breduce[_ -]scatter\b"}
    reduces = True
    s_means = "bytes of the whole input (per-rank block x n)"

    def block_counts(self, block, n):
        return block * n, block

    def s_of_tool_size(self, size, n):
        return size  # tools print the whole input, as S

    def expected(self, case, rank):
        offset = rank * case.recv_count
        return sum(values(r, case.recv_count, offset) for r in range(case.nranks))


class AllToAll(PerRankBlocks):
    """Block d of every rank goes to rank d. S = bytes each rank sends in total (block × n);
    busbw = algbw·(n−1)/n."""
    name = "alltoall"
    primitive = "alltoall"
    aliases = ("all_to_all", "alltoall_single")
    tool_names = {"nccl-tests": "alltoall", "imb": "alltoall",
                  "osu": r"\ball-to-all\b( personalized exchange)?|\balltoall\b"}
    beta_source = 3
    s_means = "bytes each rank sends in total (per-peer block x n)"

    def block_counts(self, block, n):
        return block * n, block * n

    @staticmethod
    def _block(src, dst, count):
        return Periodic((count, (np.arange(8) + 7 * src + 3 * dst) % 8))

    def initial(self, case, rank):
        block = case.send_count // case.nranks
        send = Periodic.concat(self._block(rank, d, block) for d in range(case.nranks))
        return send, constant(case.recv_count, 9)

    def expected(self, case, rank):
        block = case.recv_count // case.nranks
        return Periodic.concat(self._block(s, rank, block) for s in range(case.nranks))


class Broadcast(Op):
    """Rank 0's array to every rank, in place. S = bytes of the array; busbw = algbw."""
    name = "broadcast"
    primitive = "broadcast"
    aliases = ("bcast",)
    tool_names = {"nccl-tests": "broadcast", "imb": "bcast", "osu": r"\bbroadcast\b|\bbcast\b"}
    beta_source = 2
    s_means = "bytes of the array"

    def counts(self, nbytes, n, itemsize):
        return 0, max(1, nbytes // itemsize)

    def s_bytes(self, case):
        return case.recv_count * case.itemsize

    def initial(self, case, rank):
        return None, values(0, case.recv_count) if rank == 0 else constant(case.recv_count, 7)

    def expected(self, case, rank):
        return values(0, case.recv_count)

    def call_args(self, send, recv):
        return recv, 0  # in place, from rank 0


class Barrier(Op):
    """All ranks wait for all. No data: S = 0, no bandwidth."""
    name = "barrier"
    primitive = "barrier"
    tool_names = {"imb": "barrier", "osu": r"\bbarrier\b"}
    s_means = "none (no data)"
    bus_factor_text = "-"
    sized = False

    def counts(self, nbytes, n, itemsize):
        return 0, 0

    def bus_factor(self, n):
        return 0.0

    def initial(self, case, rank):
        return None, None

    def expected(self, case, rank):
        return None

    def call_args(self, send, recv):
        return ()

