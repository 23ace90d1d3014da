"""What `commbench compare` prints: its result as text, Markdown (CI comments) or JSON, the
verdict of each row with the evidence an unreplicated verdict rests on, and the settings that
differ between the sides."""
from __future__ import annotations

import json

from analysis.compare_stats import VERDICTS
from analysis.output_formats import markdown_table, md_escape, verdict_counts
from bench.core.safe_text import one_line
from bench.core.tables import text_table
from bench.core.units import human_bytes


def micro(seconds: float) -> str:
    return f"{seconds * 1e6:.4g}"


def ratio_text(x: float) -> str:
    return f"{x:.3f}" if 0.01 <= x < 100 else f"{x:.2g}"


HEADER = ["backend", "op", "ranks", "size", "base(us)", "new(us)", "ratio", "95% CI", "p",
          "units", "verdict"]


def table_rows(result, quote=None) -> list:
    """The cells of the table; quote(text) is applied to the names taken from the runs."""
    quote = quote or one_line
    out = []
    for r in result["rows"]:
        out.append([
            quote(r["backend"]), quote(r["op"]), str(r["nranks"]), human_bytes(r["nbytes"]),
            micro(r["base_median_s"]), micro(r["new_median_s"]), ratio_text(r["ratio"]),
            f"[{ratio_text(r['ratio_ci_low'])}, {ratio_text(r['ratio_ci_high'])}]", f"{r['p_value']:.2g}",
            f"{r['n_base']}/{r['n_new']} {r['unit']}", verdict_text(r),
        ])
    return out


def verdict_text(row) -> str:
    """The verdict, and for an unreplicated case the evidence it rests on."""
    def times(x):
        return f"{x:.2f}×" if 0.01 <= x < 100 else f"{x:.2g}×"

    ev = row.get("evidence")
    if not ev:
        return row["verdict"]
    if row["verdict"] == "not significant":
        side = "beyond" if ev["threshold"] >= 1 else "below"
        return (f"not significant, unreplicated: {ev['agree']}/{ev['of']} sizes {side} "
                f"{times(ev['threshold'])}")
    return f"{row['verdict']}, unreplicated: {times(ev['ratio'])} at {ev['agree']}/{ev['of']} sizes"


def title_line(result, quote=None) -> str:
    quote = quote or one_line
    return (f"BASE {quote(', '.join(result['base']))} vs NEW {quote(', '.join(result['new']))}: factor "
            f"{result['factor']:g}, alpha {result['alpha']:g}; times are medians in us (as in run's median(us)), p is "
            "one-sided against 'within the factor'")


def differs_line(result, quote=None) -> list:
    """The first line when the sides differ in what can change a time (differing_settings)."""
    quote = quote or one_line
    if not result.get("differs"):
        return []
    return [quote("settings differ (BASE vs NEW), the times may differ for that alone: "
                  + "; ".join(result["differs"]))]


def format_text(result) -> str:
    table = text_table(HEADER, table_rows(result), right={2, 3, 4, 5, 6, 8})
    lines = differs_line(result) + [title_line(result)] + table
    lines.append(verdict_counts(result['counts'], VERDICTS))
    lines += [f"note: {one_line(n)}" for n in result["notes"]]
    return "\n".join(lines)


def format_markdown(result) -> str:
    lines = [f"**{line}**" for line in differs_line(result, md_escape)]
    lines += [f"**commbench compare** {title_line(result, md_escape)}", ""]
    lines += markdown_table(HEADER, table_rows(result, md_escape))
    lines += ["", f"**{verdict_counts(result['counts'], VERDICTS)}**"]
    lines += [f"- note: {n}" for n in result.get("_markdown_notes", result["notes"])]
    return "\n".join(lines)


def format_json(result) -> str:
    return json.dumps({k: v for k, v in result.items() if not k.startswith("_")}, indent=2)
