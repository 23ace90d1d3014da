"""Run directories as pandas frames, for analysis. The format itself (columns, schema, the
writer, the summary) is defined once in bench.core.rundir; this module only reads it into
frames and hands frames back to it.

Every reader here checks what it reads, because a run directory may be damaged (a crash, a
full disk, a hand edit) or hostile (someone else's): meta.json (bench.core.rundir.load_meta,
then the types of the fields analysis uses), samples.csv and summary.csv (`read_table`:
UTF-8 text, a header with the required columns, every line with the header's number of
fields, every value of its column's type and range, times finite and positive). Anything else
is a RunDirError of one line that names the file, the line and the problem (`commbench`
prints it and exits 2). pandas is imported inside the functions: modules the command line
loads for every command import this one.
"""
from __future__ import annotations

import csv
import io
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.core import rundir as fmt
from bench.core.errors import RunDirError
from bench.core.rundir import CASE, SUMMARY_COLUMNS, WRITTEN_SAMPLE_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

# ---- one-line messages ---------------------------------------------------------------------
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text) -> str:
    """text with every control character (newlines, escapes) written out as a Python escape
    (`\\n`, `\\x1b`): names taken from files or paths stay on one line and cannot steer a
    terminal."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(text))


def has_control(text: str) -> bool:
    return bool(_CONTROL.search(text))


def shown(path) -> str:
    """A path as messages show it (one line)."""
    return one_line(path)


def file_error(path, exc: OSError, what: str = "write it", hint: str = "") -> RunDirError:
    """The one-line error for a file or directory that could not be read, listed or written
    (`what`: 'write it', 'read it', ...), with an optional hint after it."""
    reason = exc.strerror or one_line(exc) or type(exc).__name__
    return RunDirError(f"{shown(path)}: cannot {what} ({reason}){hint}")


# ---- meta.json -------------------------------------------------------------------------------
MAX_META_DEPTH = 64  # nesting of meta.json's JSON; commbench writes 4 or 5 levels


def load_meta(run_dir) -> dict:
    """meta.json of a run directory (bench.core.rundir.load_meta: a directory, the file, JSON,
    an object of this schema), then the types of the fields analysis reads (`check_meta`)."""
    run_dir = Path(run_dir)
    path = run_dir / fmt.META
    try:
        str(run_dir).encode("utf-8")
    except UnicodeEncodeError:  # what is read from it would be shown and written under it
        name = str(run_dir).encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
        raise RunDirError(f"{one_line(name)}: the name holds bytes that are not UTF-8, which "
                          "reports and tables cannot carry; rename it (commbench run refuses "
                          "such names)") from None
    if run_dir.is_dir() and (path.exists() or path.is_symlink()) and not (path.is_file() or path.is_dir()):
        # a FIFO or a device would block or never end; a dangling link is no file either
        raise RunDirError(f"{shown(path)}: not a regular file")
    try:
        meta = fmt.load_meta(run_dir)
    except RunDirError as exc:
        raise RunDirError(one_line(exc)) from None
    except RecursionError:
        raise RunDirError(f"{shown(path)}: JSON nested too deeply") from None
    except ValueError as exc:  # e.g. a number too long to convert
        raise RunDirError(f"{shown(path)}: unreadable JSON ({one_line(exc)})") from None
    check_meta(meta, path)
    if fmt.in_progress(run_dir):  # half a run read as a whole one would mislead every verb
        raise RunDirError(f"{shown(run_dir)}: a commbench run is still writing it (its lock "
                          f"is held; status {one_line(meta.get('status'))}): wait until it ends")
    return meta


def _depth(value) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        deepest = max(deepest, d)
        if d > MAX_META_DEPTH:
            break
        if isinstance(v, dict):
            stack += [(x, d + 1) for x in v.values()]
        elif isinstance(v, list):
            stack += [(x, d + 1) for x in v]
    return deepest


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_meta(meta: dict, path) -> None:
    """The fields of meta.json that analysis uses have the types results/README.md gives
    them (absent or null is fine: imported and older runs lack many). RunDirError else."""
    def bad(field, why):
        raise RunDirError(f"{shown(path)}: {field}: {why}")

    if _depth(meta) > MAX_META_DEPTH:
        bad("JSON", f"nested deeper than {MAX_META_DEPTH} levels")
    for field in ("run_id", "status", "source", "commbench"):
        v = meta.get(field)
        if v is not None and not isinstance(v, str):
            bad(field, f"expected a string, found {type(v).__name__}")
        if isinstance(v, str) and has_control(v):
            bad(field, "holds a control character")
    for field in ("nranks", "nnodes"):
        v = meta.get(field)
        if v is not None and not (_is_int(v) and 1 <= v <= 1 << 24):
            bad(field, f"expected a positive integer, found {one_line(repr(v))[:60]}")
    hosts = meta.get("hosts")
    if hosts is not None:
        if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
            bad("hosts", "expected a list of host names")
        if any(has_control(h) for h in hosts):
            bad("hosts", "a host name holds a control character")
    for field, kind in (("launches", list), ("ops", dict), ("contention", dict), ("noise", dict)):
        v = meta.get(field)
        if v is not None and not isinstance(v, kind):
            bad(field, f"expected {'a list' if kind is list else 'an object'}, "
                       f"found {type(v).__name__}")
    backend = meta.get("backend")
    if backend is not None and not isinstance(backend, (str, dict)):
        bad("backend", f"expected an object or a string, found {type(backend).__name__}")
    for op, info in (meta.get("ops") or {}).items():
        if info is not None and not isinstance(info, dict):
            bad(f"ops.{one_line(op)[:60]}", f"expected an object, found {type(info).__name__}")
        for key in ("delay_s0", "delay_Bps"):
            v = (info or {}).get(key)
            if v is not None and not (_is_number(v) and v >= 0):
                bad(f"ops.{one_line(op)[:60]}.{key}", "expected a finite number ≥ 0")
    # the summaries of the machine that `commbench run` and the report print
    if meta.get("contention"):
        try:
            from bench import contention

            hosts_c = meta["contention"].get("hosts", {})
            any(h.get("contended") for h in hosts_c.values())
            contention.describe(meta["contention"])
        except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
            bad("contention", f"malformed ({type(exc).__name__}: {one_line(exc)[:80]})")
    if meta.get("noise"):
        try:
            from bench import noise

            noise.describe(meta["noise"])
        except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
            bad("noise", f"malformed ({type(exc).__name__}: {one_line(exc)[:80]})")


# ---- CSV tables ------------------------------------------------------------------------------
ERROR, DROP, KEEP = "error", "drop", "keep"  # what an empty field means (Col.empty)


@dataclass(frozen=True)
class Col:
    """What one column of a table may hold. kind: 'str' (non-empty, no control characters),
    'int' or 'num' (a number within [lo, hi], > lo when lo_open; finite unless allow_inf).
    empty: ERROR, DROP (the row is dropped), KEEP (NaN) or a value filled in."""
    kind: str
    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False
    allow_inf: bool = False
    empty: object = ERROR
    unit: str = ""

    def rule(self) -> str:
        what = {"str": "a non-empty name", "int": "an integer", "num": "a finite number"}[self.kind]
        if self.kind == "num" and self.allow_inf:
            what = "a number"
        def text(x):
            return f"{x:.0f}" if x == int(x) and abs(x) < 1e16 else f"{x:g}"

        bounds = []
        if self.lo > -math.inf:
            bounds.append(f"{'>' if self.lo_open else '≥'} {text(self.lo)}")
        if self.hi < math.inf:
            bounds.append(f"≤ {text(self.hi)}")
        unit = f" ({self.unit})" if self.unit else ""
        return what + (" " + " and ".join(bounds) if bounds else "") + unit


NAME = Col("str")
MAX_RANKS = 1 << 24   # a sanity bound on rank numbers and counts
MAX_BYTES = 1 << 53   # sizes stay exact as floats
TIME = Col("num", lo=0.0, lo_open=True, unit="seconds")

SAMPLE_SPEC = {
    "backend": NAME, "op": NAME, "dtype": NAME, "split": NAME,
    "nbytes": Col("int", 0, MAX_BYTES), "nranks": Col("int", 1, MAX_RANKS),
    "round": Col("int", 0, MAX_BYTES), "sample": Col("int", 0, MAX_BYTES),
    "rank": Col("int", -1, MAX_RANKS), "calls": Col("int", 0, MAX_BYTES, empty=KEEP),
    "time_s": Col("num", 0.0, lo_open=True, empty=DROP, unit="seconds"),
    "peer": Col("int", -1, MAX_RANKS, empty=-1),
}
_OPTIONAL_TIME = Col("num", 0.0, lo_open=True, empty=KEEP, unit="seconds")
_RATE = Col("num", 0.0, empty=KEEP)
SUMMARY_SPEC = {
    "backend": NAME, "op": NAME, "dtype": NAME, "split": NAME,
    "nbytes": Col("int", 0, MAX_BYTES), "nranks": Col("int", 1, MAX_RANKS),
    "count": Col("num", 0.0, empty=KEEP),
    "median_s": TIME, "ci_low_s": _OPTIONAL_TIME, "ci_high_s": _OPTIONAL_TIME,
    "min_s": _OPTIONAL_TIME, "max_s": _OPTIONAL_TIME,
    "algbw_Bps": _RATE, "busbw_Bps": _RATE, "msg_rate_per_s": _RATE,
    "wrong": Col("int", 0, MAX_BYTES, empty=KEEP), "samples": Col("int", 0, MAX_BYTES, empty=KEEP),
    "rounds": Col("int", 0, MAX_BYTES, empty=KEEP), "modes": Col("int", 0, MAX_BYTES, empty=KEEP),
    "ceiling": Col("str", empty=""), "efficiency": Col("num", 0.0, empty=KEEP),
    "flags": Col("str", empty=""),
}
# what each table must hold to be read (later additions are optional, filled in or absent)
SAMPLE_REQUIRED = list(fmt.SAMPLE_COLUMNS)
SUMMARY_REQUIRED = CASE + ["median_s"]


def regular_file(path, missing_ok: bool = True) -> bool:
    """True for a regular file, False when nothing is there (missing_ok), RunDirError for
    anything else (a directory, a FIFO that would block, a dangling link)."""
    path = Path(path)
    if not path.exists():
        if path.is_symlink():
            raise RunDirError(f"{shown(path)}: a dangling symbolic link")
        if missing_ok:
            return False
        raise RunDirError(f"{shown(path)}: no such file")
    if path.is_dir():
        raise RunDirError(f"{shown(path)}: is a directory, not a file")
    if not path.is_file():
        raise RunDirError(f"{shown(path)}: not a regular file")
    return True


def read_bytes(path, missing_ok: bool = True) -> bytes | None:
    """The bytes of a regular file; None when it does not exist (missing_ok), RunDirError
    for anything else that cannot be read."""
    path = Path(path)
    if not regular_file(path, missing_ok):
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise file_error(path, exc, "read it") from None


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _check_text(data: bytes, path, line0: int = 0) -> bytes:
    """UTF-8 text without NUL bytes or stray carriage returns (CRLF line ends are taken).
    line0: lines of the file before data (a chunk of a large file)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RunDirError(f"{shown(path)}: not UTF-8 text (line {line0 + _line_of(data, exc.start)})") from None
    nul, cr = b"\x00", b"\r"
    if nul in data:
        line = line0 + _line_of(data, data.index(nul))
        raise RunDirError(f"{shown(path)}: line {line}: a NUL byte (not a text table, or damaged)")
    if cr in data:
        data = data.replace(b"\r\n", b"\n")
        if cr in data:
            line = line0 + _line_of(data, data.index(cr))
            raise RunDirError(f"{shown(path)}: line {line}: a stray carriage return")
    return data


