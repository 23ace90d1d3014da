"""`commbench import`: turn other tools' results into a commbench run directory.

    commbench import FILE [FILE...] [--format FORMAT] [--out DIR] [--op OP] [--nranks N]
                                    [--backend NAME] [--force]

Formats (auto-detected from the content unless --format names one):
  nccl-tests       the text table of nccl-tests (all_reduce_perf, ...): out-of-place time
  nccl-tests-json  the JSON file nccl-tests writes with -J (format version 2)
  osu              OSU Micro-Benchmarks text (osu_latency, osu_bw, osu_bibw, osu_mbw_mr,
                   blocking collectives; their output does not give the rank count: --nranks)
  imb              Intel MPI Benchmarks text (IMB-MPI1: PingPong, Allreduce, ...)

Each table row becomes one sample of its case (rank -1: the tool's own summary over ranks;
round 0). The same case met again (a second file, or several runs pasted into one file)
becomes the next round, so `commbench compare` can use round medians on imported results too.
Sizes are converted to commbench's S as bench.ops defines it (all-gather and all-to-all: the
whole buffer, per-rank size x ranks; bibw: both directions; multipair: all pairs), times to
seconds per op (OSU bandwidths: S / bandwidth, 1 MB = 1e6 B). What each tool's time means
(mean over ranks, half the round trip, ...) is recorded in meta.json -> method.
"""
from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import UsageError

# Ops commbench itself runs describe themselves (bench.ops); these are the extra ops the
# other tools have, in the same nccl-tests convention.
EXTRA_OPS = {
    "reduce": {"s_means": "bytes of the array", "bus_factor": "1", "ops_per_call": 1},
    "sendrecv": {"s_means": "bytes of one message", "bus_factor": "1", "ops_per_call": 1},
    "gather": {"s_means": "bytes of the whole output (per-rank block x n)", "bus_factor": "(n-1)/n",
               "ops_per_call": 1},
    "scatter": {"s_means": "bytes of the whole input (per-rank block x n)", "bus_factor": "(n-1)/n",
                "ops_per_call": 1},
}
EXTRA_BUS_FACTORS = {"reduce": lambda n: 1.0, "sendrecv": lambda n: 1.0,
                     "gather": lambda n: (n - 1) / n, "scatter": lambda n: (n - 1) / n}


def op_description(op: str) -> dict:
    """meta.json -> ops entry: what S means, the bus factor formula, ops per call."""
    from bench.ops import OPS

    if op in OPS:
        desc = OPS[op].describe()
    else:
        desc = dict(EXTRA_OPS.get(op, {"s_means": "as the tool defines it", "bus_factor": "-"}))
    desc["ops_per_call"] = "n/a (imported: the tool's time per op)"
    return desc


def bus_factor(op: str, n: int) -> float:
    from bench.ops import OPS

    if op in OPS:
        return OPS[op].bus_factor(n) or float("nan")  # barrier: 0, no bandwidth
    return EXTRA_BUS_FACTORS[op](n) if op in EXTRA_BUS_FACTORS else float("nan")


def msgs_per_op(op: str, n: int) -> float:
    from bench.ops import OPS

    return OPS[op].msgs_per_op(n) if op in OPS else 1.0


# ops whose tool size is per rank while commbench's S is the whole buffer
PER_RANK_SIZE_OPS = {"allgather", "alltoall", "gather", "scatter"}
# ops whose tools only ever run on two ranks
TWO_RANK_OPS = {"pingpong", "bw", "bibw", "sendrecv"}
DTYPES = {
    "float": "float32", "double": "float64", "half": "float16", "bfloat16": "bfloat16",
    "int": "int32", "int32": "int32", "uint32": "uint32", "int64": "int64", "uint64": "uint64",
    "int8": "int8", "uint8": "uint8", "char": "int8", "byte": "uint8", "mpi_char": "int8",
    "mpi_byte": "uint8", "mpi_int": "int32", "mpi_float": "float32", "mpi_double": "float64",
    "fp8_e4m3": "float8_e4m3", "fp8_e5m2": "float8_e5m2",
}
ITEMSIZE = {"float64": 8, "int64": 8, "uint64": 8, "float32": 4, "int32": 4, "uint32": 4,
            "float16": 2, "bfloat16": 2, "int8": 1, "uint8": 1}


