"""commbench from Python: load a run or a sweep as an object of DataFrames, start runs and
sweeps, fit, predict, check and compare — what the command line does, without parsing its
output.

    from analysis import api as cb

    res = cb.run(ops="allreduce,pingpong", sizes="1K:1M:4", nranks=2, launches=1)
    res.summary                  # DataFrame: one row per case (summary.csv)
    fits = res.fit()             # DataFrame: fits.csv rows (Hockney, LogGP, algorithm models)
    cb.predict(fits, "allreduce", nranks=2, nbytes="64K").time_s
    res.check(minimum=["allreduce:1M=1G"])    # DataFrame of verdicts
    cb.compare(res, cb.load("results/yesterday"))  # DataFrame of per-case verdicts

Every DataFrame has the columns of the run-directory format (results/README.md); times in
seconds, sizes in bytes, rates in bytes per second. Bad input raises bench.core.errors
.UsageError, a damaged directory RunDirError, a failed run RunFailed, each with the one line
the command line would print.
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.core.errors import UsageError

__all__ = ["Results", "RunFailed", "load", "run", "sweep", "fit", "predict", "compare"]


class RunFailed(RuntimeError):
    """`commbench run` (or sweep) ended with a status other than 0 or 1; `.rc` is it, the
    message the last lines it wrote on stderr."""

    def __init__(self, rc: int, message: str):
        super().__init__(message)
        self.rc = rc


@dataclass
class Results:
    """A run directory, or a sweep directory of runs (one per rank count), as DataFrames.

    meta:    one run: its meta.json as a dict; a sweep: {run directory name: meta dict}
    summary: summary.csv rows of every run (a sweep: all rank counts together)
    samples: raw samples of every run, one row per rank and sample (samples.csv)
    times:   one row per case, round and sample: the max over ranks (what fits and compare use)
    fits:    fits.csv rows, or None when the directory has none (fit() makes them)
    """
    path: Path
    runs: list                      # the run directories (one for a run)
    meta: dict
    summary: object
    samples: object
    fits: object = None
    _times: object = field(default=None, repr=False)

    @property
    def times(self):
        if self._times is None:
            from analysis.run_frames import sample_times

            self._times = sample_times(self.samples)
        return self._times

    @property
    def is_sweep(self) -> bool:
        return self.runs != [self.path]

    def fit(self, save: bool = True, bootstrap: int = 200, seed: int = 0, ops=None):
        """Fit the run or sweep (as `commbench fit`): the fits.csv rows as a DataFrame, kept in
        .fits and, with save, written to the directory's fits.csv."""
        self.fits = fit(self.path, save=save, bootstrap=bootstrap, seed=seed, ops=ops)
        return self.fits

    def predict(self, op: str, nranks: int, nbytes, **kw):
        """predict() from this directory's fits (fitted now, unsaved, when it has none)."""
        if self.fits is None:
            self.fit(save=False, bootstrap=0)
        return predict(self.fits, op, nranks, nbytes, **kw)

    def check(self, expect: str | None = None, minimum=(), baseline=(), nics=None,
              tolerance: float | None = None):
        """Verdicts (as `commbench check`): one row per reference and case, with `verdict`
        (meets, below, implausible, not measured), busbw_Bps, expected_Bps, share, reason.
        expect: a system of the shipped figures; minimum: 'OP:SIZE=RATE' strings; baseline:
        earlier run directories or Results."""
        from analysis import check_references as chk
        from analysis.check_verdicts import check

        refs = []
        if expect:
            refs += chk.expected_for(expect)
        refs += [chk.parse_min(text) for text in ([minimum] if isinstance(minimum, str) else minimum)]
        if baseline:
            refs += chk.baseline_references([_path(b) for b in _many(baseline)])
        if not refs:
            raise UsageError("check: give expect, minimum or baseline")
        kw = {} if tolerance is None else {"tolerance": tolerance}
        result = check([str(r) for r in self.runs], refs, nics, **kw)
        return _frame(result["rows"], result)

    def compare(self, new, factor: float = 1.1, alpha: float = 0.05, ops=None):
        """compare(self, new): is `new` slower than this run, case by case."""
        return compare(self, new, factor, alpha, ops)


def _many(x) -> list:
    return [x] if isinstance(x, (str, Path, Results)) else list(x)


def _path(x) -> str:
    return str(x.path if isinstance(x, Results) else x)


