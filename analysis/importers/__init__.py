"""`commbench import`: other tools' results (nccl-tests, OSU, IMB) turned into a commbench run
directory: detection of the format, the rows of every importer gathered into cases, rounds
and backends, the run directory written, and the command. Its help text (DESCRIPTION and
EPILOG below) says what is read and how.

    commbench import FILE [FILE...] [--format FORMAT] [--out DIR] [--op OP] [--nranks N]
                                    [--backend NAME] [--force]
"""
from __future__ import annotations

import itertools
import math
import re
import sys
from pathlib import Path

from analysis.importers import imb, nccl, osu, records, text_files
from analysis.importers.imb import parse as parse_imb
from analysis.importers.nccl import op_name as nccl_op_name
from analysis.importers.nccl import parse_json as parse_nccl_json
from analysis.importers.nccl import parse_text as parse_nccl_text
from analysis.importers.osu import parse as parse_osu
from analysis.importers.log_lines import as_lines, numbered
from analysis.importers.records import Imported, Row
from analysis.importers.text_files import MAX_TEXT_BYTES, file_lines
from analysis.importers.tool_names import msgs_per_op, op_named
from bench.core.errors import UsageError
from bench.core.run_lock import claim_out_dir
from bench.core.rundir import CASE, NO_OP, SAMPLE_COLUMNS, new_meta, new_run_id
from analysis.known_ops import FOREIGN_OPS, known_op
from bench.ops import OPS

__all__ = ["FORMATS", "Imported", "Row", "add_arguments", "build_meta", "bus_factor", "detect_format",
           "main", "msgs_per_op", "nccl_op_name", "op_description", "parse", "parse_file", "parse_imb",
           "parse_nccl_json", "parse_nccl_text", "parse_osu", "to_frames"]

# ---------------------------------------------------------------- formats
FORMATS = {
    nccl.TEXT: nccl.parse_text,
    nccl.JSON: nccl.parse_json,
    osu.TOOL: osu.parse,
    imb.TOOL: imb.parse,
}
# how each text format shows on a (cleaned) line
SIGNS = [(nccl.TEXT, nccl.looks_like_text), (osu.TOOL, osu.looks_like), (imb.TOOL, imb.looks_like)]


def detect(source) -> tuple[str, dict]:
    """(format, {other format: first line it shows on}) of a text or stream of lines: a JSON
    document starts with '{'; otherwise the first line showing a format's sign decides (the
    whole stream is looked at, so a table after any amount of chatter is found), and another
    format's sign further on is reported, not silently passed over."""
    found: dict = {}
    lines = iter(as_lines(source))
    for raw in lines:
        if raw.strip():
            if nccl.looks_like_json(raw):
                return nccl.JSON, {}
            lines = itertools.chain([raw], lines)
            break
    for i, s in numbered(lines):
        if s[0] != "#":
            continue
        for fmt, looks_like in SIGNS:
            if fmt not in found and looks_like(s):
                found[fmt] = i
    if not found:
        raise UsageError("cannot tell the format; name it with --format (known: " + ", ".join(FORMATS) + ")")
    first = min(found, key=found.__getitem__)
    return first, {f: line for f, line in found.items() if f != first}


def detect_format(source) -> str:
    return detect(source)[0]


def parse(source, fmt: str | None = None, op: str | None = None, nranks: int | None = None) -> Imported:
    """Parse a text (str) or a stream of lines."""
    if fmt is None:
        if not isinstance(source, str):
            source = list(source)
        fmt = detect_format(source)
    if fmt not in FORMATS:
        raise UsageError(f"no such format {fmt!r}; known: {', '.join(FORMATS)}")
    return FORMATS[fmt](source, op=op, nranks=nranks)


