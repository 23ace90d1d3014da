"""Plain-text tables of a summary, one per op, with units in the headers. Rows are dicts (as
summary.csv holds them), so a rank or the local launcher can print them without pandas."""
from __future__ import annotations

import math

from bench.core.rundir import NO_BANDWIDTH, split_flags


def _num(value, scale=1.0, fmt="{:.2f}") -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if math.isnan(value) else fmt.format(value * scale)


def _is_multimodal(row) -> bool:
    modes = row.get("modes", 1)
    return bool(modes) and modes == modes and modes > 1 and isinstance(row.get("mode_medians_s"), str)


def _ceiling_share(row, no_op: bool) -> str:
    """%ceil: the row's share of its ceiling; 'cache' where a size that fits in the caches
    beat a copy ceiling measured beyond them (bench.core.runmeta.applies: no limit there)."""
    from bench.core.runmeta import applies

    if no_op:
        return "-"
    return _num(row.get("efficiency"), 100, "{:.1f}") if applies(row) else "cache"


def format_summary(rows: list[dict], meta: dict | None = None) -> str:
    """Latency in µs, bandwidth in GB/s (1 GB = 1e9 bytes), sizes in bytes (S per op)."""
    ops_info = (meta or {}).get("ops", {})
    groups: dict = {}
    for row in rows:
        groups.setdefault((row["backend"], row["op"], row["nranks"], row["dtype"]), []).append(row)
    blocks = []
    for (backend, op, nranks, dtype), group in groups.items():
        info = ops_info.get(op, {})
        head = (f"# {op}  backend={backend} ranks={nranks} dtype={dtype}  "
                f"S={info.get('s_means', '?')}  busbw factor={info.get('bus_factor', '?')}")
        limits = sorted({r.get("ceiling") for r in group if isinstance(r.get("ceiling"), str) and r.get("ceiling")})
        if limits:
            head += (f"  %ceil: {info.get('efficiency_of', 'busbw')} / "
                     f"{', '.join(limits)} (meta.json: ceilings)")
            if any(_ceiling_share(r, False) == "cache" for r in group):
                head += "; cache: a size that fits in the caches beat it, no limit there"
        lines = [head, f"#{'S(B)':>11} {'count':>10} {'median(us)':>11} {'ci95_low(us)':>12} "
                       f"{'ci95_high(us)':>13} {'algbw(GB/s)':>11} {'busbw(GB/s)':>11} "
                       f"{'Mmsg/s':>8} {'#wrong':>7} {'samples':>8} {'%ceil':>6}"]
        for r in sorted(group, key=lambda r: r["nbytes"]):
            marks = split_flags(r.get("flags"))
            flag = "  WRONG" if r["wrong"] else ""
            flag += f"  [{', '.join(marks)}]" if marks else ""
            no_op = any(word in NO_BANDWIDTH for word in marks)  # no bandwidth to print
            if _is_multimodal(r):
                medians = "/".join(_num(float(m), 1e6) for m in r["mode_medians_s"].split(";"))
                flag += f"  {int(r['modes'])} modes: {medians} us"
            lines.append(f"{r['nbytes']:>12} {r['count']:>10} {_num(r['median_s'], 1e6):>11} "
                         f"{_num(r['ci_low_s'], 1e6):>12} {_num(r['ci_high_s'], 1e6):>13} "
                         f"{_num(r['algbw_Bps'] if not no_op else None, 1e-9):>11} "
                         f"{_num(r['busbw_Bps'] if not no_op else None, 1e-9):>11} "
                         f"{_num(r['msg_rate_per_s'], 1e-6, '{:.3f}'):>8} {r['wrong']:>7} "
                         f"{r['samples']:>8} {_ceiling_share(r, no_op):>6}{flag}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def text_table(header, rows, right=()) -> list:
    """The lines of a plain-text table: columns as wide as their widest cell, those in `right`
    (column numbers) right-aligned, two spaces between."""
    rows = [list(header)] + [list(r) for r in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return ["  ".join(c.rjust(w) if i in right else c.ljust(w)
                      for i, (c, w) in enumerate(zip(row, widths))).rstrip() for row in rows]
