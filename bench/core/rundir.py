"""The run-directory format (results/README.md), defined once: file and column names, the
schema version, run naming, the metadata skeleton, atomic and checked writes, the writer of a
run, and the summary of raw samples. `commbench run` (ranks and the local launcher) and every
analysis module (readers, importers) go through this module. Standard library and numpy only."""
from __future__ import annotations

import datetime as dt
import json
import math
import os
from pathlib import Path

import numpy as np

from bench.core import samples as blocks
from bench.core.errors import RunDirError, UsageError
from bench.core.stats import summarize_case

# Schema 2 keeps raw samples in blocks (SAMPLES, bench.core.samples); schema 1 kept them as
# text rows (SAMPLES_CSV). Both are read everywhere; commbench run writes schema 2.
SCHEMA, SCHEMA_CSV = 2, 1
SCHEMAS = (SCHEMA_CSV, SCHEMA)
META, SAMPLES, SUMMARY, FITS = "meta.json", "samples.bin", "summary.csv", "fits.csv"
FITS_SOURCE = "fits.source.json"  # what fits.csv was fitted from (analysis.fit_pipeline)
SAMPLES_CSV = "samples.csv"
CASE = blocks.CASE
SAMPLE_COLUMNS = CASE + ["round", "sample", "rank", "calls", "time_s"]
# Columns added after schema 1 was first written, with the value they take in older files (and
# in frames built without them): a loader adds them, a writer fills them in.
SAMPLE_EXTRA = {"peer": -1}
WRITTEN_SAMPLE_COLUMNS = SAMPLE_COLUMNS + list(SAMPLE_EXTRA)
SUMMARY_COLUMNS = CASE + [
    "count", "median_s", "ci_low_s", "ci_high_s", "min_s", "max_s", "algbw_Bps", "busbw_Bps",
    "msg_rate_per_s", "wrong", "samples", "rounds", "modes", "mode_medians_s",
]
# Summary columns added later (older files and imports lack them), with their empty value:
# which measured limit applies to the row (bench.ceilings), the row's share of it, and marks
# of numbers that cannot be physically true (bench.plausible).
SUMMARY_EXTRA = {"ceiling": "", "efficiency": float("nan"), "flags": ""}
WRITTEN_SUMMARY_COLUMNS = SUMMARY_COLUMNS + list(SUMMARY_EXTRA)
# The words of the `flags` column, joined by ';' (bench.plausible sets them; a program may
# raise empty-graph itself). Rows with a NO_BANDWIDTH word moved nothing while timed.
NO_OP, EMPTY_GRAPH, BELOW_TIMER, ABOVE_CEILING = "no-op", "empty-graph", "below-timer", "above-ceiling"
FLAGS = {
    NO_OP: "one rank: a collective moves no data",
    EMPTY_GRAPH: "the CUDA graph captured no GPU work",
    BELOW_TIMER: "a sample shorter than 10 steps of the timer",
    ABOVE_CEILING: "busbw above the ceiling measured on the machine",
}
NO_BANDWIDTH = (NO_OP, EMPTY_GRAPH)
FITS_COLUMNS = ["backend", "op", "nranks", "split", "model", "segment", "nbytes_lo",
                "nbytes_hi", "param", "value", "ci_low", "ci_high"]


def split_flags(cell) -> list:
    """The words of one `flags` cell ('' or a missing value: none)."""
    return [word for word in cell.split(";") if word] if isinstance(cell, str) else []


# ---- naming and metadata -------------------------------------------------------------------
def new_run_id(label: str, nranks: int) -> str:
    """YYYYMMDD-HHMMSS-<backends joined by +>-n<ranks>."""
    return f"{dt.datetime.now():%Y%m%d-%H%M%S}-{label.replace(',', '+')}-n{nranks}"


