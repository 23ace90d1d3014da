"""The runs `commbench triage` reads together: each run directory's meta.json (checked), its
raw samples and summary, under a name unique among them (the directory's name; a repeated one
gets #2, #3). Its own loader, not analysis.run_set's: triage names a run by its directory (the
name its evidence lines cite), needs every rank's samples as one frame, and judges runs whose
summary is empty, where run_set labels by run id and refuses such a run."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass
class Run:
    name: str
    meta: dict
    samples: pd.DataFrame
    summary: pd.DataFrame

    @property
    def hosts(self) -> list:
        return list(self.meta.get("hosts") or [])

    def host(self, rank: int) -> str:
        hosts = self.hosts
        return hosts[rank] if 0 <= rank < len(hosts) else f"rank{rank}"


def load_runs(run_dirs) -> list[Run]:
    from analysis.meta_checks import load_checked_meta
    from analysis.run_frames import load_summary
    from analysis.runsamples import load_samples

    runs, names = [], set()
    for d in run_dirs:
        meta = load_checked_meta(d)
        name = Path(d).resolve().name or str(d)
        base, i = name, 2
        while name in names:
            name, i = f"{base}#{i}", i + 1
        names.add(name)
        runs.append(Run(name, meta, load_samples(d, meta), load_summary(d)))
    return runs
