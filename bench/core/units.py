"""Sizes and units. Parsing message sizes and rates from the command line; formatting sizes,
times and bandwidths for people (stored data stay SI).

One rule for every number with a unit prefix, sizes (`--sizes`, `-b/-e`, `predict --nbytes`,
`check --min OP:SIZE=RATE`, `workload --bucket`) and rates alike:
  - KiB, MiB, GiB, TiB (or Ki, Mi, Gi, Ti) are powers of 1024; KB, MB, GB, TB (and kB)
    powers of 1000: an explicit unit means what it says;
  - a bare K, M, G, T means the unit commbench prints that quantity in: sizes print in
    binary units (64 KiB), so `64K` is 65536 bytes (as nccl-tests' -b/-e and OSU read it);
    bandwidths print in GB/s (1 GB = 1e9 bytes), so a rate `4G` is 4e9 bytes/s.
Sizes: `4`, `64K`, `1MiB`, `2G`, a list `1K,4K,1M`, or a geometric range `MIN:MAX[:FACTOR]`
(factor 2 by default)."""
from __future__ import annotations

import math
import re

from bench.core.errors import UsageError

_POWER = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}
# a number, a prefix (K/M/G/T, any case), an optional i (binary), an optional B (bytes)
_QUANTITY = re.compile(r"^\s*(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)\s*(?:([kKmMgGtT])(i)?)?\s*(B)?\s*$")
SIZE_RULE = ("KiB/MiB/GiB are powers of 1024, KB/MB/GB powers of 1000, and a bare K/M/G "
             "is binary in a size (64K = 65536 bytes)")
RATE_RULE = ("KiB/MiB/GiB are powers of 1024, KB/MB/GB powers of 1000, and a bare K/M/G "
             "is decimal in a rate (4G = 4e9 bytes/s, as GB/s is printed)")


def _quantity(text: str, bare_binary: bool):
    """(value, ok) of a number with an optional prefix under the module's rule."""
    match = _QUANTITY.match(text)
    if not match:
        return None
    number, prefix, binary, byte = match.groups()
    power = _POWER[(prefix or "").upper()]
    if binary and not prefix:
        return None
    base = 1024 if binary or (prefix and not byte and bare_binary) else 1000
    return float(number) * base ** power


def parse_size(text: str) -> int:
    """Bytes from a size under the module's rule: 64K = 64KiB = 65536, 64KB = 64000."""
    value = _quantity(str(text), bare_binary=True)
    if value is None or not re.match(r"\s*\d+\s*[^\d.eE]*$", str(text)):  # a whole number
        raise UsageError(f"malformed size {text!r}: expected a whole number of bytes with an "
                         f"optional unit: {SIZE_RULE}, e.g. 64K or 1MiB")
    return int(value)


def parse_rate(text: str) -> float:
    """Bytes per second under the module's rule: '460G' = 4.6e11, '12.5GB/s', '3e9',
    '800MiB/s' = 800 x 2^20."""
    text = str(text)
    stripped = text.strip()
    stripped = stripped[:-2] if stripped.endswith("/s") else stripped
    value = _quantity(stripped, bare_binary=False)
    if value is None:
        raise UsageError(f"malformed rate {text!r}: expected bytes/s with an optional unit: "
                         f"{RATE_RULE}, e.g. 460G or 12.5GB/s")
    if not (value > 0 and math.isfinite(value)):
        raise UsageError(f"rate {text!r}: must be a positive number of bytes/s")
    return value


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
