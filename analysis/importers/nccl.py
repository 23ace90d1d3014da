"""nccl-tests (all_reduce_perf, ...): the text table, and the JSON file written with -J
(format versions 2 and 3).

Text, every layout since the 2.0 era: the table is read by its header's column names. The
2.0-era header has no `root` column (some ops no `redop` either) and prints `error` (the
largest deviation found) where later versions print `#wrong` (a count); newer ones may add
per-iteration columns (i_min, ...) and a timestamp. nccl-tests prints S itself (its size
column is commbench's S for every op); the out-of-place time in µs is the sample; the rank
count is the number of '#  Rank' lines. Several runs in one log are several blocks, each
starting at its header lines ('# nccl-tests version', '# Collective test starting',
'# nThread'). The op comes from '# Collective test starting', else from a command line naming
the program (`./build/all_reduce_perf -b 8 ...`), else --op.

JSON with per-iteration times (nccl-tests 2.19, `-I 1 -J FILE`): a result's
`out_of_place_per_iter` holds `times_us` (per iteration, the max over processes) and, with several
processes, `per_process_max_times_us` (per process, per iteration, its max over its GPUs). Each
iteration then becomes a sample: one row per process (as that process's first rank) or one row
of the max (rank -1), so `commbench triage` and the report's time series see which process was
last in each iteration and when spikes happened. The summary is then the median over iterations,
not nccl-tests' printed average.

Results checking, kept as nccl-tests reports it: a case's `wrong` is the out-of-place plus the
in-place #wrong of its row (both are checks of the library's result at that size), NaN where
nccl-tests did not check (-c 0: 'N/A', or -1). The 2.0-era `error` is a deviation, not a
count: 0 is a pass; a flagged row ('*') counts one wrong result (at least one: the count is
not printed); an unflagged non-zero deviation is a pass when the table's footer says
'Out of bounds values : 0', unknown (NaN) otherwise."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, cast

from analysis.importers.log_lines import as_lines
from analysis.importers.records import Imported, integer, make_row, number
from analysis.importers.table_shapes import TableShape
from analysis.importers.text_files import MAX_JSON_BYTES, open_text
from analysis.importers.tool_names import canon_dtype, op_named, ops_named_by
from bench.core.errors import UsageError

TEXT, JSON = "nccl-tests", "nccl-tests-json"  # format names (the source in meta.json)
METHOD = {
    "synchronisation": "nccl-tests: CUDA stream sync around a loop of iterations",
    "sample": "one per size: nccl-tests' printed average time per op (out of place)",
    "summary across ranks": "as nccl-tests printed it (mean over ranks unless run with -a)",
    "stop rule": "fixed iteration count (nccl-tests -n)",
    "wrong": "nccl-tests: out-of-place + in-place wrong elements of the row; empty when not checked",
}
SHAPE = TableShape(
    facts=(
        ("program", r"^#\s*Collective test starting:\s*(\S+)"),
        # a command line naming the program (the 2.0-era output does not name it)
        ("command", r"^(?!#).*?(?<![\w-])(\w+_perf(?:_mpi)?)(?=\s|$)", "_perf"),
        ("version", r"^#\s*nccl-tests version\s+(\S+)(.*)"),
        ("rank", r"^#\s*Rank\s+(\d+)\s+(?:Group\s+\d+\s+)?Pid\s+\d+\s+on\s+(\S+)"),
        ("settings", r"^#\s*nThread\s+(\d+)\s+nGpus\s+(\d+)"),
        ("oob", r"^#\s*Out of bounds values\s*:\s*(\d+)"),
        ("avgbw", r"^#\s*Avg bus bandwidth\s*:"),
    ),
    opens=r"#\s*(nccl-tests version|Collective test starting|nThread)",
    header=lambda line: line.lstrip("#").split() if re.match(r"#\s*size\s+count\s", line) else None,
    many=frozenset({"version", "rank"}),
    closing=frozenset({"oob", "avgbw"}),
    after_rows=True,
)
SUMS = {"sum", "none"}  # commbench's reductions are sums; 'none': ops that do not reduce
# which of nccl-tests' two times a parse takes as the sample: `commbench import` takes the
# out-of-place one; tests/benchmarks/vs_nccl_tests.py compares both
COLUMNS = ("out_of_place", "in_place")


def _method(column: str) -> dict:
    method = dict(METHOD)
    if column != COLUMNS[0]:
        method["sample"] = method["sample"].replace("(out of place)", "(in place)")
    return method


def _check_column(column: str) -> None:
    if column not in COLUMNS:
        raise ValueError(f"column {column!r}: one of {', '.join(COLUMNS)}")


def looks_like_text(line: str) -> bool:
    return bool(re.match(r"#\s*(nccl-tests version|Collective test starting|nThread \d+ nGpus)"
                         r"|#\s*size\s+count\s+type\b", line))


def looks_like_json(first: str) -> bool:
    return first.lstrip().startswith("{")


def op_name(program: str) -> str:
    """'./build/all_reduce_perf' or 'all_reduce_perf_mpi' -> 'allreduce'."""
    stem = re.sub(r"_perf.*$", "", Path(program.strip()).name)
    return ops_named_by("nccl-tests").get(stem, stem)


# ---------------------------------------------------------------- text
class Layout:
    """Where a header's columns are: size, count, type (redop, root when printed), and for
    out of place and in place each the time and the wrong-results column."""

    def __init__(self, names: list):
        low = [n.lower() for n in names]
        self.names = low
        self.width = len(low) + (1 if low[-1] == "timestamp" else 0)  # 'YYYY-mm-dd HH:MM:SS'
        self.problem = None
        for need in ("size", "count", "type"):
            if need not in low:
                self.problem = f"no {need!r} column"
        self.size, self.count, self.type = (low.index(c) if c in low else -1
                                            for c in ("size", "count", "type"))
        self.redop = low.index("redop") if "redop" in low else None
        self.root = low.index("root") if "root" in low else None
        times = [i for i, n in enumerate(low) if n in ("time", "cputime")]
        if any(low[i] == "cputime" for i in times):
            self.problem = "cputime columns (nccl-tests -C 1): the CPU launch time, not the op's time"
        elif not 1 <= len(times) <= 2:
            self.problem = f"{len(times)} time columns"
        self.groups = []  # (time column, wrong column or None, wrong column name)
        for i in times:
            wrong = next((j for j in range(i + 1, len(low)) if low[j] in ("#wrong", "error")
                          or low[j] in ("time", "cputime")), None)
            if wrong is not None and low[wrong] in ("time", "cputime"):
                wrong = None
            self.groups.append((i, wrong, low[wrong] if wrong is not None else ""))


def parse_text(source, op: str | None = None, nranks: int | None = None,
               column: str = "out_of_place") -> Imported:
    """The table(s) of nccl-tests; several runs in one file are several blocks. column: which
    time is the sample (COLUMNS; a table that prints one time has no in-place one)."""
    _check_column(column)
    imp = Imported(tool=TEXT, backend="nccl", method=_method(column))
    for block in SHAPE.read(as_lines(source)):
        for m in block.facts.get("version", []):
            imp.set_version("nccl-tests", m.group(1))
            lib = re.search(r"nccl-library=(\d+)", m.group(2))
            if lib:
                imp.set_version("nccl", lib.group(1))
        if block.loose and not block.columns:
            imp.skip(f"{block.loose} numeric lines from line {block.loose_line}",
                     "no '#  size  count  type' header before them")
        if block.rows:
            _add_block(imp, block, op, nranks, COLUMNS.index(column))
    if not imp.rows:
        raise UsageError("nccl-tests text: no result rows imported" + imp.why_nothing())
    return imp


def _add_block(imp: Imported, block, op, nranks, group: int = 0) -> None:
    """The rows of one table; group: which of its times (0 out of place, 1 in place)."""
    where = f"table at line {block.header_line}"
    layout = Layout(block.columns)
    if layout.problem:
        imp.skip(where, f"header not understood ({layout.problem})")
        return
    if group >= len(layout.groups):
        imp.skip(where, "no in-place time column")
        return
    program = block.fact("program") or block.fact("command")
    if program is not None:
        block_op = op_name(program)
        if op_named(block_op) is None:
            imp.skip(f"{where} ({program})", "no commbench op for this nccl-tests program")
            return
    elif op is not None:
        block_op, imp.op_used = op, True
    else:
        imp.skip(where, "no '# Collective test starting' line or command line naming the "
                        "program; name the op with --op")
        return
    hosts = {int(m.group(1)): m.group(2) for m in block.facts.get("rank", [])}
    if hosts:
        n, source = max(hosts) + 1, "Rank lines"
    elif nranks is not None:
        n, source, imp.nranks_used = nranks, "--nranks", True
    else:
        imp.skip(f"{where} ({block_op})", "no '#  Rank' lines; give the rank count with --nranks")
        return
    m = block.facts.get("settings")
    settings = m.string if m else ""
    iters = _settings_value(settings, "iters")
    agg = _settings_value(settings, "agg iters") or 1
    calls = float(iters * agg) if iters else float("nan")
    oob = block.fact("oob")
    other_redops: dict = {}
    imported = 0
    for line, words in block.rows:
        text = " ".join(words)
        if len(words) != layout.width:
            imp.bad_row(line, text, f"{len(words)} fields, the header names {layout.width}")
            continue
        size, count = integer(words[layout.size]), integer(words[layout.count])
        if size is None or count is None:
            imp.bad_row(line, text, "size or count is not a whole number")
            continue
        if layout.redop is not None and words[layout.redop] not in SUMS:
            other_redops[words[layout.redop]] = other_redops.get(words[layout.redop], 0) + 1
            continue
        t_col, _, _ = layout.groups[group]
        wrong = 0.0
        for _, w_col, kind in layout.groups:
            wrong += _wrong(words[w_col], kind, oob) if w_col is not None else math.nan
        row = make_row(imp, line, text, op=block_op, nbytes=size, nranks=n,
                       time_s=number(words[t_col]) * 1e-6, dtype=canon_dtype(words[layout.type]),
                       count=float(count), calls=calls, wrong=wrong)
        imported += row is not None
    if other_redops:
        imp.notes.append(f"{sum(other_redops.values())} rows of redop {'/'.join(sorted(other_redops))} "
                         f"not imported ({where}: commbench's reductions are sums)")
    if not imported:
        return
    table = {"line": block.header_line, "op": block_op, "nranks": n, "nranks_from": source,
             "rows": imported, "program": program, "columns": " ".join(block.columns)}
    if layout.root is not None:
        table["roots"] = sorted({w[layout.root] for _, w in block.rows if len(w) == layout.width})
    if settings:
        table["settings"] = settings.lstrip("# ")
    if oob is not None:
        table["out_of_bounds"] = int(oob)
        if int(oob):
            imp.notes.append(f"{where}: nccl-tests reported {oob} out-of-bounds results")
    imp.tables.append(table)
    imp.meta.setdefault("programs", []).append(program)
    if hosts:
        imp.meta["hosts"] = [hosts[r] for r in sorted(hosts)]


def _settings_value(settings: str, key: str) -> int | None:
    """A value of the '# nThread ...' line by its full name: 'iters: 20' is not
    'warmup iters: 5' nor 'agg iters: 1'."""
    words = settings.split()
    for i, w in enumerate(words[:-1]):
        if w == "iters:" and words[i + 1].isdigit():
            before = words[i - 1] if i and words[i - 1] in ("warmup", "agg") else ""
            if f"{before} iters".strip() == key:
                return int(words[i + 1])
    return None


def _wrong(text: str, kind: str, oob) -> float:
    """Wrong results of one #wrong / error field (module docstring)."""
    if kind == "#wrong":
        value = number(text)
        return value if value >= 0 else math.nan  # 'N/A' or -1: not checked
    flagged = text.endswith("*")
    value = number(text.rstrip("*"))
    if value != value:
        return math.nan
    if flagged:
        return 1.0
    if value == 0 or (oob is not None and int(oob) == 0):
        return 0.0
    return math.nan


