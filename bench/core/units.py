"""Sizes and units. Parsing message sizes from the command line: `4`, `64K`, `1M`, `2G`
(binary suffixes), a list `1K,4K,1M`, or a geometric range `MIN:MAX[:FACTOR]` (factor 2 by
default); formatting sizes, times and bandwidths for people (stored data stay SI)."""
from __future__ import annotations

import math
import re

from bench.core.errors import UsageError

_SUFFIX = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    match = _SIZE.match(text)
    if not match:
        raise UsageError(f"malformed size {text!r}: expected a non-negative integer with an "
                         f"optional K, M, G or T suffix (binary), e.g. 64K")
    return int(match.group(1)) * _SUFFIX[match.group(2).upper()]


def parse_sizes(text: str) -> list[int]:
    """Sorted, distinct sizes in bytes."""
    text = text.strip()
    if ":" in text:
        parts = text.split(":")
        if len(parts) not in (2, 3):
            raise UsageError(f"malformed size range {text!r}: expected MIN:MAX[:FACTOR]")
        lo, hi = parse_size(parts[0]), parse_size(parts[1])
        try:
            factor = int(parts[2]) if len(parts) == 3 else 2
        except ValueError:
            raise UsageError(f"malformed size range {text!r}: FACTOR must be an integer") from None
        if factor < 2:
            raise UsageError(f"size range {text!r}: FACTOR must be at least 2")
        if lo > hi:
            raise UsageError(f"size range {text!r}: MIN is larger than MAX")
        sizes, size = [], max(lo, 1)
        if lo == 0:
            sizes.append(0)
        while size <= hi:
            sizes.append(size)
            size *= factor
        return sizes
    sizes = [parse_size(item) for item in text.split(",") if item.strip()]
    if not sizes:
        raise UsageError("no sizes given")
    return sorted(set(sizes))


def format_size(nbytes: int) -> str:
    for suffix, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if nbytes >= scale and nbytes % scale == 0:
            return f"{nbytes // scale}{suffix}"
    return str(nbytes)


def human_bytes(n: float) -> str:
    """A size for people: 64 KiB, 1.5 MiB, 100 B (binary units)."""
    n = float(n)
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            v = n / size
            return f"{v:.0f} {unit}" if v == int(v) or v >= 100 else f"{v:.3g} {unit}"
    return f"{n:.0f} B"


def format_time(seconds: float) -> str:
    """Seconds with the unit that fits: 1.23 us, 4.5 ms; '-' when not finite."""
    if not math.isfinite(seconds):
        return "-"
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_bw(bytes_per_s: float) -> str:
    """Bytes per second in GB/s (1 GB = 1e9 bytes); '-' for NaN."""
    if math.isnan(bytes_per_s):
        return "-"
    if math.isinf(bytes_per_s):
        return "inf"
    return f"{bytes_per_s / 1e9:.3g} GB/s"
