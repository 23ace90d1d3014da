"""The verdicts of `commbench check`: each case of the runs against the references that
apply to it (meets, below, implausible, not measured), with the reason a number cannot be set
against the hardware and what else a reader should know about a row."""
from __future__ import annotations

import math
from typing import Any, cast

from analysis.check_references import Reference
from analysis.run_set import Run, load_runs
from bench.core.errors import UsageError
from bench.core.rundir import EMPTY_GRAPH, split_flags
from bench.core.units import human_bytes

VERDICTS = ("meets", "below", "implausible", "not measured")
DEFAULT_TOLERANCE = 0.1

# why busbw can exceed a ring's bound (busbw = algbw x the ring's traffic factor)
ABOVE_RING = ("NVLS (NVLink SHARP), SHARP and tree algorithms exceed the ring bound that busbw "
              "assumes (NVIDIA/nccl-tests#274); on 2 nodes NCCL uses tree, run with "
              "NCCL_ALGO=Ring to measure the links (NVIDIA/nccl-tests#196)")


def gbps(x: float) -> str:
    return f"{x / 1e9:.4g}"


def threshold_of(ref: Reference, nics: int | None, tolerance: float) -> tuple[float, float]:
    """(the figure for this run, the threshold it must reach)."""
    figure = ref.busbw_Bps * (cast(int, nics) if ref.per == "nic" else 1)  # nics checked by the caller
    if ref.kind == "minimum":
        return figure, figure
    return figure, figure * (1 - tolerance)


def implausible_reason(run: Run, row, ref: Reference, nics) -> str:
    """Why this row's busbw cannot be set against the hardware, or ''."""
    from bench.core import runmeta

    if int(row.nranks) == 1:
        return (f"1 rank: {row.op} moves no data between ranks (a no-op), so its time is the "
                "call's overhead; run on 2 or more ranks")
    if EMPTY_GRAPH in split_flags(getattr(row, "flags", "")):
        return ("its CUDA graph captured no GPU work (flag empty-graph), so the time is a replay "
                "of nothing")
    busbw = float(row.busbw_Bps)
    bound = ref.bound_Bps * (nics if ref.per == "nic" else 1)
    if bound == bound and busbw > bound:
        return f"above {gbps(bound)} GB/s, the line rate this figure assumes: {ABOVE_RING}"
    hosts = ceiling_hosts(run.meta)
    name, eff = ceiling_name(row), float(row.efficiency)
    if not (eff == eff and eff > 1) or not hosts:
        return ""
    if name == "nic":
        several = any(len(h["nics"]) > 1 for h in hosts.values())
        why = ABOVE_RING + ("; or the ranks of a node use several NICs (the ceiling is one NIC's "
                            "declared rate)" if several else "")
        return f"{eff:.0%} of the slowest declared line rate (meta.json → ceilings): {why}"
    if name.startswith("copy") and not run.on_gpu and int(row.nbytes) >= runmeta.COPY_BYTES:
        node = min((h["copy_node_Bps"] for h in hosts.values()), default=math.inf)
        if busbw > node:
            return (f"faster than the node copies memory ({gbps(node)} GB/s, meta.json → "
                    "ceilings) at a size beyond the caches: a timing error or data that never moved")
    return ""


def ceiling_name(row) -> str:
    """The summary row's `ceiling` (empty, read as NaN, where none applies)."""
    return row.ceiling if isinstance(row.ceiling, str) else ""


def ceiling_hosts(meta) -> dict:
    """{host: {'nics': [...], 'copy_node_Bps': rate}} of meta.json → ceilings, what of it is
    well formed (a hand-edited or foreign file may hold anything)."""
    c = meta.get("ceilings")
    hosts = c.get("hosts") if isinstance(c, dict) else None
    out = {}
    for host, h in (hosts.items() if isinstance(hosts, dict) else ()):
        if isinstance(h, dict):
            nics = h.get("nics") if isinstance(h.get("nics"), list) else []
            rate: Any = h.get("copy_node_Bps")
            ok = isinstance(rate, (int, float)) and not isinstance(rate, bool) and rate > 0
            out[host] = {"nics": nics, "copy_node_Bps": float(rate) if ok else math.inf}
    return out


