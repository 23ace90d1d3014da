"""Terminal-safe text for messages: names taken from files, paths and values shown on one
line, with no control character that could steer a terminal, and the one-line error for a
file that could not be read or written. Every module that names a file or a value in a
message goes through here (the core's: a rank prints them too)."""
from __future__ import annotations

import re

from bench.core.errors import RunDirError

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text) -> str:
    """text with every control character (newlines, escapes) written out as a Python escape
    (`\\n`, `\\x1b`): names taken from files or paths stay on one line and cannot steer a
    terminal."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(text))


def has_control(text: str) -> bool:
    return bool(_CONTROL.search(text))


def path_text(path) -> str:
    """A path as messages show it (one line)."""
    return one_line(path)


def file_error(path, exc: OSError, what: str = "write it", hint: str = "") -> RunDirError:
    """The one-line error for a file or directory that could not be read, listed or written
    (`what`: 'write it', 'read it', ...), with an optional hint after it."""
    reason = exc.strerror or one_line(exc) or type(exc).__name__
    return RunDirError(f"{path_text(path)}: cannot {what} ({reason}){hint}")


def message_value(value) -> str:
    """A value from a file as a message shows it: text quoted (one line, at most 60
    characters), numbers plainly (inf, -1e-06, 99)."""
    if isinstance(value, str):
        return one_line(repr(value))[:60]
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return one_line(repr(value))[:60]