def now_utc() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def new_meta(run_id, argv, status: str = "running") -> dict:
    """The fields every meta.json starts with, whoever writes it."""
    from bench import __version__

    return {"schema": SCHEMA, "commbench": __version__, "run_id": run_id, "argv": list(argv),
            "status": status, "started": now_utc(), "finished": None}


def load_meta(run_dir) -> dict:
    """meta.json of a run directory, checked: RunDirError (one line) for anything that is not
    a commbench run's metadata of this schema."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: not a directory" if run_dir.exists()
                          else f"{run_dir}: no such run directory")
    path = run_dir / META
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{run_dir}: not a commbench run directory (no {META})") from None
    except IsADirectoryError:
        raise RunDirError(f"{path}: is a directory, not a file") from None
    except UnicodeDecodeError:
        raise RunDirError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path}: unreadable JSON ({exc})") from None
    except OSError as exc:
        raise RunDirError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if not isinstance(meta, dict):
        raise RunDirError(f"{path}: expected a JSON object, found {type(meta).__name__}")
    if meta.get("schema") not in SCHEMAS:
        raise RunDirError(f"{path}: schema {meta.get('schema')!r}, this commbench reads "
                          + " and ".join(map(str, SCHEMAS)))
    return meta


# ---- ownership: a run directory belongs to one run -----------------------------------------
LOCK = ".commbench.lock"
CURRENT = ".commbench.case"  # the case rank 0 is measuring, for messages after a kill
RUN_FILES = (META, SAMPLES, SAMPLES_CSV, SUMMARY, FITS, FITS_SOURCE)


def holds_run(run_dir) -> bool:
    return any((Path(run_dir) / name).exists() for name in (META, SAMPLES, SAMPLES_CSV))


def samples_path(run_dir) -> Path:
    """Where a run directory keeps its raw samples: samples.bin (schema 2), else schema 1's
    samples.csv (the path returned need not exist)."""
    run_dir = Path(run_dir)
    binary = run_dir / SAMPLES
    if binary.exists() or binary.is_symlink() or not (run_dir / SAMPLES_CSV).exists():
        return binary
    return run_dir / SAMPLES_CSV


_CONTROL_CHARS = "".join(map(chr, [*range(32), 127]))


def check_name(path, flag: str = "--out") -> None:
    """Refuse a path commbench could write but not read back or show on one line: one with a
    control character (a newline, a tab, an escape) or with bytes that are not UTF-8 (they
    reach Python as lone surrogates). UsageError naming the option."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        shown = text.encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
        raise UsageError(f"{flag} {shown}: the name holds bytes that are not UTF-8, which "
                         "run directories, reports and messages cannot carry; use a UTF-8 "
                         "name") from None
    if any(c in _CONTROL_CHARS for c in text):
        raise UsageError(f"{flag} {text!r}: the name holds a control character (a newline, "
                         "a tab, ...), which commbench's files and one-line messages cannot "
                         "carry back; use another name")


def check_out_dir(run_dir, force: bool = False) -> Path:
    """The directory a new run may write into, checked and created (claim_out_dir also locks
    it and, with force, clears it): refuses an empty path, a name commbench cannot read back
    (check_name, also of the absolute path), a file, a place that cannot be written and,
    unless force, a directory that already holds a run. Raises UsageError with one line."""
    if not str(run_dir).strip():
        raise UsageError("--out: empty path")
    path = Path(run_dir)
    check_name(path)
    check_name(path.absolute(), "--out (its absolute path)")
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {path}: exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe{os.getpid()}"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"--out {path}: cannot write there ({exc.strerror or exc})") from None
    if holds_run(path) and not force:
        raise UsageError(f"--out {path} already holds a run: give a new directory, or "
                         "--force to start it afresh")
    return path


