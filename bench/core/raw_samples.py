"""A run directory's raw samples read without pandas, from either form (schema 2's samples.bin,
schema 1's samples.csv): as blocks (bench.core.samples) or as rows, torn tails dropped. For
the local launcher, which merges launches, and tests: small runs (analysis reads blocks
itself, analysis.runsamples). Standard library and numpy only."""
from __future__ import annotations

import math

from bench.core import samples as blocks
from bench.core.rundir import CASE, SAMPLE_EXTRA, SAMPLES, samples_path

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


def read_blocks(run_dir):
    """The blocks of samples.bin (bench.core.samples), or of a schema 1 samples.csv (read
    into rows first: small runs), torn tails dropped."""
    path = samples_path(run_dir)
    if not path.exists():
        return []
    if path.name == SAMPLES:
        return [b for _, b in blocks.read_blocks(path.read_bytes())]
    return blocks.blocks_of_rows(read_samples(run_dir))
