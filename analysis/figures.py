"""The figures of `commbench report` (analysis.report_ops, analysis.report_sections): matplotlib figures of one op over
several series (runs, backends, rank counts) — latency against S with the fitted Hockney model,
algbw and busbw, the per-rank spread, the residuals of the fit, and a bar chart for ops without
a size — and the PNG bytes the page embeds.

Units: times in µs (1e-6 s), bandwidth in GB/s (1 GB = 1e9 bytes), sizes in bytes with binary
prefixes (1 KiB = 1024 B). numpy and matplotlib are imported inside the functions: the CLI
parser imports the report, and so this module, for every command.
"""
from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass, field

from analysis.hockney import hockney_time
from bench.core.atomic_write import atomic_write_bytes
from bench.core.rundir import FLAGS, split_flags
from bench.core.units import human_bytes

# Flagged rows (summary.csv `flags`, bench.core.rundir.FLAGS) are never drawn as bandwidth
# points (their bandwidth is no measurement or cannot be trusted); latency figures draw them hollow.

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf"]
FIG_W, FIG_H, DPI = 7.5, 4.2, 100


@dataclass
class Series:
    """One curve: an op of one run on one (backend, nranks, dtype, split)."""
    run: object       # the run it comes from (analysis.run_set.Run: samples for the ranks figure)
    key: tuple        # (backend, nranks, dtype, split)
    label: str
    color: str
    rows: object      # summary rows, sorted by nbytes
    segments: list = field(default_factory=list)  # [(nbytes_lo, nbytes_hi, alpha_s, beta)]


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


# ---- files: names built from run-directory contents, written without following links
NAME_LIMIT = 120  # characters of a file name built from run-directory contents


def safe_name(*parts, ext: str = ".png", used: set | None = None) -> str:
    """A file name made of parts (names from a run directory: backend, split, op, run id):
    only letters, digits and `_.-` (any run of other characters, '/' included, is one '_'), joined by
    '-', no leading dot, at most NAME_LIMIT characters (a long one ends in a hash of the
    whole), and not one of `used` (a suffix -2, -3, ... where two parts sanitise alike; the
    name is added to used). A name that is safe already stays as it is."""
    raw = "-".join(str(p) for p in parts)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", raw).lstrip(".") or "_"
    if len(name) > NAME_LIMIT:
        name = name[:NAME_LIMIT - 9] + "-" + hashlib.sha1(raw.encode("utf-8", "replace")).hexdigest()[:8]
    unique, k = name, 1
    while used is not None and unique + ext in used:
        k += 1
        unique = f"{name}-{k}"
    if used is not None:
        used.add(unique + ext)
    return unique + ext


def write_file(path, data: bytes) -> None:
    """Replace path with data in one step (bench.core.atomic_write.atomic_write_bytes): a link
    planted at path is replaced, never followed, so nothing is written outside the directory
    of path. OSError when it cannot be written."""
    atomic_write_bytes(path, data)


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def sized(rows):
    return rows[rows["nbytes"] > 0]


def flagged(rows):
    """Boolean Series over rows: the row carries at least one flag."""
    if "flags" not in rows:
        return rows["nbytes"] != rows["nbytes"]  # all False, same index
    return rows["flags"].map(lambda v: bool(split_flags(v)))


def bandwidth_rows(rows, column):
    """The rows of one series a bandwidth figure draws for `column` (algbw_Bps, busbw_Bps):
    sized, with a positive bandwidth, and no flag (a flagged bandwidth is not a measurement)."""
    r = sized(rows)
    r = r[r[column] > 0]
    return r[~flagged(r)]


def left_out_flags(series) -> dict:
    """{flag: number of sized rows carrying it} over the series: what bandwidth figures leave
    out, in the order of FLAGS (unknown words last)."""
    counts: dict = {}
    for s in series:
        for value in sized(s.rows).get("flags", []):
            for word in split_flags(value):
                counts[word] = counts.get(word, 0) + 1
    order = list(FLAGS)
    return dict(sorted(counts.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order
                                                       else len(order), kv[0])))


def mixed_modes(rows):
    """Boolean Series over rows: the row's samples fall into several latency modes (summary
    `modes` > 1), so its median mixes them."""
    if "modes" not in rows:
        return rows["nbytes"] != rows["nbytes"]
    return rows["modes"].fillna(1) > 1


