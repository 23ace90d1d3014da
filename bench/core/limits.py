"""Where a measured copy ceiling is a limit (shared by bench.ceilings, the text tables and the
analysis side). A copy rate is measured on COPY_BYTES, beyond the last-level caches; a message
small enough to sit in the caches may beat it, so there it is no limit."""
from __future__ import annotations

COPY_BYTES = 64 << 20  # larger than the last-level caches of current CPUs
IN_CACHE_BYTES = COPY_BYTES // 4  # below this, a message may sit in the caches
COPY_CEILINGS = ("copy-core", "copy-node", "copy-device")


def applies(row: dict) -> bool:
    """Whether the row's ceiling is a limit for it: not where a copy rate measured beyond the
    caches is beaten by a message small enough to sit in them (a cache-resident size)."""
    eff = row.get("efficiency")
    return not (row.get("ceiling") in COPY_CEILINGS and eff is not None and eff == eff
                and eff > 1 and row.get("nbytes", 0) < IN_CACHE_BYTES)