def parse_file(path: Path, fmt: str | None = None, op: str | None = None,
               nranks: int | None = None) -> Imported:
    """Parse one file, streaming it (twice when the format is detected)."""
    path = Path(path)
    others: dict = {}
    if fmt is None:
        fmt, others = (nccl.JSON, {}) if _starts_json(path) else detect(file_lines(path, MAX_TEXT_BYTES))
    if fmt not in FORMATS:
        raise UsageError(f"no such format {fmt!r}; known: {', '.join(FORMATS)}")
    source = path if fmt == nccl.JSON else file_lines(path, MAX_TEXT_BYTES)
    imp = FORMATS[fmt](source, op=op, nranks=nranks)
    for other, line in others.items():
        imp.notes.append(f"it also holds {other} output (line {line}): not imported; "
                         f"import it with --format {other}")
    if op is not None and not imp.op_used:
        imp.notes.append(f"--op {op} not used (every table names its op)")
    if nranks is not None and not imp.nranks_used:
        imp.notes.append(f"--nranks {nranks} not used (the file gives every rank count it needs)")
    return imp


def _starts_json(path: Path) -> bool:
    """Whether the file's first non-blank character (in its first 64 KiB of text) opens a JSON
    object. What the file is (not a file, compressed, binary) is checked here, before anything
    else reads it, and refused with one line (text_files.open_text)."""
    with text_files.open_text(path, math.inf) as f:  # sizes are the parser's to limit
        try:
            head = f.read(1 << 16).lstrip()
        except (OSError, EOFError):
            return False  # said by the reader, with the reason
    return head.startswith("{")


# ---------------------------------------------------------------- op facts (bench.ops)
def op_description(op: str) -> dict:
    """meta.json -> ops entry: what S means, the bus factor formula, ops per call."""
    known = op_named(op)
    desc = dict(known.facts()) if known else {"s_means": "as the tool defines it", "bus_factor": "-"}
    desc["ops_per_call"] = "n/a (imported: the tool's time per op)"
    return desc


def bus_factor(op: str, n: int) -> float:
    known = op_named(op)
    return (known.bus_factor(n) or float("nan")) if known else float("nan")  # barrier: 0, no bandwidth


# ---------------------------------------------------------------- the run directory
def row_backend(imp: Imported, row: Row, base: str | None = None) -> str:
    """The backend a row is recorded under: --backend, else the row's library, else the
    file's; then the row's variant (device buffers, another IMB run)."""
    name = base or row.backend or imp.backend
    return f"{name}-{row.variant}" if row.variant else name


def case_wrong(values) -> float:
    """Wrong results of a case over its rounds: their sum when one is known to be wrong;
    unknown (NaN) when none is and some round was not checked."""
    known = [v for v in values if v == v]
    if any(v > 0 for v in known):
        return float(sum(known))
    return float("nan") if len(known) < len(values) else 0.0


def to_frames(imports: list, backend: str | None = None):
    """(samples, summary) DataFrames of parsed files; a case met again is the next round."""
    import pandas as pd

    from analysis.run_frames import summarize_samples

    rows: list = []
    seen: dict = {}
    record_round: dict = {}
    for i, imp in enumerate(imports):
        for r in imp.rows:
            case = (row_backend(imp, r, backend), r.op, r.dtype, r.nbytes, r.nranks, "all")
            record = (case, i, r.record) if r.record >= 0 else None
            rnd = record_round.get(record) if record else None
            if rnd is None:
                rnd = seen.get(case, 0)
                seen[case] = rnd + 1
                if record:
                    record_round[record] = rnd
            rows.append(dict(zip(CASE, case), round=rnd, sample=r.sample, rank=r.rank,
                             calls=r.calls, time_s=r.time_s, count=r.count, wrong=r.wrong))
    if not rows:
        raise UsageError("no results to import")
    table = pd.DataFrame(rows)
    bad = ~(table["time_s"].apply(math.isfinite) & (table["time_s"] > 0))
    if bad.any():  # the parsers never let one through (make_row)
        raise UsageError(f"{int(bad.sum())} rows without a finite positive time (an importer bug)")
    counts = table.groupby(["op", "dtype", "nbytes", "nranks"])["count"].first().to_dict()
    summary = summarize_samples(
        table[SAMPLE_COLUMNS],
        bus_factor=bus_factor, msgs_per_op=msgs_per_op,
        count=lambda op, dtype, nbytes, n: counts.get((op, dtype, nbytes, n), float("nan")),
    )
    wrong = {case: case_wrong(list(g)) for case, g in table.groupby(CASE)["wrong"]}
    summary["wrong"] = [wrong.get(tuple(r[c] for c in CASE), 0.0) for _, r in summary.iterrows()]
    summary["flags"] = summary["nranks"].map({1: NO_OP}).fillna("")  # as commbench's own rows
    return table[SAMPLE_COLUMNS], summary


