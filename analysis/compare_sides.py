"""The comparison of `commbench compare`: each side's run directories loaded, their cases
joined and tested (analysis.compare_stats), the noise, the differing settings
(analysis.compare_settings), the counts, the notes under the table and the exit status: the
dict `--format json` prints."""
from __future__ import annotations

from analysis.compare_settings import differing_settings, measured_noise
from analysis.compare_stats import NEIGHBOURS, VERDICTS, compare_case, smallest_p, unreplicated
from analysis.output_formats import md_escape
from bench.core.safe_text import one_line
from bench.core.rundir import CASE
from bench.core.errors import RunDirError, UsageError

# pandas is imported inside the functions: building the CLI parser imports `commbench
# compare`, which imports this module.

JOIN = ["backend", "op", "nbytes", "nranks", "split"]
DEFAULT_NOISE = 1.1   # run-to-run ratio assumed where neither side measured its noise


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
