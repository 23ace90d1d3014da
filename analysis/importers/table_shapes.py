"""Finding the tables in a tool's output. The shape all three tools print (nccl-tests, OSU,
IMB): lines starting with '#' are comments; some state facts (a version, the test's title, a
dtype, the rank count), one is the header naming the columns, and the rows are the lines whose
first word is a number. TableShape.read cuts the lines into Blocks, one per table, with the
facts stated for it; what a block's facts and columns mean is the tool module's business. A
table's values are always read by the header's column names, never by position.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable
from collections.abc import Iterable, Iterator

from analysis.importers.launcher_lines import SBATCH, parse_launch, slurm_count
from analysis.importers.log_lines import numbered

# ---------------------------------------------------------------- numbers
NUMERIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|[-+]?(inf|nan)$", re.I)


def is_number(word: str) -> bool:
    return bool(NUMERIC.match(word))


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
