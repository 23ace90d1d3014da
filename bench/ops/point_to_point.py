"""Point to point between the first and the last rank (with block placement over nodes they
sit on different nodes; the other ranks wait): pingpong, bw and bibw, as OSU times them; and
multipair, all pairs at once (OSU mbw_mr)."""
from __future__ import annotations

from bench.ops.data import values
from bench.ops.loops import WINDOW, loop, window_step
from bench.ops.op import Op


class FirstLastPair(Op):
    """Ops between the first and the last rank: the others run an empty program and check
    nothing; the pair's own steps are pair_program's."""
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

    def expected(self, case, rank):
        """Both ends receive rank 0's data (an echo of it, for the last rank's reply)."""
        return values(0, case.recv_count) if self.active(rank, case.nranks) else None

    def program(self, be, send, recv, ack, case, rank):
        n = case.nranks
        if not self.active(rank, n):
            return loop()
        return self.pair_program(be, send, recv, ack, case, self.peer(rank, n), self.sender(rank, n))

    def pair_program(self, be, send, recv, ack, case, peer, sending):
        """The steps of one end of the pair (sending: rank 0)."""
        raise NotImplementedError


class PingPong(FirstLastPair):
    """Latency: a message to the peer and back; the time is half the round trip (OSU latency).
    S = bytes of one message."""
    name = "pingpong"
    s_means = "bytes of one message"
    tool_names = {"imb": "pingpong", "osu": r"^osu (mpi|[a-z]*ccl)(-\w+)? latency test$"}
    point_to_point = True
    ops_per_call = 2

    def pair_program(self, be, send, recv, ack, case, peer, sending):
        if sending:
            return loop(be.send(send, peer), be.recv(recv, peer))
        return loop(be.recv(recv, peer), be.send(recv, peer))  # echo what arrived


class Bandwidth(FirstLastPair):
    """Unidirectional bandwidth: a window of 64 non-blocking sends, wait all, a one-element
    ack back (OSU bw). The time is per message. S = bytes of one message."""
    name = "bw"
    s_means = "bytes of one message"
    tool_names = {"osu": r"\bbandwidth\b"}
    ops_per_call = WINDOW

    def expected(self, case, rank):
        return values(0, case.recv_count) if rank == case.nranks - 1 else None

    def pair_program(self, be, send, recv, ack, case, peer, sending):
        if sending:
            return loop(window_step(be, be.isend(send, peer)), be.recv(ack, peer))
        return loop(window_step(be, be.irecv(recv, peer)), be.send(ack, peer))


class BiBandwidth(FirstLastPair):
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

    def pair_program(self, be, send, recv, ack, case, peer, sending):
        return loop(window_step(be, be.irecv(recv, peer), be.isend(send, peer)))


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
            return loop(window_step(be, be.isend(send, rank + half)), be.recv(ack, rank + half))
        return loop(window_step(be, be.irecv(recv, rank - half)), be.send(ack, rank - half))

