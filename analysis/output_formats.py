"""The output formats the verdict commands share (`commbench check`, `commbench compare`):
their names, Markdown for CI comments (names taken from runs escaped), JSON without NaN, and
the closing line that counts the verdicts."""
from __future__ import annotations

import json
import math

from bench.core.safe_text import one_line

FORMATS = ("text", "markdown", "json")


# Markdown (CI comments): what a run quotes is escaped, so that a name cannot end a table
# cell or line, open a code span, emphasis, a link or an image, nor carry HTML. ('_' is left
# alone: op names such as reduce_scatter hold it, and inside a word it is no emphasis.)
MD_ESCAPES = {c: "\\" + c for c in "\\`*[]()!~|#:"}
MD_ESCAPES.update({"<": "&lt;", ">": "&gt;", "&": "&amp;"})


def md_escape(text) -> str:
    """Text shown literally in Markdown: control characters written out (one line), Markdown
    punctuation backslash-escaped, HTML's <, > and & as entities."""
    return "".join(MD_ESCAPES.get(c, c) for c in one_line(text))


def markdown_table(header, rows) -> list:
    """The lines of a Markdown table (cells already escaped: md_escape)."""
    def cells(row):
        return "| " + " | ".join(row) + " |"

    return [cells(header), "|" + "|".join("---" for _ in header) + "|"] + [cells(row) for row in rows]


def verdict_counts(counts: dict, verdicts) -> str:
    """'meets: 3, below: 1, ...': how many rows have each verdict, in the order given."""
    return ", ".join(f"{v}: {counts[v]}" for v in verdicts)


def finite_json(value) -> str:
    """value as indented JSON, NaN and infinities as null (JSON has no NaN)."""
    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    return json.dumps(clean(value), indent=2, default=str)
