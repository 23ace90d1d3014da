"""What fits.csv was fitted from (fits.source.json), whether that data has changed since
(stale_reason), and writing fits.csv with it (save_fits)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, cast

from analysis.meta_checks import load_checked_meta
from analysis.run_times import discover_runs
from bench.core.atomic_write import atomic_write_text
from bench.core.errors import RunDirError
from bench.core.rundir import FITS, FITS_SOURCE, SAMPLES, SAMPLES_CSV, SUMMARY
from bench.core.safe_text import file_error

if TYPE_CHECKING:  # pandas is imported where used: `commbench run` ranks never need it
    import pandas as pd

__all__ = ["data_source", "stale_reason", "save_fits"]


# Beside fits.csv: the data it was fitted from (per run directory: its run_id, status, finish
# time, and the size and modification time of samples.csv and summary.csv), taken before the
# data was read. A fits.csv whose data has changed since (more samples, a run started afresh,
# an import --force) is stale: refitted where fitting is allowed, else not used, and said so.
_SOURCE_FILES = (SAMPLES, SAMPLES_CSV, SUMMARY)  # raw samples in either schema


def data_source(path) -> dict:
    """The fingerprint of the data under a run or sweep directory (see FITS_SOURCE); meta.json
    read and checked as every reader does (load_meta: one line for a damaged one)."""
    path = Path(path)
    runs = {}
    for d in discover_runs(path):
        meta = load_checked_meta(d)
        entry = {k: meta.get(k) for k in ("run_id", "status", "finished")}
        for name in _SOURCE_FILES:
            try:
                st = os.stat(d / name)
                entry[name] = [st.st_size, st.st_mtime_ns]
            except OSError:
                entry[name] = None
        runs["." if d == path else d.name] = entry
    return {"schema": 1, "runs": runs}


def stale_reason(path) -> str | None:
    """Why the fits.csv of a run or sweep directory no longer fits its data, or None (fresh,
    or of unknown origin: written before fits.source.json existed, or copied without it)."""
    import json

    file = Path(path) / FITS_SOURCE
    try:
        recorded = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return f"{FITS_SOURCE} is unreadable"
    now = data_source(path)
    if not isinstance(recorded, dict) or recorded.get("runs") == now["runs"]:
        return None if isinstance(recorded, dict) else f"{FITS_SOURCE} is unreadable"
    before = cast(dict, recorded.get("runs")) if isinstance(recorded.get("runs"), dict) else {}
    for name, entry in now["runs"].items():
        old = before.get(name)
        where = "" if name == "." else f"{name}: "
        if old is None:
            return f"{where}a run fitted after fits.csv was written"
        if old.get("run_id") != entry["run_id"]:
            return f"{where}another run was written there since"
        if old.get("status") != entry["status"]:
            return f"{where}the run was {old.get('status')} when fitted, {entry['status']} now"
        for name_ in _SOURCE_FILES:
            if old.get(name_) != entry[name_]:
                return f"{where}{name_} changed since it was fitted"
    return "a fitted run is gone"


def save_fits(path, fits: pd.DataFrame, source: dict | None = None) -> Path:
    """Write fits.csv into the run or sweep directory (atomically: a planted link is replaced,
    never followed), and beside it `source` (data_source, taken before the data was read; now
    when not given); RunDirError naming it when it cannot be written (a read-only run)."""
    import json

    target = Path(path) / FITS
    if source is None:
        try:
            source = data_source(path)
        except RunDirError:  # no run under it (fits made from frames): no data to point at
            source = None
    try:
        atomic_write_text(target, fits.to_csv(index=False))
        if source is not None:
            atomic_write_text(Path(path) / FITS_SOURCE, json.dumps(source, indent=1) + "\n")
    except OSError as exc:
        raise file_error(target, exc, "write it") from None
    return target