def build_meta(imports: list, files: list, argv: list, backend: str, samples, run_id=None) -> dict:
    """meta.json of an import: the core's skeleton (bench.core.rundir.new_meta), the times the
    tool recorded (none for the text formats), and what the tools said."""
    first = imports[0]
    hosts: list = next((i.meta.get("hosts") for i in imports if i.meta.get("hosts")), [])
    ops = sorted(samples["op"].unique())
    versions: dict = {}
    for imp in imports:
        for tool, version in imp.meta.get("versions", {}).items():
            for v in version.split(", "):
                if v not in versions.get(tool, "").split(", "):
                    versions[tool] = f"{versions[tool]}, {v}" if versions.get(tool) else v
    tools = sorted({i.tool for i in imports})
    meta = new_meta(run_id, argv, status="complete")
    meta.update({
        "started": first.meta.get("started"),
        "finished": first.meta.get("finished"),
        "source": ", ".join(tools),
        "source_files": [str(f) for f in files],
        "backend": {"name": backend},
        "versions": versions,
        "nranks": int(samples["nranks"].max()),
        "nnodes": len(set(hosts)) or None,
        "hosts": hosts,
        "timer": {"name": f"{first.tool}'s own timer"},
        "method": merged_method(imports),
        "settings": first.meta.get("settings", {}),
        "env": first.meta.get("env", {}),
        "ops": {op: op_description(op) for op in ops},
        "import": {"tool_meta": [i.meta for i in imports],
                   "files": [{"file": str(f), "format": i.tool, "tables": i.tables,
                              "skipped": i.skipped_lines(), "malformed_rows": i.malformed,
                              "malformed_examples": i.malformed_examples, "notes": i.notes}
                             for f, i in zip(files, imports)],
                   "ranks": "rank -1 rows are the tool's own summary over ranks"},
    })
    return meta


def merged_method(imports: list) -> dict:
    """The method entries of every tool imported, joined when they differ."""
    method: dict = {}
    for imp in imports:
        for key, text in imp.method.items():
            if text not in method.get(key, []):
                method.setdefault(key, []).append(text)
    return {key: " | ".join(texts) for key, texts in method.items()}


# ---------------------------------------------------------------- command
# the help text (constants, not the docstring: python -OO strips docstrings)
DESCRIPTION = """`commbench import`: turn other tools' results into a commbench run directory."""
EPILOG = """Formats (auto-detected from the content unless --format names one):
  nccl-tests       the text table of nccl-tests (all_reduce_perf, ...), every layout from the
                   2.0 era on: out-of-place time
  nccl-tests-json  the JSON file nccl-tests writes with -J (format versions 2 and 3)
  osu              OSU Micro-Benchmarks 5.x-7.x text (osu_latency, osu_bw, osu_bibw,
                   osu_mbw_mr, blocking collectives, the XCCL builds)
  imb              Intel MPI Benchmarks text (IMB-MPI1: PingPong, collectives, Uniband, Biband)

The tables may sit inside a longer log: prompts and launcher lines, module loads, warnings,
NCCL INFO lines, MPI output tags ([1,0]<stdout>:), timestamps, indentation and markdown fences
around them are passed over. Tables are read by their header's column names and named by
their own titles; --op names only a table that has no title (a pasted nccl-tests table, OSU
XCCL output). Rank counts come from the file wherever it states them (nccl-tests' Rank lines,
IMB's #processes, OSU: 2 for point to point, 2 x pairs for osu_mbw_mr, the launcher line
before a collective's table: mpirun/mpiexec -n/-np, srun -n/--ntasks, #SBATCH); --nranks gives
it where the file does not. Each file gets one line saying what was imported and what was
skipped and why (tests with no commbench op, tables the file gives no rank count for, rows
that cannot be read).

Each table row becomes one sample of its case (rank -1: the tool's own summary over ranks;
round 0). The same case met again (a second file, or several runs pasted into one file)
becomes the next round, so `commbench compare` can use round medians on imported results too;
results of another library or buffer placement in the same file get their own backend instead
(OSU on GPU buffers: mpi-DD; two IMB versions: mpi-imb<version>). Sizes are converted to
commbench's S as bench.ops defines it (all-gather and all-to-all: the whole buffer, per-rank
size x ranks; bibw: both directions; multipair: all pairs), times to seconds per op (OSU
bandwidths: S / bandwidth, 1 MB = 1e6 B). What each tool's time means (mean over ranks, half
the round trip, ...) is recorded in meta.json -> method. Text files are read as a stream, up
to 1 GiB; JSON files up to 64 MiB; at most 200000 result rows per import.
"""


