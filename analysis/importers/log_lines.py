"""The lines of a tool's output, cleaned (`clean`): what pasting, logging and launching put
around a tool's output is removed, namely MPI output tags (`[1,0]<stdout>:` of
`mpirun --tag-output`, `[0] ` of `-prepend-rank`, `0: ` of `srun --label`), log timestamps,
markdown fences and quote marks, and indentation. Lines that belong to no table (prompts,
`module load`, warnings, NCCL INFO lines) are then simply not taken by any rule
(table_shapes.TableShape).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator


def text_lines(text: str) -> Iterator[str]:
    return iter(text.splitlines())


def as_lines(source) -> Iterable[str]:
    """Lines from a str (the whole text) or any iterable of lines."""
    return text_lines(source) if isinstance(source, str) else source


# What is put in front of a tool's lines: MPI output tags (Open MPI --tag-output
# '[1,0]<stdout>:', Hydra/Intel MPI '[0] ', srun --label '0: '), log timestamps
# (ISO 8601, as kubectl logs --timestamps and journald print them), markdown quote marks.
PREFIX = re.compile(
    r"^\s*(?:"
    r"\[\d+(?:,\d+)*\](?:<std(?:out|err)>)?:?"
    r"|<std(?:out|err)>:"
    r"|\d+:(?=\s)"
    r"|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?(?=\s)"
    r"|>(?=\s|$)"
    r")")
FENCE = re.compile(r"^\s*(```|~~~)")


def clean(line: str) -> str:
    """A line without the prefixes pasting, logging and launching add, stripped; '' for a
    markdown fence."""
    s = line.strip()
    if not s:
        return ""
    if s[0] in "[<>0123456789":
        for _ in range(4):  # a timestamp, then a tag, ...
            m = PREFIX.match(s)
            if not m or not m.end():
                break
            s = s[m.end():].strip()
    if s.startswith(("```", "~~~")):
        return ""
    return s


def numbered(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(line number, cleaned line) of the non-empty lines."""
    for i, raw in enumerate(lines, 1):
        s = clean(raw)
        if s:
            yield i, s
