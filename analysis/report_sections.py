"""The report's sections about the runs as a whole: warnings, the machine (contention, noise,
latency modes), the ceilings, links and skew across nodes, the fleet, the method and units,
and the environment each run recorded."""
from __future__ import annotations

import datetime as dt
import statistics
from typing import cast

from analysis.figures import png_bytes
from analysis.html_parts import esc, figure_html, meta_value_text, number_cell, render_value
from analysis.report_files import save_png
from bench.core.errors import UsageError
from bench.core.units import human_bytes

FLEET_MAX_SAMPLES = 2_000_000  # the fleet section (every rank's every sample) up to this many


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
    (analysis.triage_verdicts, analysis.timeline). Empty for fewer than 3 nodes or nothing to judge."""
    import matplotlib.pyplot as plt

    from analysis import timeline
    from analysis.triage_figure import fleet_map_figure
    from analysis.triage_output import format_text
    from analysis.triage_run_set import Run
    from analysis.triage_verdicts import MIN_VALUES, triage_runs

    from analysis.runsamples import as_samples

    if len({h for r in runs for h in r.meta.get("hosts") or []}) < MIN_VALUES:
        return ""  # fewer nodes than a verdict compares
    cells = sum(as_samples(r.samples).cells() for r in runs)
    if cells > FLEET_MAX_SAMPLES:  # the fleet section reads every rank's every sample
        return ("<h2 id='fleet'>Fleet</h2><p>Left out: these runs hold "
                f"{cells:,} samples of single ranks, and the fleet section "
                "reads every one of them (the report stops at "
                f"{FLEET_MAX_SAMPLES:,} to stay within seconds). "
                f"<code>commbench triage {' '.join(esc(str(r.path)) for r in runs)}</code> "
                "gives the verdicts per node and link.</p>")
    fleet = [Run(r.label, r.meta, as_samples(r.samples).frame(), r.summary) for r in runs]
    try:
        result = triage_runs(fleet)
    except UsageError:
        return ""
    parts = ["<h2 id='fleet'>Fleet</h2>", f"<pre>{esc(format_text(result))}</pre>"]
    fig = fleet_map_figure(fleet, result)
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
    from bench.core.runmeta import describe_contention, describe_noise

    lines = []
    for run in runs:
        meta = run.meta
        if meta.get("contention"):
            contended = any(h.get("contended") for h in meta["contention"].get("hosts", {}).values())
            text = describe_contention(meta["contention"])
            lines.append((contended, f"{run.label}: {'CONTENDED: ' if contended else ''}{text}"))
        if meta.get("noise"):
            lines.append((False, f"{run.label}: machine noise: {describe_noise(meta['noise'])}"))
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
    from bench.core.runmeta import COPY_BYTES, COPY_REPEATS, applies

    rows = []
    for run in runs:
        c = run.meta.get("ceilings")
        if not isinstance(c, dict) or not isinstance(c.get("hosts"), dict):
            continue
        rows_ = run.summary.to_dict("records") if "efficiency" in run.summary else []
        above = sum(1 for r in rows_ if r["efficiency"] > 1 and applies(r))
        cached = sum(1 for r in rows_ if not applies(r))
        one = (cast(dict, c.get("copy_one_core_spread_Bps"))
               if isinstance(c.get("copy_one_core_spread_Bps"), dict) else {})
        spread = (f" <span class='note'>(median {number_cell(one.get('median'), 1e-9, 3)}, slowest "
                  f"{number_cell(one.get('min'), 1e-9, 3)})</span>" if one.get("median") else "")
        for host, h in c["hosts"].items():
            if not isinstance(h, dict):
                continue
            nics = ", ".join(f"{esc(n.get('device', '?'))} {number_cell(n.get('rate_Bps'), 8e-9)} Gb/s"
                             for n in h.get("nics") or [] if isinstance(n, dict)) or "none declared"
            rows.append(f"<tr><td>{esc(run.label)}</td><td>{esc(host)}</td>"
                        f"<td>{number_cell(c.get('copy_one_core_Bps'), 1e-9, 3)}{spread}</td>"
                        f"<td>{esc(h.get('ranks', '–'))}</td><td>{number_cell(h.get('copy_node_Bps'), 1e-9)}</td>"
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
    sampling = cast(dict, settings.get("sampling")) if isinstance(settings.get("sampling"), dict) else {}
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
            parts = [f"{k} {meta_value_text(v, k)}" for k, v in info.items()
                     if k in ("library", "mpi4py", "torch", "nccl", "cuda", "device", "loop")]
            rows.append((f"backend {name}", "; ".join(parts) or "–"))
    if not backends and isinstance(meta.get("backend"), dict):  # older runs: one backend
        info = meta["backend"]
        rows.append(("backend", "; ".join(f"{k} {meta_value_text(v, k)}" for k, v in info.items()
                                          if not isinstance(v, (dict, list)))))
    elif not backends and meta.get("backend"):
        rows.append(("backend", render_backend(meta)))
    if settings:
        rows += [("sizes", sizes_text(settings.get("sizes"))),
                 ("dtype", str(meta.get("dtype") or settings.get("dtype", "–"))),
                 ("sampling", f"samples of at least {meta_value_text(settings.get('sample_time'), 'sample_time_s')}; "
                              f"stop at a 95% CI of {number_cell(settings.get('ci_target'), 100, 3)}% of the median, "
                              f"{settings.get('min_samples', '–')} to {settings.get('max_samples', '–')} samples, "
                              f"{meta_value_text(sampling.get('budget_s'), 'budget_s')} per case and round"),
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


def job_text(meta) -> str:
    """', Slurm job 12 step 0: node[0-3], tasks per node 1(x4)' for a run made in a job."""
    from bench.core.runmeta import describe_job

    text = describe_job(meta.get("job"))
    return f", {text}" if text else ""


def render_backend(meta) -> str:
    backend = meta.get("backend")
    if isinstance(backend, dict):
        return str(backend.get("name", "?"))
    return str(backend or "?")
