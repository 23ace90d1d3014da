"""The report's section per op: the latency, bandwidth, residual and per-rank figures of
every series (run x backend x ranks x dtype x split), the sentences that say why a figure is
absent, the summary table and the fitted Hockney segments."""
from __future__ import annotations

from analysis.figures import (COLORS, Series, bandwidth_figure, bandwidth_rows, flag_words,
                              latency_figure, left_out_flags, png_bytes, ranks_figure,
                              residuals_figure, sized, sizeless_figure)
from analysis.fits_csv import hockney_segments
from analysis.html_parts import esc, figure_html, meta_value_text, number_cell, render_value, slug
from analysis.report_files import save_png
from bench.core.rundir import FLAGS, NO_BANDWIDTH, split_flags
from bench.core.units import human_bytes

RANK_SPREAD_NOTICE = 0.02  # a rank this much slower than the median over ranks is named


def series_of(runs, op) -> list:
    keys = ["backend", "nranks", "dtype", "split"]
    found = []
    for run in runs:
        rows = run.summary[run.summary["op"] == op]
        for key, group in rows.groupby(keys, sort=True):
            found.append((run, key, group.sort_values("nbytes")))
    vary = [len({f[1][i] for f in found}) > 1 for i in range(len(keys))]
    series = []
    for i, (run, key, group) in enumerate(found):
        backend, nranks, dtype, split = key
        parts = [run.label] if len(runs) > 1 else []
        parts += [str(backend), f"n={nranks}"]
        if vary[2]:
            parts.append(str(dtype))
        if split != "all":
            parts.append(str(split))
        series.append(Series(run, key, " ".join(parts), COLORS[i % len(COLORS)], group,
                             hockney_segments(run.fits, backend, op, nranks, split)))
    return series


SUMMARY_HEAD = ["series", "S", "count", "median µs", "95% CI µs", "min µs", "max µs",
                "algbw GB/s", "busbw GB/s", "% of ceiling", "M msg/s", "samples", "rounds",
                "#wrong", "modes (µs)", "flags"]


def ceiling_cell(row) -> str:
    """The row's busbw as a % of the ceiling that applies (bench.ceilings; named under the
    table), e.g. '59'; 'cache' where a size in the caches beat a copy ceiling (no limit there)."""
    from bench.core.runmeta import applies

    name = row.get("ceiling")
    eff = row.get("efficiency")
    if not isinstance(name, str) or not name or eff is None or eff != eff:
        return "–"
    if not applies({"ceiling": name, "efficiency": float(eff), "nbytes": int(row["nbytes"])}):
        return "<span title='a size that fits in the caches beat the copy rate measured beyond " \
               "them: no limit here'>cache</span>"
    return number_cell(eff, 100, 3)


def ceilings_note(series) -> str:
    """Which ceiling each series' % of ceiling column divides by, once under the table."""
    from analysis.figures import ceiling_line

    parts = []
    for s in series:
        for column in ("busbw_Bps", "algbw_Bps"):
            line = ceiling_line(s, s.rows["op"].iloc[0] if len(s.rows) else "", column)
            if line:
                parts.append(f"{s.label}: {column[:5]} / {line[0]} ({line[1] / 1e9:.3g} GB/s)")
    if not parts:
        return ""
    return ("<p class='note'>% of ceiling: " + esc("; ".join(parts)) + ". 'cache': a size that "
            "fits in the caches beat a copy rate measured beyond them, so it is no limit there "
            "(drawn dotted in the bandwidth figure).</p>")


def modes_text(row) -> str:
    """'1', or the mode medians in µs when the samples fall into separate groups."""
    count = row.get("modes")
    medians = row.get("mode_medians_s")
    if count is None or count != count:
        return "–"
    if isinstance(medians, str) and medians:
        return f"{int(count)}: " + " / ".join(number_cell(float(m), 1e6, 3) for m in medians.split(";"))
    return str(int(count))


