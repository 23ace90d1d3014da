"""Message sizes on the command line: `4`, `64K`, `1M`, `2G` (binary suffixes), a list
`1K,4K,1M`, or a geometric range `MIN:MAX[:FACTOR]` (factor 2 by default)."""
from __future__ import annotations

import re

from bench.errors import UsageError

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
