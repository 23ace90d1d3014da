"""Plain-text tables of a summary, one per op, with units in the headers."""
from __future__ import annotations

import math

import pandas as pd


def _num(value, scale=1.0, fmt="{:.2f}") -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if math.isnan(value) else fmt.format(value * scale)


def format_summary(summary: pd.DataFrame, meta: dict | None = None) -> str:
    """Latency in µs, bandwidth in GB/s (1 GB = 1e9 bytes), sizes in bytes (S per op)."""
    ops_info = (meta or {}).get("ops", {})
    blocks = []
    for (backend, op, nranks, dtype), rows in summary.groupby(
            ["backend", "op", "nranks", "dtype"], sort=False):
        info = ops_info.get(op, {})
        head = (f"# {op}  backend={backend} ranks={nranks} dtype={dtype}  "
                f"S={info.get('s_means', '?')}  busbw factor={info.get('bus_factor', '?')}")
        lines = [head, f"#{'S(B)':>11} {'count':>10} {'median(us)':>11} {'ci95_low(us)':>12} "
                       f"{'ci95_high(us)':>13} {'algbw(GB/s)':>11} {'busbw(GB/s)':>11} "
                       f"{'Mmsg/s':>8} {'#wrong':>7} {'samples':>8}"]
        for r in rows.sort_values("nbytes").itertuples():
            flag = "  WRONG" if r.wrong else ""
            if getattr(r, "modes", 1) and getattr(r, "modes", 1) > 1 and isinstance(r.mode_medians_s, str):
                medians = "/".join(_num(float(m), 1e6) for m in r.mode_medians_s.split(";"))
                flag += f"  {int(r.modes)} modes: {medians} us"
            lines.append(f"{r.nbytes:>12} {r.count:>10} {_num(r.median_s, 1e6):>11} "
                         f"{_num(r.ci_low_s, 1e6):>12} {_num(r.ci_high_s, 1e6):>13} "
                         f"{_num(r.algbw_Bps, 1e-9):>11} {_num(r.busbw_Bps, 1e-9):>11} "
                         f"{_num(r.msg_rate_per_s, 1e-6, '{:.3f}'):>8} {r.wrong:>7} "
                         f"{r.samples:>8}{flag}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def print_run(run_dir) -> None:
    """What `commbench run` prints at the end: a table per op, then what the run found about
    the nodes, the machine's contention and noise."""
    from analysis.rundir import load_meta, load_samples, load_summary
    from bench import contention, noise

    meta = load_meta(run_dir)
    print(format_summary(load_summary(run_dir), meta))
    if meta.get("nnodes", 1) > 1 or "pairs" in meta.get("ops", {}):
        from analysis.links import describe

        text = describe(load_samples(run_dir), meta)
        if text:
            print(text)
    if meta.get("contention"):
        print(f"# machine: {contention.describe(meta['contention'])}")
    if meta.get("noise"):
        print(f"# noise: {noise.describe(meta['noise'])}")
    print(f"# results: {run_dir}")
