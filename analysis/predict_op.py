"""One op's prediction from fits: the backend, the op's name, and its model — hierarchical
across nodes (analysis.predict_hierarchical), else algorithm fits (analysis.predict_algorithm),
else the Hockney fit (analysis.predict_link) — and the MPI library of the fitted runs."""
from __future__ import annotations

from typing import TYPE_CHECKING

from analysis.known_ops import canonical_name
from analysis.predict_algorithm import predict_algorithm
from analysis.predict_hierarchical import predict_hierarchical
from analysis.predict_interval import Prediction
from analysis.predict_link import predict_hockney
from bench.core.errors import RunDirError, UsageError

if TYPE_CHECKING:  # pandas is imported where used: `commbench run` ranks never need it
    import pandas as pd


def _pick_backend(fits, backend):
    backends = sorted(fits.backend.unique())
    if backend is None:
        if len(backends) > 1:
            raise UsageError(f"fits hold several backends ({', '.join(backends)}): give --backend")
        return backends[0] if backends else None
    if backend not in backends:
        raise UsageError(f"no fits for backend {backend!r}; have {', '.join(backends) or 'none'}")
    return backend


def predict(fits: pd.DataFrame, op: str, nranks: int, nbytes: float, backend=None, model=None,
            ranks_per_node=None, rules=None, itemsize=4) -> Prediction:
    """rules: the MPI library's decision rules (analysis.library.of_runs of the fitted runs),
    None where unknown (commbench's own selection)."""
    backend = _pick_backend(fits, backend)
    fits = fits[fits.backend == backend]
    ops = set(fits.op)
    if op not in ops and canonical_name(op) in ops:
        op = canonical_name(op)
    if op not in ops:
        raise UsageError(f"no fits for op {op!r}; have {', '.join(sorted(ops)) or 'none'}")
    if ranks_per_node and nranks > ranks_per_node:
        return predict_hierarchical(fits, op, nranks, nbytes, ranks_per_node, model)
    if model == "hockney":
        got = predict_hockney(fits, op, nranks, nbytes)
    else:
        got = predict_algorithm(fits, op, nranks, nbytes, model, rules=rules,
                                itemsize=itemsize) or (
            None if model else predict_hockney(fits, op, nranks, nbytes))
    if got is None:
        have = sorted(int(q) for q in fits[fits.op == op].nranks.unique() if q)
        raise UsageError(f"no model for {op} at {nranks} ranks: the fits cover rank counts "
                         f"{','.join(map(str, have))}; fit a sweep over rank counts "
                         "(commbench sweep) to predict others")
    return got


def library_of(path) -> tuple:
    """(rules, why, itemsize) of the runs behind a fits directory (analysis.library): None
    and the reason where the library has no encoded rules or the runs cannot be read (a
    fits.csv on its own)."""
    from analysis.fit_pipeline import itemsize
    from analysis.run_times import discover_runs
    from analysis.library import of_runs
    from analysis.meta_checks import load_checked_meta

    try:
        metas = [load_checked_meta(d) for d in discover_runs(path)]
    except RunDirError:
        return None, "no run directories beside the fits (the library is unknown)", 4
    rules, why = of_runs(metas)
    return rules, why, itemsize(metas[0].get("dtype", "float32")) if metas else 4
