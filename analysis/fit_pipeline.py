"""The fitting pipeline: every fit of one run or one sweep directory, as fits.csv's tidy rows
(`commbench fit` is its command, analysis.fit). fits.csv's rows are checked and read by
analysis.fits_csv; here they are fitted, and a directory without them (or with stale ones)
fitted on request (`load_fits`).

Finds the run directories (a run, or a sweep directory holding one run per rank count) and loads
their sample times (analysis.run_times), fits them (analysis.hockney per (backend, op, nranks);
analysis.algorithms across the rank counts of a sweep, within the limits of analysis.node_limits;
analysis.loggp from the prtt ops) into rows (analysis.fit_rows) and writes them
(analysis.fits_source, with what they were fitted from).

fits.csv is tidy: backend, op, nranks, split, model, segment, nbytes_lo, nbytes_hi, param,
value, ci_low, ci_high (bench.core.rundir.FITS_COLUMNS). nbytes_lo / nbytes_hi are the
smallest and largest measured S inside the segment; nranks is 0 on rows fitted across the rank
counts of a sweep (their held-out errors per rank count are rows with that nranks); segment is
-1 on LogGP's per-message scalars (o_s, o_r, L). SI units throughout.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from analysis import models
from analysis.algorithms import beta_source_ops, fit_algorithms, reduces, selected_beta
from analysis.algorithms_attributed import fit_attributed
from analysis.fit_rows import algorithm_rows, hockney_rows, loggp_rows
from analysis.fits_csv import read_fits_file, usable_fits
from analysis.fits_source import data_source, save_fits, stale_reason
from analysis.hockney import fit_hockney
from analysis.loggp import loggp_from_times
from analysis.node_limits import machine_limits, node_loads, point_to_point
from analysis.run_times import load_sweep
from bench.core.safe_text import path_text
from bench.core.errors import RunDirError
from bench.core.rundir import FITS, FITS_COLUMNS
from analysis.known_ops import canonical_name

if TYPE_CHECKING:  # pandas is imported where used: `commbench run` ranks never need it
    import pandas as pd

__all__ = ["fit_times", "fit_loaded", "fit_dir", "load_fits", "itemsize", "attribute"]


def _one_dtype(df: pd.DataFrame, label: str) -> pd.DataFrame:
    """fits.csv has no dtype column: fit the most frequent dtype of an op and say so."""
    if df["dtype"].nunique() > 1:
        keep = df["dtype"].value_counts().idxmax()
        print(f"commbench fit: {label}: several dtypes, fitting {keep} only", file=sys.stderr)
        df = df[df["dtype"] == keep]
    return df


def _groups(df: pd.DataFrame, by) -> dict:
    return {k: g["time_s"].to_numpy() for k, g in df.groupby(by)}


# ---------------------------------------------------------------- fitting
def fit_times(times: pd.DataFrame, max_segments=4, min_points=3, n_boot=200, seed=0,
              ops=None, meta_ops=None, machine=None) -> pd.DataFrame:
    """All fits of the sample times of one run or one sweep, as fits.csv rows. machine: what
    the runs' meta.json say of the nodes (machine_limits); without it every communicator of
    split all or intra is taken to sit on one node, and no ceiling is known.

    times may say which algorithm ran each case (column `algorithm`: a model name, "" where
    not known; `forced`: whether the run forced it, see attribute): then the algorithm
    models of an op with any attributed case are fitted on their own cases only
    (analysis.algorithms_attributed.fit_attributed), and the Hockney fits per rank count take
    only the runs that did not force an algorithm."""
    import pandas as pd

    machine = machine or {}
    rows: list[dict] = []
    if ops:
        times = times[times["op"].isin(ops)]
    attributed = "algorithm" in times.columns
    plain = times[~times["forced"].astype(bool)] if "forced" in times.columns else times
    # LogGP from the prtt ops; one that names fewer than 2 messages (no such op is measured:
    # a hand-made or damaged file) is no round trip series: fitted as an op of its own
    single = times["op"].str.fullmatch(r"prtt_rtt[nsr]0*[01]")
    prtt_ops = times["op"].str.startswith("prtt") & ~single.astype(bool)
    for (backend, op, nranks, split), df in plain[~prtt_ops.reindex(plain.index)].groupby(
            ["backend", "op", "nranks", "split"]):
        df = _one_dtype(df, f"{backend} {op} n{nranks}")
        cases = _groups(df, "nbytes")
        seg = fit_hockney(list(cases), list(cases.values()), max_segments, min_points, n_boot,
                          seed)
        nic = machine.get("nic_Bps") if split == "inter" and point_to_point(op) else None
        rows += hockney_rows((backend, op, nranks, split), seg, nic)
    # algorithm models need at least two rank counts (held-out scoring); ops that move data
    # without reducing go first: their β lets the reducing ops' γ be fitted
    groups = [(k, df) for k, df in times[~prtt_ops].groupby(["backend", "op", "split"])
              if df["nranks"].nunique() >= 2 and models.algorithms(k[1])]
    groups.sort(key=lambda kd: reduces(kd[0][1]))
    sources = beta_source_ops()
    betas: dict = {}
    for (backend, op, split), df in groups:
        df = _one_dtype(df, f"{backend} {op}")
        known = None
        if reduces(op):
            known = next((betas[(backend, split, src)] for src in sources
                          if (backend, split, src) in betas), None)
        if attributed and (df["algorithm"] != "").any():
            res = fit_attributed(op, _groups(df, ["nranks", "nbytes", "algorithm"]),
                                 max_segments, min_points, n_boot, seed, beta_known=known,
                                 **node_loads(machine, split))
        else:
            res = fit_algorithms(op, _groups(df, ["nranks", "nbytes"]), max_segments,
                                 min_points, n_boot, seed, beta_known=known,
                                 **node_loads(machine, split))
        betas[(backend, split, canonical_name(op))] = selected_beta(res)
        rows += algorithm_rows((backend, op, 0, split), res)
    for (backend, nranks, split), df in times[prtt_ops].groupby(["backend", "nranks", "split"]):
        res = loggp_from_times(df, meta_ops or {}, n_boot, seed)
        if res is not None:
            rows += loggp_rows((backend, "prtt", nranks, split), res)
    return usable_fits(pd.DataFrame(rows, columns=FITS_COLUMNS))


def itemsize(dtype: str) -> int:
    """Bytes of one element of a commbench dtype (bfloat16 is 2; unknown: 4)."""
    if str(dtype) == "bfloat16":
        return 2
    try:
        return int(np.dtype(str(dtype)).itemsize)
    except TypeError:
        return 4


def attribute(times: pd.DataFrame, metas) -> tuple[pd.DataFrame, str]:
    """times (with load_times' `run` column) plus `algorithm` (the commbench model of the
    algorithm that ran each case: forced by the run's environment, else chosen by the MPI
    library's decision rules, analysis.library; "" where not known) and `forced`; and a
    line saying whose rules were used. Unchanged, with the reason, where the library has
    no encoded rules."""
    from analysis import library

    rules, why = library.of_runs(metas)
    if rules is None or times.empty or "run" not in times.columns:
        return times, why
    forced = {i: bool(library.forcing.forced_in(rules.family, m.get("env") or {}))
              for i, m in enumerate(metas)}
    keys = times[["run", "op", "nranks", "nbytes", "dtype"]].drop_duplicates()
    names = {}
    for r in keys.itertuples(index=False):
        model, _ = library.attribution(rules, metas[r.run], canonical_name(r.op), int(r.nranks),
                                       float(r.nbytes), itemsize(r.dtype))
        names[(r.run, r.op, r.nranks, r.nbytes, r.dtype)] = model or ""
    index = list(zip(times["run"], times["op"], times["nranks"], times["nbytes"],
                     times["dtype"]))
    out = times.assign(algorithm=[names[k] for k in index],
                       forced=times["run"].map(forced).fillna(False).astype(bool))
    return out, f"algorithms attributed by {rules.label}'s decision rules"


def fit_loaded(runs, metas, times, **kw) -> pd.DataFrame:
    """The fits of what load_sweep loaded (notes on stderr where runs pool their samples).
    Where the runs' MPI library has known decision rules (analysis.library), each case is
    attributed to the algorithm that ran it (attribute)."""
    from analysis import library

    times, _ = attribute(times, metas)
    meta_ops: dict = {}
    seen: dict = {}
    for d, meta in zip(runs, metas):
        meta_ops.update(meta.get("ops") or {})
        rules, _ = library.of_meta(meta)
        forced = library.forcing.forced_in(rules.family, meta.get("env") or {}) if rules else {}
        key = (meta.get("nranks"), str(meta.get("backend")), tuple(sorted(forced.items())))
        if key in seen:
            print(f"commbench fit: {path_text(d)} and {path_text(seen[key])} both ran {key[0]} ranks: "
                  "their samples are pooled", file=sys.stderr)
        seen[key] = d
    kw.setdefault("machine", machine_limits(runs, metas))
    return fit_times(times, meta_ops=meta_ops, **kw)


def fit_dir(path, save: bool = True, **kw) -> pd.DataFrame:
    """Fit one run or sweep directory and write its fits.csv (unless not save); return the
    fits."""
    source = data_source(path)
    fits = fit_loaded(*load_sweep(path), **kw)
    if save:
        save_fits(path, fits, source)
    return fits


# ---------------------------------------------------------------- reading
def load_fits(path, fit_missing: bool = False, command: str = "commbench fit"):
    """The fits of a run or sweep directory (its fits.csv), or of a fits.csv itself, as a
    frame with every FITS_COLUMNS column (files from before a column existed get its default:
    split 'all', no interval).

    No fits.csv: None; with fit_missing, the directory is fitted now (after every file is
    checked and a note on stderr that starts with `command`) and its fits.csv written (when
    the directory cannot be written: a note, and the fits are used unsaved). A fits.csv that
    cannot be read, lacks the model columns or holds values no fit gives (check_fits) is a
    RunDirError naming the file and line."""
    path = Path(path)
    file = path if path.is_file() else path / FITS
    stale = None
    if file.exists() and not path.is_file():
        stale = stale_reason(path)
        if stale and not fit_missing:
            print(f"commbench: {path_text(file)} is stale ({stale}): not used", file=sys.stderr)
            return None
    if not (file.exists() or file.is_symlink()) or stale:
        if not fit_missing:
            return None
        source = data_source(path)
        loaded = load_sweep(path)  # not a run, or damaged: one line before anything else
        if loaded[2].empty:
            raise RunDirError(f"{path_text(path)}: no fits.csv and no samples to fit")
        why = f"{FITS} is stale ({stale})" if stale else f"has no {FITS}"
        print(f"{command}: {path_text(path)} {why}, fitting it now", file=sys.stderr)
        fits = fit_loaded(*loaded)
        try:
            save_fits(path, fits, source)
        except RunDirError as exc:
            print(f"{command}: {exc}; the fits are used without saving them", file=sys.stderr)
        return fits
    return read_fits_file(file)
