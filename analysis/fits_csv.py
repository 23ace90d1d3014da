"""fits.csv's rows checked and read: what a value of each model parameter may be (a writer
leaves out what the reader would refuse: `usable_fits`; the reader refuses it: `check_fits`),
one fits.csv file read and checked (`read_fits_file`), and a case's Hockney segments taken from
the rows. Writing fits.csv and fitting a directory that has none: analysis.fit_pipeline.

fits.csv is tidy: backend, op, nranks, split, model, segment, nbytes_lo, nbytes_hi, param,
value, ci_low, ci_high (bench.core.rundir.FITS_COLUMNS). SI units throughout.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import numpy as np

from analysis import models
from bench.core.safe_text import message_value, one_line, path_text
from bench.core.errors import RunDirError
from bench.core.rundir import FITS_COLUMNS

if TYPE_CHECKING:  # pandas is imported where used
    import pandas as pd

# what a fits.csv must hold to be read; older files lack the rest (filled in by read_fits_file)
REQUIRED_COLUMNS = {"backend", "op", "nranks", "model", "segment", "nbytes_lo", "nbytes_hi",
                    "param", "value"}
COLUMN_DEFAULTS = {"split": "all", "ci_low": float("nan"), "ci_high": float("nan")}

# the parameters of the models, with what a value may be (fits.csv is checked on reading)
NONNEGATIVE = {"alpha_s", "beta_s_per_byte", "gamma_s_per_byte", "g_s", "G_s_per_byte"}
ERRORS = {"rel_rms", "loo_rel_error", "heldout_rel_error", "count_rel_rms"}
SIGNED = {"o_s_s", "o_r_s", "L_s"}


def _fits_spec():
    from analysis.csv_checks import KEEP, MAX_BYTES, MAX_RANKS, NAME, Col

    number = Col("num", allow_inf=True, empty=KEEP)
    return {"backend": NAME, "op": NAME, "split": NAME, "model": NAME, "param": NAME,
            "nranks": Col("int", 0, MAX_RANKS), "segment": Col("int", -1, 1 << 20),
            "nbytes_lo": Col("int", 0, MAX_BYTES), "nbytes_hi": Col("int", 0, MAX_BYTES),
            "value": number, "ci_low": number, "ci_high": number}


def refusals(fits: pd.DataFrame) -> list:
    """[(row mask, why)] of the rows check_fits refuses: each row's value and interval are of
    its parameter's kind (α, β, γ, g, G: finite and ≥ 0; 1/β: > 0, infinite when β = 0;
    errors: ≥ 0 or empty; selected: 0 or 1; LogGP's o_s, o_r, L: finite), its size range
    ordered and its model known for its op."""
    if fits.empty:
        return []
    param = fits["param"].to_numpy()
    value = fits["value"].to_numpy(float)
    lo, hi = fits["ci_low"].to_numpy(float), fits["ci_high"].to_numpy(float)

    def absent_or_nonnegative(x):
        return np.isnan(x) | (np.isfinite(x) & (x >= 0))

    with np.errstate(invalid="ignore"):
        checks = [
            (np.isin(param, list(NONNEGATIVE)), ~(np.isfinite(value) & (value >= 0)),
             "must be a finite number ≥ 0"),
            (np.isin(param, list(NONNEGATIVE)),
             ~absent_or_nonnegative(lo) | ~absent_or_nonnegative(hi),
             "interval: must be finite numbers ≥ 0, or empty"),
            (param == "bandwidth_Bps", ~(value > 0), "must be a number > 0 (bytes per second)"),
            (param == "bandwidth_Bps", (lo < 0) | (hi < 0), "interval: must be ≥ 0, or empty"),
            (np.isin(param, list(ERRORS)), ~absent_or_nonnegative(value),
             "must be a finite number ≥ 0, or empty"),
            (param == "selected", ~np.isin(value, [0.0, 1.0]), "must be 0 or 1"),
            (param == models.RATE, ~(np.isfinite(value) & (value > 0)),
             "must be a finite number > 0 (bytes per second)"),
            (param == models.RATE, ~absent_or_nonnegative(lo) | ~(np.isnan(hi) | (hi >= 0)),
             "interval: must be ≥ 0, or empty"),
            (param == "node_rate_origin", ~np.isin(value, [0.0, 1.0, 2.0]), "must be 0, 1 or 2"),
            (np.isin(param, list(SIGNED)), ~np.isfinite(value) | np.isinf(lo) | np.isinf(hi),
             "must be finite"),
        ]
    out = [(rows & bad, why) for rows, bad, why in checks]
    out.append(((fits["nbytes_lo"] > fits["nbytes_hi"]).to_numpy(),
                "nbytes_lo is larger than nbytes_hi"))
    for (op, model), rows in fits.groupby(["op", "model"], sort=False):
        if model not in ("hockney", "loggp") and model not in models.algorithms(op):
            out.append((fits.index.isin(rows.index), f"model {one_line(model)!r}: no such "
                        f"algorithm of {one_line(op)!r} (analysis/models.py)"))
    return out


def check_fits(fits: pd.DataFrame, file) -> None:
    """RunDirError naming the file and line of the first row refusals() refuses."""
    for hit, why in refusals(fits):
        if hit.any():
            i = int(np.flatnonzero(hit)[0])
            if why.startswith(("nbytes_lo", "model ")):
                raise RunDirError(f"{path_text(file)}: line {i + 2}: {why}")
            raise RunDirError(f"{path_text(file)}: line {i + 2}: {one_line(fits['param'].iloc[i])} "
                              f"{message_value(fits['value'].iloc[i])}: {why}")


def usable_fits(fits: pd.DataFrame, command: str = "commbench fit") -> pd.DataFrame:
    """The fits without the rows check_fits would refuse (a fit that failed: LogGP's o and L
    when no size had the delay exceed the gap, a parameter that came out not finite), each
    left out with one note on stderr; so a writer never writes what its reader refuses and
    the other fits stay usable."""
    refused = np.zeros(len(fits), bool)
    for hit, why in refusals(fits):
        hit = np.asarray(hit, bool) & ~refused
        for i in np.flatnonzero(hit):
            row = fits.iloc[i]
            print(f"{command}: {row['backend']} {row['op']} n{row['nranks']} {row['split']} "
                  f"{row['model']} {row['param']}: not fitted ({message_value(row['value'])}: "
                  f"{why}); left out of fits.csv", file=sys.stderr)
        refused |= hit
    return fits[~refused].reset_index(drop=True) if refused.any() else fits


def read_fits_file(file) -> pd.DataFrame:
    """One fits.csv, read (analysis.csv_checks.read_table), every FITS_COLUMNS column present
    (files from before a column existed get its default: split 'all', no interval) and checked
    (check_fits). RunDirError naming the file and line."""
    from analysis.csv_checks import read_table

    fits = read_table(file, _fits_spec(), sorted(REQUIRED_COLUMNS), quoted=True,
                      empty_ok=False, columns=FITS_COLUMNS, kind="a fits file")
    assert fits is not None  # the caller found the file (read_table: None where none is)
    fits = fits.assign(**{c: v for c, v in COLUMN_DEFAULTS.items() if c not in fits.columns})
    check_fits(fits, file)
    return fits


def hockney_segments(fits, backend, op, nranks, split) -> list:
    """[(nbytes_lo, nbytes_hi, alpha_s, beta_s_per_byte)] of the Hockney fit of one case, in
    segment order (the input of analysis.hockney.hockney_time); [] without fits."""
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