def add_arguments(parser) -> None:
    import argparse

    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("files", nargs="+", metavar="FILE", help="output file(s) of the tool")
    parser.add_argument("--format", default=None, help="input format (default: detect)")
    parser.add_argument("--out", "-o", default=None,
                        help="run directory to write (default results/<time>-<backend>-n<ranks>-<tool>)")
    parser.add_argument("--op", default=None,
                        help="commbench op of the tables that have no title (a pasted nccl-tests "
                             "table, OSU XCCL output); a titled table is named by its title")
    parser.add_argument("--nranks", type=int, default=None,
                        help="ranks of the tables whose rank count the file does not state "
                             "(OSU collectives with no launcher line)")
    parser.add_argument("--backend", default=None,
                        help="backend name to record (default: nccl for nccl-tests and OSU XCCL, "
                             "mpi otherwise); compare joins on it")
    parser.add_argument("--force", action="store_true",
                        help="start --out afresh when it already holds a run (its old results, "
                             "fits and report are removed), as `commbench run --force`")


def checked_op(name: str | None) -> str | None:
    if name is None:
        return None
    op = known_op(name)
    if op is None:
        raise UsageError(f"--op: no such op {name!r}; known: {', '.join([*OPS, *FOREIGN_OPS])}")
    return op.name


def main(args) -> int:
    from analysis.run_frames import write_run_dir_from_frames

    if args.format is not None and args.format not in FORMATS:
        raise UsageError(f"no such format {args.format!r}; known: {', '.join(FORMATS)}")
    if args.nranks is not None and args.nranks < 1:
        raise UsageError("--nranks must be at least 1")
    if args.backend is not None and not re.fullmatch(r"[\w.+-]+", args.backend):
        raise UsageError(f"--backend {args.backend!r}: use letters, digits and . _ + -")
    op = checked_op(args.op)
    imports, said, total = [], [], 0
    for name in args.files:
        try:
            imp = parse_file(Path(name), args.format, op, args.nranks)
        except UsageError as exc:
            raise UsageError(f"{name}: {exc}") from None
        total += len(imp.rows)
        if total > records.MAX_ROWS:
            raise records.too_many_rows()
        imports.append(imp)
        said.append(f"{name}: {imp.report()}")
    samples, summary = to_frames(imports, args.backend)
    backends = sorted(set(samples["backend"]))
    backend = ",".join(backends)
    nranks = int(samples["nranks"].max())
    out = Path(args.out) if args.out else Path("results") / f"{new_run_id(backend, nranks)}-{imports[0].tool}"
    meta = build_meta(imports, args.files, sys.argv, backend, samples, run_id=out.name)
    # as `commbench run`: a directory holding a run is refused unless --force, which starts it
    # afresh; one in use by a run in progress is refused even then (its lock)
    with claim_out_dir(out, args.force):
        write_run_dir_from_frames(out, meta, samples, summary)
    for line in said:
        print(line)
    print(f"imported {len(samples)} rows ({', '.join(sorted(summary['op'].unique()))}) into {out}")
    return 0
