"""The fitting pipeline: every fit of one run or one sweep directory, as fits.csv's tidy rows
(`commbench fit` is its command, analysis.fit). fits.csv's rows are checked and read by
analysis.fits_csv; here they are written, and a directory without them (or with stale ones)
fitted on request (`load_fits`).

Finds the run directories (a run, or a sweep directory holding one run per rank count), loads
their sample times (max over ranks per round and sample, `analysis.run_frames.sample_times`), fits
them (analysis.hockney per (backend, op, nranks); analysis.algorithms across the rank counts
of a sweep; analysis.loggp from the prtt ops) and writes the rows.

fits.csv is tidy: backend, op, nranks, split, model, segment, nbytes_lo, nbytes_hi, param,
value, ci_low, ci_high (bench.core.rundir.FITS_COLUMNS). nbytes_lo / nbytes_hi are the
smallest and largest measured S inside the segment; nranks is 0 on rows fitted across the rank
counts of a sweep (their held-out errors per rank count are rows with that nranks); segment is
-1 on LogGP's per-message scalars (o_s, o_r, L). SI units throughout.
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from analysis import models
from analysis.algorithms import beta_source_ops, fit_algorithms, reduces, selected_beta
from analysis.algorithms_attributed import fit_attributed
from analysis.algorithms_range_fit import NIC_SLACK
from analysis.fits_csv import read_fits_file, usable_fits
from analysis.hockney import fit_hockney
from analysis.loggp import loggp_from_times
from analysis.meta_checks import load_checked_meta
from analysis.robust import Segment
from bench.core.safe_text import file_error, one_line, path_text
from bench.core.errors import RunDirError
from bench.core.atomic_write import atomic_write_text
from bench.core.rundir import CASE, FITS, FITS_COLUMNS, FITS_SOURCE, META, SAMPLES, SAMPLES_CSV, SUMMARY
from analysis.known_ops import canonical_name, known_op

if TYPE_CHECKING:  # pandas is imported where used: `commbench run` ranks never need it
    import pandas as pd

__all__ = ["FITS_COLUMNS", "discover_runs", "load_times", "load_sweep", "fit_times", "fit_loaded",
           "fit_dir", "save_fits", "load_fits", "hockney_rows", "algorithm_rows",
           "loggp_rows", "machine_limits", "node_loads", "RATE_ORIGINS",
           "rate_from_per_byte", "point_to_point"]


# ---------------------------------------------------------------- run directories
def discover_runs(path) -> list[Path]:
    """A run directory itself, or the run directories directly inside a sweep directory."""
    path = Path(path)
    if (path / META).exists() or (path / META).is_symlink():
        return [path]
    if path.is_dir():
        try:
            runs = sorted(d for d in path.iterdir() if (d / META).exists())
        except OSError as exc:
            raise file_error(path, exc, "list it") from None
        if runs:
            return runs
    raise RunDirError(f"{path_text(path)}: not a commbench run directory nor a sweep of them "
                      "(no meta.json)")


def load_times(run_dirs, metas=None) -> pd.DataFrame:
    """Sample times (max over ranks) of all runs, one row per case, round and sample; every
    meta.json and sample checked (analysis.meta_checks, analysis.csv_checks), read a case at a time."""
    import pandas as pd

    from analysis.runsamples import RunSamples

    frames = []
    for i, d in enumerate(run_dirs):
        meta = metas[i] if metas is not None else load_checked_meta(d)
        t = RunSamples(d, meta).times()
        if len(t):
            frames.append(t[CASE + ["round", "sample", "time_s"]].assign(run=i))
    if not frames:
        return pd.DataFrame(columns=CASE + ["round", "sample", "time_s", "run"])
    t = pd.concat(frames, ignore_index=True)
    return t[t["time_s"] > 0]


def load_sweep(path):
    """(run directories, their meta.json, their sample times) of a run or sweep directory,
    every file checked before anything is fitted or printed."""
    runs = discover_runs(path)
    metas = [load_checked_meta(d) for d in runs]
    return runs, metas, load_times(runs, metas)


def _one_dtype(df: pd.DataFrame, label: str) -> pd.DataFrame:
    """fits.csv has no dtype column: fit the most frequent dtype of an op and say so."""
    if df["dtype"].nunique() > 1:
        keep = df["dtype"].value_counts().idxmax()
        print(f"commbench fit: {label}: several dtypes, fitting {keep} only", file=sys.stderr)
        df = df[df["dtype"] == keep]
    return df


# ---------------------------------------------------------------- rows of fits.csv
def _row(key, model, segment, lo, hi, param, value, ci_low=float("nan"), ci_high=float("nan")):
    backend, op, nranks, split = key
    return dict(backend=backend, op=op, nranks=int(nranks), split=split, model=model,
                segment=int(segment), nbytes_lo=int(lo), nbytes_hi=int(hi), param=param,
                value=float(value), ci_low=float(ci_low), ci_high=float(ci_high))


def rate_from_per_byte(x: float) -> float:
    """1/x of a non-negative β or G: NaN stays NaN (no value), 0 gives an unbounded inf."""
    return x if x != x else 1 / x if x > 0 else float("inf")


def _bandwidth_row(key, model, k, seg, beta, lo, hi):
    """1/β, with the interval from the β interval inverted (no interval: none; β = 0: an
    unbounded bandwidth)."""
    return _row(key, model, k, seg.nbytes_lo, seg.nbytes_hi, "bandwidth_Bps", rate_from_per_byte(beta),
                rate_from_per_byte(hi), rate_from_per_byte(lo))


def hockney_rows(key, segments: list[Segment], node_rate=None) -> list[dict]:
    """Rows of analysis.hockney.fit_hockney's segments; key = (backend, op, nranks, split).
    node_rate: the NIC's line rate, for point-to-point fits across nodes (split inter), where
    known; kept in the segments whose bandwidth does not beat it (else it is no limit of this
    network)."""
    rows = []
    for k, seg in enumerate(segments):
        lo = seg.ci_low if seg.ci_low is not None else np.full(2, np.nan)
        hi = seg.ci_high if seg.ci_high is not None else np.full(2, np.nan)
        sized = seg.nbytes_hi > 0  # barrier: no bytes, so no β and no bandwidth
        for i, param in enumerate(("alpha_s", "beta_s_per_byte")[:2 if sized else 1]):
            rows.append(_row(key, "hockney", k, seg.nbytes_lo, seg.nbytes_hi, param,
                             seg.theta[i], lo[i], hi[i]))
        if sized:
            rows.append(_bandwidth_row(key, "hockney", k, seg, seg.theta[1], lo[1], hi[1]))
        if sized and node_rate and seg.theta[1] * (1 + NIC_SLACK) * node_rate >= 1:
            rows.append(_row(key, "hockney", k, seg.nbytes_lo, seg.nbytes_hi, models.RATE,
                             node_rate, node_rate, node_rate))
            rows.append(_row(key, "hockney", k, seg.nbytes_lo, seg.nbytes_hi,
                             "node_rate_origin", RATE_ORIGINS.index("nic")))
        rows.append(_row(key, "hockney", k, seg.nbytes_lo, seg.nbytes_hi, "rel_rms",
                         seg.rel_rms))
    return rows


def algorithm_rows(key, results) -> list[dict]:
    """Rows of analysis.algorithms.fit_algorithms' results; key's nranks is 0 (all counts).
    The max-rate limit, where there is one: node_rate_Bps (R) and node_rate_origin (0: fitted
    to the times, 1: the machine's copy ceiling, 2: the NIC's declared line rate)."""
    rows = []
    for k, (seg, fits) in enumerate(results):
        span = (seg.nbytes_lo, seg.nbytes_hi)
        for f in fits:
            for i, param in enumerate(models.PARAMS):
                if i == 2 and f.theta[2] == 0 and not np.any(np.nan_to_num(f.ci_high[2:]) > 0):
                    continue  # γ not identified: β and γ are fitted as one (see models.py)
                rows.append(_row(key, f.name, k, *span, param, f.theta[i], f.ci_low[i],
                                 f.ci_high[i]))
            if f.rate_source and np.isfinite(f.node_rate):
                rows.append(_row(key, f.name, k, *span, models.RATE, f.node_rate, *f.rate_ci))
                rows.append(_row(key, f.name, k, *span, "node_rate_origin",
                                 RATE_ORIGINS.index(f.rate_source)))
            rows.append(_row(key, f.name, k, *span, "rel_rms", f.rel_rms))
            rows.append(_row(key, f.name, k, *span, "loo_rel_error", f.loo_rel_error))
            rows.append(_row(key, f.name, k, *span, "selected", float(f.selected)))
            if f.ran_cases:
                rows.append(_row(key, f.name, k, *span, "ran_cases", float(f.ran_cases)))
            for q, err in sorted(f.heldout.items()):
                rows.append(_row(key[:2] + (q,) + key[3:], f.name, k, *span,
                                 "heldout_rel_error", err))
            for q, err in sorted(f.count_rms.items()):
                rows.append(_row(key[:2] + (q,) + key[3:], f.name, k, *span,
                                 "count_rel_rms", err))
    return rows


def loggp_rows(key, res) -> list[dict]:
    """Rows of analysis.loggp.fit_loggp's result: g and G per segment, o_s, o_r and L as
    segment -1 over the whole measured range."""
    rows = []
    for k, seg in enumerate(res["segments"]):
        lo = seg.ci_low if seg.ci_low is not None else np.full(2, np.nan)
        hi = seg.ci_high if seg.ci_high is not None else np.full(2, np.nan)
        for i, param in enumerate(("g_s", "G_s_per_byte")):
            rows.append(_row(key, "loggp", k, seg.nbytes_lo, seg.nbytes_hi, param,
                             seg.theta[i], lo[i], hi[i]))
        rows.append(_row(key, "loggp", k, seg.nbytes_lo, seg.nbytes_hi, "rel_rms", seg.rel_rms))
    s0 = res["segments"][0].nbytes_lo
    s1 = res["segments"][-1].nbytes_hi
    for param, (v, lo, hi) in res["scalars"].items():
        if np.isfinite(v):  # not fitted: said by loggp_from_times, left out here
            rows.append(_row(key, "loggp", -1, s0, s1, param, v, lo, hi))
    return rows


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


# ---------------------------------------------------------------- what the nodes allow
def point_to_point(op: str) -> bool:
    """One message between two ranks (bench.ops): its Hockney fit holds at any rank count."""
    found = known_op(op)
    return bool(found and found.point_to_point)


RATE_ORIGINS = ("fit", "ceiling", "nic")  # node_rate_origin 0, 1, 2
SATURATED = 0.8  # all ranks of a host copying at once below this share of k × one core's rate


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def machine_limits(runs, metas) -> dict:
    """What the runs' meta.json say of the nodes, for the max-rate fits:
    ranks_per_node {world ranks: ranks per node}, nodes {world ranks: nodes} (for the
    concurrency of each split), saturation (copies of a node's ranks at once that saturate
    it: copy_node_Bps / copy_one_core_Bps on the host with the most ranks, where that host's
    copies fell below SATURATED × ranks × one core's rate; None where they did not or no run
    measured it) and nic_Bps (the fastest declared NIC of each host, the slowest such host;
    None where none declares a rate). Runs from before the ceilings were measured, and
    imported ones, lack them: no ceiling then. A ceilings entry that is not what
    bench.ceilings writes is a RunDirError naming the file."""
    out: dict = {"ranks_per_node": {}, "nodes": {}, "saturation": None, "nic_Bps": None}
    copies, nics = [], []  # (ranks on the host, all of them at once, one core); NIC rates
    for run, meta in zip(runs, metas):
        nranks, nnodes = meta.get("nranks"), meta.get("nnodes") or 1
        if nranks:
            out["ranks_per_node"][int(nranks)] = -(-int(nranks) // int(nnodes))
            out["nodes"][int(nranks)] = int(nnodes)
        ceil = meta.get("ceilings")
        if not ceil:
            continue
        try:
            one = ceil["copy_one_core_Bps"]
            for host in (ceil.get("hosts") or {}).values():
                ranks, node = host["ranks"], host["copy_node_Bps"]
                rates = [nic["rate_Bps"] for nic in host.get("nics") or []]
                if not (isinstance(ranks, int) and ranks >= 1
                        and all(_positive(r) for r in rates)):
                    raise ValueError("a host entry out of range")
                if rates:
                    nics.append(max(rates))
                if _positive(one) and _positive(node) and ranks >= 2:
                    copies.append((ranks, node, one))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise RunDirError(f"{path_text(Path(run) / META)}: ceilings: malformed "
                              f"({type(exc).__name__}: {one_line(exc)[:80]})") from None
    if copies:
        top = max(c[0] for c in copies)
        saturated = [node / one for ranks, node, one in copies
                     if ranks == top and node < SATURATED * ranks * one]
        out["saturation"] = float(min(saturated)) if saturated else None
    if nics:
        out["nic_Bps"] = float(min(nics))
    return out


def node_loads(machine: dict, split: str) -> dict:
    """fit_algorithms' max-rate arguments for a split: the ranks of a node in each rank
    count's op, whether they are spread one per node (inter), and the ceiling that applies."""
    per_node, nodes = machine.get("ranks_per_node", {}), machine.get("nodes", {})
    if split == "inter":  # one rank per node, every local rank's communicator at once
        by_nodes = {nodes[w]: per_node[w] for w in per_node if nodes.get(w, 1) > 1}
        return dict(per_node=lambda q: by_nodes.get(q, 1), spread=True,
                    link_rate=machine.get("nic_Bps"))
    if split == "all" and any(nodes.get(w, 1) > 1 for w in nodes):
        # a flat communicator across nodes: the ranks of the fullest node share it
        return dict(per_node=lambda q: per_node.get(q, q))
    return dict(saturation=machine.get("saturation"))


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


