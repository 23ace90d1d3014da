"""The run-directory format (results/README.md), defined once: file and column names, the
schema version, the words of the flags column, run naming, the metadata skeleton and its
checked reading, where a run keeps its samples and how values are written as CSV. `commbench
run` (ranks and the local launcher) and every analysis module (readers, importers) speak it.
Beside it in bench.core: atomic_write (whole files), run_lock (a directory belongs to one
run), run_writer (the writers), raw_samples (reading samples without pandas), summarize
(summary rows of samples). Standard library and numpy only."""
from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np

from bench.core import samples as blocks
from bench.core.errors import RunDirError

# Schema 2 keeps raw samples in blocks (SAMPLES, bench.core.samples); schema 1 kept them as
# text rows (SAMPLES_CSV). Both are read everywhere; commbench run writes schema 2.
SCHEMA, SCHEMA_CSV = 2, 1
SCHEMAS = (SCHEMA_CSV, SCHEMA)
META, SAMPLES, SUMMARY, FITS = "meta.json", "samples.bin", "summary.csv", "fits.csv"
FITS_SOURCE = "fits.source.json"  # what fits.csv was fitted from (analysis.fits_source)
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


# ---- the files of a run directory -----------------------------------------------------------
LOCK = ".commbench.lock"  # held for a run's life (bench.core.run_lock)
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


def read_current_case(run_dir) -> str:
    """The case rank 0 was measuring (RunWriter.note_case), '' when none is noted."""
    try:
        return (Path(run_dir) / CURRENT).read_text().strip()
    except OSError:
        return ""


# ---- values in the CSV files -----------------------------------------------------------------
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