def _check_fields(data: bytes, ncols: int, path, line0: int = 0) -> None:
    """Every line (data ends with a newline) has ncols comma-separated fields: a line torn by
    a crash and continued by a later write, or a blank line, is named. In chunks: files of
    millions of samples stay cheap. line0: lines of the file before data."""
    import numpy as np

    chunk, start = 1 << 24, 0
    while start < len(data):
        end = data.rfind(b"\n", start, start + chunk) + 1
        if end <= start:  # one line longer than a chunk
            end = data.index(b"\n", start) + 1
        b = np.frombuffer(data, np.uint8, end - start, start)
        ends = np.flatnonzero(b == 10)
        starts = np.concatenate(([0], ends[:-1] + 1))
        commas = np.flatnonzero(b == 44)
        per = np.searchsorted(commas, ends) - np.searchsorted(commas, starts)
        bad = np.flatnonzero(per != ncols - 1)
        if bad.size:
            i = int(bad[0])
            line = line0 + i + 1
            if ends[i] == starts[i]:
                raise RunDirError(f"{shown(path)}: line {line}: a blank line")
            raise RunDirError(f"{shown(path)}: line {line}: {int(per[i]) + 1} fields, the header "
                              f"has {ncols} (a torn or damaged line)")
        line0 += ends.size
        start = end


