"""What `commbench triage` prints: the rules, the verdicts not ok with their evidence, counts,
time spikes, notes, the hosts to drain and their Slurm lines."""
from __future__ import annotations

from analysis.triage_drain import drain_reasons, scontrol_lines
from analysis.triage_verdicts import RULES, VERDICTS, Result
from bench.core.hostlist import compress

MAX_LINKS_LISTED = 20   # links not ok listed one by one; the rest are counted (nodes: all)
MAX_TIME_LINES = 40


def format_text(result: Result) -> str:

    nodes, links = result.nodes, result.links
    lines = [(f"commbench triage: {len(result.runs)} run{'s' * (len(result.runs) != 1)} "
             f"({', '.join(result.runs)}), {len(nodes)} nodes, {len(result.link_names)} inter-node links"),
             "rules:"] + [f"  {r}" for r in RULES]
    bad = []
    for name in nodes:
        v = result.verdict("node", name)
        if v != "ok":
            bad += [(v, "node", name, e) for e in nodes[name] if e.verdict != "ok"]
    owned = 0
    for name in links:
        v = result.verdict("link", name)
        if v == "ok":
            continue
        if result.link_owner(name) is not None:
            owned += 1
            continue
        bad += [(v, "link", "-".join(name), e) for e in links[name] if e.verdict != "ok"]
    bad.sort(key=lambda b: (-VERDICTS.index(b[0]), b[1] != "node", b[2]))
    listed_links = list(dict.fromkeys(name for _, kind, name, _ in bad if kind == "link"))
    unlisted = set(listed_links[MAX_LINKS_LISTED:])
    if bad:
        lines.append("not ok:")
        last = None
        for verdict, kind, name, e in bad:
            if kind == "link" and name in unlisted:
                continue
            head = f"  {verdict:5}  {kind} {name}" if (verdict, kind, name) != last else " " * 7
            last = (verdict, kind, name)
            own = f"({e.verdict}) " if e.verdict != verdict else ""
            lines.append(f"{head}: {own}{e.text} [{e.run}]")
        if unlisted:
            lines.append(f"  ... and {len(unlisted)} more links not ok (the {MAX_LINKS_LISTED} "
                         "listed are the worst verdicts first)")
    count = {kind: {v: 0 for v in VERDICTS} for kind in ("node", "link")}
    for name in nodes:
        count["node"][result.verdict("node", name)] += 1
    for name in links:
        v = result.verdict("link", name)
        count["link"][v if v == "ok" or result.link_owner(name) is None else "ok"] += 1
    count["link"]["ok"] += len(result.link_names) - len(links)
    lines.append("nodes: " + ", ".join(f"{count['node'][v]} {v}" for v in VERDICTS)
                 + "; links: " + ", ".join(f"{count['link'][v]} {v}" for v in VERDICTS)
                 + (f" ({owned} slow through a warn/drain node, counted ok)" if owned else ""))
    if result.time_lines:
        lines.append("time (spikes):")
        lines += [f"  {line}" for line in result.time_lines[:MAX_TIME_LINES]]
        if len(result.time_lines) > MAX_TIME_LINES:
            lines.append(f"  ... {len(result.time_lines) - MAX_TIME_LINES} more lines")
    for note in result.notes:
        lines.append(f"note: {note}")
    drain = result.drain()
    lines.append(f"drain ({len(drain)}): {compress(drain) if drain else 'none'}")
    lines += [f"slurm: {line}" for line in scontrol_lines(drain_reasons(result))]
    return "\n".join(lines)
