"""`commbench report RUN_DIR...`: one self-contained HTML page per report, plus the figures.

    commbench report RUN_DIR [RUN_DIR...] [--out DIR] [--no-fit]

Writes DIR/index.html (default: the first RUN_DIR/report/, a sweep's own report/) with every figure embedded as a
PNG, so the page opens offline and can be mailed as one file; the same figures are written
next to it as PNG files. Per op: latency against S (log-log, median with its 95% confidence
band, the fitted Hockney model t = alpha + S*beta per size range drawn over it), algbw and
busbw against S, the per-rank spread (which rank is slow), the residuals of the fit; the
summary table; what S means, the bus factor and the method; the environment from meta.json.
Several run directories (or sweep directories holding runs) are overlaid in every figure.

The fit comes from fits.csv (`commbench fit`) in the run or sweep directory; when there is
none, the report fits in memory (analysis.fitsfile, no bootstrap) unless --no-fit is given.
Units: times in µs (1e-6 s), bandwidth in GB/s (1 GB = 1e9 bytes), sizes in bytes with binary
prefixes (1 KiB = 1024 B). Stored data stay SI.
"""
from __future__ import annotations

import base64
import datetime as dt
import html
import math
import os
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

from analysis.figures import (COLORS, NAME_LIMIT, Series, bandwidth_figure, bandwidth_rows,
                              flag_words, latency_figure, left_out_flags, png_bytes, ranks_figure,
                              residuals_figure, safe_name, sized, sizeless_figure, write_file)
from analysis.fitsfile import discover_runs, fit_times, hockney_segments, load_fits
from analysis.safe_text import file_error, path_text
from bench.core.errors import RunDirError, UsageError
from bench.core.rundir import FITS, FLAGS, NO_BANDWIDTH, SUMMARY, atomic_write_text, split_flags
from bench.core.units import human_bytes

# pandas and matplotlib are imported inside functions (numpy too, in the figures): the CLI
# parser imports this module for every command.

RANK_SPREAD_NOTICE = 0.02  # a rank this much slower than the median over ranks is named
FLEET_MAX_SAMPLES = 2_000_000  # the fleet section (every rank's every sample) up to this many


@dataclass
class Run:
    path: Path
    label: str
    meta: dict
    samples: object   # analysis.runsamples.RunSamples: read a case at a time, when needed
    summary: object   # DataFrame
    fits: object = None   # DataFrame of fits.csv rows, or None
    fits_source: str = ""


# ---------------------------------------------------------------- loading
def expand(paths) -> list:
    """(run dir, dir holding its fits.csv candidates) for run and sweep directories
    (analysis.fitsfile.discover_runs)."""
    out = []
    for p in paths:
        p = Path(p)
        runs = discover_runs(p)
        out += [(p, [p])] if runs == [p] else [(d, [d, p]) for d in runs]
    return out


def first_fits(dirs, loaded=None):
    """The first fits.csv among dirs (analysis.fitsfile.load_fits), as (DataFrame, path) or
    (None, ""). A damaged one is an error (one line naming it), not silently passed over.
    loaded: {directory: its fits or None}, shared by the runs of a sweep so that the sweep's
    fits.csv is read and checked once."""
    loaded = {} if loaded is None else loaded
    for d in dirs:
        if Path(d) not in loaded:
            loaded[Path(d)] = load_fits(d)
        if loaded[Path(d)] is not None:
            return loaded[Path(d)], str(Path(d) / FITS)
    return None, ""


def load_runs(paths, fit_missing=True) -> list:
    from analysis.meta_checks import load_checked_meta
    from analysis.run_frames import load_summary
    from analysis.runsamples import RunSamples

    runs, labels, loaded = [], set(), {}
    for run_dir, fit_dirs in expand(paths):
        meta = load_checked_meta(run_dir)
        samples, summary = RunSamples(run_dir, meta), load_summary(run_dir)
        if summary.empty:
            raise RunDirError(f"{path_text(run_dir / SUMMARY)}: no results yet (summary.csv is "
                              "empty or missing)")
        label = str(meta.get("run_id") or run_dir.name)
        while label in labels:
            label += "'"
        labels.add(label)
        fits, source = first_fits(fit_dirs, loaded)
        runs.append(Run(run_dir, label, meta, samples, summary, fits, source))
    if fit_missing:
        for run in runs:
            if run.fits is None:
                run.fits, run.fits_source = fit_in_memory(run)
    return runs


