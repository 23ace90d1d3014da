"""What `commbench check` prints: its verdicts as text, Markdown (CI comments) or JSON, and
the list of shipped figures (--list)."""
from __future__ import annotations

from analysis.check_verdicts import VERDICTS, gbps
from analysis.output_formats import finite_json, markdown_table, md_escape, verdict_counts
from bench.core.safe_text import one_line
from bench.core.tables import text_table
from bench.core.units import human_bytes

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
    from bench.core.runmeta import applies  # a copy ceiling beaten in the caches: 'cache'

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


def title_line(result, quote=None) -> str:
    quote = quote or one_line
    text = f"{quote(', '.join(result['runs']))}: busbw in GB/s (1e9 B/s)"
    if any(r["kind"] != "minimum" for r in result["references"]):
        text += f"; typical figures and baselines meet within {result['tolerance']:.0%} below them"
    return text


def format_text(result) -> str:
    lines = [f"commbench check {title_line(result)}"]
    lines += text_table(HEADER, table_rows(result), right={3, 4, 5, 6, 7})
    lines.append(verdict_counts(result['counts'], VERDICTS))
    lines += source_lines(result)
    lines += [f"ceilings of {one_line(run)}: {one_line(text)}" for run, text in result["ceilings"].items()]
    lines += [f"note: {one_line(n)}" for n in result["notes"]]
    return "\n".join(lines)


def format_markdown(result) -> str:
    lines = [f"**commbench check** {title_line(result, md_escape)}", ""]
    lines += markdown_table(HEADER, table_rows(result, md_escape))
    lines += ["", f"**{verdict_counts(result['counts'], VERDICTS)}**", ""]
    lines += [f"- {line}" for line in source_lines(result, md_escape)]
    lines += [f"- ceilings of {md_escape(run)}: {md_escape(text)}" for run, text in result["ceilings"].items()]
    lines += [f"- note: {md_escape(n)}" for n in result["notes"]]
    return "\n".join(lines)


def format_json(result) -> str:
    return finite_json(result)


def format_list(refs) -> str:
    lines = ["system, op, ranks, size: busbw (kind); source (date)"]
    for r in refs:
        size = human_bytes(r.nbytes) if r.nbytes else "peak"
        per = " per NIC" if r.per else ""
        lines.append(f"{r.system}  {r.op}  {r.nranks or 'any'}  {size}: {gbps(r.busbw_Bps)} GB/s{per} "
                     f"({r.kind}); {r.hardware}; {r.source} ({r.date})")
    return "\n".join(lines)
