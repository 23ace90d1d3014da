"""summary.csv rows from raw samples, without pandas (the local launcher merges launches with
this; analysis.run_frames hands frames to it): the time of a sample is the max over ranks,
then each case's statistics (bench.core.stats.summarize_case). Standard library and numpy
only."""
from __future__ import annotations

import math

import numpy as np

from bench.core.rundir import CASE
from bench.core.stats import summarize_case


def sample_maxima(samples) -> dict:
    """{case: {(round, sample): time}}: the time of a sample is the max over ranks."""
    cases: dict = {}
    for row in samples:
        case = tuple(row[c] for c in CASE)
        key = (row["round"], row["sample"])
        per = cases.setdefault(case, {})
        per[key] = max(per.get(key, -math.inf), row["time_s"])
    return cases


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
