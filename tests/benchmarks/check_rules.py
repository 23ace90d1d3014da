"""Benchmark (not a timed test): does the MPI library run the algorithm its decision rules
(analysis.library) say it runs?

Runs `commbench sweep --force-algorithms` (every algorithm the library can be forced to run,
one run per op and algorithm, beside the default run at each count) or, with --interleave,
default and forced runs alternated in time, then for every measured
(op, p, S) compares the default run's median with the median of each forced algorithm: the
rules' algorithm should be one whose forced time matches the default within --tolerance
(10%). Algorithms that cost the same there are indistinguishable, so the check is "the
rules' forced time matches", and the closest forced algorithm is printed beside it.

    .venv/bin/python tests/benchmarks/check_rules.py --counts 2,3,4
    .venv/bin/python tests/benchmarks/check_rules.py --interleave 2 --statistic min_s
    .venv/bin/python tests/benchmarks/check_rules.py --reuse DIR      # no new runs

Several runs of one algorithm (--interleave): the fastest of their times per case.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd


def sweep(out: Path, a) -> None:
    cmd = [sys.executable, "-m", "bench.cli", "sweep", "--nranks", a.counts, "--ops", a.ops,
           "--sizes", a.sizes, "--budget", str(a.budget), "--repeats", str(a.repeats),
           "--launches", "1", "-q", "--force-algorithms", "--out", str(out)]
    print("$", " ".join(cmd[2:]), file=sys.stderr)
    if subprocess.call(cmd):
        sys.exit("sweep failed")


def interleaved(out: Path, a) -> None:
    """Default and forced runs alternated in time (the load of a shared machine drifts over
    minutes): in each of a.interleave rounds and at each count, the default run and one run
    per algorithm set — set i forces the i-th algorithm of every op at once (each op has its
    own variable), so the runs per round are the most algorithms any op has, plus one — in a
    shuffled order, into out/n<p>.r<round>.<tag>."""
    import random

    from bench import forcing

    fam, version = forcing.family(forcing.mpi_library()) or (None, None)
    if fam is None:
        sys.exit("no MPI library with forceable algorithms")
    ops = [o for o in a.ops.split(",") if o]

    def runs(p):
        algs = {op: forcing.forceable(fam, version, op, p) for op in ops}
        sets = [{} for _ in range(max(len(v) for v in algs.values()))]
        for op, names in algs.items():
            for i, alg in enumerate(names):
                sets[i].update(forcing.force_env(fam, op, alg))
        return [("default", {})] + [(f"set{i}", env) for i, env in enumerate(sets)]

    rng = random.Random(0)
    out.mkdir(parents=True, exist_ok=True)
    for r in range(a.interleave):
        for p in a.counts.split(","):
            order = runs(int(p))
            rng.shuffle(order)
            for tag, env in order:
                cmd = [sys.executable, "-m", "bench.cli", "run", "-n", p, "--ops", a.ops,
                       "--sizes", a.sizes, "--budget", str(a.budget), "--repeats",
                       str(a.repeats), "--launches", "1", "-q",
                       "--out", str(out / f"n{p}.r{r}.{tag}")]
                print(f"round {r}, {p} ranks, {tag}", file=sys.stderr)
                if subprocess.call(cmd, env={**os.environ, **env}):
                    print(f"round {r}, {p} ranks, {tag}: the run failed", file=sys.stderr)


def medians(root: Path) -> tuple[pd.DataFrame, object]:
    """Every run's summary, with the run's forced algorithm ("" for the default run), and
    the library's rules."""
    from analysis import library
    from analysis.fit_pipeline import discover_runs
    from analysis.meta_checks import load_checked_meta
    from analysis.run_frames import load_summary

    runs = discover_runs(root)
    metas = [load_checked_meta(d) for d in runs]
    rules, why = library.of_runs(metas)
    if rules is None:
        sys.exit(f"{root}: {why}")
    frames = []
    for d, meta in zip(runs, metas):
        if meta.get("status") != "complete":  # aborted (a two_proc algorithm on 3 ranks)
            continue
        forced = library.forcing.forced_in(rules.family, meta.get("env") or {})
        s = load_summary(d)
        s["forced"] = [library.forcing.native_name(rules.family, op, forced[op])
                       if op in forced else "" for op in s.op]
        frames.append(s)
    return pd.concat(frames, ignore_index=True), rules


