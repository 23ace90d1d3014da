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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.core import rundir as fmt
from bench.core.errors import RunDirError
from bench.core.rundir import CASE, SUMMARY_COLUMNS, WRITTEN_SAMPLE_COLUMNS
from bench.core.runmeta import CONTENTION, NOISE

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


def is_int(v) -> bool:
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
        if v is not None and not (is_int(v) and 1 <= v <= 1 << 24):
            bad(field, f"expected a positive integer, found {one_line(repr(v))[:60]}")
    hosts = meta.get("hosts")
    if hosts is not None:
        if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
            bad("hosts", "expected a list of host names")
        if any(has_control(h) for h in hosts):
            bad("hosts", "a host name holds a control character")
    for field, kind in (("launches", list), ("ops", dict), (CONTENTION, dict), (NOISE, dict)):
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
    # the sections of the machine that `commbench run` and the report print in one line
    # (bench.core.runmeta.describe_contention, describe_noise): what those lines read
    def number(v) -> bool:
        return isinstance(v, (int, float))

    def malformed(section, where, why):
        bad(section, f"malformed ({where}: {why})")

    contention = meta.get(CONTENTION)
    if contention:
        hosts_c = contention.get("hosts", {})
        if not isinstance(hosts_c, dict):
            malformed(CONTENTION, "hosts", "expected an object")
        for host, h in hosts_c.items():
            where = f"hosts.{one_line(host)[:60]}"
            if not isinstance(h, dict):
                malformed(CONTENTION, where, "expected an object")
            if "other_share" not in h:
                continue
            for key in ("other_share", "steal_share"):
                if not number(h.get(key)):
                    malformed(CONTENTION, f"{where}.{key}", "expected a number")
            for key in ("contended", "cpus"):
                if key not in h:
                    malformed(CONTENTION, f"{where}.{key}", "missing")
    noise = meta.get(NOISE)
    if noise:
        timer = noise.get("timer")
        if not (isinstance(timer, dict) and number(timer.get("measured_resolution_s"))):
            malformed(NOISE, "timer.measured_resolution_s", "expected a number")
        jitter = noise.get("jitter_per_rank")
        if not (isinstance(jitter, list) and jitter):
            malformed(NOISE, "jitter_per_rank", "expected a list of ranks' records")
        for rank, j in enumerate(jitter):
            for key in ("p99_over_median", "interrupted_share", "quantum_s"):
                if not (isinstance(j, dict) and number(j.get(key))):
                    malformed(NOISE, f"jitter_per_rank[{rank}].{key}", "expected a number")
        pingpong = noise.get("pingpong")
        if pingpong:
            if not isinstance(pingpong, dict):
                malformed(NOISE, "pingpong", "expected an object")
            medians = pingpong.get("burst_medians_s")
            if not (isinstance(medians, list) and medians and all(map(number, medians))):
                malformed(NOISE, "pingpong.burst_medians_s", "expected a list of numbers")
            if not number(pingpong.get("max_over_min")):
                malformed(NOISE, "pingpong.max_over_min", "expected a number")


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


# ---- the files of a run (raw samples: analysis.runsamples) ------------------------------------
def check_ranks(df, meta, path, where: str = "") -> None:
    nranks = (meta or {}).get("nranks")
    if nranks and len(df):
        for name in ("rank", "peer"):
            beyond = (df[name] >= nranks).to_numpy()
            if beyond.any():
                i = int(beyond.argmax())
                raise RunDirError(f"{shown(path)}: {where}{name} {int(df[name].iloc[i])} of a "
                                  f"{nranks}-rank run (meta.json → nranks)")


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
