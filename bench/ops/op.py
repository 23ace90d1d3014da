"""What an op is: one small class each (bench.ops.collectives, bench.ops.point_to_point,
bench.ops.pairs, bench.ops.prtt), holding everything the op knows — what S means, its bus
factor, its buffer sizes, the one call, the expected result, and what analysis needs of it
(its other spellings, the names other tools give it, how their printed sizes map to S, which
cost-model family fits it). The harness and the backends know nothing op-specific, so ops and
backends combine as M + N.

Each op turns a requested size into element counts (a Case), builds `program(k)` (k
back-to-back calls, built from the backend's prepared primitives so the timed loop is as
tight as a bare loop: bench.ops.loops), and says what every rank's receive buffer must hold
afterwards (bench.ops.data)."""
from __future__ import annotations

from dataclasses import dataclass

from bench.ops.data import Periodic, constant, values
from bench.ops.loops import loop


@dataclass
class Case:
    """An op at one size on n ranks: element counts per rank buffer and the resulting S."""
    op: Op
    nranks: int
    itemsize: int
    send_count: int
    recv_count: int
    pairing: int = -1  # pairs: which round of the round-robin schedule (else -1)

    @property
    def nbytes(self) -> int:
        return self.op.s_bytes(self)

    @property
    def count(self) -> int:
        """The `count` of summary.csv: elements of the send buffer (of recv for in-place ops)."""
        return self.send_count or self.recv_count


class Op:
    name = ""
    s_means = ""           # what S (the nbytes column) means for this op
    bus_factor_text = "1"  # the bus factor as a formula of n, for reports
    ops_per_call = 1       # op instances in one call: the time per op divides by it
    sized = True           # barrier has no size
    default = True         # part of `--ops all` (specialised ops are run by name only)
    host_steps = False     # runs host code between its calls (a CUDA graph cannot hold it)
    node_wide = False      # every rank of a node moves data at once: its ceiling is the node's
                           # copy rate, set against algbw (bench.ceilings)
    # --- what analysis knows of the op ----------------------------------------------------
    aliases: tuple = ()    # other spellings (torch, MPI, other tools)
    tool_names: dict = {}  # tool -> its name for the op: nccl-tests program stem, IMB
                           # benchmark (lower case), OSU title (a regex; the longest match wins)
    point_to_point = False # one message between two ranks per op (Hockney's alpha + S beta)
    two_ranks = False      # runs between two ranks only, whatever the world (other tools too)
    reduces = False        # does arithmetic on the data (a gamma term in its cost models)
    beta_source = 0        # >0: moves blocks as a reducing op's data movement does, so its
                           # fitted beta pins theirs (the lowest number found wins)

    # --- sizes ---------------------------------------------------------------------------
    def counts(self, nbytes: int, n: int, itemsize: int) -> tuple[int, int]:
        """(send_count, recv_count) per rank for S = nbytes (rounded down, at least 1)."""
        count = max(1, nbytes // itemsize)
        return count, count

    def s_bytes(self, case: Case) -> int:
        return case.send_count * case.itemsize

    def case(self, nbytes: int, n: int, itemsize: int) -> Case:
        return Case(self, n, itemsize, *self.counts(nbytes, n, itemsize))

    def cases(self, nbytes: int, n: int, itemsize: int) -> list[Case]:
        """The cases one requested size makes (pairs: one per pairing round)."""
        return [self.case(nbytes, n, itemsize)]

    def s_of_tool_size(self, size: int, n: int) -> int:
        """S from the size other tools print (one message, or one rank's block)."""
        return size

    # --- metrics -------------------------------------------------------------------------
    def bus_factor(self, n: int) -> float:
        return 1.0

    def msgs_per_op(self, n: int) -> float:
        return 1.0

    # --- ranks ---------------------------------------------------------------------------
    def rank_problem(self, n: int) -> str | None:
        """Why this op cannot run on n ranks, or None."""
        return None

    def active(self, rank: int, n: int) -> bool:
        return True

    def active_in(self, case: Case, rank: int) -> bool:
        """Whether `rank` takes part in (and writes rows for) this case."""
        return self.active(rank, case.nranks)

    def peer_of(self, case: Case, rank: int) -> int:
        """The rank `rank` exchanges with in this case (the `peer` column), -1 for none."""
        return -1

    # --- data ----------------------------------------------------------------------------
    def initial(self, case: Case, rank: int) -> tuple[Periodic | None, Periodic | None]:
        """Contents of (send, recv) before the call; recv gets a value no result can have."""
        return values(rank, case.send_count), constant(case.recv_count, 7)

    def expected(self, case: Case, rank: int) -> Periodic | None:
        """What recv must hold after the call on this rank (None: nothing to check)."""
        raise NotImplementedError

    primitive = ""  # a collective's one backend call: program(k) is k calls of it

    def call_args(self, send, recv) -> tuple:
        """The primitive's arguments: (send, recv) for an out-of-place collective."""
        return send, recv

    def program(self, be, send, recv, ack, case: Case, rank: int):
        """program(k): k back-to-back calls, built from the backend's prepared primitives."""
        return loop(getattr(be, self.primitive)(*self.call_args(send, recv)))

    def facts(self) -> dict:
        """What meta.json → ops records of the op (results/README.md)."""
        return {"s_means": self.s_means, "bus_factor": self.bus_factor_text,
                "ops_per_call": self.ops_per_call, "doc": " ".join((self.__doc__ or "").split()),
                "efficiency_of": "algbw" if self.node_wide else "busbw"}  # bench.ceilings


class PerRankBlocks(Op):
    """Ops whose S counts a block from every rank: the per-rank count is S / n."""
    bus_factor_text = "(n-1)/n"

    def counts(self, nbytes, n, itemsize):
        block = max(1, nbytes // (n * itemsize))
        return self.block_counts(block, n)

    def bus_factor(self, n):
        return (n - 1) / n

    def s_of_tool_size(self, size, n):
        return size * n  # tools print the per-rank block