def ceiling_remark(run: Run, row) -> str:
    """What a reader should know about a row's share of its ceiling that is no verdict."""
    from bench.core import runmeta

    eff = float(row.efficiency)
    if not (eff == eff and eff > 1) or not ceiling_name(row).startswith("copy"):
        return ""
    device = ceiling_name(row) == "copy-device"
    if run.on_gpu and not device:  # a run from before the GPU's own copy rate was measured
        return "the host's copy rate is no ceiling for GPU buffers"
    if int(row.nbytes) < runmeta.COPY_BYTES:
        return (f"above the copy rate measured on {runmeta.COPY_BYTES >> 20} MiB: "
                f"{human_bytes(int(row.nbytes))} fits in the caches")
    return "" if device else "above one core's copy rate: the ranks copy in parallel"


def judge(run: Run, row, ref: Reference, nics, tolerance, peak: bool) -> dict:
    figure, threshold = threshold_of(ref, nics, tolerance)
    busbw = float(row.busbw_Bps)
    out = {"run": run.path, "label": run.label, "backend": row.backend, "op": row.op,
           "dtype": row.dtype, "nranks": int(row.nranks), "nbytes": int(row.nbytes),
           "peak": peak, "busbw_Bps": busbw, "ceiling": ceiling_name(row),
           "efficiency": float(row.efficiency), "expected_Bps": figure,
           "threshold_Bps": threshold, "share": busbw / figure if figure else math.nan,
           "reason": "", "remark": ceiling_remark(run, row)}
    why = implausible_reason(run, row, ref, nics)
    if why:
        out.update(verdict="implausible", reason=why)
    elif busbw >= threshold:
        out["verdict"] = "meets"
    else:
        out["verdict"] = "below"
    return out


def check_run(run: Run, ref: Reference, nics, tolerance) -> list[dict]:
    """The verdicts of one reference on one run (none when it does not apply)."""
    s = run.summary
    rows = s[(s["op"] == ref.op) & (s["split"] == "all")]
    if ref.nranks is not None:
        rows = rows[rows["nranks"] == ref.nranks]
    for column, value in ref.match.items():
        rows = rows[rows[column] == value]
    if ref.per == "nic" and (run.meta.get("nnodes") or 2) < 2:
        return []  # a figure across nodes; this run is on one node
    # rows without a busbw have nothing to check, but on 1 rank (bus factor 0) that is the
    # point: the op moved nothing
    rows = rows[rows["busbw_Bps"].notna() | (rows["nranks"] == 1)]
    out = []
    for _, group in rows.groupby(["backend", "dtype", "nranks"], sort=True):
        if ref.nbytes is None:
            at = group["busbw_Bps"].idxmax() if group["busbw_Bps"].notna().any() else group.index[0]
            best = next(group.loc[[at]].itertuples(index=False))
            out.append(judge(run, best, ref, nics, tolerance, peak=True))
            continue
        at = group[group["nbytes"] == ref.nbytes]
        if len(at):
            out.append(judge(run, next(at.itertuples(index=False)), ref, nics, tolerance, False))
        elif ref.kind != "baseline":
            first = group.iloc[0]
            figure, threshold = threshold_of(ref, nics, tolerance)
            out.append({"run": run.path, "label": run.label, "backend": first["backend"],
                        "op": ref.op, "dtype": first["dtype"], "nranks": int(first["nranks"]),
                        "nbytes": ref.nbytes, "peak": False, "busbw_Bps": math.nan,
                        "ceiling": "", "efficiency": math.nan, "expected_Bps": figure,
                        "threshold_Bps": threshold, "share": math.nan, "verdict": "not measured",
                        "reason": f"no row at {human_bytes(ref.nbytes)}; the run measured "
                                  f"{human_bytes(int(group['nbytes'].min()))} to "
                                  f"{human_bytes(int(group['nbytes'].max()))}",
                        "remark": ""})
    return out