# ---------------------------------------------------------------- JSON
def parse_json(source, op: str | None = None, nranks: int | None = None,
               column: str = "out_of_place") -> Imported:
    """The JSON file of nccl-tests -J (versions 2 and 3): a path (read whole, up to MAX_JSON_BYTES)
    or its text. A document of another shape is refused with what is wrong in it; a result
    record that cannot be read is counted as malformed and named. column: which time is the
    sample (COLUMNS)."""
    _check_column(column)
    if isinstance(source, Path):
        try:
            with open_text(source, MAX_JSON_BYTES) as f:
                text = f.read()
        except (OSError, EOFError) as exc:
            raise UsageError(f"cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    elif isinstance(source, str):
        text = source
    else:
        text = "".join(source)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"nccl-tests JSON: not JSON ({exc})") from None
    except RecursionError:
        raise UsageError("nccl-tests JSON: nested too deeply to be nccl-tests output") from None
    if not isinstance(doc, dict):
        raise UsageError(f"nccl-tests JSON: the document is {_json_kind(doc)}, expected an object")
    results = doc.get("results")
    if not isinstance(results, list):
        raise UsageError("nccl-tests JSON: no 'results' list")
    config = _member(doc, "config", dict, {})
    args = [str(a) for a in _member(doc, "args", list, [])]
    devices = _member(config, "devices", list, None)
    if devices is None:
        devices = _member(doc, "devices", list, [])
    if not all(isinstance(d, dict) for d in devices):
        raise UsageError("nccl-tests JSON: 'devices' holds something that is not an object")
    imp = Imported(tool=JSON, backend="nccl", method=_method(column))
    if args:
        op = op_name(args[0])
        if op_named(op) is None:
            raise UsageError(f"nccl-tests JSON: no commbench op for the program {args[0]!r}")
    elif op is not None:
        imp.op_used = True
    else:
        raise UsageError("nccl-tests JSON: no program in 'args'; name the op with --op")
    if devices:
        n, source_n = len(devices), "devices list"
    elif nranks is not None:
        n, source_n, imp.nranks_used = nranks, "--nranks", True
    else:
        raise UsageError("nccl-tests JSON: no 'devices' list; give the rank count with --nranks")
    iters = config.get("iterations")
    agg = config.get("aggregated_iterations", 1)
    calls = float(iters * agg) if _is_count(iters) and _is_count(agg) else float("nan")
    cpu_only, per_iter_records = 0, 0
    other_redops: dict = {}
    threads, gpus = config.get("nthreads", 1), config.get("ngpus", 1)
    per_process = int(threads * gpus) if _is_count(threads) and _is_count(gpus) and threads * gpus > 0 else 1
    for i, rec in enumerate(results):
        where = f"results[{i}]"
        if not isinstance(rec, dict):
            imp.bad_row(where, "", f"{_json_kind(rec)}, not an object")
            continue
        size = rec.get("size")
        count: Any = rec.get("count")
        if not _is_count(size):
            imp.bad_row(where, "", "no whole-number 'size'")
            continue
        redop = rec.get("redop", "none")
        if isinstance(redop, str) and redop.strip() not in SUMS:
            other_redops[redop.strip()] = other_redops.get(redop.strip(), 0) + 1
            continue
        timed = rec.get(column)
        if timed is None:
            continue  # trace replay rows carry in-place results only
        if not isinstance(timed, dict):
            imp.bad_row(where, "", f"'{column}' is not an object")
            continue
        if "time" not in timed and "cpu_time" in timed:
            cpu_only += 1
            continue
        wrong = 0.0
        for part in (rec.get("out_of_place"), rec.get("in_place")):
            if isinstance(part, dict):  # nwrong null: not checked
                nwrong: Any = part.get("nwrong")
                wrong += float(nwrong) if _is_number(nwrong) and nwrong >= 0 else math.nan
        row: dict = dict(op=op, nbytes=size, nranks=n, dtype=canon_dtype(str(rec.get("type", ""))),
                         count=float(count) if _is_number(count) else float("nan"), wrong=wrong)
        per_iter = _per_iteration(rec.get(f"{column}_per_iter"), n, per_process)
        if per_iter:
            per_iter_records += 1
            for rank, iteration, seconds in per_iter:
                make_row(imp, f"{where}.{column}_per_iter", "", time_s=seconds,
                         calls=float(agg) if _is_count(agg) else float("nan"), rank=rank,
                         sample=iteration, record=i, **row)
            continue
        make_row(imp, where, "",
                 time_s=(cast(float, timed.get("time")) * 1e-6 if _is_number(timed.get("time")) else None),
                 calls=calls, **row)
    if per_iter_records:
        imp.method["sample"] = ("one per iteration (nccl-tests -I 1: CUDA events around each "
                                "iteration / aggregated iterations), per process row (its max "
                                "over its GPUs, as rank = the process's first rank), or the max "
                                "over processes (rank -1) when the file has no process rows")
        imp.method["summary across ranks"] = "max over process rows per iteration"
    if other_redops:
        imp.notes.append(f"{sum(other_redops.values())} results of redop {'/'.join(sorted(other_redops))} "
                         "not imported (commbench's reductions are sums)")
    if cpu_only:
        imp.skip(f"{cpu_only} results with 'cpu_time' only", "nccl-tests -C 1: the CPU launch time, "
                 "not the op's time")
    if not imp.rows:
        raise UsageError(f"nccl-tests JSON: no {column.replace('_', '-')} results imported"
                         + imp.why_nothing())
    imp.tables.append({"op": op, "nranks": n, "nranks_from": source_n, "rows": len(imp.rows)})
    imp.meta["program"] = args[0] if args else None
    imp.meta["argv_tool"] = args
    imp.meta["hosts"] = [str(d.get("hostname")) for d in devices]
    imp.meta["started"] = _text(doc.get("start_time"))
    imp.meta["finished"] = _text(doc.get("end_time"))
    if doc.get("nccl_version") is not None:
        imp.set_version("nccl", str(doc.get("nccl_version")))
    imp.meta["settings"] = {k: v for k, v in config.items() if k != "devices" and _is_scalar(v)}
    # only the variables that steer communication libraries, as commbench run records them
    env = [e for e in _member(doc, "env", list, [])
           if isinstance(e, str) and re.match(r"(NCCL|UCX|OMPI|CUDA)_", e)]
    imp.meta["env"] = dict(e.split("=", 1) for e in env if "=" in e)
    return imp


