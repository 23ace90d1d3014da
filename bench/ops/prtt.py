"""LogGP: Netgauge's parametrised round trip PRTT(n, d, s) (Hoefler, Lichei & Rehm 2009),
between the first and the last rank. Four fixed variants, so every measurement is an
ordinary case (one S per case, nothing to record beyond the op name) and `commbench fit`
derives L, o_s, o_r, g, G from them (analysis/fit.py: fit_loggp):
  prtt_rtt1   PRTT(1, 0, s)   one message, one echo
  prtt_rttn8  PRTT(8, 0, s)   8 back-to-back messages, one echo       -> g, G
  prtt_rtts8  PRTT(8, d, s)   the sender idles d(s) before messages 2..8 -> o_s
  prtt_rttr8  the receiver idles d(s) before receives 2..8 (the messages wait) -> o_r
d must exceed the gap of one message (else the gap, not the overhead, paces the messages):
d(s) = PRTT_DELAY_S0 + s / PRTT_DELAY_BPS, enough for links from 0.5 GB/s and gaps up to
10 µs (Netgauge takes d = PRTT(1,0,s), a few µs in shared memory); the fit checks
d(s) ≥ G_all(s) and reports overheads only where it holds. Not larger: time stolen from a
busy wait (other processes, a VM's steal) grows with d and lands in o_s and o_r. A fixed
formula (recorded in meta.json) rather than one calibrated per case, so the fit knows d
exactly without a per-case column. The idle wait is a calibrated busy spin
(bench.ops.loops.spin_step)."""
from __future__ import annotations

from bench.ops.loops import loop, spin_step
from bench.ops.point_to_point import FirstLastPair

PRTT_MSGS = 8
PRTT_DELAY_S0 = 10e-6
PRTT_DELAY_BPS = 0.5e9


def prtt_delay_s(nbytes: int) -> float:
    return PRTT_DELAY_S0 + nbytes / PRTT_DELAY_BPS


class _PRTT(FirstLastPair):
    """PRTT(n, d, s): rank 0 sends n messages of S bytes, the last rank receives them and echoes
    one S-byte message; the time is the whole round trip. S = bytes of one message."""
    default = False  # LogGP inputs: run by name, not part of `--ops all`
    host_steps = True  # the idle spin
    s_means = "bytes of one message"
    msgs = 1
    idle = ""  # "", "send" or "recv": which side idles d(s) between its messages

    def msgs_per_op(self, n):
        return float(self.msgs)

    def facts(self):
        return {**super().facts(), "prtt_msgs": self.msgs, "idle": self.idle or "none",
                "delay_s0": PRTT_DELAY_S0, "delay_Bps": PRTT_DELAY_BPS,
                "delay": "d(S) = delay_s0 + S / delay_Bps"}

    def pair_program(self, be, send, recv, ack, case, peer, sending):
        wait = spin_step(prtt_delay_s(case.nbytes))
        if sending:
            step, idle, last = be.send(send, peer), self.idle == "send", be.recv(recv, peer)
        else:
            step, idle, last = be.recv(recv, peer), self.idle == "recv", be.send(recv, peer)
        rest = [wait, step] if idle else [step]
        return loop(step, *rest * (self.msgs - 1), last)


class PRTT1(_PRTT):
    __doc__ = (_PRTT.__doc__ or "") + " PRTT(1, 0, s)."
    name = "prtt_rtt1"


class PRTTN(_PRTT):
    __doc__ = (_PRTT.__doc__ or "") + f" PRTT({PRTT_MSGS}, 0, s): messages back to back."
    name = f"prtt_rttn{PRTT_MSGS}"
    msgs = PRTT_MSGS


class PRTTS(_PRTT):
    __doc__ = (_PRTT.__doc__ or "") + f" PRTT({PRTT_MSGS}, d, s): the sender idles d(s) between sends."
    name = f"prtt_rtts{PRTT_MSGS}"
    msgs = PRTT_MSGS
    idle = "send"


class PRTTR(_PRTT):
    __doc__ = (_PRTT.__doc__ or "") + (f" {PRTT_MSGS} messages; the receiver idles d(s) before each "
                               "receive after the first, so those messages wait for it.")
    name = f"prtt_rttr{PRTT_MSGS}"
    msgs = PRTT_MSGS
    idle = "recv"

