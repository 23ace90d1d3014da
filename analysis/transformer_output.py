"""A transformer's communication schedule as text: workload.csv (written and read back), the
plain-text table, parameter counts for people."""
from __future__ import annotations

import csv
import io

from analysis.transformer import Model, parameter_counts
from analysis.transformer_schedule import Row
from bench.core.tables import text_table
from bench.core.units import human_bytes

COLUMNS = ("phase", "op", "group", "group_size", "nbytes", "count", "overlap", "what")


def csv_of(rows: list[Row]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([getattr(r, c) for c in COLUMNS])
    return buf.getvalue()


def read_csv(path) -> list[Row]:
    """workload.csv back as rows (for tests and tools)."""
    with open(path, newline="") as f:
        return [Row(r["phase"], r["op"], r["group"], int(r["group_size"]), int(r["nbytes"]),
                    int(r["count"]), r["overlap"] == "True", r["what"]) for r in csv.DictReader(f)]


def count_text(n: float) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f}"


def aligned(head, body, right) -> str:
    """A plain-text table (bench.core.tables.text_table) as one string."""
    return "\n".join(text_table(head, body, right))


def format_table(rows: list[Row]) -> str:
    head = ("phase", "op", "group", "size", "S", "count", "overlap", "bytes/step")
    body = [r.cells() + [human_bytes(r.bytes_per_step)] for r in rows]
    return aligned(head, body, {3, 4, 5, 7})


def describe_params(model: Model) -> str:
    c = parameter_counts(model)
    names = {"attention": "attention", "mlp": "MLP", "experts": "experts", "router": "router",
             "norms": "norms", "embedding": "embedding", "output": "output layer"}
    parts = ", ".join(f"{label} {count_text(c[k])}" for k, label in names.items() if c[k])
    text = f"{count_text(c['total'])} parameters ({parts})"
    if model.experts:
        text += f", {count_text(c['active'])} active per token"
    if model.published_params:
        text += f"; published {count_text(model.published_params)}"
    return text
