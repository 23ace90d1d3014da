"""Opening a tool's output file safely: only a regular file (a FIFO or device is refused
before anything opens it), compressed (gzip, bzip2, xz) or not, in whatever encoding it was
saved (a BOM, UTF-16 without one), within a stated size limit, and read line by line
(`file_lines`: bounded line length) so memory does not grow with the chatter around the tables.
"""
from __future__ import annotations

import io
import os
import stat
from pathlib import Path
from collections.abc import Iterator

from bench.core.errors import UsageError
from bench.core.units import human_bytes

# ---------------------------------------------------------------- limits
MAX_TEXT_BYTES = 1 << 30    # text outputs: 1 GiB, read as a stream
MAX_JSON_BYTES = 64 << 20   # a JSON document is parsed whole: 64 MiB
MAX_LINE_CHARS = 1 << 16    # a longer line is no table line: skipped, never held whole


# ---------------------------------------------------------------- reading files
def file_lines(path: Path, limit: int = MAX_TEXT_BYTES) -> Iterator[str]:
    """The lines of a text file, streamed; a line longer than MAX_LINE_CHARS is given as its
    first MAX_LINE_CHARS characters only (the rest is read past, not held). The file is
    decoded as `open_text` finds it (compressed, UTF-16, a BOM); more than `limit` bytes of
    text and anything that is not a readable file are refused with one line."""
    with open_text(path, limit) as f:
        try:
            while True:
                line = f.readline(MAX_LINE_CHARS)
                if not line:
                    return
                if len(line) == MAX_LINE_CHARS and not line.endswith("\n"):
                    while True:  # read past the rest of an overlong line
                        rest = f.readline(MAX_LINE_CHARS)
                        if not rest or rest.endswith("\n"):
                            break
                yield line
        except (OSError, EOFError) as exc:  # a truncated or damaged compressed file, too
            raise UsageError(f"cannot read it ({_reason(exc)})") from None


def _reason(exc) -> str:
    return (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).lower()


# What a file that is no regular file is (os.stat's mode), named in the refusal.
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def _not_a_file(mode: int) -> str | None:
    for test, kind in _KINDS:
        if test(mode):
            return (f"not a file: {kind}; commbench import reads regular files (save the "
                    "output to a file first)")
    return None if stat.S_ISREG(mode) else "not a file"


def check_file(path: Path, limit: float) -> int:
    """The size of a regular file no larger than limit; UsageError (one line) for anything
    else, named by its kind (a directory, a FIFO, a device, a socket). Checked on os.stat
    before anything opens it: opening a FIFO with no writer would block."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise UsageError(exc.strerror.lower() if exc.strerror else str(exc)) from None
    kind = _not_a_file(st.st_mode)
    if kind:
        raise UsageError(kind)
    if st.st_size > limit:
        raise UsageError(too_large(st.st_size, limit))
    return st.st_size


def too_large(size: int, limit: float, what: str = "") -> str:
    return (f"{what}{human_bytes(size)}: larger than the {human_bytes(limit)} commbench import "
            "reads from one file (cut the tables out of it)")


# How a file's first bytes show that it is compressed: (magic, name, opener or None when
# commbench cannot read it, and what to run instead).
_COMPRESSED = (
    (b"\x1f\x8b", "gzip", "gzip"), (b"BZh", "bzip2", "bz2"), (b"\xfd7zXZ\x00", "xz", "lzma"),
    (b"\x28\xb5\x2f\xfd", "zstd", None), (b"PK\x03\x04", "zip", None),
    (b"7z\xbc\xaf\x27\x1c", "7z", None),
)
# Byte order marks, longest first (UTF-32's LE mark starts with UTF-16's).
_BOMS = ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
         (b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


class _Limited(io.RawIOBase):
    """A binary stream that refuses to give more than `limit` bytes (decompressed text can be
    far larger than its file)."""

    def __init__(self, raw, limit: float, what: str):
        self.raw, self.limit, self.what, self.given = raw, limit, what, 0

    def readable(self):
        return True

    def readinto(self, buffer):
        n = self.raw.readinto(buffer)
        self.given += n or 0
        if self.given > self.limit:
            raise UsageError(f"{self.what}more than {human_bytes(self.limit)} of text once "
                             "decompressed: more than commbench import reads from one file "
                             "(cut the tables out of it)")
        return n

    def close(self):
        self.raw.close()
        super().close()


def _open_regular(path: Path):
    """The file opened for reading only if it is a regular file (checked again on the open
    descriptor: a FIFO put in its place after check_file is not waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise UsageError(f"cannot read it ({_reason(exc)})") from None
    kind = _not_a_file(os.fstat(fd).st_mode)
    if kind:
        os.close(fd)
        raise UsageError(kind)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def open_text(path: Path, limit: float = MAX_TEXT_BYTES):
    """A text stream of a tool's output file however it was saved: plain, or compressed with
    gzip, bzip2 or xz (decompressed on the fly); UTF-8 (invalid bytes replaced), or with a
    byte order mark (UTF-8, UTF-16, UTF-32), or UTF-16 without one (every other byte NUL, as
    Windows tools save it). Refused by name (UsageError, one line): a file that is not a regular
    file, compressed in a way the standard library cannot read (zstd, zip, 7z), binary data
    (NUL bytes in what should be text), and more than `limit` bytes of text."""
    path = Path(path)
    check_file(path, limit)
    raw = _open_regular(path)
    try:
        head = raw.read(8)
        raw.seek(0)
        stream, what = raw, ""
        for magic, name, module in _COMPRESSED:
            if head.startswith(magic):
                if module is None:
                    raise UsageError(f"a {name}-compressed file: decompress it first, then "
                                     "import the text")
                import importlib

                stream, what = importlib.import_module(module).open(raw), f"{name}: "
                break
        limited = _Limited(stream, limit, what or "")
        buffered = io.BufferedReader(limited, 1 << 16)
        try:
            head = buffered.peek(4096)[:4096]
        except (OSError, EOFError) as exc:
            raise UsageError(f"{what}cannot read it ({_reason(exc)})") from None
        encoding, bom = _encoding(head, what)
        buffered.read(bom)
        return io.TextIOWrapper(buffered, encoding=encoding, errors="replace", newline=None)
    except BaseException:
        raw.close()
        raise


def _encoding(head: bytes, what: str) -> tuple[str, int]:
    """(text encoding, length of its byte order mark) of a file that starts with `head`
    (see open_text)."""
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding, len(bom)
    if b"\x00" not in head:
        return "utf-8", 0
    even, odd = head[0::2], head[1::2]
    if len(head) >= 4:  # UTF-16 without a mark: mostly NUL high bytes, no NUL low bytes
        if odd.count(0) > 0.9 * len(odd) and even.count(0) < 0.1 * len(even):
            return "utf-16-le", 0
        if even.count(0) > 0.9 * len(even) and odd.count(0) < 0.1 * len(odd):
            return "utf-16-be", 0
    return _binary(head, what)


def _binary(head: bytes, what: str):
    raise UsageError(f"{what}binary data, not a text log (a NUL byte at byte {head.index(0)}); "
                     "commbench import reads the text the tools print")