def ceiling_line(s, op, column):
    """(name, bytes/s) of the ceiling a series' `column` panel is set against (summary
    `ceiling`, the rate recovered as bandwidth / efficiency over rows where it applies), or
    None: the panel of the bandwidth the efficiency uses (meta.json → ops → efficiency_of)."""
    import numpy as np

    info = ((s.run.meta.get("ops") or {}).get(op) or {}) if isinstance(s.run.meta, dict) else {}
    if f"{info.get('efficiency_of', 'busbw')}_Bps" != column or "ceiling" not in s.rows:
        return None
    r = sized(s.rows)
    named = r["ceiling"].map(lambda c: isinstance(c, str) and c != "").astype(bool)
    r = r[(r["efficiency"] > 0).to_numpy() & (r[column] > 0).to_numpy() & named.to_numpy()]
    if r.empty:
        return None
    return str(r["ceiling"].iloc[0]), float(np.median(r[column] / r["efficiency"]))


def flag_words(frames) -> list:
    """The flags that occur in the rows of frames, each once, in order of appearance."""
    words: list = []
    for rows in frames:
        for value in rows.get("flags", []):
            words += [w for w in split_flags(value) if w not in words]
    return words


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
        mixed = mixed_modes(r).to_numpy(bool)
        if mixed.any():  # a median of samples from two latency modes: the curve may zig-zag
            ax.plot(x[mixed], r["median_s"].to_numpy(float)[mixed] * 1e6, ls="none", marker="D",
                    ms=7, mfc="none", mec=s.color, mew=1.0, zorder=4)
        marked = flagged(r).to_numpy(bool)
        if marked.any():  # flagged rows: hollow markers over the filled ones
            ax.plot(x[marked], r["median_s"].to_numpy(float)[marked] * 1e6, ls="none", marker="o",
                    ms=5, mfc="white", mec=s.color, mew=1.2, zorder=4)
        for lo, hi, alpha, beta in s.segments:
            xs = np.geomspace(max(lo, 1.0), max(hi, lo, 1.0), 40)
            ax.plot(xs, (alpha + xs * beta) * 1e6, ls="--", lw=1.2, color="black", alpha=0.7, zorder=3)
            fitted = True
    if fitted:
        ax.plot([], [], ls="--", color="black", lw=1.1, label="Hockney fit α + S·β")
    ax.plot([], [], marker="o", ms=3, color="grey", label="median, 95% CI band")
    if any(mixed_modes(sized(s.rows)).any() for s in series):
        ax.plot([], [], ls="none", marker="D", ms=7, mfc="none", mec="grey", mew=1.0,
                label="diamond: the median mixes latency modes")
    words = flag_words(sized(s.rows) for s in series)
    if words:
        ax.plot([], [], ls="none", marker="o", ms=5, mfc="white", mec="grey", mew=1.2,
                label=plain(f"hollow: flagged ({', '.join(words)})"))
    size_axis(ax)
    log_axis(ax.yaxis)
    ax.set_ylabel("time per op (µs)")
    ax.set_title(plain(f"{op}: latency against size"))
    ax.legend(fontsize=8)
    return fig


def bandwidth_figure(op, series):
    """algbw and busbw against S, one panel each; only unflagged rows with a positive bandwidth
    (bandwidth_rows). A panel with nothing to draw is left out; None when both are."""
    panels = [(column, name) for column, name in (("algbw_Bps", "algbw"), ("busbw_Bps", "busbw"))
              if any(not bandwidth_rows(s.rows, column).empty for s in series)]
    if not panels:
        return None
    fig, axes = new_figure(1, len(panels))
    for ax, (column, name) in zip(axes[0], panels):
        for s in series:
            r = bandwidth_rows(s.rows, column)
            if r.empty:
                continue
            x = r["nbytes"].to_numpy(float)
            scale = r[column] / r["algbw_Bps"]  # the bus factor of each row
            ax.plot(x, r[column] / 1e9, marker="o", ms=3, lw=1.3, color=s.color, label=plain(s.label))
            # the interval of S / median, from the interval of the median
            ax.fill_between(x, x / r["ci_high_s"] * scale / 1e9, x / r["ci_low_s"] * scale / 1e9,
                            color=s.color, alpha=0.25, lw=0)
            line = ceiling_line(s, op, column)
            if line:  # the measured limit the % of ceiling column divides by
                ax.axhline(line[1] / 1e9, color=s.color, ls=":", lw=1.4,
                           label=plain(f"ceiling {line[0]} {line[1] / 1e9:.3g} GB/s"))
        size_axis(ax)
        ax.set_ylabel(f"{name} (GB/s, 1 GB = 1e9 B)")
        ax.set_title(plain(f"{op}: {name}"), fontsize=10)
        if ax.lines:
            ax.legend(fontsize=7)
    return fig


