"""OSU Micro-Benchmarks text (osu_latency, osu_bw, osu_bibw, osu_mbw_mr, the blocking
collectives; OSU 5.x to 7.x, MPI and XCCL builds), as printed or inside a longer log.

Each test is a block. Its title ('# OSU MPI Allreduce Latency Test v7.4') names the op:
bench.ops holds each op's OSU title pattern, the longest match wins, and whatever else the
title says must be neutral (the library, 'latency', 'test'), so one-sided (MPI_Get, MPI_Put,
...), non-blocking, persistent, multi-threaded and vector variants are skipped by name
instead of being read as the op their title contains. A table with no title (osu_xccl_bw
prints only '#Using NCCL' and its header) is named by --op. The columns are read by the
header's names ('Size', 'Avg Latency(us)' or 'Latency (us)', 'Bandwidth (MB/s)' or 'MB/s',
'Messages/s', 'Iterations', 'Validation'). The size is per rank for the gather-like
collectives and one message for point to point (bench.ops turns it into S); a latency is the
time in µs; a bandwidth in MB/s (1 MB = 1e6 B) counts what S counts, so the time of one op is
S / bandwidth (from Messages/s where the bandwidth prints as 0.00). Barrier prints no size.

Rank counts: point to point is 2 ranks, osu_mbw_mr 2 x its pairs; a collective's output does
not say, so it comes from the launcher line before the table (mpirun/mpiexec -n/-np,
srun -n/--ntasks, #SBATCH), else from --nranks. Backend: mpi, or the library of '#Using NCCL'
(the XCCL builds); buffers on a device ('# Send Buffer on DEVICE (D) and Receive Buffer on
DEVICE (D)', or an MPI-CUDA/ROCM title) make another backend, mpi-DD (mpi-gpu from the title
alone), so host and device results never merge as rounds of one case."""
from __future__ import annotations

import re

from analysis.importers.log_lines import as_lines
from analysis.importers.records import Imported, integer, make_row, number
from analysis.importers.table_shapes import TableShape, split_columns
from analysis.importers.tool_names import (canon_dtype, element_count, msgs_per_op, ops_named_by,
                                           s_of_tool_size)
from bench.core.errors import UsageError
from analysis.known_ops import known_op

TOOL = "osu"
METHOD = {
    "synchronisation": "OSU: ping-pong / windowed loops; collectives with a barrier between calls",
    "sample": "one per size: the OSU figure (average latency, or size / bandwidth)",
    "summary across ranks": "OSU: average over ranks of each rank's mean (collectives)",
    "stop rule": "fixed iteration count (OSU -i / -x)",
}
def _runs_on_two(op_name) -> bool:
    """OSU runs the pair ops (and sendrecv, named with --op) on two ranks only."""
    op = known_op(op_name) if op_name else None
    return bool(op and op.two_ranks)


# words a title may hold besides the op's own pattern
NEUTRAL = {"osu", "mpi", "test", "latency", "mpi-cuda", "mpi-rocm", "mpi-openacc", "mpi-sycl",
           "nccl", "rccl", "xccl", "hccl", "mccl"}
GPU_TITLE = re.compile(r"\bmpi-(cuda|rocm|openacc|sycl)\b", re.I)
COLUMNS = (r"Transmit Size|Size|Avg Latency\s*\(us\)|Min Latency\s*\(us\)|Max Latency\s*\(us\)"
           r"|Latency\s*\(us\)|Bandwidth\s*\(MB/s\)|MB/s|Messages/s|Iterations|Validation"
           r"|P\d+ Tail Lat\s*\(us\)|P\d+ Tail BW\s*\(MB/s\)")
UNMAPPED = "?"


def header(line: str):
    """The column names of an OSU header line; [UNMAPPED, text] for a line that looks like
    one but holds a name this reader does not know; None for other lines."""
    names = split_columns(line, COLUMNS)
    if names is not None:
        return [re.sub(r"\s+", "", n) for n in names]
    if re.match(r"#\s*(Size|Avg Latency)\b", line):
        return [UNMAPPED, line.lstrip("# ")]
    return None


SHAPE = TableShape(
    facts=(
        ("title", r"^#\s*OSU\s"),
        ("pairs", r"^#.*\[\s*pairs:\s*(\d+)"),  # mbw_mr: "# [ pairs: 4 ] [ window size: 64 ]"
        ("dtype", r"^#\s*Datatype:\s*(\S+)"),
        ("buffers", r"^#\s*Send Buffer on\b.*?\((\w+)\).*Receive Buffer on\b.*?\((\w+)\)"),
        ("ccl", r"^#\s*Using\s+([A-Za-z]*CCL)\b"),
    ),
    opens=r"#\s*OSU\s",
    header=header,
    launches=True,
)


def looks_like(line: str) -> bool:
    return bool(re.match(r"#\s*OSU\s|#\s*Size\s+(Avg\s+)?(Latency|Bandwidth|MB/s)", line))


def normal_title(title: str) -> str:
    """'# OSU MPI Allreduce Latency Test v7.4' -> 'osu mpi allreduce latency test'."""
    low = re.sub(r"^#\s*", "", title).strip().lower()
    low = re.sub(r"\s+v\d[\w.]*\s*$", "", low)
    return " ".join(low.split())


def title_op(title: str) -> tuple[str | None, str]:
    """(op, "") for a title commbench imports; (None, why) for one it does not."""
    low = normal_title(title)
    best, span = None, None
    for pattern, op in ops_named_by(TOOL).items():
        m = re.search(pattern, low)
        if m and (span is None or m.end() - m.start() > span[1] - span[0]):
            best, span = op, (m.start(), m.end())
    rest = (low[:span[0]] + " " + low[span[1]:]).split() if span else low.split()
    extra = [w for w in rest if w not in NEUTRAL]
    if re.search(r"\bmpi_\w+", low):
        return None, "one-sided (MPI RMA) test: no commbench op"
    if best is None:
        return None, "no commbench op for this test"
    if extra:
        return None, f"a '{' '.join(extra)}' variant of {best}: no commbench op"
    return best, ""


