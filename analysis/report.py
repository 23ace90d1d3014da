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
none, the report fits in memory (analysis.fit, no bootstrap) unless --no-fit is given.
Units: times in µs (1e-6 s), bandwidth in GB/s (1 GB = 1e9 bytes), sizes in bytes with binary
prefixes (1 KiB = 1024 B). Stored data stay SI.
"""
from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path


# numpy, pandas and matplotlib are imported inside functions: the CLI parser imports this
# module for every command.

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf"]
FIG_W, FIG_H, DPI = 7.5, 4.2, 100
RANK_SPREAD_NOTICE = 0.02  # a rank this much slower than the median over ranks is named


@dataclass
class Run:
    path: Path
    label: str
    meta: dict
    samples: object   # DataFrame
    summary: object   # DataFrame
    fits: object = None   # DataFrame of fits.csv rows, or None
    fits_source: str = ""


@dataclass
class Series:
    """One curve: an op of one run on one (backend, nranks, dtype, split)."""
    run: Run
    key: tuple        # (backend, nranks, dtype, split)
    label: str
    color: str
    rows: object      # summary rows, sorted by nbytes
    segments: list = field(default_factory=list)  # [(nbytes_lo, nbytes_hi, alpha_s, beta)]


# ---------------------------------------------------------------- loading
def expand(paths) -> list:
    """(run dir, dir holding its fits.csv candidates) for run and sweep directories."""
    from analysis.rundir import RunDirError

    out = []
    for p in paths:
        p = Path(p)
        if (p / "meta.json").exists():
            out.append((p, [p]))
        elif p.is_dir() and any((d / "meta.json").exists() for d in p.iterdir()):
            out += [(d, [d, p]) for d in sorted(p.iterdir()) if (d / "meta.json").exists()]
        else:
            raise RunDirError(f"{p}: not a commbench run directory nor a sweep of them (no meta.json)")
    return out


def load_fits(dirs):
    """The first readable fits.csv among dirs, as (DataFrame, path) or (None, "")."""
    import pandas as pd

    need = {"backend", "op", "nranks", "model", "segment", "nbytes_lo", "nbytes_hi", "param", "value"}
    for d in dirs:
        path = Path(d) / "fits.csv"
        if path.exists():
            try:
                fits = pd.read_csv(path)
            except (ValueError, OSError):
                continue
            if need <= set(fits.columns):
                if "split" not in fits.columns:
                    fits["split"] = "all"
                return fits, str(path)
    return None, ""


def load_runs(paths, fit_missing=True) -> list:
    from analysis.rundir import RunDirError, load_run

    runs, labels = [], set()
    for run_dir, fit_dirs in expand(paths):
        meta, samples, summary = load_run(run_dir)
        if summary.empty:
            raise RunDirError(f"{run_dir}: no results yet (summary.csv is empty or missing)")
        label = str(meta.get("run_id") or run_dir.name)
        while label in labels:
            label += "'"
        labels.add(label)
        fits, source = load_fits(fit_dirs)
        runs.append(Run(run_dir, label, meta, samples, summary, fits, source))
    if fit_missing:
        for run in runs:
            if run.fits is None:
                run.fits, run.fits_source = fit_in_memory(run)
    return runs


def fit_in_memory(run):
    """Hockney fits of a run without fits.csv, from analysis.fit when it is there."""
    try:
        from analysis import fit
        from analysis.rundir import sample_times
    except ImportError:
        return None, ""
    if not hasattr(fit, "fit_times") or run.samples.empty:
        return None, ""
    times = sample_times(run.samples)
    times = times[(times["time_s"] > 0) & (times["nbytes"] > 0)]
    if times.empty:
        return None, ""
    try:
        fits = fit.fit_times(times, n_boot=0, meta_ops=run.meta.get("ops"))
    except Exception as exc:  # a fit failure must not cost the user the whole report
        return None, f"in-memory fit failed: {exc}"
    return fits, "fitted in memory by analysis.fit (no bootstrap: no fit intervals)"


# ---------------------------------------------------------------- series
def hockney_segments(fits, backend, op, nranks, split) -> list:
    """[(nbytes_lo, nbytes_hi, alpha_s, beta_s_per_byte)] of the Hockney fit of one case."""
    if fits is None or fits.empty:
        return []
    sel = fits[(fits["model"] == "hockney") & (fits["backend"] == backend) & (fits["op"] == op)
               & (fits["nranks"] == nranks) & (fits["split"] == split)]
    segments = []
    for _, seg in sel.groupby("segment", sort=True):
        params = dict(zip(seg["param"], seg["value"]))
        if "alpha_s" in params and "beta_s_per_byte" in params:
            segments.append((float(seg["nbytes_lo"].iloc[0]), float(seg["nbytes_hi"].iloc[0]),
                             float(params["alpha_s"]), float(params["beta_s_per_byte"])))
    return segments


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


def predict(segments, nbytes):
    """Hockney time at nbytes from the segment holding it (the nearest one outside them)."""
    if not segments:
        return float("nan")
    for lo, hi, alpha, beta in segments:
        if lo <= nbytes <= hi:
            return alpha + nbytes * beta
    nearest = min(segments, key=lambda s: min(abs(math.log(nbytes / s[0])), abs(math.log(nbytes / s[1]))))
    return nearest[2] + nbytes * nearest[3]


# ---------------------------------------------------------------- figures
def human_bytes(n) -> str:
    n = float(n)
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            v = n / size
            return f"{v:.0f} {unit}" if v == int(v) else f"{v:.3g} {unit}"
    return f"{n:.0f} B"


def plain(text) -> str:
    """Text for matplotlib: '$' would start mathtext."""
    return str(text).replace("$", r"\$")


def new_figure(nrows=1, ncols=1, height=FIG_H):
    from matplotlib.figure import Figure

    # fixed margins in inches: a layout engine would cost a second draw per figure
    fig = Figure(figsize=(FIG_W, height), dpi=DPI)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.9 / height, top=1 - 0.35 / height,
                        wspace=0.3, hspace=1.1 / (height / nrows))
    return fig, axes


def size_axis(ax, xlabel="S (bytes)") -> None:
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: human_bytes(x) if x >= 1 else ""))
    ax.set_xlabel(xlabel)
    ax.grid(True, which="major", alpha=0.3)
    for label in ax.get_xticklabels():
        label.set_rotation(30)


def log_axis(axis) -> None:
    """Log scale labelled with plain numbers (2, 5, 10, 20 rather than 2x10^0)."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    axis.axes.set_yscale("log")
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def sized(rows):
    return rows[rows["nbytes"] > 0]