def claim_out_dir(run_dir, force: bool = False) -> RunLock:
    """check_out_dir, then the run's lock, and only then (force) the old run's files cleared:
    a directory in use by another run is refused before anything in it is touched. A directory
    made here is removed again when the lock is released with no run written into it."""
    created = not Path(run_dir).exists()
    path = check_out_dir(run_dir, force)
    lock = RunLock(path, created=created)
    if force and holds_run(path):
        for name in RUN_FILES:
            (path / name).unlink(missing_ok=True)
        import shutil

        shutil.rmtree(path / "report", ignore_errors=True)
    return lock


class RunLock:
    """An exclusive lock on a run directory for the life of a run, or of a command that writes
    into it (flock on a file in it), so a second writer fails at once instead of mixing its
    results in. Readers ask `in_progress`. On release, a directory that holds no run loses
    the lock file (and, when made for this run, the directory itself): a failed launch leaves
    nothing behind."""

    def __init__(self, run_dir, created: bool = False, what: str = "--out"):
        import stat

        self.dir, self.created = Path(run_dir), created
        self.path = self.dir / LOCK
        self.fd: int | None  # None once released (or never taken)
        for _ in range(10):  # the file may be removed by a holder releasing it: lock the new one
            try:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
                                  | os.O_NONBLOCK, 0o644)
            except OSError as exc:  # a link planted there (O_NOFOLLOW), no permission
                self.fd = None
                raise UsageError(f"{what} {run_dir}: cannot take its lock {LOCK} "
                                 f"({exc.strerror or exc})") from None
            if not stat.S_ISREG(os.fstat(self.fd).st_mode):
                os.close(self.fd)
                self.fd = None
                raise UsageError(f"{what} {run_dir}: its lock {LOCK} is not a regular file "
                                 "(remove it)")
            if not _flock_exclusive(self.fd):
                os.close(self.fd)
                self.fd = None
                raise UsageError(f"{what} {run_dir} is in use by another commbench run "
                                 "(its lock is held); wait until it ends")
            try:
                if os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                    os.ftruncate(self.fd, 0)  # who holds it: in_progress asks another process
                    os.write(self.fd, f"{os.getpid()}\n".encode())
                    return
            except FileNotFoundError:
                pass
            os.close(self.fd)
        self.fd = None
        raise UsageError(f"{what} {run_dir}: could not take its lock (the lock file keeps changing)")

    def release(self) -> None:
        if self.fd is None:
            return
        if not holds_run(self.dir):  # nothing written: leave no lock file (nor our directory)
            try:
                os.unlink(self.path)
                if self.created:
                    os.rmdir(self.dir)  # only when empty
            except OSError:
                pass
        os.close(self.fd)  # closing drops the flock
        self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def _flock_exclusive(fd: int, tries: int = 5, pause_s: float = 0.02) -> bool:
    """flock(LOCK_EX) without waiting for a holder; a few short retries, because a reader
    asking `in_progress` holds a shared lock for an instant."""
    import fcntl
    import time

    for attempt in range(tries):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            if attempt + 1 < tries:
                time.sleep(pause_s)
    return False