@dataclass
class Row:
    """One table row: the tool's time for one op and size, already in commbench units."""
    op: str
    nbytes: int         # commbench S
    nranks: int
    time_s: float       # seconds per op
    dtype: str = "uint8"
    count: float = float("nan")
    calls: float = float("nan")  # iterations behind the tool's average, when printed
    wrong: int = 0


@dataclass
class Imported:
    tool: str
    backend: str
    rows: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)   # tool-specific metadata for meta.json
    method: dict = field(default_factory=dict)


def _canon_dtype(name: str) -> str:
    key = name.strip().rstrip(".").lower()
    return DTYPES.get(key, key or "uint8")


def _count(nbytes_tool: int, dtype: str) -> float:
    size = ITEMSIZE.get(dtype)
    return float(nbytes_tool // size) if size else float("nan")


def _to_S(op: str, size_tool: int, nranks: int) -> int:
    """commbench's S from the size a tool prints (one message, or one rank's block)."""
    if op in PER_RANK_SIZE_OPS:
        return size_tool * nranks
    if op == "bibw":
        return 2 * size_tool  # both directions
    if op == "multipair":
        return nranks // 2 * size_tool  # all pairs
    return size_tool


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


# ---------------------------------------------------------------- nccl-tests
NCCL_OPS = {
    "all_reduce": "allreduce", "all_gather": "allgather", "reduce_scatter": "reduce_scatter",
    "broadcast": "broadcast", "reduce": "reduce", "alltoall": "alltoall",
    "sendrecv": "sendrecv", "gather": "gather", "scatter": "scatter", "hypercube": "hypercube",
}
NCCL_METHOD = {
    "synchronisation": "nccl-tests: CUDA stream sync around a loop of iterations",
    "sample": "one per size: nccl-tests' printed average time per op (out of place)",
    "summary across ranks": "as nccl-tests printed it (mean over ranks unless run with -a)",
    "stop rule": "fixed iteration count (nccl-tests -n)",
}


def nccl_op_name(program: str) -> str:
    """'./build/all_reduce_perf' or 'all_reduce_perf_mpi' -> 'allreduce'."""
    stem = Path(program.strip()).name
    stem = re.sub(r"_perf.*$", "", stem)
    return NCCL_OPS.get(stem, stem)


def parse_nccl_text(text: str, op: str | None = None, nranks: int | None = None) -> Imported:
    """The table(s) of nccl-tests; several runs pasted into one file are several blocks."""
    imp = Imported(tool="nccl-tests", backend="nccl", method=dict(NCCL_METHOD))
    for block in _nccl_blocks(text):
        _parse_nccl_block(block, imp, op, nranks)
    if not imp.rows:
        raise UsageError("nccl-tests text: no result rows found")
    return imp


def _nccl_blocks(text: str) -> list:
    """Lines split where a new run's header starts after a table."""
    header = re.compile(r"#\s*(nccl-tests version|Collective test starting|nThread)")
    blocks, current, seen_rows = [], [], False
    for line in text.splitlines():
        s = line.strip()
        if header.match(s) and seen_rows:
            blocks.append(current)
            current, seen_rows = [], False
        seen_rows = seen_rows or bool(re.match(r"\d+\s", s))
        current.append(s)
    return blocks + [current]


def _parse_nccl_block(lines, imp: Imported, op, nranks) -> None:
    program, hosts, iters, table_rows = None, {}, float("nan"), []
    for s in lines:
        m = re.match(r"#\s*Collective test starting:\s*(\S+)", s)
        if m:
            program = m.group(1)
            continue
        m = re.match(r"#\s*nccl-tests version\s+(\S+)(.*)", s)
        if m:
            imp.meta.setdefault("versions", {})["nccl-tests"] = m.group(1)
            lib = re.search(r"nccl-library=(\d+)", m.group(2))
            if lib:
                imp.meta["versions"]["nccl"] = lib.group(1)
            continue
        m = re.match(r"#\s*Rank\s+(\d+)\s+Group\s+\d+\s+Pid\s+\d+\s+on\s+(\S+)", s)
        if m:
            hosts[int(m.group(1))] = m.group(2)
            continue
        m = re.search(r"\biters:\s*(\d+)", s)
        if s.startswith("#") and m:
            iters = float(m.group(1))
            imp.meta["settings"] = {"header": s.lstrip("# ")}
            continue
        if s and not s.startswith("#") and re.match(r"\d+\s", s):
            table_rows.append(s.split())
    if not table_rows:
        return
    block_op = op or (nccl_op_name(program) if program else None)
    if block_op is None:
        raise UsageError("nccl-tests text: no '# Collective test starting' line; name the op with --op")
    n = nranks or (max(hosts) + 1 if hosts else None)
    if n is None:
        raise UsageError("nccl-tests text: no '#  Rank' lines; give the rank count with --nranks")
    for cols in table_rows:
        # size count type redop root | time algbw busbw #wrong | (in-place) ...
        if len(cols) < 9:
            raise UsageError(f"nccl-tests text: short result row: {' '.join(cols)!r}")
        wrong = _number(cols[8])
        imp.rows.append(Row(op=block_op, nbytes=int(cols[0]), nranks=n,
                            time_s=_number(cols[5]) * 1e-6, dtype=_canon_dtype(cols[2]),
                            count=float(cols[1]), calls=iters,
                            wrong=int(wrong) if wrong == wrong else 0))
    imp.meta.setdefault("programs", []).append(program)
    if hosts:
        imp.meta["hosts"] = [hosts[r] for r in sorted(hosts)]


def parse_nccl_json(text: str, op: str | None = None, nranks: int | None = None) -> Imported:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"nccl-tests JSON: not JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise UsageError("nccl-tests JSON: no 'results' list")
    imp = Imported(tool="nccl-tests-json", backend="nccl", method=dict(NCCL_METHOD))
    args = doc.get("args") or []
    config = doc.get("config") or {}
    devices = config.get("devices") or doc.get("devices") or []
    op = op or (nccl_op_name(args[0]) if args else None)
    if op is None:
        raise UsageError("nccl-tests JSON: no program in 'args'; name the op with --op")
    n = nranks or (len(devices) or None)
    if n is None:
        raise UsageError("nccl-tests JSON: no 'devices' list; give the rank count with --nranks")
    for rec in doc["results"]:
        oop = rec.get("out_of_place") or {}
        time_us = oop.get("time", oop.get("cpu_time"))
        if time_us is None:
            continue  # trace replay rows carry in-place results only
        wrong = oop.get("nwrong")
        imp.rows.append(Row(op=op, nbytes=int(rec["size"]), nranks=n,
                            time_s=_number(str(time_us)) * 1e-6,
                            dtype=_canon_dtype(str(rec.get("type", ""))),
                            count=float(rec.get("count", float("nan"))),
                            calls=float(config.get("iterations", float("nan"))),
                            wrong=int(wrong) if isinstance(wrong, (int, float)) else 0))
    if not imp.rows:
        raise UsageError("nccl-tests JSON: no out-of-place results")
    imp.meta["program"] = args[0] if args else None
    imp.meta["argv_tool"] = args
    imp.meta["hosts"] = [d.get("hostname") for d in devices]
    imp.meta["started"] = doc.get("start_time")
    imp.meta["finished"] = doc.get("end_time")
    imp.meta["versions"] = {"nccl": str(doc.get("nccl_version", ""))}
    imp.meta["settings"] = {k: v for k, v in config.items() if k != "devices"}
    # only the variables that steer communication libraries, as commbench run records them
    env = [e for e in doc.get("env") or [] if re.match(r"(NCCL|UCX|OMPI|CUDA)_", str(e))]
    imp.meta["env"] = dict(e.split("=", 1) for e in env if "=" in e)
    return imp


# ---------------------------------------------------------------- OSU
# (pattern on the lower-cased title, commbench op); first match wins
OSU_TESTS = [
    (r"non-blocking|nonblocking", None),
    (r"bi-directional bandwidth", "bibw"),
    (r"multiple bandwidth", "multipair"),
    (r"bandwidth", "bw"),
    (r"allreduce", "allreduce"),
    (r"reduce[_ -]scatter", "reduce_scatter"),
    (r"allgather", "allgather"),
    (r"all-to-all|alltoall", "alltoall"),
    (r"broadcast|bcast", "broadcast"),
    (r"barrier", "barrier"),
    (r"\breduce\b", "reduce"),
    (r"^osu mpi(-\w+)? latency test", "pingpong"),
]
OSU_METHOD = {
    "synchronisation": "OSU: ping-pong / windowed loops; collectives with a barrier between calls",
    "sample": "one per size: the OSU figure (average latency, or size / bandwidth)",
    "summary across ranks": "OSU: average over ranks of each rank's mean (collectives)",
    "stop rule": "fixed iteration count (OSU -i / -x)",
}


def _osu_op(title: str) -> str:
    low = re.sub(r"^#\s*", "", title).strip().lower()
    for pattern, op in OSU_TESTS:
        if re.search(pattern, low):
            if op is None:
                raise UsageError(f"osu: unsupported test {title.strip('# ')!r}")
            return op
    raise UsageError(f"osu: unknown test {title.strip('# ')!r}")


def parse_osu(text: str, op: str | None = None, nranks: int | None = None) -> Imported:
    imp = Imported(tool="osu", backend="mpi", method=dict(OSU_METHOD))
    block_op, block_n, dtype, columns = None, None, "int8", []
    for line in text.splitlines():
        s = line.strip()
        if not s:
            continue
        if s.startswith("# OSU"):
            block_op = op or _osu_op(s)
            version = re.search(r"v(\d[\w.]*)", s)
            if version:
                imp.meta.setdefault("versions", {})["osu"] = version.group(1)
            imp.meta.setdefault("titles", []).append(s.lstrip("# "))
            block_n, dtype, columns = None, "int8", []
            continue
        m = re.search(r"\[\s*pairs:\s*(\d+)", s)  # mbw_mr: "# [ pairs: 4 ] [ window size: 64 ]"
        if m:
            block_n = 2 * int(m.group(1))
            continue
        m = re.match(r"#\s*Datatype:\s*(\S+)", s)
        if m:
            dtype = _canon_dtype(m.group(1))
            continue
        if s.startswith("#"):
            # the column header: names separated by two or more spaces
            names = [c.strip() for c in re.split(r"\s{2,}", s.lstrip("# ")) if c.strip()]
            if names and re.search(r"latency|mb/s|bandwidth", " ".join(names).lower()):
                columns = names
            continue
        if block_op is None:
            if op is None:
                raise UsageError("osu: data before any '# OSU ... Test' title; name the op with --op")
            block_op = op
        fields = s.split()
        row = _osu_row(block_op, fields, columns, dtype, nranks or block_n)
        if row is not None:
            imp.rows.append(row)
    if not imp.rows:
        raise UsageError("osu: no result rows found")
    return imp


def _osu_row(op, fields, columns, dtype, nranks):
    """A Row from one data line, or None for chatter (warnings, notes)."""
    has_size = bool(columns) and columns[0].lower().startswith("size")
    if has_size:
        if len(fields) < 2 or not fields[0].isdigit():
            return None
        size_tool, value, metric = int(fields[0]), _number(fields[1]), columns[1].lower()
    else:  # barrier: one value, no size column
        value = _number(fields[0])
        if value != value:
            return None
        size_tool, metric = 0, "latency"
    n = nranks or (2 if op in TWO_RANK_OPS else None)
    if n is None:
        raise UsageError(f"osu: the output does not say how many ranks ran {op}; give --nranks")
    nbytes = _to_S(op, size_tool, n)
    if "mb/s" in metric or "bandwidth" in metric:
        # OSU MB/s are 1e6 bytes per second and count what S counts (bibw: both directions,
        # mbw_mr: all pairs), so the time of one op is S / bandwidth
        bps = value * 1e6
        time_s = nbytes / bps if bps > 0 else float("nan")
    else:
        time_s = value * 1e-6
    return Row(op=op, nbytes=nbytes, nranks=n, time_s=time_s, dtype=dtype,
               count=_count(size_tool, dtype))


# ---------------------------------------------------------------- IMB
IMB_OPS = {
    "pingpong": "pingpong", "allreduce": "allreduce", "allgather": "allgather",
    "reduce_scatter": "reduce_scatter", "alltoall": "alltoall", "bcast": "broadcast",
    "barrier": "barrier", "reduce": "reduce", "sendrecv": "sendrecv",
}
IMB_METHOD = {
    "synchronisation": "IMB: barrier before each measurement loop",
    "sample": "one per size: IMB t_avg (or t[usec] for PingPong: half the round trip)",
    "summary across ranks": "IMB t_avg: mean over ranks of each rank's mean",
    "stop rule": "IMB: repetitions adapted to size and time limit",
}


def parse_imb(text: str, op: str | None = None, nranks: int | None = None) -> Imported:
    imp = Imported(tool="imb", backend="mpi", method=dict(IMB_METHOD))
    block_op, block_n, columns = None, None, []
    dtype, reduce_dtype = "uint8", "float32"
    for line in text.splitlines():
        s = line.strip()
        if not s:
            continue
        m = re.match(r"#\s*Intel\(R\) MPI Benchmarks\s+(\S+)", s)
        if m:
            imp.meta.setdefault("versions", {})["imb"] = m.group(1).rstrip(",")
            continue
        m = re.match(r"#\s*MPI_Datatype(\s+for reductions)?\s*:\s*(\S+)", s)
        if m:
            if m.group(1):
                reduce_dtype = _canon_dtype(m.group(2))
            else:
                dtype = _canon_dtype(m.group(2))
            continue
        m = re.match(r"#\s*Benchmarking\s+(\S+)", s)
        if m:
            name = m.group(1).lower()
            block_op, columns = op or IMB_OPS.get(name, name), []
            continue
        m = re.match(r"#\s*#processes\s*=\s*(\d+)", s)
        if m:
            block_n = nranks or int(m.group(1))
            continue
        if s.startswith("#") and "[usec]" in s:
            columns = s.split()
            continue
        if s.startswith("#") or block_op is None or not columns:
            continue
        fields = s.split()
        if not re.match(r"^\d+$", fields[0]) or len(fields) != len(columns):
            continue
        imp.rows.append(_imb_row(block_op, dict(zip(columns, fields)), block_n or nranks,
                                 reduce_dtype if "reduce" in block_op else dtype))
    if not imp.rows:
        raise UsageError("imb: no '# Benchmarking' blocks with result rows found")
    return imp


def _imb_row(op, rec, n, dtype) -> Row:
    if n is None:
        raise UsageError(f"imb: no '# #processes' line for {op}; give --nranks")
    size_tool = int(rec.get("#bytes", 0))
    time_us = _number(rec.get("t_avg[usec]", rec.get("t[usec]", "nan")))
    return Row(op=op, nbytes=_to_S(op, size_tool, n), nranks=n, time_s=time_us * 1e-6,
               dtype=dtype, count=_count(size_tool, dtype),
               calls=_number(rec.get("#repetitions", "nan")))


# ---------------------------------------------------------------- registry
FORMATS = {
    "nccl-tests": parse_nccl_text,
    "nccl-tests-json": parse_nccl_json,
    "osu": parse_osu,
    "imb": parse_imb,
}


def detect_format(text: str) -> str:
    head = text[:20000]
    if head.lstrip().startswith("{") and '"results"' in head:
        return "nccl-tests-json"
    if re.search(r"^#\s*(nccl-tests version|Collective test starting)", head, re.M) or \
            re.search(r"^#\s+size\s+count\s+type\s+redop", head, re.M):
        return "nccl-tests"
    if re.search(r"^#\s*OSU\b", head, re.M):
        return "osu"
    if re.search(r"Intel\(R\) MPI Benchmarks|^#\s*Benchmarking\s+\w+", head, re.M):
        return "imb"
    raise UsageError("cannot tell the format; name it with --format (known: " + ", ".join(FORMATS) + ")")


def parse(text: str, fmt: str | None = None, op: str | None = None, nranks: int | None = None) -> Imported:
    fmt = fmt or detect_format(text)
    if fmt not in FORMATS:
        raise UsageError(f"no such format {fmt!r}; known: {', '.join(FORMATS)}")
    return FORMATS[fmt](text, op=op, nranks=nranks)


def to_frames(imports: list):
    """(samples, summary) DataFrames of parsed files; a case met again is the next round."""
    import pandas as pd

    from analysis.rundir import CASE, SAMPLE_COLUMNS, summarize_samples

    rows, seen = [], {}
    for imp in imports:
        for r in imp.rows:
            case = (imp.backend, r.op, r.dtype, r.nbytes, r.nranks, "all")
            rnd = seen.get(case, 0)
            seen[case] = rnd + 1
            rows.append(dict(zip(CASE, case), round=rnd, sample=0, rank=-1, calls=r.calls,
                             time_s=r.time_s, count=r.count, wrong=r.wrong))
    table = pd.DataFrame(rows)
    table = table[table["time_s"] > 0].reset_index(drop=True)  # nan / zero times say nothing
    if table.empty:
        raise UsageError("no usable (positive) times in the input")
    counts = table.groupby(["op", "dtype", "nbytes", "nranks"])["count"].first().to_dict()
    summary = summarize_samples(
        table[SAMPLE_COLUMNS],
        bus_factor=bus_factor, msgs_per_op=msgs_per_op,
        count=lambda op, dtype, nbytes, n: counts.get((op, dtype, nbytes, n), float("nan")),
    )
    wrong = table.groupby(CASE)["wrong"].sum()
    summary["wrong"] = [int(wrong.get(tuple(r[c] for c in CASE), 0)) for _, r in summary.iterrows()]
    return table[SAMPLE_COLUMNS], summary


def build_meta(imports: list, files: list, argv: list, backend: str, samples) -> dict:
    from bench import __version__

    first = imports[0]
    hosts = next((i.meta.get("hosts") for i in imports if i.meta.get("hosts")), [])
    ops = sorted(samples["op"].unique())
    versions = {}
    for imp in imports:
        versions.update(imp.meta.get("versions", {}))
    tools = sorted({i.tool for i in imports})
    return {
        "schema": 1,
        "commbench": __version__,
        "run_id": None,  # filled by the caller from the directory name
        "argv": list(argv),
        "status": "complete",
        "source": ", ".join(tools),
        "source_files": [str(f) for f in files],
        "started": first.meta.get("started"),
        "finished": first.meta.get("finished"),
        "backend": {"name": backend},
        "versions": versions,
        "nranks": int(samples["nranks"].max()),
        "nnodes": len(set(hosts)) or None,
        "hosts": hosts,
        "timer": {"name": f"{first.tool}'s own timer"},
        "method": _merged_method(imports),
        "settings": first.meta.get("settings", {}),
        "env": first.meta.get("env", {}),
        "ops": {op: op_description(op) for op in ops},
        "import": {"tool_meta": [i.meta for i in imports],
                   "ranks": "rank -1 rows are the tool's own summary over ranks"},
    }


def _merged_method(imports: list) -> dict:
    """The method entries of every tool imported, joined when they differ."""
    method = {}
    for imp in imports:
        for key, text in imp.method.items():
            if text not in method.get(key, []):
                method.setdefault(key, []).append(text)
    return {key: " | ".join(texts) for key, texts in method.items()}


# ---------------------------------------------------------------- command
def add_arguments(parser) -> None:
    import argparse

    parser.description = __doc__.split("\n\n")[0]
    parser.epilog = __doc__.split("\n\n", 2)[2]
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("files", nargs="+", metavar="FILE", help="output file(s) of the tool")
    parser.add_argument("--format", default=None, help="input format (default: detect)")
    parser.add_argument("--out", "-o", default=None,
                        help="run directory to write (default results/<time>-<backend>-n<ranks>-<tool>)")
    parser.add_argument("--op", default=None, help="commbench op name when the file does not say")
    parser.add_argument("--nranks", type=int, default=None,
                        help="ranks, when the file does not say (OSU collectives)")
    parser.add_argument("--backend", default=None,
                        help="backend name to record (default: nccl for nccl-tests, mpi otherwise); "
                             "compare joins on it")
    parser.add_argument("--force", action="store_true", help="overwrite an existing run directory")


def main(args) -> int:
    import sys

    from analysis.rundir import write_run_dir

    if args.format is not None and args.format not in FORMATS:
        raise UsageError(f"no such format {args.format!r}; known: {', '.join(FORMATS)}")
    if args.nranks is not None and args.nranks < 1:
        raise UsageError("--nranks must be at least 1")
    imports = []
    for name in args.files:
        try:
            text = Path(name).read_text(errors="replace")
        except OSError as exc:
            raise UsageError(f"{name}: {exc.strerror or exc}") from None
        try:
            imports.append(parse(text, args.format, args.op, args.nranks))
        except UsageError as exc:
            raise UsageError(f"{name}: {exc}") from None
    backend = args.backend or imports[0].backend
    for imp in imports:
        imp.backend = backend
    samples, summary = to_frames(imports)
    meta = build_meta(imports, args.files, sys.argv, backend, samples)
    out = Path(args.out) if args.out else Path("results") / (
        f"{_dt.datetime.now():%Y%m%d-%H%M%S}-{backend}-n{meta['nranks']}-{imports[0].tool}")
    if (out / "meta.json").exists() and not args.force:
        raise UsageError(f"{out} already holds a run; use --force to overwrite it")
    meta["run_id"] = out.name
    write_run_dir(out, meta, samples, summary)
    print(f"imported {len(samples)} rows ({', '.join(sorted(summary['op'].unique()))}) into {out}")
    return 0