def fastest(table: pd.DataFrame) -> pd.DataFrame:
    """Runs of the same (forced) algorithm: the fastest of their times (the least disturbed)."""
    keys = ["op", "nranks", "nbytes", "forced"]
    return table.groupby(keys, as_index=False).agg(
        median_s=("median_s", "min"), min_s=("min_s", "min"), dtype=("dtype", "first"))


def repeatability(table: pd.DataFrame, statistic: str, tolerance: float) -> str:
    """How often two runs of the same configuration (the default, where there are several)
    agree within tolerance: the floor of what the check can show on this machine."""
    runs = table[table.forced == ""].groupby(["op", "nranks", "nbytes"])[statistic]
    spread = runs.max() / runs.min() - 1
    spread = spread[runs.count() >= 2]
    if spread.empty:
        return ""
    return (f"default runs repeated: the slowest within {tolerance:.0%} of the fastest in "
            f"{int((spread <= tolerance).sum())} of {len(spread)} cases (median spread "
            f"{100 * spread.median():.1f}%)")


def check(table: pd.DataFrame, rules, tolerance: float, statistic: str = "median_s"
          ) -> pd.DataFrame:
    from analysis.fit_pipeline import itemsize

    table = table.assign(median_s=table[statistic])
    rows = []
    for (op, p, nbytes), g in table.groupby(["op", "nranks", "nbytes"]):
        default = g[g.forced == ""]
        forced = g[g.forced != ""].set_index("forced").median_s
        if default.empty or forced.empty:
            continue
        t0 = float(default.median_s.iloc[0])
        choice = rules.choose(op, int(p), float(nbytes), itemsize(default.dtype.iloc[0]))
        if choice is None:
            continue
        closest = (forced / t0 - 1).abs().idxmin()
        mine = forced.get(choice.native)
        rows.append({"op": op, "p": int(p), "nbytes": int(nbytes), "default_us": t0 * 1e6,
                         "rules": choice.native,
                         "rules_us": mine * 1e6 if mine is not None else float("nan"),
                         "off": (mine / t0 - 1) if mine is not None else float("nan"),
                         "closest": closest, "closest_off": float(forced[closest] / t0 - 1),
                         "ok": mine is not None and abs(mine / t0 - 1) <= tolerance})
    return pd.DataFrame(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", default="2,3,4")
    ap.add_argument("--ops", default="allreduce,allgather,reduce_scatter,broadcast")
    ap.add_argument("--sizes", default="256:1M:4")
    ap.add_argument("--budget", type=float, default=0.05)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--tolerance", type=float, default=0.10)
    ap.add_argument("--reuse", help="an existing `sweep --force-algorithms` directory (or "
                    "one of --interleave runs)")
    ap.add_argument("--interleave", type=int, default=0, metavar="ROUNDS",
                    help="instead of a sweep: ROUNDS rounds of default and forced runs "
                    "alternated in a shuffled order (see interleaved)")
    ap.add_argument("--statistic", choices=("median_s", "min_s"), default="median_s",
                    help="the time of a case compared (min_s, the fastest sample, is the "
                    "least disturbed on a machine that others load)")
    a = ap.parse_args()
    if a.reuse:
        root = Path(a.reuse)
    else:
        root = Path(tempfile.mkdtemp(prefix="commbench-rules-")) / "sweep"
        (interleaved if a.interleave else sweep)(root, a)
    raw, rules = medians(root)
    res = check(fastest(raw), rules, a.tolerance, a.statistic)
    if res.empty:
        sys.exit("no case has both a default and a forced run")
    pd.set_option("display.width", 160)
    print(f"{rules.label}, sweep {root}, comparing {a.statistic}")
    print(res.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    for op, g in res.groupby("op"):
        print(f"{op}: rules' algorithm within {a.tolerance:.0%} of the default in "
              f"{int(g.ok.sum())} of {len(g)} cases")
    print(f"all: {int(res.ok.sum())} of {len(res)} cases ({res.ok.mean():.0%}); median "
          f"|rules - default| {100 * res.off.abs().median():.1f}%")
    print(repeatability(raw, a.statistic, a.tolerance))
    return 0


if __name__ == "__main__":
    sys.exit(main())