def _check_quoted_fields(data: bytes, ncols: int, path) -> None:
    """As _check_fields, for a (small) file that may quote fields."""
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    try:
        for row in reader:
            if len(row) != ncols:
                what = "a blank line" if not row else (f"{len(row)} fields, the header has "
                                                       f"{ncols} (a torn or damaged line)")
                raise RunDirError(f"{shown(path)}: line {reader.line_num}: {what}")
    except csv.Error as exc:
        raise RunDirError(f"{shown(path)}: line {reader.line_num}: {one_line(exc)}") from None


def read_table(path, spec: dict, required, torn_ok: bool = False, quoted: bool = False,
               empty_ok: bool = True, columns=None, kind: str = "") -> pd.DataFrame | None:
    """A checked CSV table (see the module docstring): None when the file does not exist; an
    empty frame (with `columns`) when it is empty (an error unless empty_ok). torn_ok: a last
    line without its newline (a crash mid-append) is dropped. quoted: the file may quote
    fields (written by pandas); else fields are split on every comma, as bench.core.rundir
    writes them. kind: what the file is, named when the header lacks a required column."""
    data = read_bytes(path)
    if data is None:
        return None
    if data and not data.endswith(b"\n"):  # before the text checks: a torn line may end
        data = data[: data.rfind(b"\n") + 1] if torn_ok else data + b"\n"  # mid-character
    return parse_table(data, path, spec, required, quoted=quoted, empty_ok=empty_ok,
                       columns=columns, kind=kind, last=True)


