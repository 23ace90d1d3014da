"""The runs a verb reads side by side (`commbench check`, `commbench report`): each run
directory's meta.json and summary.csv, checked (analysis.meta_checks, analysis.run_frames),
under a label unique among them (its run id; a repeated one gets a prime: r1, r1')."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.core.safe_text import path_text
from bench.core.errors import RunDirError
from bench.core.rundir import SUMMARY

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Run:
    path: str | Path  # as the caller named it
    label: str
    meta: dict
    summary: pd.DataFrame
    samples: object = None  # analysis.runsamples.RunSamples (the report reads cases from it)
    fits: object = None  # DataFrame of fits.csv rows, or None
    fits_source: str = ""

    @property
    def on_gpu(self) -> bool:
        """Buffers in GPU memory: the host's copy rate is no ceiling for them."""
        settings = self.meta.get("settings") or {}
        backends = self.meta.get("backends") or {}
        devices = [settings.get("device") if isinstance(settings, dict) else None]
        if isinstance(backends, dict):
            devices += [b.get("device") for b in backends.values() if isinstance(b, dict)]
        return any(isinstance(d, str) and d.startswith("cuda") for d in devices)


def load_runs(run_dirs) -> list[Run]:
    """A Run per directory, in order; RunDirError when one has no results yet."""
    from analysis.meta_checks import load_checked_meta
    from analysis.run_frames import load_summary

    runs, labels = [], set()
    for d in run_dirs:
        meta = load_checked_meta(d)
        summary = load_summary(d)
        if summary.empty:
            raise RunDirError(f"{path_text(Path(d) / SUMMARY)}: no results yet (summary.csv is "
                              "empty or missing)")
        label = str(meta.get("run_id") or Path(d).name)
        while label in labels:
            label += "'"
        labels.add(label)
        runs.append(Run(d, label, meta, summary))
    return runs