def _frame(rows: list, result: dict):
    """rows as a DataFrame; the rest of the result (notes, counts, exit status) in .attrs."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    frame.attrs.update({k: v for k, v in result.items() if k != "rows" and not k.startswith("_")})
    return frame


def load(path) -> Results:
    """A run directory or a sweep directory (every file checked, as the commands check it)."""
    import pandas as pd

    from analysis.fit_pipeline import load_fits
    from analysis.run_times import discover_runs
    from analysis.runsamples import load_run

    path = Path(path)
    runs = discover_runs(path)
    metas, samples, summaries = {}, [], []
    for run_dir in runs:
        meta, s, summary = load_run(run_dir)
        metas[run_dir.name] = meta
        samples.append(s)
        summaries.append(summary)
    meta = metas[runs[0].name] if runs == [path] else metas
    return Results(path, runs, meta, pd.concat(summaries, ignore_index=True),
                   pd.concat(samples, ignore_index=True), load_fits(path))


def _options(options: dict) -> list:
    """Keyword arguments as `commbench run` options: sizes="1K:1M" -> --sizes 1K:1M,
    ci_target=0.05 -> --ci-target 0.05, noise=False -> --no-noise, force=True -> --force."""
    argv = []
    for key, value in options.items():
        if value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            if value:
                argv.append(flag)
            elif key in ("noise", "ceilings"):
                argv.append(f"--no-{key}")
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(map(str, value))
        argv += [flag, str(value)]
    return argv


def _command(verb: str, argv: list, out) -> Results:
    command = [sys.executable, "-m", "bench.cli", verb, *argv, "--out", str(out), "-q"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode == 2:
        raise UsageError(done.stderr.strip().splitlines()[-1].removeprefix("commbench: error: ")
                         if done.stderr.strip() else f"{verb}: bad input")
    if done.returncode not in (0, 1):
        raise RunFailed(done.returncode, "\n".join(done.stderr.strip().splitlines()[-5:]))
    return load(out)


def run(out=None, **options) -> Results:
    """Start `commbench run` with these options (its long names, '_' for '-': ops, sizes,
    nranks, backend, launches, repeats, budget, ...) in a process of its own, and load the
    run directory it wrote (default results/<run_id>). A run whose results failed validation
    is returned (its summary's `wrong` column says where); bad options raise UsageError, an
    aborted run RunFailed."""
    if out is None:
        from bench.core.rundir import new_run_id

        out = Path("results") / new_run_id(str(options.get("backend") or "mpi"),
                                           int(options.get("nranks") or 2))
    return _command("run", _options(options), out)


def sweep(out, nranks, **options) -> Results:
    """`commbench sweep`: one run per rank count (a list, or '2,4,8') into out/n<count>."""
    counts = ",".join(map(str, nranks)) if isinstance(nranks, (list, tuple)) else str(nranks)
    return _command("sweep", ["--nranks", counts, *_options(options)], out)


def fit(path, save: bool = True, bootstrap: int = 200, seed: int = 0, ops=None):
    """The fits of a run or sweep directory (as `commbench fit`) as a DataFrame of fits.csv
    rows; written to its fits.csv unless save is False. A fit that fails is left out with a
    note on stderr (analysis.fits_csv.usable_fits)."""
    from analysis.fit_pipeline import fit_dir

    if isinstance(ops, str):
        ops = [o.strip() for o in ops.split(",") if o.strip()]
    return fit_dir(_path(path), save=save, n_boot=bootstrap, seed=seed, ops=ops)


def predict(fits, op: str, nranks: int, nbytes, backend=None, model=None, ranks_per_node=None):
    """An op's time at a rank count and size from fits (a DataFrame of fits.csv rows, a
    Results, or a run or sweep directory): analysis.predict_interval.Prediction with time_s, low_s,
    high_s (its interval), model, detail, warnings. nbytes: bytes, or a size such as '64K'."""
    from analysis.fit_pipeline import load_fits
    from analysis.predict_op import predict as predict_fits
    from bench.core.units import parse_size

    if isinstance(fits, Results):
        fits = fits.fits if fits.fits is not None else fit(fits, save=False, bootstrap=0)
    elif isinstance(fits, (str, Path)):
        fits = load_fits(fits, fit_missing=True, command="analysis.api.predict")
    nbytes = parse_size(nbytes) if isinstance(nbytes, str) else nbytes
    return predict_fits(fits, op, int(nranks), nbytes, backend=backend, model=model,
                        ranks_per_node=ranks_per_node)


def compare(base, new, factor: float = 1.1, alpha: float = 0.05, ops=None):
    """`commbench compare`: one row per case (backend, op, nbytes, nranks, split) with
    base_median_s, new_median_s, ratio, its interval, p_value and verdict (slower, faster,
    not significant). base, new: run directories or Results, or lists of them (pooled). The
    DataFrame's .attrs hold counts, notes, `differs` (settings that differ) and exit_status."""
    from analysis.compare_sides import compare_runs

    if isinstance(ops, str):
        ops = [o.strip() for o in ops.split(",") if o.strip()]
    result = compare_runs([_path(b) for b in _many(base)], [_path(n) for n in _many(new)],
                          factor, alpha, ops)
    return _frame(result["rows"], result)
