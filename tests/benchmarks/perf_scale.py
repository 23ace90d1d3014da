"""Analysis at fleet scale (synthetic runs of thousands of ranks).

    python tests/benchmarks/perf_scale.py [--ranks 1024,4096,16384] [--csv-ranks 1024,4096]
                                          [--samples 100] [--verbs report,fit,links,check,compare]
                                          [--tree OLD_CHECKOUT] [--keep DIR]

A run: 6 collectives × 11 sizes (4 B to 4 MiB by 4) = 66 cases, one round of --samples samples
per case, every rank's time lognormal around a Hockney line, one rank per host 5% slow. Times
are peak RSS (ru_maxrss of the child) and wall time of `python -m bench.cli VERB`, first call.
--tree runs the verbs of another checkout (e.g. a `git worktree` of an older commit) on the
schema-1 CSV runs, side by side: its readers do not know schema 2."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.core import atomic_write, run_writer, rundir  # noqa: E402
from bench.core.samples import block_of  # noqa: E402
from bench.core.stats import summarize_case  # noqa: E402
from bench.ops import OPS  # noqa: E402

# the description of --help (not the docstring: python -OO strips docstrings)
DESCRIPTION = """Analysis at fleet scale: synthetic runs of thousands of ranks (8 per host), written through
the real writer (bench.core.run_writer.RunWriter, schema 2) and in schema 1's CSV form, then the
time and peak memory of each analysis verb as a whole process, the size on disk, and rank 0's
cost of writing one case. Prints how each grows with the ranks."""

OPS_RUN = ["allreduce", "allgather", "reduce_scatter", "alltoall", "broadcast", "allreduce_inplace"]
SIZES = [4 * 4 ** i for i in range(11)]  # 4 B .. 4 MiB


def case_times(rng, op, nbytes, nranks, samples, slow):
    base = 3e-6 + OPS[op].bus_factor(nranks) * nbytes / 5e9
    t = base * rng.lognormal(0.0, 0.05, size=(nranks, samples))
    t[slow] *= 1.05
    return t


def meta_of(run_id, nranks, per_host, schema):
    hosts = [f"node{r // per_host:05d}" for r in range(nranks)]
    meta = rundir.new_meta(run_id, ["commbench", "run", "(synthetic: perf_scale.py)"], "complete")
    meta.update(schema=schema, nranks=nranks, nnodes=nranks // per_host, hosts=hosts,
                backend={"name": "mpi", "library": "synthetic"}, dtype="float32",
                ops={op: OPS[op].facts() for op in OPS_RUN}, launches=[{"index": 0}],
                settings={"nranks": nranks, "dtype": "float32"})
    return meta


def summary_row(op, nbytes, nranks, maxima):
    row = {"backend": "mpi", "op": op, "dtype": "float32", "nbytes": nbytes, "nranks": nranks,
           "split": "all", "count": OPS[op].case(nbytes, nranks, 4).count, "wrong": 0, "rounds": 1}
    row.update(summarize_case(list(maxima), nbytes, OPS[op].bus_factor(nranks), OPS[op].msgs_per_op(nranks)))
    return row


def write_run(out: Path, nranks: int, samples: int, per_host: int = 8, seed: int = 0) -> Path:
    """Schema 2 through RunWriter: a block per case, as rank 0 appends them."""
    rng = np.random.default_rng(seed)
    slow = np.arange(per_host - 1, nranks, per_host * 37)  # one rank in 37 hosts
    writer = run_writer.RunWriter(out, meta_of(out.name, nranks, per_host, rundir.SCHEMA))
    rows = []
    for op in OPS_RUN:
        for nbytes in SIZES:
            t = case_times(rng, op, nbytes, nranks, samples, slow)
            writer.append_block(block_of(("mpi", op, "float32", nbytes, nranks, "all"), 0,
                                         range(nranks), [-1] * nranks, t, 1))
            rows.append(summary_row(op, nbytes, nranks, t.max(axis=0)))
    writer.write_summary(rows, op_order=OPS)
    writer.finish("complete")
    return out


def write_csv_run(out: Path, nranks: int, samples: int, per_host: int = 8, seed: int = 0) -> Path:
    """The same run in schema 1's CSV form (one text line per rank and sample)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    slow = np.arange(per_host - 1, nranks, per_host * 37)
    out.mkdir(parents=True)
    meta = meta_of(out.name, nranks, per_host, rundir.SCHEMA_CSV)
    atomic_write.atomic_write_text(out / rundir.META, __import__("json").dumps(meta, indent=2) + "\n")
    rows = []
    with open(out / rundir.SAMPLES_CSV, "wb") as f:
        f.write((",".join(rundir.WRITTEN_SAMPLE_COLUMNS) + "\n").encode())
        for op in OPS_RUN:
            for nbytes in SIZES:
                t = case_times(rng, op, nbytes, nranks, samples, slow)
                n = t.size
                table = pa.table({
                    "backend": pa.array(["mpi"] * n), "op": pa.array([op] * n),
                    "dtype": pa.array(["float32"] * n), "nbytes": np.full(n, nbytes),
                    "nranks": np.full(n, nranks), "split": pa.array(["all"] * n),
                    "round": np.zeros(n, np.int64), "sample": np.tile(np.arange(samples), nranks),
                    "rank": np.repeat(np.arange(nranks), samples), "calls": np.ones(n, np.int64),
                    "time_s": t.ravel(), "peer": np.full(n, -1)})
                pacsv.write_csv(table, f, pacsv.WriteOptions(include_header=False, quoting_style="none"))
                rows.append(summary_row(op, nbytes, nranks, t.max(axis=0)))
    atomic_write.atomic_write_text(out / rundir.SUMMARY, rundir.csv_text(rundir.WRITTEN_SUMMARY_COLUMNS, rows))
    return out


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def verb_argv(verb, run, base, tmp):
    return {"report": ["report", str(run), "--out", str(tmp / f"report-{run.name}")],
            "fit": ["fit", str(run), "--bootstrap", "0"],
            "links": ["links", str(run)],
            "check": ["check", str(run), "--min", "allreduce:4M=1G"],
            "compare": ["compare", str(base), str(run)]}[verb]


