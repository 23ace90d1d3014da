"""Intel MPI Benchmarks text (IMB-MPI1: PingPong, Sendrecv, the collectives, Uniband and
Biband; IMB 3.x/4.x 'Intel (R) MPI Benchmarks' to 2021). The file header states the version
and the datatypes (MPI_Datatype for data movement, MPI_Datatype for reductions); each
'# Benchmarking NAME' starts a block (one per benchmark and process count) with its
'# #processes = N' and a column header, read by its names: #bytes, #repetitions, t[usec]
(PingPong: half the round trip) or t_min/t_max/t_avg[usec], Mbytes/sec, Msg/sec. The sample is
t_avg (t[usec] for PingPong); #bytes is turned into S by bench.ops (per rank for the
gather-like collectives).

Uniband (multipair) and Biband (bibw, on 2 processes only: multi-pair bidirectional bandwidth
has no commbench op) print no time: the time of one op is messages per op (bench.ops) /
Msg/sec, the rate IMB derives from its time. Where Mbytes/sec has more digits, it is used
instead, in the unit the block's own rows show (1e6 B from IMB 2018 on, 2^20 B before), never
an assumed one. Benchmarks with no commbench op (PingPing, Exchange, the v-variants, -multi
groups, ...) are skipped by name.

A file holding several IMB runs of different versions (or MPI versions), such as one built
against Open MPI and one against Intel MPI, imports each run as its own backend
(mpi-imb2019u9, mpi-imb2021.3, ...): two libraries are two backends, not two rounds."""
from __future__ import annotations

import math
import re

from analysis.importers.log_lines import as_lines
from analysis.importers.records import Imported, integer, make_row, number
from analysis.importers.table_shapes import TableShape
from analysis.importers.tool_names import (canon_dtype, element_count, msgs_per_op, ops_named_by,
                                           s_of_tool_size)
from bench.core.errors import UsageError

TOOL = "imb"
METHOD = {
    "synchronisation": "IMB: barrier before each measurement loop",
    "sample": "one per size: IMB t_avg (t[usec] for PingPong: half the round trip; Uniband/Biband: "
              "messages per op / Msg/sec)",
    "summary across ranks": "IMB t_avg: mean over ranks of each rank's mean",
    "stop rule": "IMB: repetitions adapted to size and time limit",
}
SHAPE = TableShape(
    facts=(
        ("version", r"^#\s*Intel\s*\(R\)\s*MPI Benchmarks\s+(.+?)\s*(?:,|$)"),
        ("mpi_version", r"^#\s*MPI Version\s*:\s*(\S+)"),
        ("reduce_dtype", r"^#\s*MPI_Datatype\s+for reductions\s*:\s*(\S+)"),
        ("dtype", r"^#\s*MPI_Datatype\s*:\s*(\S+)"),
        ("benchmark", r"^#\s*Benchmarking\s+(\S+)"),
        ("processes", r"^#\s*#processes\s*=\s*(\d+)"),
    ),
    opens=r"#\s*Benchmarking\s+\S",
    # the file header's facts, and the rank count, hold until stated again
    keep=frozenset({"version", "mpi_version", "reduce_dtype", "dtype", "processes"}),
    header=lambda line: line.split() if re.match(r"#(bytes|repetitions)\s", line) else None,
)
FAILED = {"out-of-mem": "IMB ran out of memory", "int-overflow": "IMB: int overflow",
          "time-out": "IMB: time limit reached"}


def looks_like(line: str) -> bool:
    return bool(re.search(r"Intel\s*\(R\)\s*MPI Benchmarks|^#\s*Benchmarking\s+\w", line))


def parse(source, op: str | None = None, nranks: int | None = None) -> Imported:
    imp = Imported(tool=TOOL, backend="mpi", method=dict(METHOD))
    names = ops_named_by(TOOL)
    runs = []  # (version, MPI version) of each imported table, in order
    first_row = []
    for block in SHAPE.read(as_lines(source)):
        version = block.fact("version")
        if version:
            imp.set_version("imb", version)
        name = block.fact("benchmark")
        if name is None:
            continue
        processes = block.fact("processes")
        where = f"Benchmarking {name}" + (f" on {processes} processes" if processes else "") \
            + f" (line {block.start})"
        if not block.rows:
            imp.skip(where, "no result rows")
            continue
        start = len(imp.rows)
        if _add_block(imp, block, name, where, names, op, nranks):
            runs.append((version or "", block.fact("mpi_version") or ""))
            first_row.append(start)
    if not imp.rows:
        raise UsageError("imb: no results imported" + imp.why_nothing())
    if len(set(runs)) > 1:  # several IMB runs (libraries) in one file: one backend each
        bounds = first_row[1:] + [len(imp.rows)]
        for (ver, mpi), lo, hi, table in zip(runs, first_row, bounds, imp.tables):
            variant = "imb" + _slug(ver or "?") + (f"-mpi{mpi}" if len({r[0] for r in runs}) == 1 else "")
            table["backend"] = f"mpi-{variant}"
            for row in imp.rows[lo:hi]:
                row.variant = variant
        imp.notes.append(f"{len(set(runs))} IMB runs of different versions: one backend each")
    return imp


