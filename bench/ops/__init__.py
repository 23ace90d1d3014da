"""The ops commbench measures, in one registry (OPS). Each op is one small class holding
everything it knows (bench.ops.op): the harness and the backends know nothing op-specific, so
ops and backends combine as M + N. The rooms: what an op is (op), the data its buffers hold
(data), the timed loop its program is (loops), and the ops themselves (collectives,
point_to_point, pairs, prtt). Ops that only other tools measure are analysis' (analysis.known_ops)."""
from __future__ import annotations

from bench.core.errors import UsageError
from bench.ops.collectives import (AllGather, AllReduce, AllReduceInPlace, AllToAll, Barrier,
                                   Broadcast, ReduceScatter)
from bench.ops.op import Op
from bench.ops.pairs import Pairs
from bench.ops.point_to_point import Bandwidth, BiBandwidth, MultiPair, PingPong
from bench.ops.prtt import PRTT1, PRTTN, PRTTR, PRTTS

# In registry order: `--ops all` runs the default ones in this order, and tables list them so.
OPS: dict[str, Op] = {op.name: op for op in (
    AllReduce(), AllReduceInPlace(), AllGather(), ReduceScatter(), AllToAll(), Broadcast(),
    Barrier(), PingPong(), Bandwidth(), BiBandwidth(), MultiPair(), Pairs(),
    PRTT1(), PRTTN(), PRTTS(), PRTTR())}


def get_op(name: str) -> Op:
    """The measured op of that name or alias (all_reduce, bcast: nccl-tests', MPI's and
    torch's spellings); UsageError with the nearest names otherwise."""
    if name in OPS:
        return OPS[name]
    for op in OPS.values():
        if name in op.aliases:
            return op
    import difflib

    spellings = {alias: op.name for op in OPS.values() for alias in (op.name, *op.aliases)}
    near = dict.fromkeys(spellings[m] for m in difflib.get_close_matches(
        name.lower().replace("-", "_"), list(spellings), n=3, cutoff=0.6))
    hint = f"did you mean {' or '.join(near)}? " if near else ""
    raise UsageError(f"no such op {name!r}; {hint}known: {', '.join(OPS)}")