def parse(source, op: str | None = None, nranks: int | None = None) -> Imported:
    imp = Imported(tool=TOOL, backend="mpi", method=dict(METHOD))
    for block in SHAPE.read(as_lines(source)):
        title = block.facts["title"].string.lstrip("# ").strip() if "title" in block.facts else None
        if title:
            version = re.search(r"\sv(\d[\w.]*)\s*$", title)
            if version:
                imp.set_version("osu", version.group(1))
        if not block.rows:
            if title:
                imp.skip(f"'{title}' (line {block.start})",
                         "no column header I can read" if block.loose else "no result rows")
            elif block.loose:
                imp.skip(f"{block.loose} numeric lines from line {block.loose_line}",
                         "no OSU column header before them")
            continue
        _add_block(imp, block, title, op, nranks)
    if not imp.rows:
        raise UsageError("osu: no result rows imported" + imp.why_nothing())
    return imp


def _add_block(imp: Imported, block, title, op, nranks) -> None:
    where = f"'{title}' (line {block.start})" if title else f"table at line {block.header_line} (no title)"
    if title:
        block_op, why = title_op(title)
        if block_op is None:
            imp.skip(where, why)
            return
    elif op is not None:
        block_op, imp.op_used = op, True
    else:
        imp.skip(where, "name its op with --op")
        return
    cols = block.columns
    if cols[0] == UNMAPPED:
        imp.skip(where, f"header not understood ({cols[1]!r})")
        return
    col = {name.lower(): i for i, name in reversed(list(enumerate(cols)))}  # first of each name
    size_col = col.get("size")
    time_col = col.get("avglatency(us)", col.get("latency(us)"))
    bw_col = col.get("bandwidth(mb/s)", col.get("mb/s"))
    rate_col, valid_col, iter_col = col.get("messages/s"), col.get("validation"), col.get("iterations")
    if time_col is None and bw_col is None:
        imp.skip(where, "no latency or bandwidth column")
        return
    # rank count
    launch = block.fact("launch")
    pairs = block.fact("pairs")
    if _runs_on_two(block_op):
        n, source = 2, "point to point"
    elif block_op == "multipair" and pairs:
        n, source = 2 * int(pairs), f"{pairs} pairs"
    elif launch is not None and launch.count:
        n, source = launch.count, launch.how
    elif nranks is not None:
        n, source, imp.nranks_used = nranks, "--nranks", True
    else:
        imp.skip(where, f"the output does not say how many ranks ran {block_op}; give --nranks")
        return
    # backend and buffers
    ccl = block.fact("ccl")
    buffers = block.facts.get("buffers")
    placement = (buffers.group(1) + buffers.group(2)).upper() if buffers else ""
    backend, variant = (ccl.lower(), "") if ccl else ("", "")
    if not ccl:
        if placement and placement.strip("H"):
            variant = placement
        elif not placement and title and GPU_TITLE.search(title):
            variant = "gpu"
    dtype = canon_dtype(block.fact("dtype", default="int8"))
    imported = 0
    for line, words in block.rows:
        text = " ".join(words)
        if len(words) != len(cols):
            imp.bad_row(line, text, f"{len(words)} fields, the header names {len(cols)}")
            continue
        if size_col is not None:
            size_tool = integer(words[size_col])
            if size_tool is None:
                imp.bad_row(line, text, "size is not a whole number")
                continue
        else:
            size_tool = 0  # barrier
        nbytes = s_of_tool_size(block_op, size_tool, n)
        if time_col is not None:
            time_s = number(words[time_col]) * 1e-6
        else:
            time_s = _time_from_rate(block_op, n, nbytes, number(words[bw_col]),
                                     number(words[rate_col]) if rate_col is not None else float("nan"))
        wrong = 0.0
        if valid_col is not None:
            wrong = {"pass": 0.0, "fail": 1.0}.get(words[valid_col].lower(), float("nan"))
        row = make_row(imp, line, text, op=block_op, nbytes=nbytes, nranks=n, time_s=time_s,
                       dtype=dtype, count=element_count(size_tool, dtype),
                       calls=number(words[iter_col]) if iter_col is not None else float("nan"),
                       wrong=wrong, backend=backend, variant=variant)
        imported += row is not None
    if imported:
        table = {"line": block.start, "title": title, "op": block_op, "nranks": n,
                 "nranks_from": source, "rows": imported, "columns": cols}
        if backend or variant:
            table["backend"] = "-".join(x for x in (backend or "mpi", variant) if x)
        if placement:
            table["buffers"] = f"{placement[:len(placement) // 2]} {placement[len(placement) // 2:]}"
        if launch is not None and (_runs_on_two(block_op) or block_op == "multipair") and launch.count \
                and launch.count != n:
            imp.notes.append(f"{where}: {launch.how} says {launch.count} ranks; the test runs on {n}")
        imp.tables.append(table)


def _time_from_rate(op: str, n: int, nbytes: int, mb_per_s: float, msgs_per_s: float) -> float:
    """Seconds per op from OSU's bandwidth (MB/s, 1 MB = 1e6 B, counting what S counts), or
    from its message rate where the bandwidth prints as zero (messages per op from bench.ops)."""
    if mb_per_s > 0 and nbytes > 0:
        return nbytes / (mb_per_s * 1e6)
    if msgs_per_s > 0:
        return msgs_per_op(op, n) / msgs_per_s
    return float("nan") if mb_per_s != mb_per_s else 0.0
