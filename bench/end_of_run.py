"""What `commbench run` prints at the end of a run: a table per op (bench.core.tables), then
what the run found about the nodes (the link map, analysis.links), the machine's contention,
ceilings and noise, and where the results are. Printed by the process that should: the local
launcher, from the files its ranks wrote, read and checked by analysis (analysis.checked_run);
or rank 0 under an outside launcher, from the files it wrote itself, read here without pandas
(a rank never loads it), the node section made in a process of its own."""
from __future__ import annotations

import csv
import math
import subprocess
from pathlib import Path

from bench.core import rundir
from bench.core.errors import RunDirError
from bench.core.runmeta import describe_ceilings, describe_contention, describe_noise
from bench.core.safe_text import one_line
from bench.core.tables import format_summary

# summary.csv columns that hold names (the others hold numbers, or numbers joined by ';')
_NAME_COLUMNS = {"backend", "op", "dtype", "split", "ceiling", "flags"}


def spans_nodes(meta: dict) -> bool:
    """Whether the run has something to say about nodes and links (several nodes, or the
    pairs op's link map)."""
    return (meta.get("nnodes") or 1) > 1 or "pairs" in (meta.get("ops") or {})


def print_end_of_run(meta: dict, rows: list, run_dir_text: str, node_section) -> None:
    """The lines, from a run's meta.json and summary rows (as summary.csv holds them);
    node_section() makes the node section when the run spans nodes, before anything is
    printed; run_dir_text names the run directory on one line."""
    nodes_text = node_section() if spans_nodes(meta) else ""
    print(format_summary(rows, meta))
    if nodes_text:
        print(nodes_text)
    if meta.get("contention"):
        print(f"# machine: {describe_contention(meta['contention'])}")
    if meta.get("ceilings"):
        print(f"# ceilings: {describe_ceilings(meta['ceilings'])}")
    if meta.get("noise"):
        print(f"# noise: {describe_noise(meta['noise'])}")
    print(f"# results: {run_dir_text}")


def own_summary_rows(run_dir) -> list[dict]:
    """summary.csv as this process wrote it (bench.core.run_writer.RunWriter), in rows typed as
    analysis reads them: a column of whole numbers as int, one of other numbers as float
    (an empty field NaN), names as text ('' when empty), any other column as text."""
    path = Path(run_dir) / rundir.SUMMARY
    if not path.exists():  # no case was measured
        return []
    with open(path, newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f, quoting=csv.QUOTE_NONE))
    if not table:
        return []
    typed = {}
    for name in table[0]:
        cells = [row[name] for row in table]
        typed[name] = cells if name in _NAME_COLUMNS else _numbers_or_text(cells)
    return [{name: typed[name][i] for name in typed} for i in range(len(table))]


def _numbers_or_text(cells: list) -> list:
    present = [c for c in cells if c != ""]
    try:
        if len(present) == len(cells):
            return [int(c) for c in cells]
    except ValueError:
        pass
    try:
        [float(c) for c in present]
    except ValueError:  # numbers joined by ';' (mode_medians_s): text, an empty field NaN
        return [c if c != "" else math.nan for c in cells]
    return [float(c) if c != "" else math.nan for c in cells]


def node_section_of(command: list) -> str:
    """The node section, printed by `command` (the command layer's, which names analysis) in
    a process of its own: the link map needs pandas, which a rank never loads."""
    done = subprocess.run(command, capture_output=True, text=True, errors="replace")
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        raise RunDirError(lines[-1].removeprefix("commbench: error: "))
    return done.stdout.rstrip("\n")


def print_own_run(run_dir, node_command: list) -> None:
    """Rank 0 under an outside launcher: the end-of-run lines of the run it wrote itself, with
    no pandas in this process; node_command + [RUN_DIR] prints the node section."""
    meta = rundir.load_meta(run_dir)
    rows = own_summary_rows(run_dir)
    print_end_of_run(meta, rows, one_line(run_dir),
                     lambda: node_section_of([*node_command, str(run_dir)]))
