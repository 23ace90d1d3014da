"""`commbench check`: is my number right? A verdict per op and size against what the hardware
should give: published figures for a system, your own baseline runs, or thresholds you state.

    commbench check RUN... --expect SYSTEM          figures shipped in analysis/expected.csv
    commbench check RUN... --baseline RUN...        your own earlier runs as the reference
    commbench check RUN... --min OP:SIZE=RATE ...   thresholds: busbw >= RATE at SIZE
    commbench check --list                          the shipped figures and their sources
    options: --tolerance 0.1  --nics N  --format text|markdown|json

RUN is a run directory of `commbench run` or of `commbench import` (nccl-tests, OSU, IMB).
SIZE and RATE follow commbench's one unit rule (bench/core/units.py): KiB, MiB, GiB are
powers of 1024, KB, MB, GB powers of 1000, and a bare K, M, G means the unit commbench prints
the quantity in: a size 16G = 16 GiB, a rate 460G = 4.6e11 B/s (GB/s, as nccl-tests prints
it). The options may be combined.

Verdict per reference and case (backend, op, dtype, ranks; the whole world, split 'all'):
  meets         busbw >= the reference's threshold
  below         under it; the row says by how much (busbw as a share of the figure)
  implausible   a number that cannot be set against the hardware: a collective on 1 rank
                moves no data (a no-op); busbw above a line rate the reference states, or
                above the run's own measured ceiling (meta.json -> ceilings: across nodes, the
                slowest NIC's declared line rate; on one node, the memory copy rate of the node
                for sizes that do not fit in the caches). The likely reason is named: NVLS,
                SHARP and tree algorithms exceed the ring bound that busbw assumes
                (NVIDIA/nccl-tests#196, #274); several NICs per node; a no-op.
  not measured  the run has no row at the size the reference is stated at
Thresholds: a 'minimum' (an acceptance threshold, --min) as stated; a 'typical' figure (a
published measurement) and a baseline less --tolerance (default 0.1: 10% below it still
meets). A reference without a size (a published peak) is set against the run's best busbw
over its sizes. Figures per NIC (--expect nic-200g) are multiplied by --nics. Every shipped
figure names its source and date (for Azure's health-check configuration files, the date in
their header); `--list` prints them.

Exit status: 0 when every verdict is 'meets', 1 when any is not, 2 on bad input (including
a check that matches nothing in the runs).
"""
from __future__ import annotations

import csv
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from analysis.compare import markdown_table, md_escape
from analysis.safe_text import one_line, path_text
from bench.core.errors import UsageError
from bench.core.rundir import EMPTY_GRAPH, split_flags
from bench.core.tables import text_table
from bench.core.units import human_bytes, parse_size

EXPECTED = Path(__file__).with_name("expected.csv")
FORMATS = ("text", "markdown", "json")
VERDICTS = ("meets", "below", "implausible", "not measured")
KINDS = ("minimum", "typical", "baseline")
DEFAULT_TOLERANCE = 0.1

# why busbw can exceed a ring's bound (busbw = algbw x the ring's traffic factor)
ABOVE_RING = ("NVLS (NVLink SHARP), SHARP and tree algorithms exceed the ring bound that busbw "
              "assumes (NVIDIA/nccl-tests#274); on 2 nodes NCCL uses tree, run with "
              "NCCL_ALGO=Ring to measure the links (NVIDIA/nccl-tests#196)")


@dataclass
class Reference:
    """One expected figure: busbw of `op` (at `nbytes`, or its peak over sizes when None)."""
    system: str
    hardware: str
    op: str
    busbw_Bps: float
    kind: str
    source: str
    date: str
    nranks: int | None = None
    nbytes: int | None = None
    per: str = ""                 # 'nic': per NIC of a node (x --nics)
    bound_Bps: float = math.nan   # a line rate busbw of this algorithm cannot exceed
    algorithm: str = ""
    match: dict = field(default_factory=dict)  # baseline: the exact case it belongs to


# ---------------------------------------------------------------- references
def load_expected(path: Path = EXPECTED) -> list[Reference]:
    """The shipped figures (analysis/expected.csv), checked: every row names its source."""
    refs = []
    with open(path, encoding="utf-8", newline="") as f:
        for i, row in enumerate(csv.DictReader(f), start=2):
            try:
                ref = Reference(
                    system=row["system"], hardware=row["hardware"], op=row["op"],
                    busbw_Bps=float(row["busbw_Bps"]), kind=row["kind"], source=row["source"],
                    date=row["date"], nranks=int(row["nranks"]) if row["nranks"] else None,
                    nbytes=int(row["nbytes"]) if row["nbytes"] else None, per=row["per"],
                    bound_Bps=float(row["bound_Bps"]) if row["bound_Bps"] else math.nan,
                    algorithm=row["algorithm"])
            except (KeyError, ValueError) as exc:
                raise RuntimeError(f"{path}: line {i}: {exc}") from None
            if ref.kind not in KINDS[:2] or not ref.source or not ref.date or not ref.busbw_Bps > 0:
                raise RuntimeError(f"{path}: line {i}: needs a kind, a source, a date and a figure")
            refs.append(ref)
    return refs


