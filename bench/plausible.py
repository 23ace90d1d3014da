"""A number that cannot be physically true is marked, never printed plain: the `flags` column
of summary.csv holds words joined by ';', and the tables print them beside the row.

  no-op          one rank: a collective moves no data, so its bandwidth means nothing
  empty-graph    --cuda-graph: the captured calls held no GPU work, so replays time nothing
  below-timer    a sample (k calls) lasted less than TIMER_STEPS steps of the clock
  above-ceiling  busbw above the ceiling measured on the machine (bench.ceilings): above a
                 declared line rate at any size, above a copy rate for messages too large to
                 sit in the caches (at least IN_CACHE_BYTES)"""
from __future__ import annotations

from bench import ceilings
from bench.core.rundir import ABOVE_CEILING, BELOW_TIMER, EMPTY_GRAPH, NO_OP
from bench.core.runmeta import IN_CACHE_BYTES

TIMER_STEPS = 10
RAISED = frozenset({EMPTY_GRAPH})  # flags the ranks' programs raise; the others follow from a row


def finish_row(row: dict, op, calls: int, meta: dict, found=()) -> None:
    """A summary row's `ceiling`, `efficiency` and `flags` (see flags)."""
    row["ceiling"], row["efficiency"] = ceilings.columns(row, op, meta)
    row["flags"] = flags(row, op, calls, meta, found)


def flags(row: dict, op, calls: int, meta: dict, found=()) -> str:
    """The flags of a summary row; `calls` is k of its samples (the largest, if several);
    `found`: flags the ranks' programs raised while running the case."""
    found = sorted(found)
    if row["nranks"] == 1:
        found.insert(0, NO_OP)
    step = (meta.get("timer") or {}).get("measured_resolution_s")  # of the timer that was used
    sample_s = row["median_s"] * calls * op.ops_per_call
    if step and sample_s == sample_s and sample_s < TIMER_STEPS * step:
        found.append(BELOW_TIMER)
    efficiency = row.get("efficiency")
    if efficiency == efficiency and efficiency is not None and efficiency > 1 and (
            row.get("ceiling") == "nic" or row["nbytes"] >= IN_CACHE_BYTES):
        found.append(ABOVE_CEILING)
    return ";".join(found)