def _slug(version: str) -> str:
    """'2019 Update 9' -> '2019u9'."""
    return re.sub(r"[^\w.]+", "", re.sub(r"(?i)\s*update\s*", "u", version)).lower()


def _add_block(imp: Imported, block, name, where, names, op, nranks) -> bool:
    if name.lower().startswith("multi-"):
        imp.skip(where, "several process groups at once (-multi): no commbench op")
        return False
    processes = block.fact("processes")
    n, source = (int(processes), "#processes") if processes else (nranks, "--nranks")
    if n is None:
        imp.skip(where, "no '# #processes' line; give --nranks")
        return False
    imp.nranks_used |= not processes
    block_op = names.get(name.lower())
    if block_op is None:
        imp.skip(where, "no commbench op for this IMB benchmark")
        return False
    if block_op == "bibw" and n != 2:
        imp.skip(where, "Biband on more than 2 processes is multi-pair bidirectional bandwidth: "
                        "no commbench op (bibw is 2 ranks)")
        return False
    if block_op == "multipair" and n % 2:
        imp.skip(where, f"Uniband on an odd number of processes ({n})")
        return False
    cols = block.columns
    col = {c.lower(): i for i, c in enumerate(cols)}
    size_col, reps_col = col.get("#bytes"), col.get("#repetitions")
    time_col = col.get("t_avg[usec]", col.get("t[usec]"))
    mb_col, rate_col, defects_col = col.get("mbytes/sec"), col.get("msg/sec"), col.get("defects")
    if time_col is None and rate_col is None:
        imp.skip(where, "no t_avg[usec], t[usec] or Msg/sec column")
        return False
    unit = _mb_unit(block.rows, cols, size_col, mb_col, rate_col) if time_col is None else None
    dtype = (canon_dtype(block.fact("reduce_dtype", default="float32")) if "reduce" in block_op
             else canon_dtype(block.fact("dtype", default="uint8")))
    imported = defects = 0
    for line, words in block.rows:
        text = " ".join(words)
        if len(words) != len(cols):
            failed = next((why for key, why in FAILED.items() if key in text), None)
            imp.bad_row(line, text, failed or f"{len(words)} fields, the header names {len(cols)}")
            continue
        size_tool = integer(words[size_col]) if size_col is not None else 0
        if size_tool is None:
            imp.bad_row(line, text, "#bytes is not a whole number")
            continue
        if time_col is not None:
            time_s = number(words[time_col]) * 1e-6
        else:
            time_s = _time_from_rate(block_op, n, size_tool, words, mb_col, rate_col, unit)
        wrong = 0.0
        if defects_col is not None and number(words[defects_col]) != 0:
            wrong, defects = math.nan, defects + 1
        row = make_row(imp, line, text, op=block_op, nbytes=s_of_tool_size(block_op, size_tool, n),
                       nranks=n, time_s=time_s, dtype=dtype, count=element_count(size_tool, dtype),
                       calls=number(words[reps_col]) if reps_col is not None else float("nan"),
                       wrong=wrong)
        imported += row is not None
    if defects:
        imp.notes.append(f"{where}: {defects} rows with IMB defects > 0 (a deviation, not a count; "
                         "recorded as unknown wrong results)")
    if not imported:
        return False
    table = {"line": block.start, "benchmark": name, "op": block_op, "nranks": n,
             "nranks_from": source, "rows": imported, "columns": cols}
    if unit:
        table["mbytes_unit_B"] = unit
    imp.tables.append(table)
    return True


def _sig(text: str) -> int:
    """Significant digits printed in a number ('0.05' -> 1, '11972.60' -> 7)."""
    return len(re.sub(r"\D", "", text.split("e")[0].split("E")[0]).lstrip("0"))


def _mb_unit(rows, cols, size_col, mb_col, rate_col):
    """The byte count of IMB's 'Mbytes' (1e6 or 2^20, by version), as the block's own rows
    show it: Mbytes/sec x unit = Msg/sec x #bytes. None when no row shows it to 1%."""
    if mb_col is None or rate_col is None or size_col is None:
        return None
    best, best_digits = None, 3
    for _, words in rows:
        if len(words) != len(cols):
            continue
        size, mb, rate = integer(words[size_col]), number(words[mb_col]), number(words[rate_col])
        digits = min(_sig(words[mb_col]), _sig(words[rate_col]))
        if size and mb > 0 and rate > 0 and digits > best_digits:
            best, best_digits = rate * size / mb, digits
    for unit in (1e6, 2 ** 20):
        if best is not None and abs(best / unit - 1) < 0.01:
            return unit
    return None


def _time_from_rate(op, n, size_tool, words, mb_col, rate_col, unit) -> float:
    """Seconds per op from Msg/sec (messages per op / rate), or from Mbytes/sec in the block's
    unit where that prints more digits."""
    per_op = msgs_per_op(op, n)
    rate = number(words[rate_col]) if rate_col is not None else math.nan
    if unit and mb_col is not None and size_tool > 0:
        mb = number(words[mb_col])
        if mb > 0 and (not rate > 0 or _sig(words[mb_col]) > _sig(words[rate_col])):
            return per_op * size_tool / (mb * unit)
    return per_op / rate if rate > 0 else (math.nan if rate != rate else 0.0)
