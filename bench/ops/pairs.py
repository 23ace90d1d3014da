"""The link map: a ping-pong between every pair of ranks, in rounds of disjoint pairs
(`pairing_rounds`, the circle method); each round at each size is a case of its own."""
from __future__ import annotations

from dataclasses import replace
from functools import cache

from bench.ops.data import values
from bench.ops.loops import loop
from bench.ops.op import Op


@cache
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

    def facts(self):
        return {**super().facts(), "schedule": "circle method: n-1 rounds of n/2 disjoint pairs "
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