def fit_in_memory(run):
    """The fits of a run without fits.csv (analysis.fitsfile.fit_times, no bootstrap)."""
    times = run.samples.times()
    times = times[(times["time_s"] > 0) & (times["nbytes"] > 0)]
    if times.empty:
        return None, ""
    try:
        fits = fit_times(times, n_boot=0, meta_ops=run.meta.get("ops"))
    except Exception as exc:  # a fit failure must not cost the user the whole report
        return None, f"in-memory fit failed: {exc}"
    return fits, "fitted in memory by analysis.fitsfile (no bootstrap: no fit intervals)"


# ---------------------------------------------------------------- series
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


# ---------------------------------------------------------------- HTML pieces
def esc(value) -> str:
    return html.escape(str(value), quote=True)


def num(value, scale=1.0, digits=4) -> str:
    """A number for a table cell: `digits` significant digits in fixed notation (never
    1.676e+04: 16,760), thousands separated; '–' when there is none."""
    try:
        v = float(value) * scale
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(v):
        return "–"
    if v == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
    text = f"{float(f'{v:.{digits}g}'):,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def value_text(value, key: str = "") -> str:
    """A scalar of meta.json for people: seconds (keys ending _s) and rates (_Bps) with their
    unit, other floats to 4 significant digits."""
    from bench.core.units import format_bw, format_time

    if isinstance(value, bool) or value is None or not isinstance(value, (int, float)):
        return "–" if value is None else str(value)
    if key.endswith("_s"):
        return format_time(float(value))
    if key.endswith("_Bps"):
        return format_bw(float(value))
    return str(value) if isinstance(value, int) else num(value)


def render_value(value, key: str = "") -> str:
    """Any JSON value from meta.json as escaped HTML (numbers through value_text)."""
    if isinstance(value, dict):
        if not value:
            return "<i>none</i>"
        rows = "".join(f"<tr><th>{esc(k)}</th><td>{render_value(v, str(k))}</td></tr>"
                       for k, v in value.items())
        return f"<table class='kv'>{rows}</table>"
    if isinstance(value, list):
        if all(not isinstance(v, (dict, list)) for v in value):
            return esc(" ".join(value_text(v, key) for v in value)) if value else "<i>none</i>"
        return "<ol>" + "".join(f"<li>{render_value(v, key)}</li>" for v in value) + "</ol>"
    if value is None:
        return "<i>–</i>"
    return esc(value_text(value, key))


def figure_html(name, title, png, caption="") -> str:
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return (f"<figure><img src='data:image/png;base64,{data}' alt='{esc(title)}' "
            f"title='{esc(name)}'>{cap}</figure>")


SUMMARY_HEAD = ["series", "S", "count", "median µs", "95% CI µs", "min µs", "max µs",
                "algbw GB/s", "busbw GB/s", "% of ceiling", "M msg/s", "samples", "rounds",
                "#wrong", "modes (µs)", "flags"]