def systems(refs) -> dict:
    """{system: hardware} in the order of the table."""
    out: dict = {}
    for r in refs:
        out.setdefault(r.system, r.hardware)
    return out


def expected_for(system: str) -> list[Reference]:
    refs = load_expected()
    chosen = [r for r in refs if r.system == system]
    if not chosen:
        raise UsageError(f"--expect: no such system {system!r}; known: {', '.join(systems(refs))} "
                         "(commbench check --list shows them with their sources)")
    return chosen


def parse_rate(text: str) -> float:
    """busbw in bytes/s: bench.core.units.parse_rate ('460G' = 4.6e11, '800MB/s')."""
    from bench.core.units import parse_rate as rate_of

    return rate_of(text)


def parse_min(text: str) -> Reference:
    """--min OP:SIZE=RATE as a 'minimum' reference."""
    from bench.ops import FOREIGN_OPS, OPS, known_op

    where, eq, rate = text.rpartition("=")
    op_name, colon, size = where.partition(":")
    if not (eq and colon and op_name.strip() and size.strip()):
        raise UsageError(f"--min {text!r}: expected OP:SIZE=RATE, e.g. allreduce:16G=460G")
    op = known_op(op_name.strip())
    if op is None:
        raise UsageError(f"--min {text!r}: no such op {op_name.strip()!r}; known: "
                         f"{', '.join([*OPS, *FOREIGN_OPS])}")
    if not op.sized:
        raise UsageError(f"--min {text!r}: {op.name} moves no data, so it has no busbw")
    nbytes = parse_size(size)
    return Reference(system="--min", hardware="stated on the command line", op=op.name,
                     busbw_Bps=parse_rate(rate), kind="minimum", nbytes=nbytes,
                     source=f"--min {text.strip()} (command line)", date="")


def baseline_references(run_dirs) -> list[Reference]:
    """One reference per case of the baseline runs: the median of their busbw."""
    import numpy as np

    from analysis.meta_checks import load_checked_meta
    from analysis.run_frames import load_summary

    found: dict = {}
    names = []
    for run_dir in run_dirs:
        meta = load_checked_meta(run_dir)
        names.append(f"{run_dir} ({meta.get('run_id') or Path(run_dir).name}, "
                     f"{(meta.get('started') or 'start not recorded')[:10]})")
        for r in load_summary(run_dir).itertuples(index=False):
            if r.split == "all" and r.busbw_Bps == r.busbw_Bps and r.busbw_Bps > 0:
                key = (r.backend, r.op, r.dtype, int(r.nbytes), int(r.nranks))
                found.setdefault(key, []).append(float(r.busbw_Bps))
    if not found:
        raise UsageError("--baseline: the baseline runs hold no case with a bandwidth")
    source = "baseline " + "; ".join(names)
    return [Reference(system="baseline", hardware="your baseline run", op=op,
                      busbw_Bps=float(np.median(v)), kind="baseline", source=source, date="",
                      nranks=n, nbytes=s, match={"backend": b, "dtype": d})
            for (b, op, d, s, n), v in sorted(found.items())]


# ---------------------------------------------------------------- the runs
@dataclass
class Run:
    path: str
    label: str
    meta: dict
    summary: object  # DataFrame

    @property
    def on_gpu(self) -> bool:
        """Buffers in GPU memory: the host's copy rate is no ceiling for them."""
        settings = self.meta.get("settings") or {}
        backends = self.meta.get("backends") or {}
        devices = [settings.get("device") if isinstance(settings, dict) else None]
        if isinstance(backends, dict):
            devices += [b.get("device") for b in backends.values() if isinstance(b, dict)]
        return any(isinstance(d, str) and d.startswith("cuda") for d in devices)


def load_runs(run_dirs) -> list[Run]:
    from analysis.meta_checks import load_checked_meta
    from analysis.run_frames import load_summary

    runs, labels = [], set()
    for d in run_dirs:
        meta = load_checked_meta(d)
        summary = load_summary(d)
        if summary.empty:
            raise UsageError(f"{path_text(d)}: no results (summary.csv is empty or missing)")
        label = str(meta.get("run_id") or Path(d).name)
        while label in labels:
            label += "'"
        labels.add(label)
        runs.append(Run(str(d), label, meta, summary))
    return runs


