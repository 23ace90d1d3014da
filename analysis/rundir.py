"""Load a run directory (see results/README.md) and derive its summary."""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.stats import median_ci, modes

SCHEMA = 1
CASE = ["backend", "op", "dtype", "nbytes", "nranks", "split"]
SAMPLE_COLUMNS = CASE + ["round", "sample", "rank", "calls", "time_s"]
# Columns added after schema 1 was first written, with the value they take in older files (and
# in frames built without them): a loader adds them, a writer fills them in.
SAMPLE_EXTRA = {"peer": -1}
WRITTEN_SAMPLE_COLUMNS = SAMPLE_COLUMNS + list(SAMPLE_EXTRA)
SUMMARY_COLUMNS = CASE + [
    "count", "median_s", "ci_low_s", "ci_high_s", "min_s", "max_s", "algbw_Bps", "busbw_Bps",
    "msg_rate_per_s", "wrong", "samples", "rounds", "modes", "mode_medians_s",
]


class RunDirError(ValueError):
    """A path that is not a readable commbench run directory."""


def atomic_write_text(path: Path, text: str) -> None:
    tmp = Path(f"{path}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def load_meta(run_dir) -> dict:
    path = Path(run_dir) / "meta.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunDirError(f"{run_dir}: not a commbench run directory (no meta.json)") from None
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path}: unreadable JSON ({exc})") from None
    if meta.get("schema") != SCHEMA:
        raise RunDirError(f"{path}: schema {meta.get('schema')!r}, this commbench reads {SCHEMA}")
    return meta


def load_samples(run_dir) -> pd.DataFrame:
    """Raw samples; a torn last line (a crash mid-write) is dropped."""
    path = Path(run_dir) / "samples.csv"
    if not path.exists():
        return pd.DataFrame(columns=WRITTEN_SAMPLE_COLUMNS)
    text = path.read_text()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    df = pd.read_csv(io.StringIO(text)) if text else pd.DataFrame(columns=SAMPLE_COLUMNS)
    return with_sample_extras(df.dropna(subset=["time_s"]).reset_index(drop=True))


def with_sample_extras(df: pd.DataFrame) -> pd.DataFrame:
    """The frame with every SAMPLE_EXTRA column (older files lack them)."""
    missing = {c: v for c, v in SAMPLE_EXTRA.items() if c not in df.columns}
    return df.assign(**missing) if missing else df


def load_summary(run_dir) -> pd.DataFrame:
    path = Path(run_dir) / "summary.csv"
    if not path.exists():
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    return pd.read_csv(path)


def load_run(run_dir):
    """(meta, samples, summary) of one run directory."""
    return load_meta(run_dir), load_samples(run_dir), load_summary(run_dir)


def sample_times(samples: pd.DataFrame) -> pd.DataFrame:
    """One row per case, round and sample: the time of the sample is the max over ranks."""
    keys = CASE + ["round", "sample"]
    return samples.groupby(keys, as_index=False, sort=False)["time_s"].max()


def summarize_case(times, nbytes: int, bus_factor: float, msgs_per_op: float) -> dict:
    """Statistics of one case from its per-sample times (already max over ranks)."""
    times = np.asarray(times, dtype=float)
    med, lo, hi = median_ci(times)
    rate = nbytes / med if med > 0 and nbytes > 0 else float("nan")
    return {
        "median_s": med, "ci_low_s": lo, "ci_high_s": hi,
        "min_s": float(times.min()) if times.size else float("nan"),
        "max_s": float(times.max()) if times.size else float("nan"),
        "algbw_Bps": rate,
        "busbw_Bps": rate * bus_factor if bus_factor else float("nan"),
        "msg_rate_per_s": msgs_per_op / med if med > 0 else float("nan"),
        "samples": int(times.size),
        **_modes_columns(times),
    }


def _modes_columns(times) -> dict:
    found = modes(times)
    return {"modes": len(found),
            "mode_medians_s": ";".join(f"{median:.6g}" for median, _ in found) if len(found) > 1 else ""}


def summarize_samples(samples: pd.DataFrame, bus_factor=None, msgs_per_op=None, count=None) -> pd.DataFrame:
    """summary.csv rows from raw samples (used by importers and synthetic runs).

    bus_factor(op, nranks), msgs_per_op(op, nranks) and count(op, dtype, nbytes, nranks) are
    optional callables; a missing bus_factor or count gives NaN (unknown) rather than a guess,
    a missing msgs_per_op counts one message per op."""
    rows = []
    times = sample_times(samples)
    for key, group in times.groupby(CASE, sort=True):
        case = dict(zip(CASE, key))
        op, nranks = case["op"], int(case["nranks"])
        factor = bus_factor(op, nranks) if bus_factor else float("nan")
        msgs = msgs_per_op(op, nranks) if msgs_per_op else 1.0
        row = dict(case)
        row["count"] = count(op, case["dtype"], int(case["nbytes"]), nranks) if count else float("nan")
        row.update(summarize_case(group["time_s"], int(case["nbytes"]), factor, msgs))
        row["wrong"] = 0
        row["rounds"] = int(group["round"].nunique())
        rows.append(row)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def write_run_dir(run_dir, meta: dict, samples: pd.DataFrame, summary: pd.DataFrame) -> Path:
    """Write a complete run directory (meta.json, samples.csv, summary.csv) in the format of
    results/README.md; every file is written atomically. Creates the directory."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    meta = dict(meta)
    meta.setdefault("schema", SCHEMA)
    atomic_write_text(run_dir / "meta.json", json.dumps(meta, indent=2, sort_keys=False) + "\n")
    samples = with_sample_extras(samples)
    atomic_write_text(run_dir / "samples.csv", samples[WRITTEN_SAMPLE_COLUMNS].to_csv(index=False))
    atomic_write_text(run_dir / "summary.csv", summary[SUMMARY_COLUMNS].to_csv(index=False))
    return run_dir