def parse_table(data: bytes, path, spec: dict, required, quoted: bool = False,
                empty_ok: bool = True, columns=None, kind: str = "", line0: int = 0,
                last: bool = True) -> pd.DataFrame:
    """read_table's checks and parsing of `data` (whole lines, a header first). For a chunk
    of a large file: line0 lines of the file come before data's first line other than its
    header, and only the last chunk (last) may end in blank lines."""
    import pandas as pd

    data = _check_text(data, path, line0)
    if last and data.endswith(b"\n\n"):  # blank lines at the end are no damage
        data = data.rstrip(b"\n") + b"\n"
    if not data.strip():
        if not empty_ok:
            raise RunDirError(f"{shown(path)}: an empty file (not even a header line)")
        return pd.DataFrame(columns=list(columns if columns is not None else spec))
    header_line = data[: data.index(b"\n")].decode("utf-8")
    header = next(csv.reader([header_line])) if quoted else header_line.split(",")
    seen = set()
    for name in header:
        if name in seen:
            raise RunDirError(f"{shown(path)}: line 1: column {one_line(name)!r} twice")
        seen.add(name)
    missing = [c for c in required if c not in seen]
    if missing:
        what = f"no {', '.join(missing)} column{'s' if len(missing) > 1 else ''}"
        raise RunDirError(f"{shown(path)}: not {kind} ({what})" if kind
                          else f"{shown(path)}: {what} (line 1: the header)")
    if quoted:
        _check_quoted_fields(data, len(header), path)
    else:
        _check_fields(data, len(header), path, line0)
    names = {c for c, col in spec.items() if col.kind == "str"}
    try:
        df = pd.read_csv(io.BytesIO(data), encoding="utf-8", keep_default_na=False,
                         na_values=[""], dtype={c: str for c in header if c in names},
                         quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE,
                         low_memory=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise RunDirError(f"{shown(path)}: unreadable table ({one_line(exc)[:120]})") from None
    if len(df.columns) != len(header):
        raise RunDirError(f"{shown(path)}: unreadable table (the header does not parse)")
    return check_columns(df, spec, path, line0)


def read_table_chunks(path, spec: dict, required, chunk_bytes: int = 1 << 26, **kw):
    """read_table of an unquoted table a chunk of about chunk_bytes at a time: yields checked
    frames (errors name the file's own line numbers). A torn last line is dropped (samples
    are appended). Memory stays bounded by a chunk, whatever the file's size."""
    if not regular_file(path):
        return
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise file_error(path, exc, "read it") from None
    with f:
        header, lines_before, rest = b"", 0, b""
        while True:
            try:
                chunk = f.read(chunk_bytes)
            except OSError as exc:
                raise file_error(path, exc, "read it") from None
            last = not chunk
            data = rest + chunk
            cut = len(data) if last else data.rfind(b"\n") + 1
            if last and data and not data.endswith(b"\n"):
                cut = data.rfind(b"\n") + 1  # a torn last line (a crash mid-append)
            body, rest = data[:cut], data[cut:]
            if not header:
                if not body and not last:
                    continue
                yield parse_table(body, path, spec, required, line0=0, last=last, **kw)
                header = body[: body.find(b"\n") + 1] if body else b""
                lines_before = body.count(b"\n")
            elif body:
                yield parse_table(header + body, path, spec, required, line0=lines_before - 1,
                                  last=last, **kw)
                lines_before += body.count(b"\n")
            if last:
                return


def value_text(value) -> str:
    """A value from a file as a message shows it: text quoted (one line, at most 60
    characters), numbers plainly (inf, -1e-06, 99)."""
    if isinstance(value, str):
        return one_line(repr(value))[:60]
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return one_line(repr(value))[:60]


def check_columns(df: pd.DataFrame, spec: dict, path, line0: int = 0) -> pd.DataFrame:
    """Every column named in spec holds its kind of values (RunDirError naming the first bad
    line, counted as written: row i is line line0 + i + 2); rows with an empty DROP field are
    dropped, empty fill fields filled and integer columns without gaps made int64."""
    import numpy as np
    import pandas as pd

    def fail(i, name, raw, why):
        raise RunDirError(f"{shown(path)}: line {line0 + int(i) + 2}: {name} {value_text(raw)}: {why}")

    def no_value(empty):
        i = int(np.flatnonzero(empty)[0])
        raise RunDirError(f"{shown(path)}: line {line0 + i + 2}: no {name} (an empty field)")

    drop = np.zeros(len(df), bool)
    for name, col in spec.items():
        if name not in df.columns:
            continue
        s = df[name]
        if col.kind == "str":  # names: few distinct values, checked once each
            for value in s.unique():
                if not isinstance(value, str):
                    if col.empty is ERROR:
                        no_value(s.isna().to_numpy())
                elif has_control(value):
                    fail(int(np.flatnonzero((s == value).to_numpy())[0]), name, value,
                         "holds a control character")
            continue
        empty = s.isna().to_numpy()
        if empty.any() and col.empty is ERROR:
            no_value(empty)
        if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
            v = pd.to_numeric(s, errors="coerce")
            wrong = (v.isna() & s.notna()).to_numpy()
            if wrong.any():
                i = int(np.flatnonzero(wrong)[0])
                fail(i, name, s.iloc[i], f"not a number; must be {col.rule()}")
            s = v
        x = s.to_numpy(dtype=float, na_value=np.nan)
        present = ~empty
        bad = present & ~np.isfinite(x) if not col.allow_inf else present & np.isnan(x)
        with np.errstate(invalid="ignore"):
            bad |= present & ((x <= col.lo) if col.lo_open else (x < col.lo))
            bad |= present & (x > col.hi)
            if col.kind == "int":
                bad |= present & np.isfinite(x) & (x != np.floor(x))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            fail(i, name, df[name].iloc[i], f"must be {col.rule()}")
        if col.empty is DROP:
            drop |= empty
        elif col.empty not in (ERROR, KEEP) and empty.any():
            s = s.fillna(col.empty)
            x = s.to_numpy(dtype=float)
            empty = np.zeros(len(df), bool)
        if col.kind == "int" and not empty.any() and len(df):
            df[name] = x.astype(np.int64)
        else:
            df[name] = s
    if drop.any():
        df = df[~drop]
    return df.reset_index(drop=True)


# ---- the files of a run ------------------------------------------------------------------------
def load_samples(run_dir, meta: dict | None = None, ops=None) -> pd.DataFrame:
    """Raw samples as rows (one per rank and sample, WRITTEN_SAMPLE_COLUMNS), checked; a torn
    last block or line (a crash mid-write) and rows without a time are dropped. With meta,
    ranks and peers must lie below its nranks. ops: only these ops' rows. Every row of every
    rank in memory: for small runs and single ops (analysis verbs use RunSamples)."""
    import pandas as pd

    path = fmt.samples_path(run_dir)
    if path.name == fmt.SAMPLES:
        return RunSamples(run_dir, meta).frame(ops)
    df = read_table(path, SAMPLE_SPEC, SAMPLE_REQUIRED, torn_ok=True,
                    columns=WRITTEN_SAMPLE_COLUMNS)
    if df is None:
        return pd.DataFrame(columns=WRITTEN_SAMPLE_COLUMNS)
    df = with_sample_extras(df)
    _check_ranks(df, meta, path)
    return df if ops is None else df[df["op"].isin(list(ops))].reset_index(drop=True)


def _check_ranks(df, meta, path, where: str = "") -> None:
    nranks = (meta or {}).get("nranks")
    if nranks and len(df):
        for name in ("rank", "peer"):
            beyond = (df[name] >= nranks).to_numpy()
            if beyond.any():
                i = int(beyond.argmax())
                raise RunDirError(f"{shown(path)}: {where}{name} {int(df[name].iloc[i])} of a "
                                  f"{nranks}-rank run (meta.json → nranks)")


_TIME_COLUMNS = CASE + ["round", "sample", "time_s", "last_rank", "min_s", "ranks", "paired"]


class RunSamples:
    """The raw samples of one run directory, read a block (one case's round, every rank) at a
    time from samples.bin (mapped, not read), so memory follows a case, not the run. Schema
    1's samples.csv is converted into blocks in memory, a chunk at a time. Every value is
    checked as it is read (RunDirError of one line naming the file and the block or line)."""

    def __init__(self, run_dir, meta: dict | None = None):
        self.dir = Path(run_dir)
        self.meta = meta or {}
        self.path = fmt.samples_path(self.dir)
        self._data = None
        self._times = None

    # -- the blocks
    def _source(self):
        """(bytes-like of blocks, offset of the first block, the name errors give)."""
        if self._data is None:
            if self.path.name == fmt.SAMPLES:
                self._data = (_map(self.path), 0, self.path)
            else:
                self._data = _csv_blocks(self.path, self.meta)
        return self._data

    def blocks(self, ops=None):
        """The checked blocks (bench.core.samples.Block) of the run, of `ops` only if given."""
        from bench.core import samples as fmt_blocks

        data, start, name = self._source()
        if data is None:
            return
        i = -1
        try:
            for i, (_, block) in enumerate(fmt_blocks.read_blocks(data, start)):
                if ops is not None and block.case[1] not in ops:
                    continue
                check_block(block, name, i, self.meta)
                yield block
        except fmt_blocks.Damaged as exc:
            raise RunDirError(f"{shown(name)}: block {i + 2}: {exc}") from None

    @property
    def empty(self) -> bool:
        return next(iter(self.blocks()), None) is None

    def cells(self) -> int:
        """Rank × sample cells of every block, from the blocks' shapes (the times are neither
        read nor checked): what a view of every rank's every sample would hold."""
        from bench.core import samples as fmt_blocks

        data, start, name = self._source()
        if data is None:
            return 0
        try:
            return sum(b.times.size for _, b in fmt_blocks.read_blocks(data, start))
        except fmt_blocks.Damaged as exc:
            raise RunDirError(f"{shown(name)}: {exc}") from None

    # -- what analysis derives from them
    def frame(self, ops=None) -> pd.DataFrame:
        """Every sample of every rank as rows, of `ops` only if given (only their blocks are
        expanded)."""
        return frame_of_blocks(self.blocks(ops))

    def times(self) -> pd.DataFrame:
        """One row per case, round and sample (_TIME_COLUMNS): time_s, the max over ranks (the
        sample's time); last_rank, the rank whose time that is (first of ties); min_s; ranks,
        how many ranks timed it; paired, whether its ranks name peers (point to point). The
        size of this follows samples, not ranks × samples."""
        import numpy as np
        import pandas as pd

        if self._times is not None:
            return self._times
        parts = []
        for b in self.blocks():
            t = b.times
            present = ~np.isnan(t)
            counts = present.sum(axis=0)
            keep = counts > 0
            if not keep.any():
                continue
            t = t[:, keep]
            filled = np.where(np.isnan(t), -np.inf, t)
            arg = filled.argmax(axis=0)
            part = {c: v for c, v in zip(CASE, b.case)}
            part.update(round=b.round, sample=b.sample[keep],
                        time_s=filled[arg, np.arange(t.shape[1])], last_rank=b.rank[arg],
                        min_s=np.nanmin(t, axis=0), ranks=counts[keep],
                        paired=bool((b.peer >= 0).any()))
            parts.append(pd.DataFrame(part))
        if not parts:
            self._times = pd.DataFrame(columns=_TIME_COLUMNS)
            return self._times
        df = pd.concat(parts, ignore_index=True)
        keys = CASE + ["round", "sample"]
        if df.duplicated(keys).any():  # one case's round in several blocks (pairs: pairings)
            df = df.sort_values("time_s", ascending=False, kind="stable")
            df = df.groupby(keys, as_index=False, sort=False).agg(
                time_s=("time_s", "first"), last_rank=("last_rank", "first"),
                min_s=("min_s", "min"), ranks=("ranks", "sum"), paired=("paired", "max"))
        self._times = df[_TIME_COLUMNS]
        return self._times

    def rank_medians(self, op: str, key) -> pd.DataFrame:
        """Per rank and S of one op and series (backend, nranks, dtype, split): the rank's
        median sample time (its rows pooled over rounds), as rows rank, nbytes, time_s."""
        import numpy as np
        import pandas as pd

        backend, nranks, dtype, split = key
        per: dict = {}
        for b in self.blocks(ops={op}):
            if (b.case[0], b.case[4], b.case[2], b.case[5]) != (backend, nranks, dtype, split):
                continue
            per.setdefault(b.case[3], []).append(b)
        rows = []
        for nbytes, group in per.items():
            if all(np.array_equal(b.rank, group[0].rank) for b in group[1:]):
                # the same rows in every round (as rank 0 writes them): one median per row
                with warnings.catch_warnings():  # a row without samples: NaN, dropped below
                    warnings.simplefilter("ignore", RuntimeWarning)
                    medians = np.nanmedian(np.hstack([b.times for b in group]), axis=1)
                keep = ~np.isnan(medians) & (group[0].rank >= 0)
                if len(set(group[0].rank[keep].tolist())) == int(keep.sum()):
                    rows += list(zip(group[0].rank[keep].tolist(), [nbytes] * int(keep.sum()),
                                     medians[keep].tolist()))
                    continue
            # every cell of the size's blocks, sorted by rank
            rank = np.concatenate([np.repeat(b.rank, b.times.shape[1]) for b in group])
            value = np.concatenate([b.times.ravel() for b in group])
            keep = ~np.isnan(value) & (rank >= 0)
            rank, value = rank[keep], value[keep]
            if not rank.size:
                continue
            order = np.lexsort((value, rank))
            rank, value = rank[order], value[order]
            starts = np.flatnonzero(np.r_[True, rank[1:] != rank[:-1]])
            counts = np.diff(np.r_[starts, rank.size])
            low = starts + (counts - 1) // 2
            high = starts + counts // 2
            medians = (value[low] + value[high]) / 2
            rows += list(zip(rank[starts].tolist(), [nbytes] * starts.size, medians.tolist()))
        return pd.DataFrame(rows, columns=["rank", "nbytes", "time_s"])


class FrameSamples(RunSamples):
    """RunSamples over rows already in memory (a frame of sample rows, as tests and importers
    build them): the same derived views."""

    def __init__(self, df: pd.DataFrame):
        self.df = with_sample_extras(df)
        self._times = None

    def blocks(self, ops=None):
        df = self.df if ops is None else self.df[self.df["op"].isin(list(ops))]
        yield from blocks_of_frame(df)

    def frame(self, ops=None) -> pd.DataFrame:
        return self.df if ops is None else self.df[self.df["op"].isin(list(ops))]


def as_samples(samples) -> RunSamples:
    """samples as RunSamples: a RunSamples as it is, a frame of rows wrapped."""
    return samples if isinstance(samples, RunSamples) else FrameSamples(samples)


def _map(path):
    """The bytes of a regular file, mapped (not read) so that a large run costs what is
    used; b'' for an empty file."""
    import numpy as np

    if not regular_file(path):
        return None
    try:
        if path.stat().st_size == 0:
            return b""
        return np.memmap(path, np.uint8, mode="r")
    except OSError as exc:
        raise file_error(path, exc, "read it") from None


def frame_of_blocks(blocks) -> pd.DataFrame:
    """Rows (WRITTEN_SAMPLE_COLUMNS) of blocks, row by row of each block."""
    import numpy as np
    import pandas as pd

    parts = []
    for b in blocks:
        present = ~np.isnan(b.times)
        i, j = np.nonzero(present)
        if not i.size:
            continue
        part = {c: np.repeat(np.array([v], dtype=object if isinstance(v, str) else np.int64), i.size)
                for c, v in zip(CASE, b.case)}
        part.update(round=np.full(i.size, b.round, np.int64), sample=b.sample[j], rank=b.rank[i],
                    calls=np.where(b.calls[j] >= 0, b.calls[j], np.nan) if (b.calls < 0).any()
                    else b.calls[j], time_s=b.times[i, j], peer=b.peer[i])
        parts.append(pd.DataFrame(part))
    if not parts:
        return pd.DataFrame(columns=WRITTEN_SAMPLE_COLUMNS)
    return pd.concat(parts, ignore_index=True)[WRITTEN_SAMPLE_COLUMNS]


def check_block(block, path, index: int, meta: dict | None = None) -> None:
    """A block's values have SAMPLE_SPEC's kinds and ranges (RunDirError naming the block)."""
    import numpy as np

    case = dict(zip(CASE, block.case))
    where = f"{shown(path)}: block {index + 1}"

    def fail(name, value, why):
        raise RunDirError(f"{where}: {name} {value_text(value)}: {why}")

    for name in ("backend", "op", "dtype", "split"):
        v = case[name]
        if not isinstance(v, str) or not v:
            fail(name, v, "must be a non-empty name")
        if has_control(v):
            fail(name, v, "holds a control character")
    for name in ("nbytes", "nranks"):
        v, col = case[name], SAMPLE_SPEC[name]
        if not _is_int(v) or not col.lo <= v <= col.hi:
            fail(name, v, f"must be {col.rule()}")
    where += f" ({case['op']} S={case['nbytes']} round {block.round})"
    nranks = (meta or {}).get("nranks")
    for name, values, lo in (("rank", block.rank, -1), ("peer", block.peer, -1),
                             ("sample", block.sample, 0), ("calls", block.calls, -1)):
        hi = MAX_BYTES if name in ("sample", "calls") else MAX_RANKS
        bad = (values < lo) | (values > hi)
        if bad.any():
            fail(name, int(values[bad.argmax()]), f"must be {Col('int', lo, hi).rule()}")
        if nranks and name in ("rank", "peer") and (values >= nranks).any():
            raise RunDirError(f"{where}: {name} {int(values[(values >= nranks).argmax()])} of a "
                              f"{nranks}-rank run (meta.json → nranks)")
    t = block.times
    bad = ~np.isnan(t) & ~((t > 0) & np.isfinite(t))
    if bad.any():
        fail("time_s", float(t.ravel()[bad.ravel().argmax()]), f"must be {TIME.rule()}")


def _csv_blocks(path, meta: dict):
    """Schema 1's samples.csv as blocks in memory: (bytes, offset of the first block, the name
    errors give). Nothing is written: analysis reads run directories, it does not change them.
    Memory holds the blocks (8 bytes a sample) and one chunk of text, never the whole table.

    Parsed by pyarrow's multithreaded reader and checked with numpy, a chunk at a time. Any
    line that reader or those checks refuse sends the whole file through read_table's own
    checks instead (slower, and the one that names the file, line and problem), so both ways
    accept and refuse the same files."""
    from bench.core import samples as fmt_blocks

    try:
        parts = [fmt_blocks.encode(b) for b in _fast_csv_blocks(path, meta)]
    except _NotPlain:
        parts = []
        for df in read_table_chunks(path, SAMPLE_SPEC, SAMPLE_REQUIRED):
            df = with_sample_extras(df)
            _check_ranks(df, meta, path)
            parts += [fmt_blocks.encode(block) for block in blocks_of_frame(df)]
    return b"".join(parts), 0, path


class _NotPlain(Exception):
    """samples.csv is not plainly valid: read_table's checks will say why (or accept it)."""


def _fast_csv_blocks(path, meta: dict):
    """Blocks of a plainly valid samples.csv (every line whole, every value in range); raises
    _NotPlain at the first thing that is not."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    if not regular_file(path):
        return
    with open(path, "rb") as f:
        header = f.readline()
    size = path.stat().st_size
    if not header.endswith(b"\n") or size <= len(header):
        raise _NotPlain
    try:
        names = header.decode("utf-8").rstrip("\r\n").split(",")
    except UnicodeDecodeError:
        raise _NotPlain from None
    if len(set(names)) != len(names) or any(c not in names for c in SAMPLE_REQUIRED):
        raise _NotPlain
    with open(path, "rb") as f:  # a torn last line (a crash mid-append) is not read
        f.seek(max(0, size - (1 << 20)))
        tail = f.read()
    end = size - (len(tail) - tail.rfind(b"\n") - 1)
    if end <= len(header):
        raise _NotPlain
    name_type = pa.dictionary(pa.int32(), pa.string())
    types = {c: (name_type if SAMPLE_SPEC[c].kind == "str" else pa.float64())
             for c in names if c in SAMPLE_SPEC}
    try:
        source = open(path, "rb")
        reader = pacsv.open_csv(
            pa.PythonFile(_Upto(source, end), mode="r"),
            read_options=pacsv.ReadOptions(block_size=1 << 25),
            parse_options=pacsv.ParseOptions(quote_char=False, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(column_types=types, null_values=[""],
                                                 strings_can_be_null=False,
                                                 include_columns=list(types)))
        nranks = (meta or {}).get("nranks") or MAX_RANKS + 1
        for batch in reader:
            yield from _plain_blocks(batch, nranks, np, pc)
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError, ValueError):
        raise _NotPlain from None
    finally:
        if "source" in locals():
            source.close()


class _Upto:
    """A file read up to `end` (its bytes are streamed, not mapped: memory stays a chunk)."""

    def __init__(self, f, end: int):
        self.f, self.left, self.closed = f, end, False

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.f.read(n)
        self.left -= len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


def _plain_blocks(batch, nranks: int, np, pc):
    """Blocks of one parsed chunk: a block per contiguous run of one case and round."""
    from bench.core import samples as fmt_blocks

    cols = {name: batch.column(name) for name in batch.schema.names}
    if cols["time_s"].null_count:  # rows without a time are dropped, as read_table drops them
        keep = pc.is_valid(cols["time_s"])
        cols = {k: pc.filter(v, keep) for k, v in cols.items()}
    n = len(cols["time_s"])
    if not n:
        return
    codes, labels = {}, {}
    for name in ("backend", "op", "dtype", "split"):
        col = cols[name]
        values = col.dictionary.to_pylist()
        if any(not v or has_control(v) for v in values):
            raise _NotPlain
        codes[name] = col.indices.to_numpy(zero_copy_only=False)
        labels[name] = values
    num = {}
    for name in ("nbytes", "nranks", "round", "sample", "rank", "calls", "time_s", "peer"):
        if name not in cols:
            num[name] = np.full(n, -1.0)  # peer: absent from older files
            continue
        x = cols[name].to_numpy(zero_copy_only=False)
        col = SAMPLE_SPEC[name]
        if name == "calls":
            x = np.where(np.isnan(x), -1.0, x) if cols[name].null_count else x
            ok = (x == -1) | ((x >= col.lo) & (x <= col.hi))
        elif name == "peer" and cols[name].null_count:
            x = np.where(np.isnan(x), -1.0, x)
            ok = (x >= col.lo) & (x <= col.hi)
        elif name == "time_s":
            ok = np.isfinite(x) & (x > 0)
        else:
            ok = (x >= col.lo) & (x <= col.hi)
        if col.kind == "int":
            ok &= x == np.floor(x)
        if not ok.all():
            raise _NotPlain
        num[name] = x
    if (num["rank"] >= nranks).any() or (num["peer"] >= nranks).any():
        raise _NotPlain
    ints = {k: v.astype(np.int64) for k, v in num.items() if k != "time_s"}
    key = [codes["backend"], codes["op"], codes["dtype"], codes["split"], ints["nbytes"],
           ints["nranks"], ints["round"]]
    change = np.zeros(n - 1, bool)
    for column in key:
        change |= column[1:] != column[:-1]
    starts = np.concatenate(([0], np.flatnonzero(change) + 1, [n]))
    for a, b in zip(starts[:-1], starts[1:]):
        k = [int(column[a]) for column in key]
        case = (labels["backend"][k[0]], labels["op"][k[1]], labels["dtype"][k[2]], k[4], k[5],
                labels["split"][k[3]])
        part = [ints[c][a:b] for c in ("rank", "peer", "sample", "calls")]
        try:
            yield fmt_blocks.pivot(case, k[6], *part, num["time_s"][a:b])
        except fmt_blocks.Duplicate:
            raise _NotPlain from None  # the same cell twice: blocks_of_frame keeps both


def blocks_of_frame(df: pd.DataFrame) -> list:
    """Blocks of sample rows (a frame with SAMPLE_COLUMNS and peer): one per case and round,
    and one more for each repeat of a (rank, peer, sample, calls) within it."""
    import numpy as np

    from bench.core import samples as fmt_blocks

    out = []
    if df.empty:
        return out
    calls = df["calls"].to_numpy(dtype=float, na_value=np.nan) if "calls" in df \
        else np.full(len(df), np.nan)
    calls = np.where(np.isnan(calls), -1, calls).astype(np.int64)
    df = df.assign(calls=calls)
    for key, g in df.groupby(CASE + ["round"], sort=False):
        cols = [g[c].to_numpy(np.int64) for c in ("rank", "peer", "sample", "calls")]
        time_s = g["time_s"].to_numpy(float)
        repeat = g.groupby(["rank", "peer", "sample", "calls"], sort=False).cumcount().to_numpy() \
            if fmt_blocks.duplicate_cells(*cols) else np.zeros(len(g), np.int64)
        for k in np.unique(repeat):
            sel = repeat == k
            case = tuple(v.item() if hasattr(v, "item") else v for v in key[:-1])
            out.append(fmt_blocks.pivot(case, int(key[-1]), *(c[sel] for c in cols), time_s[sel]))
    return out


def with_sample_extras(df: pd.DataFrame) -> pd.DataFrame:
    """The frame with every SAMPLE_EXTRA column (older files lack them)."""
    missing = {c: v for c, v in fmt.SAMPLE_EXTRA.items() if c not in df.columns}
    return df.assign(**missing) if missing else df


def load_summary(run_dir) -> pd.DataFrame:
    """summary.csv, checked (`read_table`); empty (no cases yet) when missing or empty."""
    import numpy as np
    import pandas as pd

    path = Path(run_dir) / fmt.SUMMARY
    df = read_table(path, SUMMARY_SPEC, SUMMARY_REQUIRED, columns=fmt.WRITTEN_SUMMARY_COLUMNS)
    if df is None:
        return pd.DataFrame(columns=fmt.WRITTEN_SUMMARY_COLUMNS)
    missing = {c: v for c, v in fmt.SUMMARY_EXTRA.items() if c not in df.columns}
    df = df.assign(**missing) if missing else df
    if "mode_medians_s" in df.columns and len(df):
        for i, text in enumerate(df["mode_medians_s"]):
            if isinstance(text, str) and text:
                try:
                    ok = all(math.isfinite(v) and v > 0 for v in map(float, text.split(";")))
                except ValueError:
                    ok = False
            else:
                ok = not isinstance(text, (int, float)) or np.isnan(text) or (
                    math.isfinite(text) and text > 0)
            if not ok:
                raise RunDirError(f"{shown(path)}: line {i + 2}: mode_medians_s "
                                  f"{one_line(repr(text))[:60]}: must be times in seconds "
                                  "(> 0) joined by ';'")
    return df


def load_run(run_dir):
    """(meta, samples, summary) of one run directory, each checked; samples as rows
    (load_samples: small runs; verbs read RunSamples)."""
    meta = load_meta(run_dir)
    return meta, load_samples(run_dir, meta), load_summary(run_dir)


def sample_times(samples: pd.DataFrame) -> pd.DataFrame:
    """One row per case, round and sample: the time of a sample is the max over ranks."""
    keys = CASE + ["round", "sample"]
    return samples.groupby(keys, as_index=False, sort=False)["time_s"].max()


def summarize_samples(samples: pd.DataFrame, bus_factor=None, msgs_per_op=None, count=None) -> pd.DataFrame:
    """summary.csv rows of raw samples (bench.core.rundir.summary_rows) as a frame."""
    import pandas as pd

    rows = fmt.summary_rows(samples.to_dict("records"), bus_factor, msgs_per_op, count)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def write_run_dir(run_dir, meta: dict, samples: pd.DataFrame, summary: pd.DataFrame) -> Path:
    """A complete run directory from frames (bench.core.rundir.write_run_dir)."""
    samples = with_sample_extras(samples)[WRITTEN_SAMPLE_COLUMNS]
    return fmt.write_run_dir(run_dir, meta, samples.to_dict("records"),
                             summary[[c for c in fmt.WRITTEN_SUMMARY_COLUMNS
                                      if c in summary]].to_dict("records"))