def run_verb(tree: Path, argv) -> tuple:
    """wall seconds, peak RSS (bytes), exit status of one verb, each in its own process (the
    child reports its own ru_maxrss through a wrapper)."""
    code = ("import resource, runpy, sys, time; t0 = time.perf_counter(); sys.argv = ['commbench'] + "
            f"{argv!r}\ntry:\n    from bench.cli import main; rc = main(sys.argv[1:])\nfinally:\n"
            "    print(f'@@ {time.perf_counter() - t0} '\n"
            "          f'{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}', "
            "file=sys.stderr)\nsys.exit(rc)")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    line = [x for x in proc.stderr.splitlines() if x.startswith("@@ ")]
    rss = int(line[-1].split()[2]) * 1024 if line else -1
    errors = [x for x in proc.stderr.splitlines() if x.startswith("commbench")][-1:]
    return wall, rss, proc.returncode, errors


def writer_cost(nranks: int, samples: int, tmp: Path, repeats: int = 5) -> float:
    """Rank 0's cost of one case: from the gathered per-rank lists to the block on disk."""
    rng = np.random.default_rng(1)
    gathered = [(r, list(rng.lognormal(-12, 0.1, samples)), 0, -1, ()) for r in range(nranks)]
    writer = run_writer.RunWriter(tmp / f"writer-{nranks}", meta_of("w", nranks, 8, rundir.SCHEMA))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        ranks, peers, times = [], [], []
        for rank, local, _wrong, peer, _flags in gathered:
            if local:
                ranks.append(rank)
                peers.append(peer)
                times.append(local)
        writer.append_block(block_of(("mpi", "allreduce", "float32", 4, nranks, "all"), 0, ranks,
                                     peers, times, 1))
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=DESCRIPTION)
    ap.add_argument("--ranks", default="1024,4096,16384")
    ap.add_argument("--csv-ranks", default="1024,4096")
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--verbs", default="report,fit,links,check,compare")
    ap.add_argument("--tree", help="another checkout whose verbs also run on the CSV runs")
    ap.add_argument("--keep", help="build the runs here (kept) instead of a temporary folder")
    args = ap.parse_args()
    verbs = args.verbs.split(",")
    tmp_ctx = tempfile.TemporaryDirectory() if not args.keep else None
    tmp = Path(args.keep or tmp_ctx.name)
    tmp.mkdir(parents=True, exist_ok=True)
    forms = [("bin", int(n), ROOT) for n in args.ranks.split(",") if n] + \
            [("csv", int(n), ROOT) for n in args.csv_ranks.split(",") if n]
    if args.tree:
        forms += [("csv", int(n), Path(args.tree).resolve()) for n in args.csv_ranks.split(",") if n]
    print(f"# {len(OPS_RUN)} ops x {len(SIZES)} sizes, {args.samples} samples per case, 8 ranks per host; "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print("form  tree      ranks  samples(M)  disk MB  MB/Msample  " + "  ".join(f"{v:>16}" for v in verbs))
    results = {}
    for form, n, tree in forms:
        run = tmp / f"{form}-n{n}"
        base = tmp / f"{form}-n{n}-base"
        for path, seed in ((run, 0), (base, 1)):
            if not path.exists():
                (write_run if form == "bin" else write_csv_run)(path, n, args.samples, seed=seed)
        msamples = n * args.samples * len(OPS_RUN) * len(SIZES) / 1e6
        size = du(run)
        cells = []
        for verb in verbs:
            wall, rss, rc, err = run_verb(tree, verb_argv(verb, run, base, tmp))
            results[(form, tree, n, verb)] = (wall, rss)
            note = "" if rc in (0, 1) else f" rc={rc} {err}"
            cells.append(f"{wall:6.1f}s {rss / 2**30:5.2f}GB{note}")
        label = "this" if tree == ROOT else "other"
        print(f"{form:4}  {label:6} {n:8}  {msamples:10.1f}  {size / 1e6:7.0f}  "
              f"{size / 1e6 / msamples:10.1f}  " + "  ".join(f"{c:>16}" for c in cells), flush=True)
    print("# growth of time from the smallest to each larger rank count (same form and tree):")
    def order(kv):
        (form, tree, n, verb), _ = kv
        return form, str(tree), verb, n

    for (form, tree, n, verb), (wall, _) in sorted(results.items(), key=order):
        smallest = min(m for (f, t, m, v) in results if (f, t, v) == (form, tree, verb))
        if n != smallest:
            w0 = results[(form, tree, smallest, verb)][0]
            print(f"#   {form} {'this' if tree == ROOT else 'other'} {verb}: {n // smallest}x the ranks "
                  f"-> {wall / w0:.2f}x the time")
    for n in sorted({n for form, n, _ in forms if form == "bin"}):
        print(f"# rank 0 writes one case of {n} ranks x {args.samples} samples in "
              f"{writer_cost(n, args.samples, tmp) * 1e3:.0f} ms (best of 5)")
    if tmp_ctx:
        tmp_ctx.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
