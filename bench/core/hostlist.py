"""Slurm's hostlist notation, both ways: `node[0001-0004,0007],login1` <-> the host names. Used
to show host maps, drain lists and node sets of a thousand hosts on one short line, and to read
what Slurm hands a job (SLURM_JOB_NODELIST). Standard library only."""
from __future__ import annotations

import re

from bench.core.errors import UsageError

_TRAILING_NUMBER = re.compile(r"^(.*?)(\d+)$")


def compress(hosts) -> str:
    """The hosts (any order; duplicates dropped) in hostlist form. Names that share a prefix and
    end in numbers of the same width fold into ranges: ['n01', 'n02', 'n03', 'n07'] ->
    'n[01-03,07]'. Groups keep the order of each group's first host."""
    groups: dict = {}  # (prefix, width) -> set of numbers; plain names keyed by themselves
    for host in dict.fromkeys(hosts):
        match = _TRAILING_NUMBER.match(host)
        if match is None:
            groups.setdefault((host, None), None)
            continue
        prefix, digits = match.groups()
        groups.setdefault((prefix, len(digits)), set()).add(int(digits))
    parts = []
    for (prefix, width), numbers in groups.items():
        if width is None:
            parts.append(prefix)
            continue
        ranges = _ranges(sorted(numbers))
        if len(ranges) == 1 and ranges[0][0] == ranges[0][1]:
            parts.append(f"{prefix}{ranges[0][0]:0{width}d}")
            continue
        text = ",".join(f"{lo:0{width}d}" if lo == hi else f"{lo:0{width}d}-{hi:0{width}d}"
                        for lo, hi in ranges)
        parts.append(f"{prefix}[{text}]")
    return ",".join(parts)


def _ranges(numbers: list) -> list:
    out: list = []
    for n in numbers:
        if out and n == out[-1][1] + 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return out


def expand_hostlist(text: str) -> list:
    """The host names of a hostlist ('n[01-03,07],login1' -> ['n01', 'n02', 'n03', 'n07',
    'login1']); one bracket group per name. UsageError (one line) when malformed."""
    hosts, text = [], text.strip()
    for item in _split_top(text):
        match = re.fullmatch(r"([^\[\]]*)\[([^\[\]]+)\]([^\[\]]*)", item)
        if match is None:
            if "[" in item or "]" in item or not item:
                raise UsageError(f"malformed hostlist {text!r}: cannot read {item!r}")
            hosts.append(item)
            continue
        prefix, body, suffix = match.groups()
        for part in body.split(","):
            lo, _, hi = part.partition("-")
            if not lo.isdigit() or (hi and not hi.isdigit()):
                raise UsageError(f"malformed hostlist {text!r}: range {part!r}")
            hi = hi or lo
            if int(hi) < int(lo):
                raise UsageError(f"malformed hostlist {text!r}: range {part!r} runs backwards")
            width = len(lo)
            hosts += [f"{prefix}{n:0{width}d}{suffix}" for n in range(int(lo), int(hi) + 1)]
    return hosts


def _split_top(text: str) -> list:
    """Split on the commas that are not inside brackets."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return items