def check(run_dirs, refs: list[Reference], nics=None, tolerance=DEFAULT_TOLERANCE) -> dict:
    """The verdicts as a plain dict (what --format json prints)."""
    if not refs:
        raise UsageError("nothing to check against: give --expect SYSTEM, --baseline RUN... "
                         "or --min OP:SIZE=RATE")
    if not 0 <= tolerance < 1:
        raise UsageError(f"--tolerance must be at least 0 and below 1, got {tolerance:g}")
    if any(r.per == "nic" for r in refs) and not (nics and nics >= 1):
        raise UsageError("these figures are per NIC: give --nics N, the NICs of a node that carry "
                         "the traffic")
    runs = load_runs([str(d) for d in run_dirs])
    rows, index, unused = [], {}, []
    sources: list[dict] = []
    for ref in refs:
        found = [r for run in runs for r in check_run(run, ref, nics, tolerance)]
        if not found:
            unused.append(ref)
            continue
        # one footnote per reference; a baseline's cases share theirs
        key = ("baseline", ref.source) if ref.kind == "baseline" else id(ref)
        if key not in index:
            index[key] = len(sources) + 1
            sources.append(ref_dict(ref, index[key]))
        rows += [dict(r, ref=index[key], kind=ref.kind) for r in found]
    if not rows:
        what = sorted({(r.op, r.nranks) for r in refs}, key=str)
        raise UsageError("nothing to check: no case of the runs matches the references ("
                         + ", ".join(f"{op}" + (f" on {n} ranks" if n else "") for op, n in what)
                         + "; whole-world cases with a busbw)")
    result = {"runs": [r.path for r in runs], "tolerance": tolerance, "nics": nics,
              "references": sources, "rows": rows,
              "counts": {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS},
              "ceilings": {run.path: text for run in runs if (text := ceilings_text(run.meta))},
              "notes": notes(unused, refs, runs)}
    result["exit_status"] = 0 if result["counts"]["meets"] == len(rows) else 1
    return result


def ref_dict(ref: Reference, index: int) -> dict:
    """A footnote: the reference (a baseline: all its cases, each its own busbw)."""
    if ref.kind == "baseline":
        return {"ref": index, "system": "baseline", "kind": "baseline", "source": ref.source,
                "date": ""}
    d = {"ref": index, "system": ref.system, "hardware": ref.hardware, "op": ref.op,
         "nranks": ref.nranks, "nbytes": ref.nbytes, "busbw_Bps": ref.busbw_Bps, "kind": ref.kind,
         "per": ref.per or None, "bound_Bps": None if ref.bound_Bps != ref.bound_Bps else ref.bound_Bps,
         "algorithm": ref.algorithm, "source": ref.source, "date": ref.date}
    if ref.match:
        d["match"] = ref.match
    return d


def ceilings_text(meta) -> str:
    from bench.core import runmeta

    c = meta.get("ceilings")
    if not isinstance(c, dict) or c.get("copy_one_core_Bps") is None:
        return ""
    try:
        return runmeta.describe_ceilings(c)
    except (AttributeError, KeyError, TypeError, ValueError):
        return "meta.json → ceilings is malformed"


def notes(unused, refs, runs) -> list:
    out = []
    if unused and any(r.kind != "baseline" for r in unused):
        listed = ", ".join(sorted({f"{r.system} {r.op}" + (f" ({r.nranks} ranks)" if r.nranks else "")
                                   for r in unused if r.kind != "baseline"}))
        out.append(f"not applicable to these runs (no whole-world case of that op and rank count"
                   f"{', or a run on one node for figures across nodes' if any(r.per for r in unused) else ''}"
                   f"): {listed}")
    if unused and any(r.kind == "baseline" for r in unused):
        n = sum(r.kind == "baseline" for r in unused)
        out.append(f"{n} baseline cases have no counterpart in the runs checked")
    if any(r.kind == "baseline" for r in refs):
        out.append("a baseline check compares single numbers; for a verdict that knows the "
                   "run-to-run noise use `commbench compare BASE NEW`")
    if any(r.meta.get("source") for r in runs):
        out.append("imported runs carry no measured ceilings: only the references' own line "
                   "rates and 1-rank no-ops can make a number implausible")
    return out
