"""CSV tables of a run directory read and checked, for analysis: samples.csv, summary.csv and
fits.csv. A reader here checks what it reads, because a run directory may be damaged (a crash,
a full disk, a hand edit) or hostile (someone else's): UTF-8 text, a header with the required
columns, every line with the header's number of fields, every value of its column's type and
range (`Col`), times finite and positive. Anything else is a RunDirError of one line that
names the file, the line and the problem (`commbench` prints it and exits 2). pandas is
imported inside the functions: modules the command line loads for every command import this
one.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.core.safe_text import file_error, has_control, message_value, one_line, path_text
from bench.core import rundir as fmt
from bench.core.errors import RunDirError
from bench.core.rundir import CASE

if TYPE_CHECKING:
    import pandas as pd

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
            raise RunDirError(f"{path_text(path)}: a dangling symbolic link")
        if missing_ok:
            return False
        raise RunDirError(f"{path_text(path)}: no such file")
    if path.is_dir():
        raise RunDirError(f"{path_text(path)}: is a directory, not a file")
    if not path.is_file():
        raise RunDirError(f"{path_text(path)}: not a regular file")
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
        raise RunDirError(f"{path_text(path)}: not UTF-8 text (line {line0 + _line_of(data, exc.start)})") from None
    nul, cr = b"\x00", b"\r"
    if nul in data:
        line = line0 + _line_of(data, data.index(nul))
        raise RunDirError(f"{path_text(path)}: line {line}: a NUL byte (not a text table, or damaged)")
    if cr in data:
        data = data.replace(b"\r\n", b"\n")
        if cr in data:
            line = line0 + _line_of(data, data.index(cr))
            raise RunDirError(f"{path_text(path)}: line {line}: a stray carriage return")
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
                raise RunDirError(f"{path_text(path)}: line {line}: a blank line")
            raise RunDirError(f"{path_text(path)}: line {line}: {int(per[i]) + 1} fields, the header "
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
                raise RunDirError(f"{path_text(path)}: line {reader.line_num}: {what}")
    except csv.Error as exc:
        raise RunDirError(f"{path_text(path)}: line {reader.line_num}: {one_line(exc)}") from None


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
            raise RunDirError(f"{path_text(path)}: an empty file (not even a header line)")
        return pd.DataFrame(columns=list(columns if columns is not None else spec))
    header_line = data[: data.index(b"\n")].decode("utf-8")
    header = next(csv.reader([header_line])) if quoted else header_line.split(",")
    seen = set()
    for name in header:
        if name in seen:
            raise RunDirError(f"{path_text(path)}: line 1: column {one_line(name)!r} twice")
        seen.add(name)
    missing = [c for c in required if c not in seen]
    if missing:
        what = f"no {', '.join(missing)} column{'s' if len(missing) > 1 else ''}"
        raise RunDirError(f"{path_text(path)}: not {kind} ({what})" if kind
                          else f"{path_text(path)}: {what} (line 1: the header)")
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
        raise RunDirError(f"{path_text(path)}: unreadable table ({one_line(exc)[:120]})") from None
    if len(df.columns) != len(header):
        raise RunDirError(f"{path_text(path)}: unreadable table (the header does not parse)")
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


def check_columns(df: pd.DataFrame, spec: dict, path, line0: int = 0) -> pd.DataFrame:
    """Every column named in spec holds its kind of values (RunDirError naming the first bad
    line, counted as written: row i is line line0 + i + 2); rows with an empty DROP field are
    dropped, empty fill fields filled and integer columns without gaps made int64."""
    import numpy as np
    import pandas as pd

    def fail(i, name, raw, why):
        raise RunDirError(f"{path_text(path)}: line {line0 + int(i) + 2}: {name} {message_value(raw)}: {why}")

    def no_value(empty):
        i = int(np.flatnonzero(empty)[0])
        raise RunDirError(f"{path_text(path)}: line {line0 + i + 2}: no {name} (an empty field)")

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
