"""Writes that leave a file whole: a file replaced in one step through a temporary file
created exclusively next to it (readers see the old file or the new one), and an append in
one write followed by fsync (a crash leaves at most a torn last block). Every file of a run
directory is written through here. Standard library only."""
from __future__ import annotations

import os
from pathlib import Path


def _write_all(fd: int, data: bytes, path) -> None:
    """os.write until everything is written (a short write is not an error by itself)."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except OSError as exc:  # name the file: os.write's own error does not
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        if written <= 0:
            raise OSError(f"could not write {path}")
        view = view[written:]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace path with data in one step: readers see the old file or the new one. The
    temporary file is created exclusively next to its target (a link planted there is
    replaced, never followed) and removed when anything fails (a full disk, say)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(tmp, flags, 0o644)
    except FileExistsError:  # left by a dead process of the same pid: ours to replace
        os.unlink(tmp)
        fd = os.open(tmp, flags, 0o644)
    try:
        try:
            _write_all(fd, data, path)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def append_bytes(path: Path, data: bytes) -> None:
    """Append in one write (a crash leaves at most a torn last block), then fsync."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        _write_all(fd, data, path)
        os.fsync(fd)
    finally:
        os.close(fd)
