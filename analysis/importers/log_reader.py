"""What the importers share: the records a parser returns (Row, Imported), the streaming line
reader every text format goes through, the tools' dtype spellings, launcher lines, and the op
facts the parsers take from bench.ops (which op a tool's name means, S from the size it prints).

Reading. A file is read line by line (`file_lines`: bounded line length, a stated size limit),
so memory does not grow with the chatter around the tables. Each line is cleaned (`clean`):
what pasting, logging and launching put around a tool's output is removed, namely MPI output
tags (`[1,0]<stdout>:` of `mpirun --tag-output`, `[0] ` of `-prepend-rank`, `0: ` of
`srun --label`), log timestamps, markdown fences and quote marks, and indentation. Lines that
belong to no table (prompts, `module load`, warnings, NCCL INFO lines) are then simply
not taken by any rule.

The shape all three tools print (nccl-tests, OSU, IMB): lines starting with '#' are comments;
some state facts (a version, the test's title, a dtype, the rank count), one is the header
naming the columns, and the rows are the lines whose first word is a number. TableShape.read
cuts the lines into Blocks, one per table, with the facts stated for it; what a block's facts
and columns mean is the tool module's business. A table's values are always read by the
header's column names, never by position.
"""
from __future__ import annotations

import io
import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from collections.abc import Iterable, Iterator

from bench.core.errors import UsageError
from bench.core.units import human_bytes
from analysis.known_ops import FOREIGN_OPS, known_op
from bench.ops import OPS

# ---------------------------------------------------------------- limits
MAX_TEXT_BYTES = 1 << 30    # text outputs: 1 GiB, read as a stream
MAX_JSON_BYTES = 64 << 20   # a JSON document is parsed whole: 64 MiB
MAX_LINE_CHARS = 1 << 16    # a longer line is no table line: skipped, never held whole
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


NUMERIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|[-+]?(inf|nan)$", re.I)


def is_number(word: str) -> bool:
    return bool(NUMERIC.match(word))


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


# ---------------------------------------------------------------- launcher lines
@dataclass(frozen=True)
class Launch:
    """A launcher command line seen in the file: the rank count it gives (None: not said)."""
    line: int
    count: int | None
    how: str           # 'mpirun -np 36', for the report
    program: str = ""  # the benchmark program it starts, when it names one


LAUNCHER = re.compile(r"(?:^|[\s;&|(`'\"$])(mpirun|mpiexec(?:\.\w+)?|orterun|prterun|srun|aprun)"
                      r"(?=\s)(.*)$")
SBATCH = re.compile(r"^#\s*SBATCH\s+(.*)$")
PROGRAM = re.compile(r"(?:^|/)(osu_\w+|\w+_perf(?:_mpi)?|IMB-\w+)$")
COUNT_OPTS = {"-n", "-np", "--n", "--np", "-c"}  # mpirun / mpiexec / aprun: the total
SLURM_COUNT = {"-n", "--ntasks"}


def parse_launch(line_no: int, s: str, job: int | None = None) -> Launch | None:
    """The Launch of a line that runs mpirun, mpiexec, srun or aprun (anywhere in the line: a
    shell prompt, `+ ` of set -x, `time` before it), or None. Only options before the program
    count (after it they are the program's own: nccl-tests' -n is its iteration count). A
    launcher line with no count of its own takes the job's (#SBATCH) when there is one."""
    m = LAUNCHER.search(s)
    if not m:
        return None
    launcher, words = m.group(1), m.group(2).split()
    if not words or not (words[0][0] in "-$./~" or PROGRAM.search(words[0])):
        return None  # 'mpirun noticed that process rank 0 ...': a message, not a command
    program = ""
    for i, w in enumerate(words):
        if found := PROGRAM.search(w):
            program, words = found.group(1), words[:i]
            break
    count = slurm_count(words) if launcher == "srun" else option_count(words, COUNT_OPTS)
    how = f"{launcher} line {line_no}"
    if count is None and job is not None:
        count, how = job, f"{launcher} in an #SBATCH job, line {line_no}"
    return Launch(line_no, count, how, program)