def latency_figure(op, series):
    import numpy as np

    fig, axes = new_figure()
    ax = axes[0][0]
    fitted = False
    for s in series:
        r = sized(s.rows)
        if r.empty:
            continue
        x = r["nbytes"].to_numpy(float)
        ax.plot(x, r["median_s"] * 1e6, marker="o", ms=3, lw=1.3, color=s.color, label=plain(s.label))
        ax.fill_between(x, r["ci_low_s"] * 1e6, r["ci_high_s"] * 1e6, color=s.color, alpha=0.25, lw=0)
        for lo, hi, alpha, beta in s.segments:
            xs = np.geomspace(max(lo, 1.0), max(hi, lo, 1.0), 40)
            ax.plot(xs, (alpha + xs * beta) * 1e6, ls="--", lw=1.2, color="black", alpha=0.7, zorder=3)
            fitted = True
    if fitted:
        ax.plot([], [], ls="--", color="black", lw=1.1, label="Hockney fit α + S·β")
    ax.plot([], [], marker="o", ms=3, color="grey", label="median, 95% CI band")
    size_axis(ax)
    log_axis(ax.yaxis)
    ax.set_ylabel("time per op (µs)")
    ax.set_title(plain(f"{op}: latency against size"))
    ax.legend(fontsize=8)
    return fig


def bandwidth_figure(op, series):
    fig, axes = new_figure(1, 2)
    for ax, column, name in ((axes[0][0], "algbw_Bps", "algbw"), (axes[0][1], "busbw_Bps", "busbw")):
        for s in series:
            r = sized(s.rows)
            r = r[r[column] > 0]
            if r.empty:
                continue
            x = r["nbytes"].to_numpy(float)
            scale = r[column] / r["algbw_Bps"]  # the bus factor of each row
            ax.plot(x, r[column] / 1e9, marker="o", ms=3, lw=1.3, color=s.color, label=plain(s.label))
            # the interval of S / median, from the interval of the median
            ax.fill_between(x, x / r["ci_high_s"] * scale / 1e9, x / r["ci_low_s"] * scale / 1e9,
                            color=s.color, alpha=0.25, lw=0)
        size_axis(ax)
        ax.set_ylabel(f"{name} (GB/s, 1 GB = 1e9 B)")
        ax.set_title(plain(f"{op}: {name}"), fontsize=10)
        if ax.lines:
            ax.legend(fontsize=7)
    return fig


