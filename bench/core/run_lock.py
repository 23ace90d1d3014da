"""A run directory belongs to one run: --out checked (a name commbench can read back, a place
it can write, no run there unless --force) and claimed, the exclusive lock a run (or a command
writing into a run directory) holds for its life, and `in_progress`, which readers ask.
Standard library only."""
from __future__ import annotations

import os
from pathlib import Path

from bench.core.errors import UsageError
from bench.core.rundir import LOCK, RUN_FILES, holds_run

_CONTROL_CHARS = "".join(map(chr, [*range(32), 127]))


def check_name(path, flag: str = "--out") -> None:
    """Refuse a path commbench could write but not read back or show on one line: one with a
    control character (a newline, a tab, an escape) or with bytes that are not UTF-8 (they
    reach Python as lone surrogates). UsageError naming the option."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        shown = text.encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
        raise UsageError(f"{flag} {shown}: the name holds bytes that are not UTF-8, which "
                         "run directories, reports and messages cannot carry; use a UTF-8 "
                         "name") from None
    if any(c in _CONTROL_CHARS for c in text):
        raise UsageError(f"{flag} {text!r}: the name holds a control character (a newline, "
                         "a tab, ...), which commbench's files and one-line messages cannot "
                         "carry back; use another name")


def check_out_dir(run_dir, force: bool = False) -> Path:
    """The directory a new run may write into, checked and created (claim_out_dir also locks
    it and, with force, clears it): refuses an empty path, a name commbench cannot read back
    (check_name, also of the absolute path), a file, a place that cannot be written and,
    unless force, a directory that already holds a run. Raises UsageError with one line."""
    if not str(run_dir).strip():
        raise UsageError("--out: empty path")
    path = Path(run_dir)
    check_name(path)
    check_name(path.absolute(), "--out (its absolute path)")
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {path}: exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe{os.getpid()}"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"--out {path}: cannot write there ({exc.strerror or exc})") from None
    if holds_run(path) and not force:
        raise UsageError(f"--out {path} already holds a run: give a new directory, or "
                         "--force to start it afresh")
    return path


def claim_out_dir(run_dir, force: bool = False) -> RunLock:
    """check_out_dir, then the run's lock, and only then (force) the old run's files cleared:
    a directory in use by another run is refused before anything in it is touched. A directory
    made here is removed again when the lock is released with no run written into it."""
    created = not Path(run_dir).exists()
    path = check_out_dir(run_dir, force)
    lock = RunLock(path, created=created)
    if force and holds_run(path):
        for name in RUN_FILES:
            (path / name).unlink(missing_ok=True)
        import shutil

        shutil.rmtree(path / "report", ignore_errors=True)
    return lock


class RunLock:
    """An exclusive lock on a run directory for the life of a run, or of a command that writes
    into it (flock on a file in it), so a second writer fails at once instead of mixing its
    results in. Readers ask `in_progress`. On release, a directory that holds no run loses
    the lock file (and, when made for this run, the directory itself): a failed launch leaves
    nothing behind."""

    def __init__(self, run_dir, created: bool = False, what: str = "--out"):
        import stat

        self.dir, self.created = Path(run_dir), created
        self.path = self.dir / LOCK
        self.fd: int | None  # None once released (or never taken)
        for _ in range(10):  # the file may be removed by a holder releasing it: lock the new one
            try:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
                                  | os.O_NONBLOCK, 0o644)
            except OSError as exc:  # a link planted there (O_NOFOLLOW), no permission
                self.fd = None
                raise UsageError(f"{what} {run_dir}: cannot take its lock {LOCK} "
                                 f"({exc.strerror or exc})") from None
            if not stat.S_ISREG(os.fstat(self.fd).st_mode):
                os.close(self.fd)
                self.fd = None
                raise UsageError(f"{what} {run_dir}: its lock {LOCK} is not a regular file "
                                 "(remove it)")
            if not _flock_exclusive(self.fd):
                os.close(self.fd)
                self.fd = None
                raise UsageError(f"{what} {run_dir} is in use by another commbench run "
                                 "(its lock is held); wait until it ends")
            try:
                if os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                    os.ftruncate(self.fd, 0)  # who holds it: in_progress asks another process
                    os.write(self.fd, f"{os.getpid()}\n".encode())
                    return
            except FileNotFoundError:
                pass
            os.close(self.fd)
        self.fd = None
        raise UsageError(f"{what} {run_dir}: could not take its lock (the lock file keeps changing)")

    def release(self) -> None:
        if self.fd is None:
            return
        if not holds_run(self.dir):  # nothing written: leave no lock file (nor our directory)
            try:
                os.unlink(self.path)
                if self.created:
                    os.rmdir(self.dir)  # only when empty
            except OSError:
                pass
        os.close(self.fd)  # closing drops the flock
        self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def _flock_exclusive(fd: int, tries: int = 5, pause_s: float = 0.02) -> bool:
    """flock(LOCK_EX) without waiting for a holder; a few short retries, because a reader
    asking `in_progress` holds a shared lock for an instant."""
    import fcntl
    import time

    for attempt in range(tries):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            if attempt + 1 < tries:
                time.sleep(pause_s)
    return False


def in_progress(run_dir) -> bool:
    """Whether a commbench run (or a command writing into it) in another process holds the
    directory's lock now (the process holding it, rank 0 showing its tables, is not kept out).
    The lock file is opened without following links or blocking; only a regular file counts."""
    import fcntl
    import stat

    try:
        fd = os.open(Path(run_dir) / LOCK, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        holder = os.read(fd, 32).strip()
        return holder != str(os.getpid()).encode()
    finally:
        os.close(fd)