def _per_iteration(per_iter, nranks: int, per_process: int) -> list:
    """(rank, iteration, seconds) of a result's per-iteration times (nccl-tests 2.19 -I 1):
    `per_process_max_times_us` (one list per process, each its max over its GPUs) as the
    process's first rank, else `times_us` (the max over processes) as rank -1. [] when there are
    none or they are not lists of finite positive numbers (the average row is imported then)."""
    if not isinstance(per_iter, dict):
        return []
    rows_of = per_iter.get("per_process_max_times_us")
    if isinstance(rows_of, list) and rows_of and all(isinstance(r, list) for r in rows_of) \
            and len(rows_of) * per_process <= nranks:
        ranked = [(p * per_process, times) for p, times in enumerate(rows_of)]
    elif isinstance(per_iter.get("times_us"), list) and per_iter["times_us"]:
        ranked = [(-1, per_iter["times_us"])]
    else:
        return []
    out = []
    for rank, times in ranked:
        for iteration, us in enumerate(times):
            if not (_is_number(us) and math.isfinite(us) and us > 0):
                return []
            out.append((rank, iteration, us * 1e-6))
    return out


def _member(doc: dict, key: str, kind: type, default):
    value = doc.get(key)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise UsageError(f"nccl-tests JSON: {key!r} is {_json_kind(value)}, expected "
                         f"{'an object' if kind is dict else 'a list'}")
    return value


def _json_kind(value) -> str:
    """What a JSON value is, in JSON's words."""
    if isinstance(value, bool):
        return "true/false"
    return {int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object",
            type(None): "null"}.get(type(value), type(value).__name__)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_count(value) -> bool:
    return _is_number(value) and value >= 0 and float(value).is_integer()


def _is_scalar(value) -> bool:
    return isinstance(value, (str, int, float, bool))


def _text(value):
    return value if isinstance(value, str) else None