def rank_spread(samples, op, key):
    """DataFrame ranks x nbytes: each rank's median sample time over the median across ranks."""
    backend, nranks, dtype, split = key
    s = samples[(samples["op"] == op) & (samples["backend"] == backend) & (samples["nranks"] == nranks)
                & (samples["dtype"] == dtype) & (samples["split"] == split) & (samples["rank"] >= 0)]
    if s.empty or s["rank"].nunique() < 2:
        return None
    per_rank = s.groupby(["rank", "nbytes"])["time_s"].median().unstack("nbytes")
    return per_rank / per_rank.median(axis=0)


def ranks_figure(op, series):
    import numpy as np
    from matplotlib.colors import TwoSlopeNorm

    panels = [(s, rank_spread(s.run.samples, op, s.key)) for s in series]
    panels = [(s, m) for s, m in panels if m is not None]
    if not panels:
        return None, []
    fig, axes = new_figure(len(panels), 1, height=1.2 + 2.2 * len(panels))
    slowest = []
    for ax, (s, m) in zip(axes[:, 0], panels):
        values = m.to_numpy(float)
        top = float(np.nanmax(values)) if np.isfinite(values).any() else 1.0
        bottom = float(np.nanmin(values)) if np.isfinite(values).any() else 1.0
        norm = TwoSlopeNorm(vcenter=1.0, vmin=min(bottom, 0.99), vmax=max(top, 1.01))
        image = ax.imshow(values, aspect="auto", cmap="RdBu_r", norm=norm, interpolation="nearest")
        ax.set_yticks(range(len(m.index)) if len(m.index) <= 32 else [])
        ax.set_yticklabels([str(r) for r in m.index] if len(m.index) <= 32 else [])
        step = max(1, len(m.columns) // 12)
        ax.set_xticks(range(0, len(m.columns), step))
        ax.set_xticklabels([human_bytes(c) for c in m.columns[::step]], rotation=30, fontsize=8)
        ax.set_ylabel("rank")
        ax.set_xlabel("S")
        if values.size <= 80:
            digits = 3 if np.nanmax(np.abs(values - 1)) < 0.05 else 2
            for (i, j), v in np.ndenumerate(values):
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.{digits}f}", ha="center", va="center", fontsize=7)
        worst = m.mean(axis=1).idxmax()
        slowest.append((s, int(worst), float(m.mean(axis=1).max())))
        ax.set_title(plain(f"{op}, {s.label}: slowest rank {worst} "
                           f"(mean {m.mean(axis=1).max():.2f}x)"), fontsize=9)
        fig.colorbar(image, ax=ax, label="rank / median over ranks")
    return fig, slowest


def residuals_figure(op, series):
    import numpy as np

    fitted = [s for s in series if s.segments]
    if not fitted:
        return None
    fig, axes = new_figure()
    ax = axes[0][0]
    for s in fitted:
        r = sized(s.rows)
        x = r["nbytes"].to_numpy(float)
        pred = np.array([predict(s.segments, v) for v in x])
        rel = (r["median_s"].to_numpy() - pred) / pred * 100
        lo = (r["ci_low_s"].to_numpy() - pred) / pred * 100
        hi = (r["ci_high_s"].to_numpy() - pred) / pred * 100
        ax.errorbar(x, rel, yerr=[rel - lo, hi - rel], fmt="o-", ms=3, lw=1, capsize=2,
                    color=s.color, label=plain(s.label))
        for lo_b, hi_b, _, _ in s.segments[1:]:
            ax.axvline(lo_b, color=s.color, ls=":", lw=1)
    ax.axhline(0, color="black", lw=0.8)
    size_axis(ax)
    ax.set_ylabel("(measured − fit) / fit (%)")
    ax.set_title(plain(f"{op}: residuals of the Hockney fit (dotted: break points)"))
    ax.legend(fontsize=8)
    return fig


def sizeless_figure(op, series):
    """Ops without a size (barrier): one bar per series with its 95% interval."""
    fig, axes = new_figure(height=1.5 + 0.4 * len(series))
    ax = axes[0][0]
    for i, s in enumerate(series):
        r = s.rows.iloc[0]
        ax.barh(i, r["median_s"] * 1e6, color=s.color,
                xerr=[[(r["median_s"] - r["ci_low_s"]) * 1e6], [(r["ci_high_s"] - r["median_s"]) * 1e6]],
                capsize=3)
    ax.set_yticks(range(len(series)))
    ax.set_yticklabels([plain(s.label) for s in series], fontsize=8)
    ax.set_xlabel("time per op (µs), median and 95% CI")
    ax.set_title(plain(f"{op}: latency"))
    return fig