def option_count(words: list, names: set) -> int | None:
    """The value of the last of `names` among words ('-np 4', '-np=4', '-n4')."""
    count = None
    for i, w in enumerate(words):
        key, eq, value = w.partition("=")
        if key in names:
            value = value if eq else (words[i + 1] if i + 1 < len(words) else "")
        elif len(w) > 2 and w[:2] in names and w[2:].isdigit():  # -n4
            value = w[2:]
        else:
            continue
        if value.isdigit() and int(value) > 0:
            count = int(value)
    return count


def slurm_count(words: list) -> int | None:
    """srun / #SBATCH: --ntasks, or --nodes x --ntasks-per-node."""
    count = option_count(words, SLURM_COUNT)
    if count is None:
        nodes, per_node = option_count(words, {"-N", "--nodes"}), option_count(words, {"--ntasks-per-node"})
        if nodes and per_node:
            count = nodes * per_node
    return count


# ---------------------------------------------------------------- the line-table reader
@dataclass
class Block:
    """One table of a tool's output: the facts stated for it, the column names of its header
    line, and its data rows (line number, words)."""
    facts: dict = field(default_factory=dict)   # name -> re.Match (a list of them for `many`)
    columns: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    start: int = 0          # line of the title (or header) that opened it
    header_line: int = 0
    loose: int = 0          # numeric lines met before any header (not read: no column names)
    loose_line: int = 0
    closed: bool = False    # a closing fact was met: later numeric lines are not its rows

    def fact(self, name: str, group: int = 1, default=None):
        """A group of the last match of fact `name` (default when the block has none)."""
        m = self.facts.get(name)
        if isinstance(m, list):
            m = m[-1] if m else None
        if m is None:
            return default
        return m.group(group) if isinstance(m, re.Match) else m


@dataclass(frozen=True)
class TableShape:
    """How one tool lays out its tables; read() cuts a stream of lines into Blocks.

    Every cleaned line is taken by the first rule it meets:
      facts    (name, regex[, hint]) in order: a line the regex finds (re.search) states that
               fact (a '^#' regex is only tried on comment lines, a hint is a word the line
               must hold); the block keeps the last match (a list of all for names in `many`);
      launch   (when `launches`) a launcher command line (parse_launch): fact 'launch';
               '#SBATCH' lines give the job's rank count, for launcher lines without one;
      header   a comment line ('#') for which header(line) gives column names;
      row      a line whose first word is a number, once the block has a header.
    A new block starts at a line `opens` matches (only once the current block has rows, when
    `after_rows`), and at a header line when the current block already has rows (a table
    with no title). The new block takes the facts named in `keep` from the one before; all
    the facts of the preamble (the lines before the first table: a launcher line, a file
    header); and the facts stated after the previous block's rows, since those lead into the
    next table, except the `closing` ones (a footer: they belong to the block before, and end
    its rows). A table that printed no rows passes on only its `keep` facts."""
    facts: tuple = ()
    opens: str = r"(?!)"
    header: Callable | None = None
    many: frozenset = frozenset()
    keep: frozenset = frozenset()
    closing: frozenset = frozenset()
    after_rows: bool = False
    launches: bool = False

    def read(self, lines: Iterable[str]) -> Iterator[Block]:
        # facts stated on comment lines ('^#' patterns) are only looked for there; the others
        # only on lines holding their hint (a word the line must contain), when they give one
        compiled = [(fact[0], re.compile(fact[1]), fact[2] if len(fact) > 2 else "") for fact in self.facts]
        comment_facts = [f for f in compiled if f[1].pattern.startswith("^#")]
        other_facts = [f for f in compiled if not f[1].pattern.startswith("^#")]
        opens = re.compile(self.opens)
        pending: dict
        job_words: list
        block, pending, job, job_words = Block(), {}, None, []

        def start(line_no):
            nonlocal block, pending
            carried = {k: v for k, v in block.facts.items() if k in self.keep}
            if not block.rows and not block.start:  # a preamble: what it states leads in
                carried.update(block.facts)
            carried.update(pending)
            old, block, pending = block, Block(facts=carried, start=line_no), {}
            return old

        def state(name, value):
            target = pending if block.rows and name not in self.closing else block.facts
            if name in self.many:
                target.setdefault(name, []).append(value)
            else:
                target[name] = value
            if name in self.closing:
                block.closed = True

        for line_no, s in numbered(lines):
            if opens.match(s) and (block.rows or not self.after_rows):
                yield start(line_no)
            for name, pattern, hint in comment_facts if s[0] == "#" else other_facts:
                m = (hint in s) and pattern.search(s)
                if m:
                    state(name, m)
                    break
            else:
                if self.launches and ("run" in s or "exec" in s or "SBATCH" in s):
                    sb = SBATCH.match(s)
                    if sb:  # '#SBATCH' options add up over lines
                        job_words += sb.group(1).split("#")[0].split()
                        job = slurm_count(job_words)
                        continue
                    launch = parse_launch(line_no, s, job)
                    if launch is not None:
                        state("launch", launch)
                        continue
                if s[0] == "#":
                    columns = self.header(s) if self.header else None
                    if columns is not None:
                        if block.rows:
                            yield start(line_no)
                        block.columns, block.header_line, block.closed = columns, line_no, False
                        if not block.start:
                            block.start = line_no
                    continue
                first = s.split(None, 1)[0]
                if not is_number(first) or block.closed:
                    continue
                if block.columns:
                    block.rows.append((line_no, s.split()))
                else:
                    block.loose += 1
                    block.loose_line = block.loose_line or line_no
        yield block


