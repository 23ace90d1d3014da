"""`commbench compare`: is NEW slower than BASE, case by case, beyond the noise? The runs'
cases joined, each case's test at its unit of replication and its verdict, the output and the
command. What the command does and why is its help text: DESCRIPTION and EPILOG below."""
from __future__ import annotations

import json
import math
import sys

from analysis.output_formats import FORMATS, markdown_table, md_escape, verdict_counts
from bench.core.safe_text import one_line
from bench.core.rundir import CASE
from bench.core.errors import RunDirError, UsageError
from bench.core.tables import text_table
from bench.core.units import human_bytes

# numpy, pandas and scipy are imported inside the functions: building the CLI parser imports
# this module for every command, `commbench run` included.

JOIN = ["backend", "op", "nbytes", "nranks", "split"]
VERDICTS = ("slower", "not significant", "faster")  # the order of the closing count
CONFIDENCE = 0.95
NEIGHBOURS = 3        # consecutive sizes that must agree for an unreplicated verdict
DEFAULT_NOISE = 1.1   # run-to-run ratio assumed where neither side measured its noise


# ---------------------------------------------------------------- loading
def load_side(run_dirs):
    """Sample times of the run directories of one side (JOIN + run, round, sample, time_s),
    {run dir: tool} of those imported from other tools, how many launches of the ranks
    the side holds (`commbench run --launches`; one per run directory when not recorded) and
    the largest noise its run directories measured (`measured_noise`; None when none did)."""
    import pandas as pd

    from analysis.meta_checks import load_checked_meta
    from bench.core.safe_text import path_text
    from analysis.runsamples import RunSamples

    frames, imported, launches, noise = [], {}, 0, None
    for i, run_dir in enumerate(run_dirs):
        meta = load_checked_meta(run_dir)  # a clear error for a path that is not a run directory
        launches += max(1, len(meta.get("launches") or []))
        mine = measured_noise(meta)
        if mine is not None:
            noise = max(noise or mine, mine)
        if meta.get("source"):
            imported[str(run_dir)] = meta["source"]
        times = RunSamples(run_dir, meta).times()  # checked: finite positive times, ...
        if times.empty:
            raise RunDirError(f"{path_text(run_dir)}: no samples")
        frames.append(times[CASE + ["round", "sample", "time_s"]].assign(run=i))
    return pd.concat(frames, ignore_index=True), imported, launches, noise


# What of meta.json can change a time, so a comparison names it first where the sides differ:
# (label, path into meta.json). Settings of the sampling, where and how the calls run, the
# libraries and versions, and the machine.
SETTINGS = [("commbench", ("commbench",)), ("ranks", ("nranks",)), ("nodes", ("nnodes",)),
            ("loop", ("method", "loop")), ("dtype", ("settings", "dtype")),
            ("device", ("settings", "device")), ("--cuda-graph", ("settings", "cuda_graph")),
            ("--timer", ("settings", "timer")), ("--sample-time", ("settings", "sample_time")),
            ("--ci-target", ("settings", "ci_target")),
            ("--min-samples", ("settings", "min_samples")),
            ("--max-samples", ("settings", "max_samples")), ("--budget", ("settings", "budget")),
            ("--repeats", ("settings", "repeats")), ("--launches", ("settings", "launches")),
            ("python", ("versions", "python")), ("numpy", ("versions", "numpy")),
            ("platform", ("versions", "platform")), ("hosts", ("hosts",))]
BACKEND_KEYS = ("library", "mpi4py", "torch", "nccl", "cuda", "device", "gloo")


def _setting(meta: dict, path) -> str:
    value: object = meta
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in sorted(value.items()))
    if isinstance(value, list):
        return ", ".join(sorted({str(v) for v in value}))
    return "–" if value is None else str(value)


def settings_of(meta: dict) -> dict:
    """{label: text} of what in one run's meta.json can change its times (SETTINGS, and each
    backend's library versions)."""
    out = {label: _setting(meta, path) for label, path in SETTINGS}
    for name, info in sorted((meta.get("backends") or {}).items()):
        for key in BACKEND_KEYS:
            if isinstance(info, dict) and key in info:
                out[f"{name} {key}"] = _setting(info, (key,))
    return out


