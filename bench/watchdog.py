"""A per-rank thread that ends the job when a case makes no progress for `timeout` seconds.
A rank blocked inside a collective cannot raise, so the thread reports and exits the process;
the launcher (mpiexec, torchrun, commbench's own) then tears the other ranks down."""
from __future__ import annotations

import os
import sys
import threading
import time


class Watchdog:
    def __init__(self, timeout_s: float, rank: int, on_fire=None, exit_code: int = 3):
        self.timeout_s, self.rank, self.on_fire, self.exit_code = timeout_s, rank, on_fire, exit_code
        self._what: str | None = None
        self._deadline: float | None = None
        self._lock = threading.Lock()
        if timeout_s and timeout_s > 0:
            threading.Thread(target=self._watch, name="commbench-watchdog", daemon=True).start()

    def arm(self, what: str) -> None:
        """Start (or restart) the clock for the work described by `what`."""
        with self._lock:
            self._what, self._deadline = what, time.monotonic() + self.timeout_s

    def disarm(self) -> None:
        with self._lock:
            self._what = self._deadline = None

    def _watch(self) -> None:
        while True:
            time.sleep(min(0.5, self.timeout_s / 4))
            with self._lock:
                fired = self._deadline is not None and time.monotonic() > self._deadline
                what = self._what
            if fired:
                message = (f"commbench: timeout: {what} made no progress for {self.timeout_s:g} s "
                           f"on rank {self.rank}; aborting the job")
                print(message, file=sys.stderr, flush=True)
                if self.rank != 0:
                    time.sleep(2.0)  # let rank 0, likely stuck too, record why in meta.json
                if self.on_fire:
                    try:
                        self.on_fire(message)
                    except Exception:
                        pass
                os._exit(self.exit_code)