def in_progress(run_dir) -> bool:
    """Whether a commbench run (or a command writing into it) in another process holds the
    directory's lock now (the process holding it, rank 0 showing its tables, is not kept out).
    The lock file is opened without following links or blocking; only a regular file counts."""
    import fcntl
    import stat

    try:
        fd = os.open(Path(run_dir) / LOCK, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        holder = os.read(fd, 32).strip()
        return holder != str(os.getpid()).encode()
    finally:
        os.close(fd)


# ---- writing ---------------------------------------------------------------------------------
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


def csv_field(value) -> str:
    """How a value is written in the CSV files: floats exactly (repr), NaN as empty."""
    if isinstance(value, (float, np.floating)):
        return repr(float(value)) if not math.isnan(value) else ""
    return str(value)


def csv_text(columns, rows) -> str:
    """Header and rows (dicts; missing keys empty) as CSV text."""
    lines = [",".join(columns)]
    lines += [",".join(csv_field(row.get(c, "")) for c in columns) for row in rows]
    return "\n".join(lines) + "\n"


def append_bytes(path: Path, data: bytes) -> None:
    """Append in one write (a crash leaves at most a torn last block), then fsync."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        _write_all(fd, data, path)
        os.fsync(fd)
    finally:
        os.close(fd)


class RunWriter:
    """Writes one run directory: meta.json and summary.csv replaced atomically, samples.bin
    appended a block (a case's round) at a time, so a crash loses at most the case in
    progress."""

    def __init__(self, out_dir, meta: dict):
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.meta = meta
        self.samples_path = self.dir / SAMPLES
        if not self.samples_path.exists():
            self.samples_path.touch()
        self.write_meta()

    def write_meta(self, **updates) -> None:
        self.meta.update(updates)
        atomic_write_text(self.dir / META, json.dumps(self.meta, indent=2, default=str) + "\n")

    def append_block(self, block: blocks.Block) -> None:
        """The samples of one case and round (bench.core.samples.block_of)."""
        append_bytes(self.samples_path, blocks.encode(block))

    def write_summary(self, rows: list[dict], op_order=()) -> None:
        """Rows in one order whoever writes them: backend, op (in op_order, the registry's),
        split, S."""
        order = {name: i for i, name in enumerate(op_order)}
        rows = sorted(rows, key=lambda r: (r["backend"], order.get(r["op"], len(order)),
                                           r["split"], r["nbytes"]))
        atomic_write_text(self.dir / SUMMARY, csv_text(WRITTEN_SUMMARY_COLUMNS, rows))

    def note_case(self, label: str) -> None:
        """Which case rank 0 is measuring now (read back when a rank dies from outside)."""
        atomic_write_text(self.dir / CURRENT, label + "\n")

    def finish(self, status: str, **extra) -> None:
        self.write_meta(status=status, finished=now_utc(), **extra)
        (self.dir / CURRENT).unlink(missing_ok=True)


def write_run_dir(run_dir, meta: dict, samples: list[dict], summary: list[dict]) -> Path:
    """A complete run directory at once (imports, synthetic runs): every file atomically, the
    samples in the form of meta's schema (schema 2 unless meta says 1)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    meta = {"schema": SCHEMA, **meta}
    atomic_write_text(run_dir / META, json.dumps(meta, indent=2, default=str) + "\n")
    samples = [{**SAMPLE_EXTRA, **row} for row in samples]
    if meta["schema"] == SCHEMA_CSV:
        atomic_write_text(run_dir / SAMPLES_CSV, csv_text(WRITTEN_SAMPLE_COLUMNS, samples))
    else:
        atomic_write_bytes(run_dir / SAMPLES, b"".join(
            blocks.encode(b) for b in blocks.blocks_of_rows(samples)))
    atomic_write_text(run_dir / SUMMARY, csv_text(WRITTEN_SUMMARY_COLUMNS, summary))
    return run_dir


def read_current_case(run_dir) -> str:
    try:
        return (Path(run_dir) / CURRENT).read_text().strip()
    except OSError:
        return ""


# ---- reading and summarising (no pandas: the local launcher merges launches with this) ------
_INT_COLUMNS = {"nbytes", "nranks", "round", "sample", "rank", "calls", "peer"}


def read_samples(run_dir) -> list[dict]:
    """The raw samples as dicts (SAMPLE_COLUMNS and peer) with numbers converted, from either
    form; a torn last block or line (a crash mid-write) and rows without a time are dropped.
    For the local launcher and tests: small runs (analysis reads blocks, analysis.runsamples)."""
    import csv

    path = samples_path(run_dir)
    if not path.exists():
        return []
    if path.name == SAMPLES:
        return rows_of_blocks(b for _, b in blocks.read_blocks(path.read_bytes()))
    text = path.read_text()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    rows = []
    for raw in csv.DictReader(text.splitlines()):
        if not raw.get("time_s"):
            continue
        row = {**SAMPLE_EXTRA, **raw}
        for c in row:
            if c in _INT_COLUMNS:
                row[c] = int(float(row[c])) if row[c] != "" else -1
        row["time_s"] = float(row["time_s"])
        rows.append(row)
    return rows


def rows_of_blocks(block_iter) -> list[dict]:
    """Sample rows of blocks, row by row of each block (as schema 1 wrote them)."""
    rows = []
    for b in block_iter:
        fixed = dict(zip(CASE, b.case), round=b.round)
        for i in range(b.times.shape[0]):
            for j in range(b.times.shape[1]):
                t = b.times[i, j]
                if not math.isnan(t):
                    rows.append({**fixed, "sample": int(b.sample[j]), "rank": int(b.rank[i]),
                                 "calls": int(b.calls[j]), "time_s": float(t),
                                 "peer": int(b.peer[i])})
    return rows


def sample_maxima(samples) -> dict:
    """{case: {(round, sample): time}}: the time of a sample is the max over ranks."""
    cases: dict = {}
    for row in samples:
        case = tuple(row[c] for c in CASE)
        key = (row["round"], row["sample"])
        per = cases.setdefault(case, {})
        per[key] = max(per.get(key, -math.inf), row["time_s"])
    return cases


def read_blocks(run_dir):
    """The blocks of samples.bin (bench.core.samples), or of a schema 1 samples.csv (read
    into rows first: small runs), torn tails dropped."""
    path = samples_path(run_dir)
    if not path.exists():
        return []
    if path.name == SAMPLES:
        return [b for _, b in blocks.read_blocks(path.read_bytes())]
    return blocks.blocks_of_rows(read_samples(run_dir))


def block_maxima(block_list, sample_group=None) -> dict:
    """{case: {(round, sample): time}}: the time of a sample is the max over the ranks of a
    block. sample_group(block) -> int keeps the samples of blocks of one case and round apart
    (pairs: one block per pairing round) by numbering them from group × 1,000,000."""
    cases: dict = {}
    for b in block_list:
        present = ~np.isnan(b.times)
        if not present.any():
            continue
        top = np.where(present, b.times, -np.inf).max(axis=0)
        offset = sample_group(b) * 1_000_000 if sample_group else 0
        per = cases.setdefault(tuple(b.case), {})
        for j in np.flatnonzero(present.any(axis=0)):
            key = (b.round, int(b.sample[j]) + offset)
            per[key] = max(per.get(key, -math.inf), float(top[j]))
    return cases


def summary_rows(samples, bus_factor=None, msgs_per_op=None, count=None) -> list[dict]:
    """summary.csv rows from raw samples (dicts with SAMPLE_COLUMNS), sorted by case."""
    return summary_of_maxima(sample_maxima(samples), bus_factor, msgs_per_op, count)


def summary_of_maxima(maxima: dict, bus_factor=None, msgs_per_op=None, count=None) -> list[dict]:
    """summary.csv rows from per-sample maxima ({case: {(round, sample): time}}), sorted by
    case.

    bus_factor(op, nranks), msgs_per_op(op, nranks) and count(op, dtype, nbytes, nranks) are
    optional callables; a missing bus_factor or count gives NaN (unknown) rather than a guess,
    a missing msgs_per_op counts one message per op."""
    rows = []
    for case, per_sample in sorted(maxima.items()):
        row = dict(zip(CASE, case))
        op, nranks, nbytes = row["op"], int(row["nranks"]), int(row["nbytes"])
        factor = bus_factor(op, nranks) if bus_factor else float("nan")
        msgs = msgs_per_op(op, nranks) if msgs_per_op else 1.0
        row["count"] = count(op, row["dtype"], nbytes, nranks) if count else float("nan")
        row.update(summarize_case(list(per_sample.values()), nbytes, factor, msgs))
        row["wrong"] = 0
        row["rounds"] = len({rnd for rnd, _ in per_sample})
        rows.append(row)
    return rows