def differing_settings(base_metas, new_metas) -> list:
    """'label: BASE vs NEW' for every setting or version (settings_of) that differs between
    the sides (several runs on a side: their values joined by ' / ')."""
    def side(metas):
        found: dict = {}
        for meta in metas:
            for label, text in settings_of(meta).items():
                found.setdefault(label, [])
                if text not in found[label]:
                    found[label].append(text)
        return {k: " / ".join(v) for k, v in found.items()}

    base, new = side(base_metas), side(new_metas)
    return [f"{label}: {base.get(label, '–')} vs {new.get(label, '–')}"
            for label in dict.fromkeys([*base, *new]) if base.get(label) != new.get(label)]


def measured_noise(meta: dict) -> float | None:
    """The run-to-run ratio a run's own noise calibration saw (meta.json -> noise -> pingpong
    -> max_over_min: the slowest over the fastest burst median of an 8 B ping-pong), or None
    when the run did not measure it (imports, `--no-noise`)."""
    ping = ((meta.get("noise") or {}).get("pingpong") or {}) if isinstance(meta.get("noise"), dict) else {}
    value = ping.get("max_over_min") if isinstance(ping, dict) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
            and value >= 1:
        return float(value)
    return None


# ---------------------------------------------------------------- statistics
def unit_values(times) -> tuple:
    """The values to test for one case of one side: per-(run, round) medians when there are
    at least 2 such units, else the raw sample times."""
    rounds = times.groupby(["run", "round"])["time_s"].median().to_numpy()
    if rounds.size >= 2:
        return rounds, "rounds"
    return times["time_s"].to_numpy(), "samples"


def one_sided_p(new, base, alternative: str) -> float:
    from scipy.stats import mannwhitneyu

    p = float(mannwhitneyu(new, base, alternative=alternative).pvalue)
    return p if p == p else 1.0  # all values tied: no evidence either way


def smallest_p(n1: int, n2: int) -> float:
    """The smallest one-sided p an exact Mann-Whitney test can give for n1 vs n2 values."""
    try:
        return 1.0 / math.comb(n1 + n2, n1)
    except OverflowError:  # thousands of samples: as good as zero
        return 0.0


def ratio_interval(base, new, confidence=CONFIDENCE) -> tuple[float, float]:
    """Distribution-free interval of the typical ratio NEW / BASE: the order statistics of all
    pairwise log ratios that the Mann-Whitney test itself implies (Moses' interval for the
    Hodges-Lehmann shift, on log times). Robust to outlying rounds and deterministic."""
    import numpy as np
    from scipy.stats import norm

    base, new = _thin(np.log(base)), _thin(np.log(new))
    diffs = np.sort(np.subtract.outer(new, base).ravel())
    n1, n2 = new.size, base.size
    # the count of pairwise differences cut off at each end (normal approximation of U)
    k = n1 * n2 / 2 - norm.ppf(0.5 + confidence / 2) * math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
    cut = max(0, int(math.floor(k)) - 1)
    return float(np.exp(diffs[cut])), float(np.exp(diffs[-1 - cut]))


def _thin(x, most=1000):
    """At most `most` evenly spaced quantiles: thousands of raw samples keep the pairwise
    differences cheap (the interval then is that of `most` values, slightly wider)."""
    import numpy as np

    if x.size <= most:
        return x
    return np.quantile(x, (np.arange(most) + 0.5) / most)


def verdict(ratio: float, p_slower: float, p_faster: float, factor: float, alpha: float) -> str:
    if ratio > factor and p_slower < alpha:
        return "slower"
    if ratio < 1 / factor and p_faster < alpha:
        return "faster"
    return "not significant"


def compare_case(base_times, new_times, factor, alpha) -> dict:
    import numpy as np

    base, base_unit = unit_values(base_times)
    new, new_unit = unit_values(new_times)
    unit = "rounds" if base_unit == new_unit == "rounds" else "samples"
    if unit == "samples":  # both sides must be of the same kind
        base, new = base_times["time_s"].to_numpy(), new_times["time_s"].to_numpy()
    base_med, new_med = float(np.median(base)), float(np.median(new))
    ratio = new_med / base_med
    # the null hypotheses are shifted by the factor: "slower" means worse than the factor
    p_slower = one_sided_p(new, base * factor, "greater")
    p_faster = one_sided_p(new, base / factor, "less")
    lo, hi = ratio_interval(base, new)
    return {
        "unit": unit, "n_base": int(base.size), "n_new": int(new.size),
        "base_median_s": base_med, "new_median_s": new_med,
        "ratio": ratio, "ratio_ci_low": lo, "ratio_ci_high": hi,
        "p_value": p_slower if ratio >= 1 else p_faster,
        "verdict": verdict(ratio, p_slower, p_faster, factor, alpha),
        "_p": (p_slower, p_faster),  # for the unreplicated pass; dropped before output
    }