# ---------------------------------------------------------------- verdicts
def gbps(x: float) -> str:
    return f"{x / 1e9:.4g}"


def threshold_of(ref: Reference, nics: int | None, tolerance: float) -> tuple[float, float]:
    """(the figure for this run, the threshold it must reach)."""
    figure = ref.busbw_Bps * (nics if ref.per == "nic" else 1)
    if ref.kind == "minimum":
        return figure, figure
    return figure, figure * (1 - tolerance)


def implausible(run: Run, row, ref: Reference, nics) -> str:
    """Why this row's busbw cannot be set against the hardware, or ''."""
    from bench import ceilings

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
    if name.startswith("copy") and not run.on_gpu and int(row.nbytes) >= ceilings.COPY_BYTES:
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
            rate = h.get("copy_node_Bps")
            ok = isinstance(rate, (int, float)) and not isinstance(rate, bool) and rate > 0
            out[host] = {"nics": nics, "copy_node_Bps": float(rate) if ok else math.inf}
    return out


def remark(run: Run, row) -> str:
    """What a reader should know about a row's share of its ceiling that is no verdict."""
    from bench import ceilings

    eff = float(row.efficiency)
    if not (eff == eff and eff > 1) or not ceiling_name(row).startswith("copy"):
        return ""
    device = ceiling_name(row) == "copy-device"
    if run.on_gpu and not device:  # a run from before the GPU's own copy rate was measured
        return "the host's copy rate is no ceiling for GPU buffers"
    if int(row.nbytes) < ceilings.COPY_BYTES:
        return (f"above the copy rate measured on {ceilings.COPY_BYTES >> 20} MiB: "
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
           "reason": "", "remark": remark(run, row)}
    why = implausible(run, row, ref, nics)
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
    runs = load_runs(run_dirs)
    rows, sources, index, unused = [], [], {}, []
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
    from bench import ceilings

    c = meta.get("ceilings")
    if not isinstance(c, dict) or c.get("copy_one_core_Bps") is None:
        return ""
    try:
        return ceilings.describe(c)
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


# ---------------------------------------------------------------- output
HEADER = ["run", "backend", "op", "ranks", "size", "busbw(GB/s)", "%ceil", "expected(GB/s)",
          "ref", "verdict"]


def size_text(r) -> str:
    size = human_bytes(r["nbytes"])
    return f"{size} (peak)" if r["peak"] else size


def verdict_text(r) -> str:
    kind = "" if r["kind"] == "minimum" else f" ({r['kind']})"
    if r["verdict"] == "meets":
        text = f"meets: {r['share']:.0%} of {gbps(r['expected_Bps'])}{kind}"
    elif r["verdict"] == "below":
        text = f"below: {r['share']:.0%} of {gbps(r['expected_Bps'])}{kind}, {1 - r['share']:.0%} short"
        if r["threshold_Bps"] != r["expected_Bps"]:
            text += f"; needs {gbps(r['threshold_Bps'])}"
    else:
        text = f"{r['verdict']}: {r['reason']}"
    if r.get("remark"):
        text += f"; note: {r['remark']}"
    return text


def table_rows(result, quote=None) -> list:
    from bench.ceilings import applies  # a copy ceiling beaten in the caches: 'cache'

    quote = quote or one_line
    out = []
    for r in result["rows"]:
        eff = r["efficiency"]
        out.append([quote(r["label"]), quote(r["backend"]), quote(r["op"]), str(r["nranks"]),
                    size_text(r), gbps(r["busbw_Bps"]) if r["busbw_Bps"] == r["busbw_Bps"] else "–",
                    ("cache" if not applies(r) else f"{eff:.0%}") if eff == eff else "–",
                    gbps(r["expected_Bps"]),
                    f"[{r['ref']}]", verdict_text(r)])
    return out