# ---------------------------------------------------------------- HTML pieces
def esc(value) -> str:
    return html.escape(str(value), quote=True)


def num(value, scale=1.0, digits=4) -> str:
    try:
        v = float(value) * scale
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(v):
        return "–"
    return f"{v:.{digits}g}"


def render_value(value) -> str:
    """Any JSON value from meta.json as escaped HTML."""
    if isinstance(value, dict):
        if not value:
            return "<i>none</i>"
        rows = "".join(f"<tr><th>{esc(k)}</th><td>{render_value(v)}</td></tr>" for k, v in value.items())
        return f"<table class='kv'>{rows}</table>"
    if isinstance(value, list):
        if all(not isinstance(v, (dict, list)) for v in value):
            return esc(" ".join(str(v) for v in value)) if value else "<i>none</i>"
        return "<ol>" + "".join(f"<li>{render_value(v)}</li>" for v in value) + "</ol>"
    if value is None:
        return "<i>–</i>"
    return esc(value)


def figure_html(name, title, png, caption="") -> str:
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return (f"<figure><img src='data:image/png;base64,{data}' alt='{esc(title)}' "
            f"title='{esc(name)}'>{cap}</figure>")


SUMMARY_HEAD = ["series", "S", "count", "median µs", "95% CI µs", "min µs", "max µs",
                "algbw GB/s", "busbw GB/s", "M msg/s", "samples", "rounds", "#wrong", "modes (µs)"]


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
            size = human_bytes(r["nbytes"])
            if not size.endswith(" B"):
                size += f" ({int(r['nbytes'])} B)"
            cells = [esc(s.label), esc(size),
                     num(r["count"], digits=12), num(r["median_s"], 1e6),
                     f"{num(r['ci_low_s'], 1e6)} – {num(r['ci_high_s'], 1e6)}",
                     num(r["min_s"], 1e6), num(r["max_s"], 1e6), num(r["algbw_Bps"], 1e-9),
                     num(r["busbw_Bps"], 1e-9), num(r["msg_rate_per_s"], 1e-6),
                     num(r["samples"], digits=12), num(r["rounds"], digits=12), str(wrong),
                     esc(modes_text(r))]
            cls = " class='wrong'" if wrong else ""
            body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table class='data'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


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
             "ops_per_call": "ops per timed call", "doc": "what is timed"}
    items = [(names.get(k, k), v) for k, v in info.items()]
    return "<table class='kv'>" + "".join(
        f"<tr><th>{esc(k)}</th><td>{render_value(v)}</td></tr>" for k, v in items) + "</table>"


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5em auto;
max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}
table{border-collapse:collapse;font-size:.82em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:2px 6px;vertical-align:top;text-align:left}
table.data td{text-align:right;font-variant-numeric:tabular-nums}
table.data td:first-child{text-align:left}
table.kv th{background:#f6f6f6;font-weight:600}
tr.wrong td{background:#fdd}.warn{background:#fff3cd;border:1px solid #e0c36c;padding:.5em 1em}
li.bad{color:#8a1c1c}
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
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)) or "op"


def ordered_ops(runs) -> list:
    try:
        from bench.ops import OPS
        order = list(OPS)
    except Exception:  # the report must not depend on the measuring side importing
        order = []
    ops = []
    for run in runs:
        for op in run.summary["op"].unique():
            if op not in ops:
                ops.append(op)
    return sorted(ops, key=lambda o: (order.index(o) if o in order else len(order), o))


def op_section(op, runs, out_dir, pngs) -> str:
    series = series_of(runs, op)
    parts = [f"<h2 id='op-{esc(slug(op))}'>{esc(op)}</h2>", op_info_html(op, runs)]
    figures = []
    if all((s.rows["nbytes"] <= 0).all() for s in series):
        figures.append(("latency", f"{op}: latency", sizeless_figure(op, series), ""))
    else:
        figures.append(("latency", f"{op}: latency against size", latency_figure(op, series),
                        "Median time per op (max over ranks per sample) with its 95% "
                        "order-statistic confidence band; dashed: the fitted Hockney model."))
        figures.append(("bandwidth", f"{op}: algbw and busbw", bandwidth_figure(op, series),
                        "algbw = S / median time; busbw = algbw x bus factor (nccl-tests "
                        "convention); bands from the interval of the median."))
        fig = residuals_figure(op, series)
        if fig is not None:
            figures.append(("residuals", f"{op}: residuals of the fit", fig,
                            "Relative distance of the median (bars: its 95% CI) from the fit."))
    fig, slowest = ranks_figure(op, series)
    if fig is not None:
        figures.append(("ranks", f"{op}: per-rank spread", fig,
                        "Each rank's median sample time over the median across ranks; "
                        "red ranks are slow. A sample's time is the max over ranks, so the "
                        "slowest rank sets it."))
    for s, rank, ratio in slowest:
        if ratio > 1 + RANK_SPREAD_NOTICE:
            parts.append(f"<p>{esc(s.label)}: slowest rank: {rank} ({ratio:.3g}x the median "
                         "over ranks, mean over sizes)</p>")
        else:
            parts.append(f"<p>{esc(s.label)}: no rank stands out (all within "
                         f"{RANK_SPREAD_NOTICE:.0%} of the median over ranks)</p>")
    for kind, title, fig, caption in figures:
        png = png_bytes(fig)
        name = f"{kind}-{slug(op)}.png"
        (out_dir / name).write_bytes(png)
        pngs.append(name)
        parts.append(figure_html(name, title, png, caption))
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
        hosts = list(run.meta.get("hosts") or [])
        n = max(len(hosts), int(table[["a", "b"]].max().max()) + 1)
        hosts += [f"rank{r}" for r in range(len(hosts), n)]
        for key, group in table.groupby(links.CASE_KEYS):
            case = dict(zip(links.CASE_KEYS, key))
            fig = links.heatmap_figure(group, hosts, title=f"{run.label}: pairs, {case['backend']}, "
                                                           f"S = {human_bytes(int(case['nbytes']))}")
            png = png_bytes(fig)
            plt.close(fig)
            name = f"links-{slug(run.label)}-{slug(str(case['backend']))}-{int(case['nbytes'])}.png"
            (out_dir / name).write_bytes(png)
            pngs.append(name)
            parts.append(figure_html(name, f"link map, S = {human_bytes(int(case['nbytes']))}", png,
                                     "Latency (small S) or bandwidth (large S) of every pair of "
                                     "ranks; boxed: outlier links; red labels: outlier nodes. "
                                     + links.RULE))
    if not parts:
        return ""
    return "<h2 id='links'>Links and skew</h2>" + "\n".join(parts)


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
                shown = ", ".join(cases[:8]) + (f" and {len(cases) - 8} more" if len(cases) > 8 else "")
                lines.append((True, f"{run.label}: {len(multi)} of {len(run.summary)} cases have "
                                    f"several latency modes (the machine switched modes while it "
                                    f"ran; the median mixes them, the modes column separates "
                                    f"them){span}: {shown}"))
    if not lines:
        return ""
    body = "".join(f"<li class='{'bad' if bad else ''}'>{esc(text)}</li>" for bad, text in lines)
    return f"<h2 id='machine'>Machine</h2><ul class='machine'>{body}</ul>"


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
        parts.append(f"<h3>{esc(run.label)}</h3>" + render_value(block))
    return "\n".join(parts)


def environment_html(runs) -> str:
    parts = ["<h2 id='environment'>Environment</h2>"]
    for run in runs:
        rest = {k: v for k, v in run.meta.items() if k not in ("ops", "method")}
        parts.append(f"<details open><summary>{esc(run.label)} — {esc(run.path)}</summary>"
                     f"{render_value(rest)}</details>")
    return "\n".join(parts)


def write_report(paths, out_dir=None, fit_missing=True) -> Path:
    """Write index.html and the PNG figures; return the path of index.html."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    runs = load_runs(paths, fit_missing)
    out_dir = Path(out_dir) if out_dir else Path(paths[0]) / "report"
    if out_dir.exists() and not out_dir.is_dir():
        from bench.errors import UsageError

        raise UsageError(f"{out_dir}: exists and is not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    ops = ordered_ops(runs)
    pngs: list = []
    sections = [op_section(op, runs, out_dir, pngs) for op in ops]
    nav = " ".join(f"<a href='#op-{esc(slug(op))}'>{esc(op)}</a>" for op in ops)
    nav += " <a href='#method'>method and units</a> <a href='#environment'>environment</a>"
    run_list = "".join(f"<li><b>{esc(r.label)}</b> — {esc(r.path)} — status "
                       f"{esc(r.meta.get('status', '?'))}, {esc(r.meta.get('nranks', '?'))} ranks, "
                       f"backend {esc(render_backend(r.meta))}</li>" for r in runs)
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
<nav>{nav}</nav>
{''.join(sections)}
{links_html(runs, out_dir, pngs)}
{method_html(runs)}
{environment_html(runs)}
{LOAD_CHECK}
</body></html>
"""
    index = out_dir / "index.html"
    from analysis.rundir import atomic_write_text

    atomic_write_text(index, page)
    return index


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
