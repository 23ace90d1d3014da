"""Run directories as pandas frames, for analysis: summary.csv read and checked
(`load_summary`), raw samples reduced to sample times and summarized, and a run directory
written from frames. The format itself (columns, schema) is defined once in bench.core.rundir,
its writer in bench.core.run_writer and the summary in bench.core.summarize; this module reads
the format into frames and hands frames back to them. Raw samples are read by
analysis.runsamples. pandas is imported inside the functions.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.csv_checks import SUMMARY_REQUIRED, SUMMARY_SPEC, read_table
from bench.core.safe_text import one_line, path_text
from bench.core import rundir as fmt
from bench.core.run_writer import write_run_dir
from bench.core.summarize import summary_rows
from bench.core.errors import RunDirError
from bench.core.rundir import CASE, SUMMARY_COLUMNS, WRITTEN_SAMPLE_COLUMNS

if TYPE_CHECKING:
    import pandas as pd


def check_ranks(df, meta, path, where: str = "") -> None:
    nranks = (meta or {}).get("nranks")
    if nranks and len(df):
        for name in ("rank", "peer"):
            beyond = (df[name] >= nranks).to_numpy()
            if beyond.any():
                i = int(beyond.argmax())
                raise RunDirError(f"{path_text(path)}: {where}{name} {int(df[name].iloc[i])} of a "
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
                raise RunDirError(f"{path_text(path)}: line {i + 2}: mode_medians_s "
                                  f"{one_line(repr(text))[:60]}: must be times in seconds "
                                  "(> 0) joined by ';'")
    return df


def sample_times(samples: pd.DataFrame) -> pd.DataFrame:
    """One row per case, round and sample: the time of a sample is the max over ranks."""
    keys = CASE + ["round", "sample"]
    return samples.groupby(keys, as_index=False, sort=False)["time_s"].max()


def summarize_samples(samples: pd.DataFrame, bus_factor=None, msgs_per_op=None, count=None) -> pd.DataFrame:
    """summary.csv rows of raw samples (bench.core.summarize.summary_rows) as a frame."""
    import pandas as pd

    rows = summary_rows(samples.to_dict("records"), bus_factor, msgs_per_op, count)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def write_run_dir_from_frames(run_dir, meta: dict, samples: pd.DataFrame, summary: pd.DataFrame) -> Path:
    """A complete run directory from frames (bench.core.run_writer.write_run_dir)."""
    samples = with_sample_extras(samples)[WRITTEN_SAMPLE_COLUMNS]
    return write_run_dir(run_dir, meta, samples.to_dict("records"),
                         summary[[c for c in fmt.WRITTEN_SUMMARY_COLUMNS
                                  if c in summary]].to_dict("records"))
