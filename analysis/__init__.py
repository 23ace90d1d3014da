"""Reading, summarising, fitting, reporting and comparing commbench runs (one process, no MPI).

The Python API (analysis.api, documented in the README's "Python API"): `load` a run or sweep
as DataFrames, start a `run` or `sweep`, `fit`, `predict`, `compare`; Results.check for
verdicts."""
from analysis.api import Results, RunFailed, compare, fit, load, predict, run, sweep

__all__ = ["Results", "RunFailed", "compare", "fit", "load", "predict", "run", "sweep"]