# ---------------------------------------------------------------- what fits.csv was fitted from
# Beside fits.csv: the data it was fitted from (per run directory: its run_id, status, finish
# time, and the size and modification time of samples.csv and summary.csv), taken before the
# data was read. A fits.csv whose data has changed since (more samples, a run started afresh,
# an import --force) is stale: refitted where fitting is allowed, else not used, and said so.
_SOURCE_FILES = (SAMPLES, SAMPLES_CSV, SUMMARY)  # raw samples in either schema


def data_source(path) -> dict:
    """The fingerprint of the data under a run or sweep directory (see FITS_SOURCE); meta.json
    read and checked as every reader does (load_meta: one line for a damaged one)."""
    path = Path(path)
    runs = {}
    for d in discover_runs(path):
        meta = load_checked_meta(d)
        entry = {k: meta.get(k) for k in ("run_id", "status", "finished")}
        for name in _SOURCE_FILES:
            try:
                st = os.stat(d / name)
                entry[name] = [st.st_size, st.st_mtime_ns]
            except OSError:
                entry[name] = None
        runs["." if d == path else d.name] = entry
    return {"schema": 1, "runs": runs}


def stale_reason(path) -> str | None:
    """Why the fits.csv of a run or sweep directory no longer fits its data, or None (fresh,
    or of unknown origin: written before fits.source.json existed, or copied without it)."""
    import json

    file = Path(path) / FITS_SOURCE
    try:
        recorded = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return f"{FITS_SOURCE} is unreadable"
    now = data_source(path)
    if not isinstance(recorded, dict) or recorded.get("runs") == now["runs"]:
        return None if isinstance(recorded, dict) else f"{FITS_SOURCE} is unreadable"
    before = cast(dict, recorded.get("runs")) if isinstance(recorded.get("runs"), dict) else {}
    for name, entry in now["runs"].items():
        old = before.get(name)
        where = "" if name == "." else f"{name}: "
        if old is None:
            return f"{where}a run fitted after fits.csv was written"
        if old.get("run_id") != entry["run_id"]:
            return f"{where}another run was written there since"
        if old.get("status") != entry["status"]:
            return f"{where}the run was {old.get('status')} when fitted, {entry['status']} now"
        for name_ in _SOURCE_FILES:
            if old.get(name_) != entry[name_]:
                return f"{where}{name_} changed since it was fitted"
    return "a fitted run is gone"


def save_fits(path, fits: pd.DataFrame, source: dict | None = None) -> Path:
    """Write fits.csv into the run or sweep directory (atomically: a planted link is replaced,
    never followed), and beside it `source` (data_source, taken before the data was read; now
    when not given); RunDirError naming it when it cannot be written (a read-only run)."""
    import json

    target = Path(path) / FITS
    if source is None:
        try:
            source = data_source(path)
        except RunDirError:  # no run under it (fits made from frames): no data to point at
            source = None
    try:
        atomic_write_text(target, fits.to_csv(index=False))
        if source is not None:
            atomic_write_text(Path(path) / FITS_SOURCE, json.dumps(source, indent=1) + "\n")
    except OSError as exc:
        raise file_error(target, exc, "write it") from None
    return target


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