def ceiling_cell(row) -> str:
    """The row's busbw as a % of the ceiling that applies (bench.ceilings; named under the
    table), e.g. '59'; 'cache' where a size in the caches beat a copy ceiling (no limit there)."""
    from bench.ceilings import applies

    name = row.get("ceiling")
    eff = row.get("efficiency")
    if not isinstance(name, str) or not name or eff is None or eff != eff:
        return "–"
    if not applies({"ceiling": name, "efficiency": float(eff), "nbytes": int(row["nbytes"])}):
        return "<span title='a size that fits in the caches beat the copy rate measured beyond " \
               "them: no limit here'>cache</span>"
    return num(eff, 100, 3)


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
        return f"{int(count)}: " + " / ".join(num(float(m), 1e6, 3) for m in medians.split(";"))
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
                     num(r["count"], digits=12), num(r["median_s"], 1e6),
                     f"{num(r['ci_low_s'], 1e6)}–{num(r['ci_high_s'], 1e6)}",
                     num(r["min_s"], 1e6), num(r["max_s"], 1e6),
                     num(r["algbw_Bps"] if moved else None, 1e-9),
                     num(r["busbw_Bps"] if moved else None, 1e-9),
                     ceiling_cell(r) if moved else "–", num(r["msg_rate_per_s"], 1e-6),
                     num(r["samples"], digits=12), num(r["rounds"], digits=12), str(wrong),
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
                        f"{esc(human_bytes(hi))}</td><td>{num(alpha, 1e6)}</td>"
                        f"<td>{num(beta, 1e12)}</td><td>{num(bw)}</td></tr>")
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
    items = [(names.get(k, k.replace("_", " ")), value_text(v, k) if not isinstance(v, (dict, list)) else v)
             for k, v in info.items() if sized_op or k != "efficiency_of"]
    return "<table class='kv'>" + "".join(
        f"<tr><th>{esc(k)}</th><td>{render_value(v)}</td></tr>" for k, v in items) + "</table>"


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5em auto;
max-width:1250px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}
table{border-collapse:collapse;font-size:.82em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:2px 6px;vertical-align:top;text-align:left}
table.data td{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.data td.text{white-space:normal;min-width:6em}
div.wide{overflow-x:auto}
table.data td:first-child{text-align:left}
table.kv th{background:#f6f6f6;font-weight:600}
tr.wrong td{background:#fdd}.warn{background:#fff3cd;border:1px solid #e0c36c;padding:.5em 1em}
li.bad{color:#8a1c1c}tr.flagged td{color:#777}
.note{color:#555;font-size:.9em}details{margin:.5em 0}summary{cursor:pointer;font-weight:600}
nav a{margin-right:1em}
"""

# Sets data-images on <body> once every image has decoded ("3/3"): lets a headless browser
# (and the tests) check that the embedded figures load. No network, no other effect.
LOAD_CHECK = """<script>
window.addEventListener('load', function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++; }
  document.body.setAttribute('data-images', ok + '/' + imgs.length);
});
</script>"""


# ---------------------------------------------------------------- the report
def slug(text) -> str:
    """An HTML id from a name: the characters of analysis.figures.safe_name, at most
    NAME_LIMIT of them."""
    return (re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)) or "op")[:NAME_LIMIT]


def save_png(out_dir: Path, pngs: list, parts, png: bytes) -> str:
    """Write one figure into out_dir under a name made of parts (names from the runs,
    sanitised and unique: analysis.figures.safe_name), never through a planted link; its
    name is added to pngs. RunDirError naming the file when it cannot be written."""
    name = safe_name(*parts, used=set(pngs))
    try:
        write_file(out_dir / name, png)
    except OSError as exc:
        raise file_error(out_dir / name, exc, "write it") from None
    pngs.append(name)
    return name


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


def warnings_html(runs) -> str:
    notes = []
    for run in runs:
        status = run.meta.get("status")
        if status not in (None, "complete"):
            err = run.meta.get("error")
            notes.append(f"{run.label}: status {status}" + (f" ({err})" if err else ""))
        wrong = run.summary["wrong"].fillna(0)
        if (wrong > 0).any():
            notes.append(f"{run.label}: {int((wrong > 0).sum())} cases returned wrong results "
                         "(rows marked red)")
        if run.meta.get("source"):
            notes.append(f"{run.label}: imported from {run.meta['source']}; one sample per size "
                         "(the tool's own summary), so its intervals are empty")
        if run.fits_source.startswith("in-memory fit failed"):
            notes.append(f"{run.label}: {run.fits_source}")
    if not notes:
        return ""
    return "<div class='warn'>" + "<br>".join(esc(n) for n in notes) + "</div>"


def links_html(runs, out_dir, pngs) -> str:
    """Across nodes: the pairwise link map of `pairs` runs as heatmaps (slow links boxed, slow
    nodes in red) and which rank arrives last in collectives (analysis.links)."""
    import matplotlib.pyplot as plt

    from analysis import links

    parts = []
    for run in runs:
        text = links.describe(run.samples, run.meta)
        table = links.link_times(run.samples, run.meta.get("hosts"))
        if not text and table.empty:
            continue
        parts.append(f"<h3>{esc(run.label)}</h3><pre>{esc(text)}</pre>")
        if table.empty:
            continue
        table = links.flag_links(table)
        hosts = links.map_hosts(table, list(run.meta.get("hosts") or []))
        single = 0
        for key, group in table.groupby(links.CASE_KEYS):
            case = dict(zip(links.CASE_KEYS, key))
            if len(group) < 2:  # one pair of ranks: a map with one value compares nothing
                single += 1
                continue
            fig = links.heatmap_figure(group, hosts, title=f"{run.label}: pairs, {case['backend']}, "
                                                           f"S = {human_bytes(int(case['nbytes']))}")
            png = png_bytes(fig)
            plt.close(fig)
            name = save_png(out_dir, pngs, ("links", run.label, case["backend"],
                                            int(case["nbytes"])), png)
            parts.append(figure_html(name, f"link map, S = {human_bytes(int(case['nbytes']))}", png,
                                     "Latency (small S) or bandwidth (large S) of every pair of "
                                     "ranks; boxed: outlier links; red labels: outlier nodes. "
                                     + links.RULE))
        if single:
            parts.append(f"<p class='note absent'>No link map for {single} size"
                         f"{'s' if single > 1 else ''}: only one pair of ranks was measured, so "
                         "there is no other link to compare it with (its times are above and in "
                         "the pairs table).</p>")
    if not parts:
        return ""
    return "<h2 id='links'>Links and skew</h2>" + "\n".join(parts)


def fleet_html(runs, out_dir, pngs) -> str:
    """The fleet: `commbench triage` of the runs together (verdicts not ok, counts, the drain
    list), a node x node map of the link rates, and each run's samples over time with its spikes
    (analysis.triage, analysis.timeline). Empty for fewer than 3 nodes or nothing to judge."""
    import matplotlib.pyplot as plt

    from analysis import timeline, triage

    from analysis.runsamples import as_samples

    if len({h for r in runs for h in r.meta.get("hosts") or []}) < triage.MIN_VALUES:
        return ""  # fewer nodes than a verdict compares
    cells = sum(as_samples(r.samples).cells() for r in runs)
    if cells > FLEET_MAX_SAMPLES:  # the fleet section reads every rank's every sample
        return ("<h2 id='fleet'>Fleet</h2><p>Left out: these runs hold "
                f"{cells:,} samples of single ranks, and the fleet section "
                "reads every one of them (the report stops at "
                f"{FLEET_MAX_SAMPLES:,} to stay within seconds). "
                f"<code>commbench triage {' '.join(esc(str(r.path)) for r in runs)}</code> "
                "gives the verdicts per node and link.</p>")
    fleet = [triage.Run(r.label, r.meta, as_samples(r.samples).frame(), r.summary) for r in runs]
    try:
        result = triage.triage_runs(fleet)
    except UsageError:
        return ""
    parts = ["<h2 id='fleet'>Fleet</h2>", f"<pre>{esc(triage.format_text(result))}</pre>"]
    fig = triage.fleet_map_figure(fleet, result)
    if fig is not None:
        png = png_bytes(fig)
        plt.close(fig)
        name = save_png(out_dir, pngs, ("fleet", "map"), png)
        parts.append(figure_html(name, "node x node map", png, "Each pair of nodes' link rate "
                                 "over the median link (pairs, largest S); red labels: drain, "
                                 "orange: warn."))
    for run in fleet:
        table = timeline.per_sample(run.samples, run.hosts)
        if len(table) < 2:
            continue
        fig = timeline.figure(table, f"{run.name}: samples over time")
        png = png_bytes(fig)
        plt.close(fig)
        name = save_png(out_dir, pngs, ("fleet", "time", run.name), png)
        parts.append(figure_html(name, f"{run.name}: time series", png, timeline.RULE))
    return "\n".join(parts)


def machine_html(runs) -> str:
    """How quiet the machine was: contention while measuring, its own noise calibration, and
    the cases whose samples split into several latency modes."""
    from bench import contention, noise

    lines = []
    for run in runs:
        meta = run.meta
        if meta.get("contention"):
            contended = any(h.get("contended") for h in meta["contention"].get("hosts", {}).values())
            text = contention.describe(meta["contention"])
            lines.append((contended, f"{run.label}: {'CONTENDED: ' if contended else ''}{text}"))
        if meta.get("noise"):
            lines.append((False, f"{run.label}: machine noise: {noise.describe(meta['noise'])}"))
        if "modes" in run.summary:
            multi = run.summary[run.summary["modes"].fillna(1) > 1]
            if len(multi):
                cases = [f"{r.op} {human_bytes(int(r.nbytes))}" for r in multi.itertuples()]
                spans = [max(m) / min(m) for m in (
                    [float(x) for x in str(text).split(";") if x] for text in multi["mode_medians_s"])
                    if len(m) > 1]
                span = f"; slowest mode / fastest mode: median {statistics.median(spans):.2f}x" if spans else ""
                listed = ", ".join(cases[:8]) + (f" and {len(cases) - 8} more" if len(cases) > 8 else "")
                lines.append((True, f"{run.label}: {len(multi)} of {len(run.summary)} cases have "
                                    f"several latency modes (the machine switched modes while it "
                                    f"ran; the median mixes them, the modes column separates "
                                    f"them){span}: {listed}"))
    if not lines:
        return ""
    body = "".join(f"<li class='{'bad' if bad else ''}'>{esc(text)}</li>" for bad, text in lines)
    return f"<h2 id='machine'>Machine</h2><ul class='machine'>{body}</ul>"


def ceilings_html(runs) -> str:
    """What each machine allows (meta.json → ceilings, measured at the start of a run): a short
    table; the summary tables give each row's share of the ceiling that applies to it."""
    from bench.ceilings import COPY_BYTES, COPY_REPEATS, applies

    rows = []
    for run in runs:
        c = run.meta.get("ceilings")
        if not isinstance(c, dict) or not isinstance(c.get("hosts"), dict):
            continue
        rows_ = run.summary.to_dict("records") if "efficiency" in run.summary else []
        above = sum(1 for r in rows_ if r["efficiency"] > 1 and applies(r))
        cached = sum(1 for r in rows_ if not applies(r))
        one = c.get("copy_one_core_spread_Bps") if isinstance(c.get("copy_one_core_spread_Bps"), dict) else {}
        spread = (f" <span class='note'>(median {num(one.get('median'), 1e-9, 3)}, slowest "
                  f"{num(one.get('min'), 1e-9, 3)})</span>" if one.get("median") else "")
        for host, h in c["hosts"].items():
            if not isinstance(h, dict):
                continue
            nics = ", ".join(f"{esc(n.get('device', '?'))} {num(n.get('rate_Bps'), 8e-9)} Gb/s"
                             for n in h.get("nics") or [] if isinstance(n, dict)) or "none declared"
            rows.append(f"<tr><td>{esc(run.label)}</td><td>{esc(host)}</td>"
                        f"<td>{num(c.get('copy_one_core_Bps'), 1e-9, 3)}{spread}</td>"
                        f"<td>{esc(h.get('ranks', '–'))}</td><td>{num(h.get('copy_node_Bps'), 1e-9)}</td>"
                        f"<td>{nics}</td><td>{above} of {len(run.summary)}</td><td>{cached}</td></tr>")
    if not rows:
        return ""
    return ("<h2 id='ceilings'>Ceilings</h2><p class='note'>Measured at the start of the run "
            "(meta.json → ceilings): the memory copy rate of one core and of all ranks of a host at "
            f"once (a numpy copy of {COPY_BYTES >> 20} MiB, beyond the caches; one core: the best of "
            f"{COPY_REPEATS} copies, their median and slowest beside it), and the line rates "
            "the network devices declare. The summary tables give each row's busbw as a % of the "
            "ceiling that applies (across nodes: the slowest line rate; on one node: one core's copy "
            "rate; multipair: algbw against all ranks' copy rate), and the bandwidth figures draw it "
            "dotted. A size that fits in the caches may beat a copy rate: those rows say 'cache' "
            "instead of a share. Above 100% beyond the caches: ranks copying in parallel, or an "
            "algorithm that moves less than busbw assumes (tree, NVLS, SHARP).</p>"
            "<table class='data'><thead><tr><th>run</th><th>host</th><th>one core GB/s</th>"
            "<th>ranks</th><th>all ranks GB/s</th><th>line rates</th><th>rows above 100%</th><th>rows 'cache'</th>"
            "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def method_html(runs) -> str:
    parts = ["<h2 id='method'>Method and units</h2>",
             "<p>Times are seconds per op in the data and µs (1e-6 s) here. Bandwidths are GB/s "
             "with 1 GB = 1e9 bytes. Sizes S are bytes (binary prefixes: 1 KiB = 1024 B); what S "
             "means differs per op and is stated with each op. algbw = S / time; busbw = algbw x "
             "the op's bus factor (nccl-tests convention: the traffic a bandwidth-optimal "
             "algorithm needs on the busiest link; not physical for tree or in-network "
             "algorithms). The time of a sample is the max over ranks; medians and their 95% "
             "order-statistic intervals are over samples of all rounds.</p>"]
    for run in runs:
        meta = run.meta
        block = {"method": meta.get("method"), "timer": meta.get("timer"),
                 "buffers": meta.get("buffers"), "fits": run.fits_source or "none"}
        parts.append(f"<h3>{esc(run.label)}</h3><p class='timer'>{esc(timer_line(meta))}</p>"
                     + render_value(block))
    return "\n".join(parts)


def timer_line(meta) -> str:
    """How the samples were timed (meta.json → settings.timer; a run without it: host)."""
    if meta.get("source"):
        return f"Timing: by the tool the run was imported from ({meta['source']})."
    settings = meta.get("settings") if isinstance(meta.get("settings"), dict) else {}
    timer = settings.get("timer")
    how = {"host": "the host clock around the k calls of a sample, after a device synchronize "
                   "for GPU backends, as nccl-tests",
           "cuda": "CUDA events recorded around the k calls of a sample on the device's stream"}
    if not timer:
        return f"Timing: host (the default; meta.json has no settings.timer): {how['host']}."
    return f"Timing: {timer} (settings.timer): {how.get(timer, 'as recorded')}."


# Internal options the local launcher adds to each launch's command line (not typed by anyone).
INTERNAL_OPTIONS = {"--launch-index"}
# meta.json keys the environment section shows curated, or other sections show already
SHOWN_ELSEWHERE = {"ops", "method", "timer", "buffers", "ceilings", "noise", "contention",
                   "schema", "run_id", "argv", "status", "started", "finished", "settings",
                   "versions", "commbench", "backend", "backends", "nranks", "nnodes", "hosts",
                   "dtype", "launches", "launcher_host", "env", "error", "source"}


def typed_command(argv) -> str:
    """The command as the user typed it: meta.json's argv less the launcher's own options."""
    out, skip = [], False
    for a in argv if isinstance(argv, list) else []:
        if skip:
            skip = False
        elif a in INTERNAL_OPTIONS:
            skip = True
        elif not a.startswith(tuple(f"{o}=" for o in INTERNAL_OPTIONS)):
            out.append(str(a))
    return " ".join(out)


def sizes_text(sizes) -> str:
    if not isinstance(sizes, list) or not sizes:
        return "–"
    shown = [human_bytes(x) for x in sizes if isinstance(x, (int, float))]
    return ", ".join(shown) if len(shown) <= 6 else f"{shown[0]} … {shown[-1]} ({len(shown)} sizes)"


def when_text(started, finished) -> str:
    """'2026-12-07 09:09:18 UTC, 1 min 53 s' from meta.json's ISO times."""
    try:
        t0 = dt.datetime.fromisoformat(str(started)).astimezone(dt.timezone.utc)
    except ValueError:
        return "–"
    text = t0.strftime("%Y-%m-%d %H:%M:%S UTC")
    try:
        took = (dt.datetime.fromisoformat(str(finished)) - dt.datetime.fromisoformat(str(started)))
    except (ValueError, TypeError):
        return text + " (not finished)"
    minutes, seconds = divmod(int(took.total_seconds()), 60)
    return text + f", {minutes} min {seconds} s" if minutes else text + f", {seconds} s"


def environment_rows(meta) -> list:
    """(name, text) of what a reader needs to reproduce or judge a run, from its meta.json."""
    settings = meta.get("settings") if isinstance(meta.get("settings"), dict) else {}
    sampling = settings.get("sampling") if isinstance(settings.get("sampling"), dict) else {}
    versions = meta.get("versions") if isinstance(meta.get("versions"), dict) else {}
    hosts = meta.get("hosts") if isinstance(meta.get("hosts"), list) else []
    counts = {h: hosts.count(h) for h in dict.fromkeys(map(str, hosts))}
    rows = [("command", typed_command(meta.get("argv"))),
            ("status", str(meta.get("status", "–")) + (f": {meta['error']}" if meta.get("error") else "")),
            ("when", when_text(meta.get("started"), meta.get("finished"))),
            ("ranks", f"{meta.get('nranks', '–')} on {meta.get('nnodes', len(counts) or '–')} "
                      f"node(s)" + (": " + ", ".join(f"{h} ({n})" for h, n in counts.items())
                                    if counts else ""))]
    backends = meta.get("backends") if isinstance(meta.get("backends"), dict) else {}
    for name, info in backends.items():
        if isinstance(info, dict):
            parts = [f"{k} {value_text(v, k)}" for k, v in info.items()
                     if k in ("library", "mpi4py", "torch", "nccl", "cuda", "device", "loop")]
            rows.append((f"backend {name}", "; ".join(parts) or "–"))
    if not backends and isinstance(meta.get("backend"), dict):  # older runs: one backend
        info = meta["backend"]
        rows.append(("backend", "; ".join(f"{k} {value_text(v, k)}" for k, v in info.items()
                                          if not isinstance(v, (dict, list)))))
    elif not backends and meta.get("backend"):
        rows.append(("backend", render_backend(meta)))
    if settings:
        rows += [("sizes", sizes_text(settings.get("sizes"))),
                 ("dtype", str(meta.get("dtype") or settings.get("dtype", "–"))),
                 ("sampling", f"samples of at least {value_text(settings.get('sample_time'), 'sample_time_s')}; "
                              f"stop at a 95% CI of {num(settings.get('ci_target'), 100, 3)}% of the median, "
                              f"{settings.get('min_samples', '–')} to {settings.get('max_samples', '–')} samples, "
                              f"{value_text(sampling.get('budget_s'), 'budget_s')} per case and round"),
                 ("rounds", f"{settings.get('repeats', '–')} per launch × {settings.get('launches', '–')} "
                            f"launches (seed {settings.get('seed', '–')})"),
                 ("timer", str(settings.get("timer", "host")))]
    if versions:
        rows.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items())
                     + f", commbench {meta.get('commbench', '–')}"))
    if isinstance(meta.get("env"), dict) and meta["env"]:
        rows.append(("environment variables", " ".join(f"{k}={v}" for k, v in meta["env"].items())))
    if meta.get("source"):
        rows.append(("imported from", str(meta["source"])))
    return rows


def environment_html(runs) -> str:
    """Per run: a short table of what ran where (environment_rows); the rest of meta.json that
    no section shows, folded away. Method, timer, buffers, ceilings and noise have their own
    sections."""
    parts = ["<h2 id='environment'>Environment</h2>"]
    for run in runs:
        table = "<table class='kv'>" + "".join(
            f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in environment_rows(run.meta)
        ) + "</table>"
        rest = {k: v for k, v in run.meta.items() if k not in SHOWN_ELSEWHERE}
        more = (f"<details><summary>the rest of meta.json</summary>{render_value(rest)}</details>"
                if rest else "")
        parts.append(f"<h3>{esc(run.label)} — {esc(run.path)}</h3>{table}{more}")
    return "\n".join(parts)


def write_report(paths, out_dir=None, fit_missing=True) -> Path:
    """Write index.html and the PNG figures; return the path of index.html."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    runs = load_runs(paths, fit_missing)
    out_dir = prepare_out_dir(Path(out_dir) if out_dir else None, Path(paths[0]) / "report")
    ops = ordered_ops(runs)
    pngs: list = []
    sections = [op_section(op, runs, out_dir, pngs) for op in ops]
    nav = " ".join(f"<a href='#op-{esc(slug(op))}'>{esc(op)}</a>" for op in ops)
    nav += " <a href='#method'>method and units</a> <a href='#environment'>environment</a>"
    run_list = "".join(f"<li><b>{esc(r.label)}</b> — {esc(r.path)} — status "
                       f"{esc(r.meta.get('status', '?'))}, {esc(r.meta.get('nranks', '?'))} ranks, "
                       f"backend {esc(render_backend(r.meta))}{esc(job_text(r.meta))}</li>"
                       for r in runs)
    from bench import __version__

    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>commbench report: {esc(', '.join(r.label for r in runs))}</title>
<style>{CSS}</style></head>
<body>
<h1>commbench report</h1>
<p class="note">commbench {esc(__version__)}, written {esc(dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))}</p>
<ul>{run_list}</ul>
{warnings_html(runs)}
{machine_html(runs)}
{ceilings_html(runs)}
<nav>{nav}</nav>
{''.join(sections)}
{links_html(runs, out_dir, pngs)}
{fleet_html(runs, out_dir, pngs)}
{method_html(runs)}
{environment_html(runs)}
{LOAD_CHECK}
</body></html>
"""
    index = out_dir / "index.html"
    try:
        atomic_write_text(index, page)
    except OSError as exc:
        raise file_error(index, exc, "write it") from None
    return index


def prepare_out_dir(out_dir: Path | None, default: Path) -> Path:
    """The directory the report goes to, created and known to be writable before any figure
    is drawn: --out DIR as given, else RUN_DIR/report, which must not be a link planted in the
    run directory (the report would land wherever it points). RunDirError (one line naming
    the directory) when it cannot be written, e.g. a read-only run directory."""
    hint = "" if out_dir else "; give --out DIR to write the report elsewhere"
    path = out_dir or default
    if out_dir is None and path.is_symlink():
        raise RunDirError(f"{path_text(path)}: a symbolic link in the run directory, not followed"
                          f"{hint}")
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path_text(path)}: exists and is not a directory")
    probe = path / f".commbench-probe{os.getpid()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        write_file(probe, b"")
        probe.unlink()
    except OSError as exc:
        raise file_error(path, exc, "write the report there", hint) from None
    return path


def job_text(meta) -> str:
    """', Slurm job 12 step 0: node[0-3], tasks per node 1(x4)' for a run made in a job."""
    from bench.record import describe_job

    text = describe_job(meta.get("job"))
    return f", {text}" if text else ""


def render_backend(meta) -> str:
    backend = meta.get("backend")
    if isinstance(backend, dict):
        return str(backend.get("name", "?"))
    return str(backend or "?")


# ---------------------------------------------------------------- command
def add_arguments(parser) -> None:
    import argparse

    parser.description = __doc__.split("\n\n")[0]
    parser.epilog = __doc__.split("\n\n", 2)[2]
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="run directories (or sweep directories of runs), overlaid")
    parser.add_argument("--out", "-o", default=None,
                        help="directory for index.html and the PNGs (default FIRST_RUN_DIR/report)")
    parser.add_argument("--no-fit", action="store_true",
                        help="do not fit runs that have no fits.csv")


def main(args) -> int:
    index = write_report(args.run_dirs, args.out, fit_missing=not args.no_fit)
    print(f"wrote {index}")
    return 0
