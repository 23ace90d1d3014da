"""The run directories of a run or a sweep directory (one run per rank count) and their sample
times (max over ranks per round and sample), every file checked before anything is fitted
(analysis.fit_pipeline fits them)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from analysis.meta_checks import load_checked_meta
from bench.core.errors import RunDirError
from bench.core.rundir import CASE, META
from bench.core.safe_text import file_error, path_text

if TYPE_CHECKING:  # pandas is imported where used: `commbench run` ranks never need it
    import pandas as pd

__all__ = ["discover_runs", "load_times", "load_sweep"]


def discover_runs(path) -> list[Path]:
    """A run directory itself, or the run directories directly inside a sweep directory."""
    path = Path(path)
    if (path / META).exists() or (path / META).is_symlink():
        return [path]
    if path.is_dir():
        try:
            runs = sorted(d for d in path.iterdir() if (d / META).exists())
        except OSError as exc:
            raise file_error(path, exc, "list it") from None
        if runs:
            return runs
    raise RunDirError(f"{path_text(path)}: not a commbench run directory nor a sweep of them "
                      "(no meta.json)")


def load_times(run_dirs, metas=None) -> pd.DataFrame:
    """Sample times (max over ranks) of all runs, one row per case, round and sample; every
    meta.json and sample checked (analysis.meta_checks, analysis.csv_checks), read a case at a time."""
    import pandas as pd

    from analysis.runsamples import RunSamples

    frames = []
    for i, d in enumerate(run_dirs):
        meta = metas[i] if metas is not None else load_checked_meta(d)
        t = RunSamples(d, meta).times()
        if len(t):
            frames.append(t[CASE + ["round", "sample", "time_s"]].assign(run=i))
    if not frames:
        return pd.DataFrame(columns=CASE + ["round", "sample", "time_s", "run"])
    t = pd.concat(frames, ignore_index=True)
    return t[t["time_s"] > 0]


def load_sweep(path):
    """(run directories, their meta.json, their sample times) of a run or sweep directory,
    every file checked before anything is fitted or printed."""
    runs = discover_runs(path)
    metas = [load_checked_meta(d) for d in runs]
    return runs, metas, load_times(runs, metas)

