"""Rank start-up: from starting the ranks to their first collective (rank 0's `launches[0]
.started` in meta.json is written right after the ranks' first gather of host names), median
of several launches, for one or more source trees side by side (interleaved, so drifts of the
machine hit all of them alike). The ranks are started by mpiexec directly, as on a cluster.

    python tests/benchmarks/perf_startup.py --ranks 2,8 --repeats 5 [--tree OLD_CHECKOUT ...]

The current checkout is always measured; `--tree` adds others (e.g. a `git worktree` of an
older commit) for a before/after comparison."""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def mpiexec() -> str:
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else "mpiexec"


def startup_s(tree: Path, nranks: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        argv = [mpiexec(), "-n", str(nranks), "--oversubscribe", sys.executable, "-m", "bench.cli",
                "run", "--ops", "barrier", "--launches", "1", "--repeats", "1", "--no-noise", "-q",
                "--min-samples", "1", "--max-samples", "1", "--sample-time", "1e-6",
                "--out", str(out)]
        env = {**os.environ, "PYTHONPATH": str(tree), "OMPI_ALLOW_RUN_AS_ROOT": "1",
               "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
        t0 = time.time()
        subprocess.run(argv, check=True, env=env, cwd=tree, timeout=300,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started = json.loads((out / "meta.json").read_text())["launches"][0]["started"]
        return dt.datetime.fromisoformat(started).timestamp() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ranks", default="2,8")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--tree", action="append", default=[], help="another checkout to measure")
    args = p.parse_args()
    trees = [ROOT] + [Path(t).resolve() for t in args.tree]
    for n in [int(x) for x in args.ranks.split(",")]:
        times = {tree: [] for tree in trees}
        for _ in range(args.repeats):
            for tree in trees:
                times[tree].append(startup_s(tree, n))
        for tree in trees:
            ts = times[tree]
            print(f"n={n:<3} {str(tree):<40} start-up to first collective: median "
                  f"{statistics.median(ts):.3f} s (min {min(ts):.3f}, max {max(ts):.3f}, {len(ts)} launches)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
