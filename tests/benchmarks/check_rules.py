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
    .venv/bin/python tests/benchmarks/check_rules.py --trace          # Open MPI: no timing

Several runs of one algorithm (--interleave): the fastest of their times per case. The
default's time is taken from the default runs only (not from the runs that forced other
ops), so the default and each forced algorithm have the same number of runs: the fastest of
8 runs against the fastest of 2 favours the default wherever runs spread (4 ranks on 2
cores spread 2-4x).

--trace asks Open MPI itself, without timing: a small shared library, compiled here with
`cc` and preloaded into the ranks (LD_PRELOAD, which the local mpiexec passes on), stands in
front of coll/tuned's `ompi_coll_tuned_<coll>_intra_do_this` — the one call through which
both the fixed decision and a forced algorithm run an algorithm — and writes the
communicator size, the bytes (count × type size, the size the tables are keyed by) and the
algorithm number of every distinct call, then runs it. Every measured case of a default run
is then compared with the rules' number. Exit status 1 when one differs.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from functools import partial
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


# The tracer preloaded into every rank (see the module docstring). The prototypes are those
# of ompi/mca/coll/tuned/coll_tuned.h in Open MPI 4.1 and 5.0 (`int` counts; pointers kept
# opaque); the real function is looked up in libmpi itself, which the wrapper forwards to.
TRACER_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void *real(const char *name) {
    /* libmpi loaded by mpi4py is not in the global scope: ask it by name first */
    static void *libmpi;
    if (!libmpi) libmpi = dlopen("libmpi.so.40", RTLD_NOW | RTLD_NOLOAD);
    void *found = libmpi ? dlsym(libmpi, name) : dlsym(RTLD_NEXT, name);
    if (!found) {
        fprintf(stderr, "commbench tracer: %s not found\n", name);
        abort();
    }
    return found;
}

static void note(const char *coll, void *comm, void *dtype, long count, int alg, int segsize) {
    static struct { const char *coll; int p; long bytes; int alg; } seen[1024];
    static int nseen;
    static FILE *out;
    int p = 0, size = 0;
    ((int (*)(void *, int *))real("MPI_Comm_size"))(comm, &p);
    if (dtype) ((int (*)(void *, int *))real("MPI_Type_size"))(dtype, &size);
    long bytes = count * size;
    for (int i = 0; i < nseen; i++)
        if (seen[i].coll == coll && seen[i].p == p && seen[i].bytes == bytes
            && seen[i].alg == alg) return;
    if (nseen < 1024) {
        seen[nseen].coll = coll; seen[nseen].p = p; seen[nseen].bytes = bytes;
        seen[nseen].alg = alg; nseen++;
    }
    if (!out) {
        char path[4096];
        snprintf(path, sizeof path, "%s/tuned.%d.txt", getenv("COMMBENCH_TUNED_TRACE"),
                 (int)getpid());
        if (!(out = fopen(path, "a"))) return;
    }
    fprintf(out, "%s %d %ld %d %d\n", coll, p, bytes, alg, segsize);
    fflush(out);
}

#define FORWARD(name, ...) return ((int (*)())real("ompi_coll_tuned_" name "_intra_do_this"))(__VA_ARGS__)