def summary_table(series) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in SUMMARY_HEAD)
    body = []
    for s in series:
        for _, r in s.rows.iterrows():
            wrong = int(r["wrong"]) if r["wrong"] == r["wrong"] else 0
            size = f"<span title='{int(r['nbytes'])} B'>{esc(human_bytes(r['nbytes']))}</span>"
            words = split_flags(r.get("flags"))
            # as the text tables: no bandwidth where nothing was moved or nothing was timed
            moved = not any(w in NO_BANDWIDTH for w in words)
            cells = [esc(s.label), size,
                     number_cell(r["count"], digits=12), number_cell(r["median_s"], 1e6),
                     f"{number_cell(r['ci_low_s'], 1e6)}–{number_cell(r['ci_high_s'], 1e6)}",
                     number_cell(r["min_s"], 1e6), number_cell(r["max_s"], 1e6),
                     number_cell(r["algbw_Bps"] if moved else None, 1e-9),
                     number_cell(r["busbw_Bps"] if moved else None, 1e-9),
                     ceiling_cell(r) if moved else "–", number_cell(r["msg_rate_per_s"], 1e-6),
                     number_cell(r["samples"], digits=12), number_cell(r["rounds"], digits=12), str(wrong),
                     esc(modes_text(r)), esc(", ".join(words))]
            cls = " class='wrong'" if wrong else " class='flagged'" if words else ""
            body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in cells[:-2])
                        + "".join(f"<td class='text'>{c}</td>" for c in cells[-2:]) + "</tr>")
    table = (f"<div class='wide'><table class='data'><thead><tr>{head}</tr></thead><tbody>"
             f"{''.join(body)}</tbody></table></div>") + ceilings_note(series)
    words = flag_words(s.rows for s in series)
    if words:
        table += ("<p class='note'>flags (bench.plausible): " + "; ".join(
            f"{esc(w)} ({esc(FLAGS.get(w, 'see summary.csv'))})" for w in words)
            + ". Flagged rows are drawn hollow in the latency figure and left out of the "
              "bandwidth figure; no-op and empty-graph rows show no bandwidth.</p>")
    return table


# Why a figure is left out: one sentence per flag that every sized row of an op carries.
NO_BANDWIDTH_BECAUSE = {
    "no-op": "every case ran on one rank, where collectives move no data (flag no-op)",
    "empty-graph": "every CUDA graph captured no GPU work, so no data moved while timed "
                   "(flag empty-graph)",
    "below-timer": "every sample was shorter than 10 steps of the clock, so no time is "
                   "resolved (flag below-timer)",
    "above-ceiling": "every bandwidth is above the ceiling measured on the machine "
                     "(flag above-ceiling)",
}


def flag_counts_text(counts: dict) -> str:
    """'no-op: 5, below-timer: 2'."""
    return ", ".join(f"{w}: {n}" for w, n in counts.items())


def no_bandwidth_sentence(series) -> str:
    """Why an op has no bandwidth figure: every sized row is flagged, or has no bandwidth."""
    rows = [sized(s.rows) for s in series]
    total = sum(len(r) for r in rows)
    counts = left_out_flags(series)
    for word, why in NO_BANDWIDTH_BECAUSE.items():
        if total and counts.get(word) == total:
            return f"No bandwidth plot: {why}."
    if counts:
        return ("No bandwidth plot: no case has a meaningful bandwidth (flagged "
                f"{flag_counts_text(counts)}; see the flags column).")
    return "No bandwidth plot: no case has a bandwidth recorded."


def no_ranks_sentence(series) -> str:
    """Why an op has no per-rank spread figure."""
    if all(int(s.key[1]) < 2 for s in series):
        return ("No per-rank spread: every case ran on one rank, so there is no other rank to "
                "compare it with.")
    if all(s.run.meta.get("source") for s in series):
        return ("No per-rank spread: imported results keep one time per size, not each "
                "rank's.")
    return "No per-rank spread: the samples hold no per-rank times."


def modes_caption(series) -> str:
    """A sentence naming the sizes whose median mixes latency modes (the curve zig-zags there)."""
    from analysis.figures import mixed_modes

    found = []
    for s in series:
        r = sized(s.rows)
        sizes = [human_bytes(n) for n in r[mixed_modes(r)]["nbytes"]]
        if sizes:
            found.append((f"{s.label}: " if len(series) > 1 else "") + ", ".join(sizes))
    if not found:
        return ""
    return (" Diamonds: medians that mix two or more latency modes (" + "; ".join(found)
            + "): the machine switched modes while sampling, so the curve may zig-zag there; "
              "the modes column gives each mode's median.")