# ---------------------------------------------------------------- column headers
def split_columns(line: str, known: str) -> list | None:
    """The column names of a header line: the line (after '#') cut into the names the regex
    `known` matches, in order, with nothing else on the line but white space; None when the
    line holds anything else (a header that cannot be mapped is not guessed at)."""
    body = line.lstrip("#").strip()
    names, pos = [], 0
    for m in re.finditer(known, body):
        if body[pos:m.start()].strip():
            return None
        names.append(m.group(0))
        pos = m.end()
    if not names or body[pos:].strip():
        return None
    return names


# ---------------------------------------------------------------- dtypes
# the tools' spellings (nccl-tests' type column, MPI datatype names of OSU and IMB)
DTYPES = {
    "float": "float32", "double": "float64", "half": "float16", "bfloat16": "bfloat16",
    "int": "int32", "int32": "int32", "uint32": "uint32", "int64": "int64", "uint64": "uint64",
    "int8": "int8", "uint8": "uint8", "char": "int8", "byte": "uint8", "mpi_char": "int8",
    "mpi_byte": "uint8", "mpi_int": "int32", "mpi_float": "float32", "mpi_double": "float64",
    "fp8_e4m3": "float8_e4m3", "fp8_e5m2": "float8_e5m2",
}
ITEMSIZE = {"float64": 8, "int64": 8, "uint64": 8, "float32": 4, "int32": 4, "uint32": 4,
            "float16": 2, "bfloat16": 2, "int8": 1, "uint8": 1}


def canon_dtype(name: str) -> str:
    key = name.strip().rstrip(".").lower()
    return DTYPES.get(key, key or "uint8")


def element_count(nbytes_tool: int, dtype: str) -> float:
    """Elements in the size a tool prints; NaN for a dtype of unknown size."""
    size = ITEMSIZE.get(dtype)
    return float(nbytes_tool // size) if size else float("nan")


# ---------------------------------------------------------------- ops (from bench.ops)
def op_named(name: str):
    """The known op (measured or foreign) of exactly this name, or None. Tools' names are
    mapped before (ops_named_by); other spellings are not guessed, so a name no op has keeps
    no facts (its S is the printed size, its bus factor unknown)."""
    op = known_op(name)
    return op if op is not None and op.name == name else None


def ops_named_by(tool: str) -> dict:
    """{the tool's name for an op: commbench op name}, from the ops' tool_names (measured,
    then foreign; an op that inherits its parent's names does not take them over)."""
    names: dict = {}
    for op in [*OPS.values(), *FOREIGN_OPS.values()]:
        if tool in op.tool_names:
            names.setdefault(op.tool_names[tool], op.name)
    return names


def s_of_tool_size(op: str, size_tool: int, nranks: int) -> int:
    """commbench's S from the size a tool prints (one message, or one rank's block)."""
    known = op_named(op)
    return known.s_of_tool_size(size_tool, nranks) if known else size_tool


def msgs_per_op(op: str, nranks: int) -> float:
    known = op_named(op)
    return known.msgs_per_op(nranks) if known else 1.0