def rank_spread(samples, op, key):
    """DataFrame ranks x nbytes: each rank's median sample time over the median across ranks.
    samples: analysis.runsamples.RunSamples or a frame of sample rows."""
    from analysis.runsamples import as_samples

    medians = as_samples(samples).rank_medians(op, key)
    if medians.empty or medians["rank"].nunique() < 2:
        return None
    per_rank = medians.set_index(["rank", "nbytes"])["time_s"].unstack("nbytes")
    return per_rank / per_rank.median(axis=0)


MAX_RANK_ROWS = 32  # ranks drawn one row each; more ranks: the slowest, and quantiles of all
RANKS_SCALE = 0.10  # the heatmap spans at least 1 ± 10%: a 0.6% difference stays pale


def ranks_figure(op, series, notice=0.02):
    import numpy as np
    from matplotlib.colors import TwoSlopeNorm

    panels = [(s, rank_spread(s.run.samples, op, s.key)) for s in series]
    panels = [(s, m) for s, m in panels if m is not None]
    if not panels:
        return None, []
    fig, axes = new_figure(len(panels), 1, height=1.2 + 2.2 * len(panels))
    slowest = []
    for ax, (s, m) in zip(axes[:, 0], panels):
        mean = m.mean(axis=1)
        worst = mean.idxmax()
        slowest.append((s, int(worst), float(mean.max())))
        everyone = len(m.index)
        if everyone > MAX_RANK_ROWS:  # a fleet: its slowest ranks, and where the rest lie
            m = m.loc[mean.sort_values(ascending=False).index[:MAX_RANK_ROWS]]
        values = m.to_numpy(float)
        finite = values[np.isfinite(values)]
        half = max(RANKS_SCALE, float(np.abs(finite - 1).max()) if finite.size else 0.0)
        norm = TwoSlopeNorm(vcenter=1.0, vmin=max(1.0 - half, 1e-3), vmax=1.0 + half)
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
        ratio = float(mean.max())
        if everyone > MAX_RANK_ROWS:
            q = np.nanquantile(mean.to_numpy(float), [0.5, 0.99])
            title = (f"the {MAX_RANK_ROWS} slowest of {everyone} ranks (mean over sizes: median "
                     f"rank {q[0]:.3f}x, 99th percentile {q[1]:.3f}x, slowest {ratio:.3f}x)")
        else:
            title = (f"slowest rank {worst} (mean {ratio:.3g}x)" if ratio > 1 + notice else
                     f"no rank stands out (all within {notice:.0%})")
        ax.set_title(plain(f"{op}, {s.label}: {title}"), fontsize=9)
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
        pred = np.array([hockney_time(s.segments, v) for v in x])
        rel = (r["median_s"].to_numpy() - pred) / pred * 100
        lo = (r["ci_low_s"].to_numpy() - pred) / pred * 100
        hi = (r["ci_high_s"].to_numpy() - pred) / pred * 100
        ax.errorbar(x, rel, yerr=[rel - lo, hi - rel], fmt="o-", ms=3, lw=1, capsize=2,
                    color=s.color, label=plain(s.label))
        for lo_b, _hi_b, _, _ in s.segments[1:]:
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
    labels = []
    for i, s in enumerate(series):
        r = s.rows.iloc[0]
        words = split_flags(r.get("flags"))
        ax.barh(i, r["median_s"] * 1e6, color="white" if words else s.color, edgecolor=s.color,
                xerr=[[(r["median_s"] - r["ci_low_s"]) * 1e6], [(r["ci_high_s"] - r["median_s"]) * 1e6]],
                capsize=3)
        labels.append(s.label + (f" [{', '.join(words)}]" if words else ""))
    ax.set_yticks(range(len(series)))
    ax.set_yticklabels([plain(t) for t in labels], fontsize=8)
    # room for the labels (about 6.5 px a character at 8 pt, and the ticks), within half the width
    fig.subplots_adjust(left=min(0.5, max(0.1, (20 + 6.5 * max(map(len, labels))) / (FIG_W * DPI))))
    ax.set_xlabel("time per op (µs), median and 95% CI")
    ax.set_title(plain(f"{op}: latency"))
    return fig

