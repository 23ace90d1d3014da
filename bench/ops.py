"""The ops: one small class each, holding everything the op knows — what S means, its bus
factor, its buffer sizes, the one call, and the expected result. The harness and the backends
know nothing op-specific, so ops and backends combine as M + N. What analysis needs to know
of an op lives here too: its other spellings, the names other tools give it, how their printed
sizes map to S, and which cost-model family fits it. Ops that only other tools measure
(reduce, gather, ...) are described in FOREIGN_OPS, so imported results carry the same facts.

Each op turns a requested size into element counts, builds `program(k)` (k back-to-back
calls, built from the backend's prepared primitives so the timed loop is as tight as a bare
loop), and says what every rank's receive buffer must hold afterwards. Data are small integers
so that reductions in any dtype compare exactly.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from bench.core.errors import UsageError

OPS: dict[str, "Op"] = {}          # the ops commbench measures, in registry order
FOREIGN_OPS: dict[str, "Op"] = {}  # ops only other tools measure: described, never run
WINDOW = 64  # messages in flight per window for bw, bibw and multipair (as OSU)


def register(cls):
    OPS[cls.name] = cls()
    return cls


def register_foreign(cls):
    FOREIGN_OPS[cls.name] = cls()
    return cls


def known_op(name: str) -> "Op | None":
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


def get_op(name: str) -> "Op":
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


CHUNK = 1 << 20  # elements per tile when buffers are filled and checked piece by piece


class Periodic:
    """A long 1-D array of small integers that repeats: segments one after the other, each
    `length` elements of its `pattern` (a short int64 array) over and over, from pattern[0].
    What values(), initial() and expected() return, so that a buffer is filled and checked
    a tile at a time (`tiles`) and nothing of the buffer's size is built, on the host or the
    device. It stands in for the full array where one is wanted: np.asarray() builds it,
    len() is its length, == and != compare element by element, + adds element by element."""
    __hash__ = None

    def __init__(self, *segments):
        self.segments = tuple((int(length), np.asarray(pattern, dtype=np.int64))
                              for length, pattern in segments if length > 0)

    def __len__(self):
        return sum(length for length, _ in self.segments)

    def __repr__(self):
        return f"Periodic({', '.join(f'({n}, {p.tolist()})' for n, p in self.segments)})"

    def __array__(self, dtype=None, copy=None):
        if copy is False:
            raise ValueError("a Periodic array is built on demand: it cannot be viewed without a copy")
        out = np.empty(len(self), dtype=np.int64 if dtype is None else dtype)
        for start, stop, tile in self.runs(lambda tile: tile.astype(out.dtype)):
            out[start:stop] = tile[:stop - start]
        return out

    def __eq__(self, other):
        return np.asarray(self) == np.asarray(other)

    def __ne__(self, other):
        return np.asarray(self) != np.asarray(other)

    def __add__(self, other):
        if isinstance(other, (int, np.integer)) and other == 0:
            return self  # sum() starts from 0
        if not isinstance(other, Periodic) or \
                [n for n, _ in self.segments] != [n for n, _ in other.segments]:
            return np.asarray(self) + np.asarray(other)
        def added(a, b):
            period = int(np.lcm(len(a), len(b)))
            return _tile(a, period) + _tile(b, period)
        return Periodic(*((n, added(a, b)) for (n, a), (_, b) in zip(self.segments, other.segments)))

    __radd__ = __add__

    def runs(self, convert=lambda tile: tile, chunk: int = CHUNK):
        """(start, stop, convert(tile)) in order, covering the array: the data of
        [start, stop) are tile[:stop - start], a tile being the segment's pattern repeated to
        at most about `chunk` elements. convert is called once per distinct tile."""
        converted, start = {}, 0
        for length, pattern in self.segments:
            period = len(pattern)
            span = period * -(-min(chunk, length) // period)  # whole periods: every tile starts at phase 0
            key = (span, pattern.tobytes())
            if key not in converted:
                converted[key] = convert(_tile(pattern, span))
            tile = converted[key]
            for at in range(0, length, span):
                yield start + at, start + at + min(span, length - at), tile
            start += length

    @staticmethod
    def concat(parts) -> "Periodic":
        return Periodic(*(segment for part in parts for segment in part.segments))


def _tile(pattern: np.ndarray, size: int) -> np.ndarray:
    return np.tile(pattern, -(-size // len(pattern)))[:size]


def constant(count: int, value: int) -> Periodic:
    """`count` elements of `value` (a receive buffer's contents before the call)."""
    return Periodic((count, [value]))


def values(rank: int, count: int, offset: int = 0) -> Periodic:
    """The data rank `rank` contributes: small integers, exact in every dtype and in sums
    (element i is (offset + i + rank) mod 4)."""
    return Periodic((count, (np.arange(4) + offset + rank) % 4))


def tiles(data, convert=lambda tile: tile, chunk: int = CHUNK):
    """(start, stop, tile) covering `data` (a Periodic or any 1-D array) in order: the data of
    [start, stop) are tile[:stop - start]. convert (an int64 array -> what the caller copies
    or compares with: an array of the buffer's dtype, a tensor on its device) is called once
    per distinct tile of a Periodic, once per chunk of an array."""
    if isinstance(data, Periodic):
        yield from data.runs(convert, chunk)
        return
    data = np.asarray(data)
    for start in range(0, len(data), chunk):
        yield start, min(start + chunk, len(data)), convert(data[start:start + chunk])


def fill(buf: np.ndarray, data) -> None:
    """Write `data` (a Periodic, or any 1-D array) into the host array buf, a tile at a time
    in buf's dtype: no temporary of the buffer's size."""
    for start, stop, tile in tiles(data, lambda tile: tile.astype(buf.dtype)):
        buf[start:stop] = tile[:stop - start]


def count_wrong(got: np.ndarray, expected) -> int:
    """Elements of `got` (a host array) that differ from `expected` (Periodic, or any 1-D
    array), compared tile by tile in got's own dtype, which is exact where the dtype holds
    every expected value; where it cannot (a sum that wraps in int8), in float64, as the
    numbers they are (such an element can never match)."""
    if len(got) != len(expected):
        raise ValueError(f"received {len(got)} elements, expected {len(expected)}")

    def convert(tile):
        same = tile.astype(got.dtype)
        return same if np.array_equal(same, tile) else tile.astype(np.float64)
    return int(sum(np.count_nonzero(got[start:stop] != tile[:stop - start])
                   for start, stop, tile in tiles(expected, convert)))


def loop(*steps):
    """program(k): run the steps (zero-argument callables) k times, with no per-call overhead
    beyond the calls themselves. The program lists its steps (`program.steps`), so a backend
    can run the same sequence in compiled code (bench.native): a step says what it does by a
    `desc` tuple, the backend's primitives (name, *arguments) or the structures built here,
    ("window", W, posts) from _window and ("spin", seconds)."""
    if not steps:
        def run(k):
            return None
    elif len(steps) == 1:
        (a,) = steps

        def run(k):
            for _ in range(k):
                a()
    elif len(steps) == 2:
        a, b = steps

        def run(k):
            for _ in range(k):
                a()
                b()
    else:
        def run(k):
            for _ in range(k):
                for step in steps:
                    step()
    run.steps = steps
    return run


@dataclass
class Case:
    """An op at one size on n ranks: element counts per rank buffer and the resulting S."""
    op: "Op"
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

    def describe(self) -> dict:
        return {"s_means": self.s_means, "bus_factor": self.bus_factor_text,
                "ops_per_call": self.ops_per_call, "doc": " ".join((self.__doc__ or "").split()),
                "efficiency_of": "algbw" if self.node_wide else "busbw"}  # bench.ceilings


class _PerRankBlocks(Op):
    """Ops whose S counts a block from every rank: the per-rank count is S / n."""
    bus_factor_text = "(n-1)/n"

    def counts(self, nbytes, n, itemsize):
        block = max(1, nbytes // (n * itemsize))
        return self.block_counts(block, n)

    def bus_factor(self, n):
        return (n - 1) / n

    def s_of_tool_size(self, size, n):
        return size * n  # tools print the per-rank block


# ---------------------------------------------------------------------------------------
# Collectives
# ---------------------------------------------------------------------------------------
@register
class AllReduce(Op):
    """Sum over ranks, out of place. S = bytes of the array on each rank; busbw = algbw·2(n−1)/n."""
    name = "allreduce"
    primitive = "allreduce"
    aliases = ("all_reduce",)
    tool_names = {"nccl-tests": "all_reduce", "imb": "allreduce", "osu": r"\ballreduce\b"}
    reduces = True
    s_means = "bytes of the array on each rank"
    bus_factor_text = "2(n-1)/n"

    def bus_factor(self, n):
        return 2 * (n - 1) / n

    def expected(self, case, rank):
        return sum(values(r, case.recv_count) for r in range(case.nranks))


@register
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


@register
class AllGather(_PerRankBlocks):
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


@register
class ReduceScatter(_PerRankBlocks):
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


@register
class AllToAll(_PerRankBlocks):
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


@register
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


@register
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


# ---------------------------------------------------------------------------------------
# Point to point. pingpong, bw and bibw run between the first and the last rank (with block
# placement over nodes they sit on different nodes); the other ranks wait.
# ---------------------------------------------------------------------------------------
class _Pair(Op):
    two_ranks = True
    def rank_problem(self, n):
        return None if n >= 2 else f"{self.name} needs at least 2 ranks (it runs between the first and the last)"

    def active(self, rank, n):
        return rank in (0, n - 1)

    def peer(self, rank, n):
        return n - 1 if rank == 0 else 0

    def sender(self, rank, n):
        return rank == 0

    def peer_of(self, case, rank):
        return self.peer(rank, case.nranks) if self.active(rank, case.nranks) else -1


@register
class PingPong(_Pair):
    """Latency: a message to the peer and back; the time is half the round trip (OSU latency).
    S = bytes of one message."""
    name = "pingpong"
    s_means = "bytes of one message"
    tool_names = {"imb": "pingpong", "osu": r"^osu (mpi|[a-z]*ccl)(-\w+)? latency test$"}
    point_to_point = True
    ops_per_call = 2

    def expected(self, case, rank):
        return values(0, case.recv_count) if self.active(rank, case.nranks) else None

    def program(self, be, send, recv, ack, case, rank):
        n = case.nranks
        if not self.active(rank, n):
            return loop()
        peer = self.peer(rank, n)
        if self.sender(rank, n):
            return loop(be.send(send, peer), be.recv(recv, peer))
        return loop(be.recv(recv, peer), be.send(recv, peer))  # echo what arrived


def _window(be, *posts):
    """One call of a windowed transfer: WINDOW starts of each prepared non-blocking call (all
    of the first, then all of the next), then wait for all."""
    waitall = be.waitall
    if len(posts) == 1:
        (start,) = posts

        def window():
            waitall([start() for _ in range(WINDOW)])
    else:
        first, second = posts

        def window():
            reqs = [first() for _ in range(WINDOW)]
            reqs += [second() for _ in range(WINDOW)]
            waitall(reqs)
    window.desc = ("window", WINDOW, posts)
    return window


@register
class Bandwidth(_Pair):
    """Unidirectional bandwidth: a window of 64 non-blocking sends, wait all, a one-element
    ack back (OSU bw). The time is per message. S = bytes of one message."""
    name = "bw"
    s_means = "bytes of one message"
    tool_names = {"osu": r"\bbandwidth\b"}
    ops_per_call = WINDOW

    def expected(self, case, rank):
        return values(0, case.recv_count) if rank == case.nranks - 1 else None

    def program(self, be, send, recv, ack, case, rank):
        n = case.nranks
        if not self.active(rank, n):
            return loop()
        peer = self.peer(rank, n)
        if self.sender(rank, n):
            return loop(_window(be, be.isend(send, peer)), be.recv(ack, peer))
        return loop(_window(be, be.irecv(recv, peer)), be.send(ack, peer))


@register
class BiBandwidth(_Pair):
    """Bidirectional bandwidth: both ranks post a window of 64 receives and 64 sends at once
    (OSU bibw). The time is per message pair. S = bytes of both directions (2 × message)."""
    name = "bibw"
    s_means = "bytes of both directions (2 x one message)"
    tool_names = {"osu": r"\bbi-directional bandwidth\b", "imb": "biband"}
    ops_per_call = WINDOW

    def s_bytes(self, case):
        return 2 * case.send_count * case.itemsize

    def s_of_tool_size(self, size, n):
        return 2 * size  # tools print one direction's message

    def msgs_per_op(self, n):
        return 2.0

    def expected(self, case, rank):
        n = case.nranks
        return values(self.peer(rank, n), case.recv_count) if self.active(rank, n) else None

    def program(self, be, send, recv, ack, case, rank):
        n = case.nranks
        if not self.active(rank, n):
            return loop()
        peer = self.peer(rank, n)
        return loop(_window(be, be.irecv(recv, peer), be.isend(send, peer)))


@register
class MultiPair(Op):
    """Aggregate bandwidth and message rate of all pairs at once: rank i < n/2 sends windows
    to rank i + n/2 (OSU mbw_mr). The time is per message round. S = bytes all pairs move
    per round (pairs × message); messages per op = pairs."""
    name = "multipair"
    s_means = "bytes all pairs move per round (n/2 x one message)"
    tool_names = {"osu": r"\bmultiple bandwidth / message rate\b", "imb": "uniband"}
    ops_per_call = WINDOW
    node_wide = True

    def rank_problem(self, n):
        return None if n >= 2 and n % 2 == 0 else f"multipair needs an even number of ranks, got {n}"

    def s_bytes(self, case):
        return case.nranks // 2 * case.send_count * case.itemsize

    def s_of_tool_size(self, size, n):
        return n // 2 * size  # tools print one pair's message

    def msgs_per_op(self, n):
        return n / 2

    def expected(self, case, rank):
        half = case.nranks // 2
        return values(rank - half, case.recv_count) if rank >= half else None

    def program(self, be, send, recv, ack, case, rank):
        half = case.nranks // 2
        if rank < half:
            return loop(_window(be, be.isend(send, rank + half)), be.recv(ack, rank + half))
        return loop(_window(be, be.irecv(recv, rank - half)), be.send(ack, rank - half))


# ---------------------------------------------------------------------------------------
# Link map: every pair of ranks, in rounds of disjoint pairs.
# ---------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def pairing_rounds(n: int) -> tuple[tuple[int, ...], ...]:
    """Round-robin tournament by the circle method: each round maps rank -> peer (-1 = sits
    out); in a round no rank is in two pairs, and over all rounds every pair meets once.
    n - 1 rounds for even n, n rounds for odd n (one rank sits out per round)."""
    m = n + n % 2  # odd n: a phantom rank m - 1; its partner sits out
    rounds = []
    for r in range(m - 1):
        peer = [-1] * m
        pairs = [(r, m - 1)] + [((r + i) % (m - 1), (r - i) % (m - 1)) for i in range(1, m // 2)]
        for a, b in pairs:
            peer[a], peer[b] = b, a
        rounds.append(tuple(p if p < n else -1 for p in peer[:n]))
    return tuple(rounds)


@register
class Pairs(Op):
    """Link map: a ping-pong between every pair of ranks (half the round trip, as pingpong).
    The pairs are scheduled in rounds by the circle method so that no rank is in two pairs of
    a round; every pair of a round runs at the same time (a rank that sits out waits). Each
    round at each size is its own case, timed by the harness like any other: every rank's
    samples are its own pair's times and carry the peer (the `peer` column), so the median
    per (rank, peer) is the link's time; the summary row of a size pools all rounds (per
    sample, the slowest pair of the round). Small S gives the link's latency, large S its
    ping-pong bandwidth. Pairs of a round share nothing when each rank has its own node; with
    several ranks per node, concurrent pairs share the node's NIC (run it on `--split inter`
    for one rank per node). S = bytes of one message."""
    name = "pairs"
    s_means = "bytes of one message (between the two ranks of each pair)"
    ops_per_call = 2
    default = False  # n - 1 rounds per size: run it by name

    def rank_problem(self, n):
        return None if n >= 2 else "pairs needs at least 2 ranks"

    def cases(self, nbytes, n, itemsize):
        one = self.case(nbytes, n, itemsize)
        return [replace(one, pairing=r) for r in range(len(pairing_rounds(n)))]

    def peer_of(self, case, rank):
        return pairing_rounds(case.nranks)[case.pairing][rank]

    def active_in(self, case, rank):
        return self.peer_of(case, rank) >= 0

    def describe(self):
        return {**super().describe(), "schedule": "circle method: n-1 rounds of n/2 disjoint pairs "
                "(n rounds for odd n); each round is a case; the rows carry the peer"}

    def expected(self, case, rank):
        peer = self.peer_of(case, rank)
        return values(min(rank, peer), case.recv_count) if peer >= 0 else None

    def program(self, be, send, recv, ack, case, rank):
        peer = self.peer_of(case, rank)
        if peer < 0:
            return loop()
        if rank < peer:  # the lower rank starts, the higher one echoes what arrived
            return loop(be.send(send, peer), be.recv(recv, peer))
        return loop(be.recv(recv, peer), be.send(recv, peer))


# ---------------------------------------------------------------------------------------
# LogGP: Netgauge's parametrised round trip PRTT(n, d, s) (Hoefler, Lichei & Rehm 2009),
# between the first and the last rank. Four fixed variants, so every measurement is an
# ordinary case (one S per case, nothing to record beyond the op name) and `commbench fit`
# derives L, o_s, o_r, g, G from them (analysis/fit.py: fit_loggp):
#   prtt_rtt1   PRTT(1, 0, s)   one message, one echo
#   prtt_rttn8  PRTT(8, 0, s)   8 back-to-back messages, one echo       -> g, G
#   prtt_rtts8  PRTT(8, d, s)   the sender idles d(s) before messages 2..8 -> o_s
#   prtt_rttr8  the receiver idles d(s) before receives 2..8 (the messages wait) -> o_r
# d must exceed the gap of one message (else the gap, not the overhead, paces the messages):
# d(s) = PRTT_DELAY_S0 + s / PRTT_DELAY_BPS, enough for links from 0.5 GB/s and gaps up to
# 10 µs (Netgauge takes d = PRTT(1,0,s), a few µs in shared memory); the fit checks
# d(s) ≥ G_all(s) and reports overheads only where it holds. Not larger: time stolen from a
# busy wait (other processes, a VM's steal) grows with d and lands in o_s and o_r. A fixed
# formula (recorded in meta.json) rather than one calibrated per case, so the fit knows d
# exactly without a per-case column. The idle wait is a calibrated busy spin (_spin).
# ---------------------------------------------------------------------------------------
PRTT_MSGS = 8
PRTT_DELAY_S0 = 10e-6
PRTT_DELAY_BPS = 0.5e9


def prtt_delay_s(nbytes: int) -> float:
    return PRTT_DELAY_S0 + nbytes / PRTT_DELAY_BPS


def _spin(seconds: float, clock=None, calibrate: int = 21):
    """A busy wait that lasts `seconds` on average, as a zero-argument callable. A bare spin
    overshoots by its own call and clock-read cost (0.2 µs in Python, as large as the o_s it
    is meant to isolate), so the target is shortened by the median overshoot of `calibrate`
    trial waits (median: a preempted trial does not count), measured at the first call (a
    native loop runs its own calibrated spin, from desc, and never calls this one)."""
    import time

    clock = clock or time.perf_counter

    def wait(target):
        end = clock() + target
        while clock() < end:
            pass

    target = None

    def calibrated():
        nonlocal target
        target = seconds
        if calibrate and seconds > 0:
            over = []
            for _ in range(calibrate):
                t0 = clock()
                wait(seconds)
                over.append(clock() - t0 - seconds)
            target = max(0.0, seconds - sorted(over)[len(over) // 2])
        return target

    def spin():
        wait(calibrated() if target is None else target)
    spin.desc = ("spin", seconds)
    return spin


class _PRTT(_Pair):
    """PRTT(n, d, s): rank 0 sends n messages of S bytes, the last rank receives them and echoes
    one S-byte message; the time is the whole round trip. S = bytes of one message."""
    default = False  # LogGP inputs: run by name, not part of `--ops all`
    host_steps = True  # the idle spin
    s_means = "bytes of one message"
    msgs = 1
    idle = ""  # "", "send" or "recv": which side idles d(s) between its messages

    def msgs_per_op(self, n):
        return float(self.msgs)

    def describe(self):
        return {**super().describe(), "prtt_msgs": self.msgs, "idle": self.idle or "none",
                "delay_s0": PRTT_DELAY_S0, "delay_Bps": PRTT_DELAY_BPS,
                "delay": "d(S) = delay_s0 + S / delay_Bps"}

    def expected(self, case, rank):
        return values(0, case.recv_count) if self.active(rank, case.nranks) else None

    def program(self, be, send, recv, ack, case, rank):
        n = case.nranks
        if not self.active(rank, n):
            return loop()
        peer = self.peer(rank, n)
        wait = _spin(prtt_delay_s(case.nbytes))
        if self.sender(rank, n):
            step, idle, last = be.send(send, peer), self.idle == "send", be.recv(recv, peer)
        else:
            step, idle, last = be.recv(recv, peer), self.idle == "recv", be.send(recv, peer)
        rest = [wait, step] if idle else [step]
        return loop(step, *rest * (self.msgs - 1), last)


@register
class PRTT1(_PRTT):
    __doc__ = (_PRTT.__doc__ or "") + " PRTT(1, 0, s)."
    name = "prtt_rtt1"


@register
class PRTTN(_PRTT):
    __doc__ = (_PRTT.__doc__ or "") + f" PRTT({PRTT_MSGS}, 0, s): messages back to back."
    name = f"prtt_rttn{PRTT_MSGS}"
    msgs = PRTT_MSGS


@register
class PRTTS(_PRTT):
    __doc__ = (_PRTT.__doc__ or "") + f" PRTT({PRTT_MSGS}, d, s): the sender idles d(s) between sends."
    name = f"prtt_rtts{PRTT_MSGS}"
    msgs = PRTT_MSGS
    idle = "send"


@register
class PRTTR(_PRTT):
    __doc__ = (_PRTT.__doc__ or "") + (f" {PRTT_MSGS} messages; the receiver idles d(s) before each "
                               "receive after the first, so those messages wait for it.")
    name = f"prtt_rttr{PRTT_MSGS}"
    msgs = PRTT_MSGS
    idle = "recv"


# ---------------------------------------------------------------------------------------
# Ops that other tools measure and commbench does not (imports describe them; no program).
# ---------------------------------------------------------------------------------------
class _Foreign(Op):
    default = False

    def program(self, be, send, recv, ack, case, rank):
        raise UsageError(f"{self.name} is only imported from other tools; commbench does not run it")


@register_foreign
class Reduce(_Foreign):
    """Sum over ranks to a root. S = bytes of the array; busbw = algbw."""
    name = "reduce"
    s_means = "bytes of the array"
    tool_names = {"nccl-tests": "reduce", "imb": "reduce", "osu": r"\breduce\b"}
    reduces = True


@register_foreign
class SendRecv(_Foreign):
    """Each rank sends to one neighbour and receives from the other. S = bytes of one message."""
    name = "sendrecv"
    s_means = "bytes of one message"
    two_ranks = True  # as OSU and IMB run it
    tool_names = {"nccl-tests": "sendrecv", "imb": "sendrecv"}
    point_to_point = True


@register_foreign
class Gather(_Foreign, _PerRankBlocks):
    """Every rank's block to a root. S = bytes of the whole output (block x n)."""
    name = "gather"
    s_means = "bytes of the whole output (per-rank block x n)"
    tool_names = {"nccl-tests": "gather", "imb": "gather", "osu": r"\bgather\b"}


@register_foreign
class Scatter(_Foreign, _PerRankBlocks):
    """Block r of a root to rank r. S = bytes of the whole input (block x n)."""
    name = "scatter"
    s_means = "bytes of the whole input (per-rank block x n)"
    tool_names = {"nccl-tests": "scatter", "imb": "scatter", "osu": r"\bscatter\b"}