def compare_runs(base_dirs, new_dirs, factor=1.1, alpha=0.05, ops=None) -> dict:
    """The comparison as a plain dict (what --format json prints)."""
    if not factor >= 1:
        raise UsageError(f"--factor must be at least 1, got {factor}")
    if not 0 < alpha < 1:
        raise UsageError(f"--alpha must be between 0 and 1, got {alpha}")
    (base, base_imported, base_launches, base_noise), (new, new_imported, new_launches, new_noise) = \
        load_side(base_dirs), load_side(new_dirs)
    if ops:
        base, new = base[base["op"].isin(ops)], new[new["op"].isin(ops)]
    base_groups = dict(list(base.groupby(JOIN, sort=True)))
    new_groups = dict(list(new.groupby(JOIN, sort=True)))
    common = [key for key in base_groups if key in new_groups]
    if not common:
        raise UsageError("no case in common: the runs share no (backend, op, nbytes, nranks)")
    rows = []
    for key in common:
        row = dict(zip(JOIN, key))
        row["nbytes"], row["nranks"] = int(row["nbytes"]), int(row["nranks"])
        row.update(compare_case(base_groups[key], new_groups[key], factor, alpha))
        rows.append(row)
    measured = [n for n in (base_noise, new_noise) if n is not None]
    noise: dict = {"ratio": max(measured), "source": "measured"} if measured else \
        {"ratio": DEFAULT_NOISE, "source": "default"}
    unreplicated(rows, factor, alpha, noise["ratio"])
    for row in rows:
        row.pop("_p", None)
    from analysis.meta_checks import load_checked_meta

    result = {
        "base": [str(d) for d in base_dirs], "new": [str(d) for d in new_dirs],
        "differs": differing_settings([load_checked_meta(d) for d in base_dirs],
                                      [load_checked_meta(d) for d in new_dirs]),
        "factor": factor, "alpha": alpha, "noise": noise, "rows": rows,
        "counts": {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS},
        "notes": notes(rows, base_groups, new_groups, alpha, base_launches, new_launches,
                       {**base_imported, **new_imported}, noise=noise, factor=factor),
        # the same notes with what they quote from the runs escaped for Markdown (not in JSON)
        "_markdown_notes": notes(rows, base_groups, new_groups, alpha, base_launches,
                                 new_launches, {**base_imported, **new_imported}, md_escape,
                                 noise=noise, factor=factor),
    }
    result["exit_status"] = 1 if result["counts"]["slower"] else 0
    return result


