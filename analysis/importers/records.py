"""The records an importer's parser returns: Row (one table row, in commbench units) and
Imported (the rows of one file, with what was skipped and why and the report line); make_row,
which lets only a finite positive time become a row; the row limit of one import; and the
numbers read from a table's words.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.core.errors import UsageError

# ---------------------------------------------------------------- limits
MAX_ROWS = 200_000          # result rows of one import, all files together: all are kept in memory
EXAMPLES = 3                # malformed rows named in the report line (all are counted)


# ---------------------------------------------------------------- records
@dataclass(slots=True)
class Row:
    """One table row: the tool's time for one op and size, already in commbench units."""
    op: str
    nbytes: int         # commbench S
    nranks: int
    time_s: float       # seconds per op: finite and positive (make_row checks)
    dtype: str = "uint8"
    count: float = float("nan")
    calls: float = float("nan")  # iterations behind the tool's average, when printed
    wrong: float = 0.0  # wrong results the tool reported; NaN: the tool did not check
    backend: str = ""   # "" = the file's backend (Imported.backend)
    variant: str = ""   # appended to the backend: what makes these rows another setup
    rank: int = -1      # per-rank rows (nccl-tests -I 1: a process row); -1: the tool's summary
    sample: int = 0     # the iteration of per-iteration rows
    record: int = -1    # rows of one record of the file (>= 0) are one round of their case


@dataclass
class Imported:
    tool: str
    backend: str
    rows: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)    # tool-specific metadata for meta.json
    method: dict = field(default_factory=dict)
    tables: list = field(default_factory=list)  # what each imported table was (meta.json)
    skipped: list = field(default_factory=list)  # (what, why) of each table not imported
    notes: list = field(default_factory=list)   # other things the report line must say
    malformed: int = 0                          # rows that could not be read
    malformed_examples: list = field(default_factory=list)
    op_used: bool = False                       # --op named a table
    nranks_used: bool = False                   # --nranks gave a table's rank count

    def bad_row(self, line, text: str, why: str) -> None:
        """Count a row that could not be read; name the first few (line: a line number, or
        where in a document)."""
        self.malformed += 1
        if len(self.malformed_examples) < EXAMPLES:
            where = f"line {line}" if isinstance(line, int) else str(line)
            shown = text if len(text) <= 60 else text[:57] + "..."
            self.malformed_examples.append(f"{where} {shown!r}: {why}" if text else f"{where}: {why}")

    def skip(self, what: str, why: str) -> None:
        self.skipped.append((what, why))

    def skipped_lines(self) -> list:
        return [f"{what}: {why}" for what, why in self.skipped]

    def why_nothing(self) -> str:
        """' (what was skipped and why)' for the error of a file with nothing imported."""
        said = self.skipped_lines() + self.malformed_examples
        return f" ({'; '.join(said)})" if said else ""

    def add(self, row: Row) -> None:
        if len(self.rows) >= MAX_ROWS:
            raise too_many_rows()
        self.rows.append(row)

    def set_version(self, tool: str, version: str) -> None:
        """Record a version; a second, different one is kept beside the first."""
        versions = self.meta.setdefault("versions", {})
        known = versions.get(tool, "")
        if version and version not in known.split(", "):
            versions[tool] = f"{known}, {version}" if known else version

    def report(self) -> str:
        """One line: what was imported, what was skipped and why (after the file name)."""
        ops = []
        for t in self.tables:
            text = f"{t['op']} n={t['nranks']}"
            source = t.get("nranks_from", "")
            if "line" in source or source == "--nranks":  # the others go without saying
                text += f" ({source})"
            if t.get("backend"):
                text += f" [{t['backend']}]"
            if text not in ops:
                ops.append(text)
        parts = [f"{self.tool}: {len(self.rows)} rows from {len(self.tables)} "
                 f"table{'s' * (len(self.tables) != 1)} ({'; '.join(ops)})"]
        by_why: dict = {}
        for what, why in self.skipped:
            by_why.setdefault(why, []).append(what)
        for why, whats in by_why.items():
            parts.append(f"skipped {', '.join(whats)}: {why}")
        if self.malformed:
            more = self.malformed - len(self.malformed_examples)
            parts.append(f"{self.malformed} malformed row{'s' * (self.malformed != 1)} not imported: "
                         + "; ".join(self.malformed_examples) + (f"; and {more} more" if more else ""))
        parts += self.notes
        return "; ".join(parts)


def too_many_rows() -> UsageError:
    return UsageError(f"more than {MAX_ROWS} result rows: commbench import keeps every row in "
                      "memory; import fewer files at once")


def make_row(imp: Imported, line: int | str, text: str, *, op: str, nbytes, nranks: int, time_s,
             **extra) -> Row | None:
    """A Row, or None (counted as malformed, with the reason) when its size or time is not a
    finite positive number: nothing NaN, infinite, zero or negative becomes a sample."""
    if nbytes is None or nbytes < 0:
        imp.bad_row(line, text, "no size")
        return None
    if time_s is None or not math.isfinite(time_s):
        imp.bad_row(line, text, "no finite time")
        return None
    if time_s <= 0:
        imp.bad_row(line, text, "time printed as zero" if time_s == 0 else "negative time")
        return None
    row = Row(op=op, nbytes=int(nbytes), nranks=nranks, time_s=float(time_s), **extra)
    imp.add(row)
    return row


# ---------------------------------------------------------------- numbers
def number(text) -> float:
    """A float from text; NaN for anything else ('N/A', '', None)."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def integer(text) -> int | None:
    """A non-negative integer printed as such ('1024'), else None."""
    return int(text) if isinstance(text, str) and text.isdigit() else None
