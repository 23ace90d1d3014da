"""Reading, summarising, fitting, reporting and comparing commbench runs (one process, no MPI).

The Python API is analysis.api (analysis/README.md, "Python API"): `from analysis import api as cb`,
then cb.load, cb.run, cb.sweep, cb.fit, cb.predict, cb.compare. load, run, sweep, Results and
RunFailed are exported here too (fit, predict and compare are also this package's modules, so
they are reached through analysis.api)."""
from analysis import api
from analysis.api import Results, RunFailed, load, run, sweep

__all__ = ["Results", "RunFailed", "api", "load", "run", "sweep"]