def unreplicated(rows, factor: float, alpha: float, noise: float) -> None:
    """Verdicts of the unreplicated rows (unit 'samples'; module docstring), in place: each
    gets `evidence` {ratio, agree, of, sizes, threshold}: the window of NEIGHBOURS consecutive
    sizes of its series that holds it and agrees best with the direction of its ratio."""
    import numpy as np

    series: dict = {}
    for row in rows:
        series.setdefault((row["backend"], row["op"], row["nranks"], row["split"]), []).append(row)
    threshold = factor * noise
    for members in series.values():
        members.sort(key=lambda r: r["nbytes"])
        if not any(r["unit"] == "samples" for r in members):
            continue
        ratios = np.array([r["ratio"] for r in members])
        # the rank test counts where it can reach alpha (several samples on both sides)
        decides = np.array([smallest_p(r["n_base"], r["n_new"]) < alpha for r in members])
        p_slower = np.array([r["_p"][0] for r in members])
        p_faster = np.array([r["_p"][1] for r in members])
        beyond = {"slower": (ratios > threshold) & (~decides | (p_slower < alpha)),
                  "faster": (ratios < 1 / threshold) & (~decides | (p_faster < alpha))}
        n = len(members)
        for i, row in enumerate(members):
            if row["unit"] != "samples":
                continue
            direction = "slower" if row["ratio"] >= 1 else "faster"
            # the windows of NEIGHBOURS sizes that hold case i; the best agreeing one wins,
            # ties going to the one centred on i
            centre = min(max(i - NEIGHBOURS // 2, 0), max(n - NEIGHBOURS, 0))
            starts = range(max(0, i - NEIGHBOURS + 1), min(i, n - NEIGHBOURS) + 1)
            windows = [slice(s, s + NEIGHBOURS) for s in starts] or [slice(0, n)]
            best = max(windows, key=lambda w: (int(beyond[direction][w].sum()),
                                               -abs(w.start - centre)))
            agree = int(beyond[direction][best].sum())
            row["evidence"] = {
                "kind": "unreplicated", "ratio": float(np.median(ratios[best])), "agree": agree,
                "of": NEIGHBOURS, "sizes": [members[j]["nbytes"] for j in range(n)[best]],
                "threshold": threshold if direction == "slower" else 1 / threshold}
            whole = n >= NEIGHBOURS and agree == NEIGHBOURS and beyond[direction][i]
            row["verdict"] = direction if whole else "not significant"


def notes(rows, base_groups, new_groups, alpha, base_launches=1, new_launches=1, imported=None,
          quote=None, noise=None, factor=None) -> list:
    """The notes under the table; quote(text) is applied to what they quote from the runs
    (default: control characters written out)."""
    quote = quote or one_line
    out = []
    if min(base_launches, new_launches) == 1 and any(r["unit"] == "rounds" for r in rows):
        out.append(
            "a side is a single launch of the ranks: rounds cover drift within it, not the "
            "launch-to-launch variation of a shared machine; for a CI gate run with "
            "`--launches 3` (the default of local runs) or give several run directories per "
            "side (BASE... --new NEW...)")
    by_samples = [r for r in rows if r["unit"] == "samples"]
    if by_samples:
        out.append(
            f"{len(by_samples)} of {len(rows)} cases were tested on raw samples because a side has "
            "one (run, round) only: that test cannot see run-to-run variation (on a shared "
            "machine up to 2x); for a trustworthy verdict use `commbench run --repeats 5` or "
            "several run directories per side")
        if noise and factor:
            where = ("the larger of the two sides' own measurement (meta.json → noise: 8 B "
                     "ping-pong, slowest over fastest burst)" if noise["source"] == "measured"
                     else "a stated default: neither side measured its noise (meta.json → noise)")
            out.append(
                f"unreplicated cases are slower (faster) only where {NEIGHBOURS} consecutive sizes "
                f"of their series all have a ratio beyond factor {factor:g} × noise "
                f"{noise['ratio']:.3g} = {factor * noise['ratio']:.3g} (below its inverse), and the "
                f"rank test on raw samples agrees where it can decide; noise {noise['ratio']:.3g} is "
                f"{where}")
        short = sum(1 for r in by_samples if len(r.get("evidence", {}).get("sizes", [])) < NEIGHBOURS)
        if short:
            out.append(f"{short} unreplicated cases belong to series of fewer than {NEIGHBOURS} "
                       "sizes: they get no verdict without replication")
    weak = [r for r in rows if r["unit"] == "rounds" and smallest_p(r["n_base"], r["n_new"]) >= alpha]
    if weak:
        r = weak[0]
        out.append(
            f"{len(weak)} cases have too few rounds to ever be significant at alpha {alpha:g} "
            f"(e.g. {r['n_base']} vs {r['n_new']}: smallest p "
            f"{smallest_p(r['n_base'], r['n_new']):.3g}); run more rounds")
    for run_dir, tool in (imported or {}).items():
        out.append(f"{quote(run_dir)} is imported from {quote(tool)}: one value per size (the tool's own "
                   "average), so a test against it rests on that single value and on its "
                   "neighbouring sizes")
    only_base = len(set(base_groups) - set(new_groups))
    only_new = len(set(new_groups) - set(base_groups))
    if only_base or only_new:
        out.append(f"not compared: {only_base} cases only in BASE, {only_new} only in NEW")
    return out


# ---------------------------------------------------------------- output
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


# ---------------------------------------------------------------- command
# the help text (constants, not the docstring: python -OO strips docstrings)
DESCRIPTION = """`commbench compare`: is NEW slower than BASE, case by case, beyond the noise?"""
EPILOG = """    commbench compare BASE NEW                    one run directory per side
    commbench compare BASE [BASE...] --new NEW [NEW...]
                                                  several run directories per side (pooled)
    options: --factor 1.1  --alpha 0.05  --format text|markdown|json  --ops OP,OP

Cases are joined on (backend, op, nbytes, nranks, split); dtypes of one case are pooled.

Unit of replication. Latency on a shared machine drifts between modes for seconds at a time,
so samples of one run are not independent draws and a test on them overstates certainty.
When both sides have at least 2 (run, round) pairs for a case, the units are the per-(run,
round) medians of the sample times (`commbench run --repeats R`, or several run directories
per side). Otherwise the test falls back to the raw sample times (the max over ranks per
sample) and says so: that test cannot see run-to-run variation.

Verdict per case, with r = median(NEW units) / median(BASE units):
  slower           r > factor   and NEW > factor x BASE by a one-sided Mann-Whitney U test
                   at level alpha (the null hypothesis is "no worse than the factor")
  faster           r < 1/factor and NEW < BASE / factor by the mirrored test
  not significant  anything else, including changes smaller than the factor
The ratio comes with a 95% distribution-free interval of the typical ratio (the order
statistics of all pairwise NEW/BASE ratios that the Mann-Whitney test implies).

Unreplicated cases (a side holds one (run, round) for the case: a single-round run, or an
import, which holds one value per size). No test on them can see run-to-run variation, and
one value per side can never be significant, so the verdict rests on other evidence:
  - neighbouring sizes: a real change persists over a range of sizes, while a machine that
    switches latency modes spoils single cases (identical single-round runs on a shared VM
    differ up to 8x at one size, rarely at two neighbours, not at three in a row);
  - the machine's noise: meta.json -> noise (`commbench noise`: the spread of 8-byte
    ping-pong medians over bursts, max/min, the larger of the two sides), else a stated
    default of 1.1 (a 10% run-to-run change assumed where neither side measured its noise);
  - the rank test on raw samples, where both sides have enough samples for it to reach alpha.
Such a case is slower when it lies in a window of 3 consecutive sizes of its series (same
backend, op, ranks, split) in which every case has r > factor x noise and, where the rank test
can decide, a significant one; faster mirrored. The row says so: "slower, unreplicated: 7.60×
at 3/3 sizes" (the median ratio of the window, its cases beyond the threshold). A series of
fewer than 3 sizes gets no unreplicated verdict. nccl-tests also prints an in-place time per
size; the importer keeps the out-of-place one only, so it is no second measurement here.

Exit status: 0 when no case is slower, 1 when some case is, 2 on bad input.
"""


def add_arguments(parser) -> None:
    import argparse

    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("base", nargs="+", metavar="BASE",
                        help="run directory of the baseline (with --new: one or more)")
    parser.add_argument("--new", nargs="+", metavar="NEW", default=None,
                        help="run directories of the new side (default: the last positional)")
    parser.add_argument("--factor", type=float, default=1.1,
                        help="tolerated slow-down: slower means beyond this ratio (default 1.1)")
    parser.add_argument("--alpha", type=float, default=0.05,
                        help="significance level of each one-sided test (default 0.05)")
    parser.add_argument("--format", default="text", help="text, markdown or json (default text)")
    parser.add_argument("--ops", default=None, help="comma list of ops to compare (default all)")


def sides(args) -> tuple[list, list]:
    if args.new:
        return list(args.base), list(args.new)
    if len(args.base) != 2:
        raise UsageError("give BASE NEW, or BASE... --new NEW... for several run directories per side")
    return [args.base[0]], [args.base[1]]


def main(args) -> int:
    if args.format not in FORMATS:
        raise UsageError(f"no such format {args.format!r}; known: {', '.join(FORMATS)}")
    base_dirs, new_dirs = sides(args)
    ops = [s.strip() for s in args.ops.split(",") if s.strip()] if args.ops else None
    result = compare_runs(base_dirs, new_dirs, args.factor, args.alpha, ops)
    text = {"text": format_text, "markdown": format_markdown, "json": format_json}[args.format](result)
    sys.stdout.write(text + "\n")
    return result["exit_status"]