def fit_table(series) -> str:
    rows = []
    for s in series:
        for k, (lo, hi, alpha, beta) in enumerate(s.segments):
            bw = 1 / beta / 1e9 if beta > 0 else float("inf")
            rows.append(f"<tr><td>{esc(s.label)}</td><td>{k}</td><td>{esc(human_bytes(lo))} – "
                        f"{esc(human_bytes(hi))}</td><td>{number_cell(alpha, 1e6)}</td>"
                        f"<td>{number_cell(beta, 1e12)}</td><td>{number_cell(bw)}</td></tr>")
    if not rows:
        return ""
    return ("<table class='data'><thead><tr><th>series</th><th>segment</th><th>S range</th>"
            "<th>α µs</th><th>β ps/byte</th><th>1/β GB/s</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def op_info_html(op, runs) -> str:
    info = next((r.meta.get("ops", {}).get(op) for r in runs
                 if isinstance(r.meta.get("ops"), dict) and r.meta["ops"].get(op)), None)
    if not isinstance(info, dict):
        return "<p class='note'>meta.json does not describe this op.</p>"
    names = {"s_means": "S means", "bus_factor": "bus factor (n = ranks)",
             "ops_per_call": "ops per timed call", "doc": "what is timed",
             "efficiency_of": "% of ceiling of", "delay_s0": "idle delay at S = 0",
             "delay_Bps": "idle delay per byte, as a rate"}
    sized_op = info.get("bus_factor") not in (None, "-", "")
    items = [(names.get(k, k.replace("_", " ")), meta_value_text(v, k) if not isinstance(v, (dict, list)) else v)
             for k, v in info.items() if sized_op or k != "efficiency_of"]
    return "<table class='kv'>" + "".join(
        f"<tr><th>{esc(k)}</th><td>{render_value(v)}</td></tr>" for k, v in items) + "</table>"


def ordered_ops(runs) -> list:
    from bench.ops import OPS

    order = list(OPS)
    ops = []
    for run in runs:
        for op in run.summary["op"].unique():
            if op not in ops:
                ops.append(op)
    return sorted(ops, key=lambda o: (order.index(o) if o in order else len(order), o))


def op_section(op, runs, out_dir, pngs) -> str:
    series = series_of(runs, op)
    parts = [f"<h2 id='op-{esc(slug(op))}'>{esc(op)}</h2>", op_info_html(op, runs)]
    figures, absent = [], []  # absent: one sentence per figure left out for having nothing to show
    if all((s.rows["nbytes"] <= 0).all() for s in series):
        figures.append(("latency", f"{op}: latency", sizeless_figure(op, series), ""))
    else:
        figures.append(("latency", f"{op}: latency against size", latency_figure(op, series),
                        "Median time per op (max over ranks per sample) with its 95% "
                        "order-statistic confidence band; dashed: the fitted Hockney model."
                        + modes_caption(series)))
        fig = bandwidth_figure(op, series)
        if fig is None:
            absent.append(no_bandwidth_sentence(series))
        else:
            counts = left_out_flags(series)
            figures.append(("bandwidth", f"{op}: algbw and busbw", fig,
                            "algbw = S / median time; busbw = algbw x bus factor (nccl-tests "
                            "convention); bands from the interval of the median; dotted: the "
                            "measured ceiling the % of ceiling column divides by."
                            + (f" Left out: flagged rows ({flag_counts_text(counts)}); see the "
                               "flags column." if counts else "")))
            absent += [f"No {name} panel: no unflagged case has a {name} (e.g. an unknown bus "
                       "factor)." for column, name in (("algbw_Bps", "algbw"), ("busbw_Bps", "busbw"))
                       if all(bandwidth_rows(s.rows, column).empty for s in series)]
        fig = residuals_figure(op, series)
        if fig is not None:
            figures.append(("residuals", f"{op}: residuals of the fit", fig,
                            "Relative distance of the median (bars: its 95% CI) from the fit."))
    fig, slowest = ranks_figure(op, series, RANK_SPREAD_NOTICE)
    if fig is not None:
        figures.append(("ranks", f"{op}: per-rank spread", fig,
                        "Each rank's median sample time over the median across ranks; "
                        "red ranks are slow. A sample's time is the max over ranks, so the "
                        "slowest rank sets it. Of more than 32 ranks, the 32 slowest are drawn "
                        "and the title gives quantiles over all of them."))
    else:
        absent.append(no_ranks_sentence(series))
    for s, rank, ratio in slowest:
        if ratio > 1 + RANK_SPREAD_NOTICE:
            parts.append(f"<p>{esc(s.label)}: slowest rank: {rank} ({ratio:.3g}x the median "
                         "over ranks, mean over sizes)</p>")
        else:
            parts.append(f"<p>{esc(s.label)}: no rank stands out (all within "
                         f"{RANK_SPREAD_NOTICE:.0%} of the median over ranks)</p>")
    for kind, title, fig, caption in figures:
        png = png_bytes(fig)
        name = save_png(out_dir, pngs, (kind, op), png)
        parts.append(figure_html(name, title, png, caption))
    parts += [f"<p class='note absent'>{esc(text)}</p>" for text in absent]
    if not any(s.segments for s in series) and not all((s.rows["nbytes"] <= 0).all() for s in series):
        parts.append("<p class='note'>No fitted model for this op (no fits.csv; run "
                     "<code>commbench fit RUN_DIR</code>).</p>")
    parts.append("<h3>Summary</h3>" + summary_table(series))
    table = fit_table(series)
    if table:
        parts.append("<h3>Hockney fit per size range</h3>" + table)
    return "\n".join(parts)