def source_lines(result, quote=None) -> list:
    quote = quote or one_line
    out = []
    for ref in result["references"]:
        if ref["kind"] == "baseline":
            out.append(f"[{ref['ref']}] baseline: each case against the median busbw of the same "
                       "case (backend, op, dtype, size, ranks) in the baseline runs. Source: "
                       f"{quote(ref['source'])}")
            continue
        where = []
        if ref["nranks"]:
            where.append(f"{ref['nranks']} ranks")
        where.append(f"at {human_bytes(ref['nbytes'])}" if ref["nbytes"] else "peak over sizes")
        per = " per NIC" if ref["per"] == "nic" else ""
        bound = f", line rate {gbps(ref['bound_Bps'])} GB/s" if ref["bound_Bps"] else ""
        date = f" ({quote(ref['date'])})" if ref["date"] else ""
        head = (f"[{ref['ref']}] {quote(ref['system'])}: {quote(ref['hardware'])}; "
                f"{quote(ref['op'])} busbw {gbps(ref['busbw_Bps'])} GB/s{per} {ref['kind']}, "
                f"{', '.join(where)}{bound}")
        if ref["algorithm"]:
            head += f", {quote(ref['algorithm'])}"
        out.append(f"{head}. Source: {quote(ref['source'])}{date}")
    return out


def closing(result) -> str:
    return ", ".join(f"{v}: {result['counts'][v]}" for v in VERDICTS)


def heading(result, quote=None) -> str:
    quote = quote or one_line
    text = f"{quote(', '.join(result['runs']))}: busbw in GB/s (1e9 B/s)"
    if any(r["kind"] != "minimum" for r in result["references"]):
        text += f"; typical figures and baselines meet within {result['tolerance']:.0%} below them"
    return text


def format_text(result) -> str:
    lines = [f"commbench check {heading(result)}"]
    lines += text_table(HEADER, table_rows(result), right={3, 4, 5, 6, 7})
    lines.append(closing(result))
    lines += source_lines(result)
    lines += [f"ceilings of {one_line(run)}: {one_line(text)}" for run, text in result["ceilings"].items()]
    lines += [f"note: {one_line(n)}" for n in result["notes"]]
    return "\n".join(lines)


def format_markdown(result) -> str:
    lines = [f"**commbench check** {heading(result, md_escape)}", ""]
    lines += markdown_table(HEADER, table_rows(result, md_escape))
    lines += ["", f"**{closing(result)}**", ""]
    lines += [f"- {line}" for line in source_lines(result, md_escape)]
    lines += [f"- ceilings of {md_escape(run)}: {md_escape(text)}" for run, text in result["ceilings"].items()]
    lines += [f"- note: {md_escape(n)}" for n in result["notes"]]
    return "\n".join(lines)


def format_json(result) -> str:
    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    return json.dumps(clean(result), indent=2, default=str)


def format_list(refs) -> str:
    lines = ["system, op, ranks, size: busbw (kind); source (date)"]
    for r in refs:
        size = human_bytes(r.nbytes) if r.nbytes else "peak"
        per = " per NIC" if r.per else ""
        lines.append(f"{r.system}  {r.op}  {r.nranks or 'any'}  {size}: {gbps(r.busbw_Bps)} GB/s{per} "
                     f"({r.kind}); {r.hardware}; {r.source} ({r.date})")
    return "\n".join(lines)


# ---------------------------------------------------------------- command
def add_arguments(parser) -> None:
    import argparse

    parser.description = __doc__.split("\n\n")[0]
    parser.epilog = __doc__.split("\n\n", 1)[1]
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("runs", nargs="*", metavar="RUN", help="run directories to check")
    parser.add_argument("--expect", metavar="SYSTEM", default=None,
                        help="published figures of a system (--list shows them)")
    parser.add_argument("--baseline", nargs="+", metavar="RUN", default=None,
                        help="your own earlier run directories as the reference")
    parser.add_argument("--min", action="append", metavar="OP:SIZE=RATE", default=None,
                        help="busbw threshold, e.g. allreduce:16G=460G (repeatable)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help="share below a typical figure or a baseline that still meets "
                             f"(default {DEFAULT_TOLERANCE:g})")
    parser.add_argument("--nics", type=int, default=None,
                        help="NICs per node, for figures stated per NIC")
    parser.add_argument("--format", default="text", help="text, markdown or json (default text)")
    parser.add_argument("--list", action="store_true", help="list the shipped figures and exit")


def main(args) -> int:
    if args.format not in FORMATS:
        raise UsageError(f"no such format {args.format!r}; known: {', '.join(FORMATS)}")
    if args.list:
        sys.stdout.write(format_list(load_expected()) + "\n")
        return 0
    if not args.runs:
        raise UsageError("give the run directories to check (RUN...)")
    refs = []
    if args.expect:
        refs += expected_for(args.expect)
    for text in args.min or []:
        refs.append(parse_min(text))
    if args.baseline:
        refs += baseline_references(args.baseline)
    result = check(args.runs, refs, args.nics, args.tolerance)
    text = {"text": format_text, "markdown": format_markdown, "json": format_json}[args.format](result)
    sys.stdout.write(text + "\n")
    return result["exit_status"]