int ompi_coll_tuned_allreduce_intra_do_this(void *s, void *r, int n, void *t, void *op,
        void *comm, void *m, int alg, int fan, int seg) {
    note("allreduce", comm, t, n, alg, seg);
    FORWARD("allreduce", s, r, n, t, op, comm, m, alg, fan, seg);
}
int ompi_coll_tuned_reduce_scatter_block_intra_do_this(void *s, void *r, int n, void *t,
        void *op, void *comm, void *m, int alg, int fan, int seg) {
    note("reduce_scatter_block", comm, t, n, alg, seg);
    FORWARD("reduce_scatter_block", s, r, n, t, op, comm, m, alg, fan, seg);
}
int ompi_coll_tuned_allgather_intra_do_this(void *s, int n, void *t, void *r, int rn,
        void *rt, void *comm, void *m, int alg, int fan, int seg) {
    note("allgather", comm, s == (void *)1 ? rt : t, s == (void *)1 ? rn : n, alg, seg);
    FORWARD("allgather", s, n, t, r, rn, rt, comm, m, alg, fan, seg);
}
int ompi_coll_tuned_alltoall_intra_do_this(void *s, int n, void *t, void *r, int rn,
        void *rt, void *comm, void *m, int alg, int fan, int seg, int maxreq) {
    note("alltoall", comm, s == (void *)1 ? rt : t, s == (void *)1 ? rn : n, alg, seg);
    FORWARD("alltoall", s, n, t, r, rn, rt, comm, m, alg, fan, seg, maxreq);
}
int ompi_coll_tuned_bcast_intra_do_this(void *b, int n, void *t, int root, void *comm,
        void *m, int alg, int fan, int seg) {
    note("bcast", comm, t, n, alg, seg);
    FORWARD("bcast", b, n, t, root, comm, m, alg, fan, seg);
}
int ompi_coll_tuned_reduce_intra_do_this(void *s, void *r, int n, void *t, void *op,
        int root, void *comm, void *m, int alg, int fan, int seg, int maxreq) {
    note("reduce", comm, t, n, alg, seg);
    FORWARD("reduce", s, r, n, t, op, root, comm, m, alg, fan, seg, maxreq);
}
int ompi_coll_tuned_barrier_intra_do_this(void *comm, void *m, int alg, int fan, int seg) {
    note("barrier", comm, NULL, 0, alg, seg);
    FORWARD("barrier", comm, m, alg, fan, seg);
}
"""


def build_tracer(where: Path) -> Path:
    """TRACER_C compiled into where/tuned_trace.so with $CC (cc)."""
    src, lib = where / "tuned_trace.c", where / "tuned_trace.so"
    src.write_text(TRACER_C)
    cc = os.environ.get("CC", "cc")
    done = subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", str(lib), str(src), "-ldl"],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"{cc} could not build the tracer:\n{done.stderr}")
    return lib


def traced_runs(out: Path, counts, ops: str, sizes: str, budget: float, env=None,
                run_args=()) -> pd.DataFrame:
    """One run per count with the tracer preloaded (env: more variables, such as a forced
    algorithm): the algorithm coll/tuned ran per (coll, p, bytes) — rows of coll, p, bytes,
    algorithm, segsize."""
    lib = build_tracer(out)
    rows = []
    for p in str(counts).split(","):
        logs = out / f"trace.n{p}"
        logs.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "bench.cli", "run", "-n", p, "--ops", ops, "--sizes",
               sizes, "--budget", str(budget), "--repeats", "1", "--launches", "1", "-q",
               *run_args, "--out", str(out / f"n{p}.traced")]
        print(f"{p} ranks, traced", file=sys.stderr)
        run_env = {**os.environ, **(env or {}), "LD_PRELOAD": str(lib),
                   "COMMBENCH_TUNED_TRACE": str(logs)}
        if subprocess.call(cmd, env=run_env):
            sys.exit(f"{p} ranks: the traced run failed")
        for f in logs.glob("tuned.*.txt"):
            for line in f.read_text().split("\n"):
                if line.strip():
                    coll, n, nbytes, alg, seg = line.split()
                    rows.append((coll, int(n), int(nbytes), int(alg), int(seg)))
    return pd.DataFrame(rows, columns=["coll", "p", "bytes", "algorithm", "segsize"]
                        ).drop_duplicates()


def check_trace(root: Path, traced: pd.DataFrame) -> pd.DataFrame:
    """Every case of the traced runs: the rules' algorithm number and the one Open MPI ran."""
    from analysis import library
    from analysis.fit_pipeline import itemsize
    from analysis.run_times import discover_runs
    from analysis.meta_checks import load_checked_meta as load_meta
    from analysis.run_frames import load_summary

    runs = discover_runs(root)
    rules, why = library.of_runs([load_meta(d) for d in runs])
    if rules is None or rules.family != library.OPEN_MPI:
        sys.exit(f"{root}: {why or 'not Open MPI: --trace reads coll/tuned'}")
    rows = []
    for d in runs:
        for case in load_summary(d).itertuples():
            op, p, nbytes = case.op, int(case.nranks), float(case.nbytes)
            choice = rules.choose(op, p, nbytes, itemsize(case.dtype))
            if choice is None:
                continue
            coll = library.forcing.OPEN_MPI_ALGORITHMS[op][0]
            key = library.OMPI_TABLES[op][1](nbytes, p)
            ran = traced[(traced.coll == coll) & (traced.p == p) & (traced.bytes == key)]
            ran_alg = sorted(set(ran.algorithm))
            name = partial(library.forcing.native_name, library.OPEN_MPI, op)
            rows.append({"op": op, "p": p, "nbytes": int(nbytes), "keyed_bytes": key,
                         "rules": f"{choice.forced} {choice.native}",
                         "ran": " ".join(f"{n} {name(n)}" for n in ran_alg) or "(not seen)",
                         "segsize": " ".join(str(v) for v in sorted(set(ran.segsize))),
                         "ok": ran_alg == [choice.forced]})
    return pd.DataFrame(rows)


def medians(root: Path) -> tuple[pd.DataFrame, object]:
    """Every run's summary, with the run's forced algorithm ("" for the default run), and
    the library's rules."""
    from analysis import library
    from analysis.run_times import discover_runs
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
        if forced:  # another op's forced run: its unforced ops are not default runs here
            s = s[s.op.isin(list(forced))].copy()
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
    ap.add_argument("--trace", action="store_true",
                    help="Open MPI: instead of timing, record the algorithm coll/tuned ran "
                    "in each case (see the module docstring)")
    a = ap.parse_args()
    if a.trace:
        root = Path(tempfile.mkdtemp(prefix="commbench-trace-"))
        res = check_trace(root, traced_runs(root, a.counts, a.ops, a.sizes, a.budget))
        if res.empty:
            sys.exit("no traced case")
        pd.set_option("display.width", 160)
        print(res.to_string(index=False))
        for (op, p), g in res.groupby(["op", "p"]):
            print(f"{op} at {p} ranks: the rules' algorithm ran in {int(g.ok.sum())} of "
                  f"{len(g)} cases")
        print(f"all: {int(res.ok.sum())} of {len(res)} cases")
        return 0 if res.ok.all() else 1
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
        by_count = ", ".join(f"{int(h.ok.sum())}/{len(h)} at {p}" for p, h in g.groupby("p"))
        print(f"{op}: rules' algorithm within {a.tolerance:.0%} of the default in "
              f"{int(g.ok.sum())} of {len(g)} cases ({by_count} ranks)")
    print(f"all: {int(res.ok.sum())} of {len(res)} cases ({res.ok.mean():.0%}); median "
          f"|rules - default| {100 * res.off.abs().median():.1f}%")
    print(repeatability(raw, a.statistic, a.tolerance))
    return 0


if __name__ == "__main__":
    sys.exit(main())
