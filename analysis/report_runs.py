"""The runs of a report: run or sweep directories, each run's checked meta.json and
summary.csv (analysis.run_set), its raw samples (read a case at a time when a figure needs
them) and its fits: the first fits.csv of the run or its sweep, else fitted in memory."""
from __future__ import annotations

from pathlib import Path

from analysis.fit_pipeline import fit_times, load_fits
from analysis.run_times import discover_runs
from bench.core.rundir import FITS


def runs_with_fit_dirs(paths) -> list:
    """(run dir, dir holding its fits.csv candidates) for run and sweep directories
    (analysis.run_times.discover_runs)."""
    out = []
    for p in paths:
        p = Path(p)
        runs = discover_runs(p)
        out += [(p, [p])] if runs == [p] else [(d, [d, p]) for d in runs]
    return out


def first_fits(dirs, loaded=None):
    """The first fits.csv among dirs (analysis.fit_pipeline.load_fits), as (DataFrame, path) or
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


def load_report_runs(paths, fit_missing=True) -> list:
    """analysis.run_set.Run per run directory of paths (sweeps expanded), with its samples and
    fits (fit in memory where it has no fits.csv, unless not fit_missing)."""
    from analysis.run_set import load_runs
    from analysis.runsamples import RunSamples

    found = runs_with_fit_dirs(paths)
    runs = load_runs([run_dir for run_dir, _ in found])
    loaded: dict = {}
    for run, (_, fit_dirs) in zip(runs, found):
        run.samples = RunSamples(run.path, run.meta)
        run.fits, run.fits_source = first_fits(fit_dirs, loaded)
    if fit_missing:
        for run in runs:
            if run.fits is None:
                run.fits, run.fits_source = fit_in_memory(run)
    return runs


def fit_in_memory(run):
    """The fits of a run without fits.csv (analysis.fit_pipeline.fit_times, no bootstrap)."""
    times = run.samples.times()
    times = times[(times["time_s"] > 0) & (times["nbytes"] > 0)]
    if times.empty:
        return None, ""
    try:
        fits = fit_times(times, n_boot=0, meta_ops=run.meta.get("ops"))
    except Exception as exc:  # a fit failure must not cost the user the whole report
        return None, f"in-memory fit failed: {exc}"
    return fits, "fitted in memory by analysis.fit_pipeline (no bootstrap: no fit intervals)"
