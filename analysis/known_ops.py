"""The ops analysis knows: commbench's own (bench.ops.OPS) and those only other tools measure
(FOREIGN_OPS: reduce, sendrecv, gather, scatter), described as an op is (bench.ops.op: what S
means, the names other tools give it, how their printed sizes map to S, which cost-model family
fits it) so that imported results carry the same facts; never run. `known_op` and
`canonical_name` find an op by any of its spellings."""
from __future__ import annotations

from bench.core.errors import UsageError
from bench.ops import OPS
from bench.ops.op import Op, PerRankBlocks


class _Foreign(Op):
    default = False

    def program(self, be, send, recv, ack, case, rank):
        raise UsageError(f"{self.name} is only imported from other tools; commbench does not run it")


class Reduce(_Foreign):
    """Sum over ranks to a root. S = bytes of the array; busbw = algbw."""
    name = "reduce"
    s_means = "bytes of the array"
    tool_names = {"nccl-tests": "reduce", "imb": "reduce", "osu": r"\breduce\b"}
    reduces = True


class SendRecv(_Foreign):
    """Each rank sends to one neighbour and receives from the other. S = bytes of one message."""
    name = "sendrecv"
    s_means = "bytes of one message"
    two_ranks = True  # as OSU and IMB run it
    tool_names = {"nccl-tests": "sendrecv", "imb": "sendrecv"}
    point_to_point = True


class Gather(_Foreign, PerRankBlocks):
    """Every rank's block to a root. S = bytes of the whole output (block x n)."""
    name = "gather"
    s_means = "bytes of the whole output (per-rank block x n)"
    tool_names = {"nccl-tests": "gather", "imb": "gather", "osu": r"\bgather\b"}


class Scatter(_Foreign, PerRankBlocks):
    """Block r of a root to rank r. S = bytes of the whole input (block x n)."""
    name = "scatter"
    s_means = "bytes of the whole input (per-rank block x n)"
    tool_names = {"nccl-tests": "scatter", "imb": "scatter", "osu": r"\bscatter\b"}


FOREIGN_OPS: dict[str, Op] = {op.name: op for op in (Reduce(), SendRecv(), Gather(), Scatter())}


def known_op(name: str) -> Op | None:
    """The op of that name or spelling (an alias), measured or foreign; None if unknown."""
    for table in (OPS, FOREIGN_OPS):
        if name in table:
            return table[name]
    for table in (OPS, FOREIGN_OPS):
        for op in table.values():
            if name in op.aliases:
                return op
    return None


def canonical_name(name: str) -> str:
    """The commbench name of an op spelt another way (bcast -> broadcast); unknown: as given."""
    op = known_op(name)
    return op.name if op else name
