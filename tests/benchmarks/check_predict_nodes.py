"""Benchmark (not a timed test; needs root, ip, tc): `commbench predict` across emulated nodes
(tests/netns_cluster.py: a network namespace per node, egress shaped to --rate), where the
links, not this machine's cores, set the time of large messages.

One run per node count in --nodes, q = --ranks-per-node ranks on each node, measures the
collectives (allreduce, allgather, reduce_scatter, broadcast, alltoall) and pingpong (with
`--split all,intra,inter` where q > 1) into DIR/n<ranks>. With one node count, the fits of
that run predict it (the pipeline's check); with several, the largest is held out and
predicted from the others (the real use: what you did not run):
- flat: the algorithm models of the whole-world op across the trained rank counts;
- hierarchical (q > 1): `predict --ranks-per-node q`, the two levels of each op
  (analysis.predict_hierarchical.HIERARCHY) from the intra and inter splits. Open MPI's flat algorithms
  are not the two-level ones, so this shows how far the two-level models are from the
  library's choice, not their accuracy for two-level implementations.

    .venv/bin/python tests/benchmarks/check_predict_nodes.py --nodes 2,3,4,5,6 --ranks-per-node 1
    .venv/bin/python tests/benchmarks/check_predict_nodes.py --nodes 2 --ranks-per-node 2
    .venv/bin/python tests/benchmarks/check_predict_nodes.py --reuse DIR --ranks-per-node 1
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from check_predict import (compare, held_out_count, run_counts, summarize,  # noqa: E402
                           trained_on, training_dir)


def measure(root: Path, nodes: list[int], q: int, a) -> None:
    from tests.conftest import commbench_env, mpiexec
    from tests.netns_cluster import Cluster, why_not

    if why_not():
        sys.exit(f"no emulated cluster here: {why_not()}")
    split = ["--split", "all,intra,inter"] if q > 1 else []
    with Cluster(max(nodes), default_rate_bps=a.rate) as c:
        for count in nodes:
            out = root / f"n{count * q}"
            command = [sys.executable, "-m", "bench.cli", "run", "--out", out, "--no-noise",
                       "-q", "--ops", f"{a.ops},pingpong", *split, "--sizes", a.sizes,
                       "--budget", str(a.budget), "--repeats", str(a.repeats),
                       "--min-samples", "5"]
            r = c.mpirun(mpiexec(), command, ranks_per_node=q, nodes=c.nodes[:count],
                         map_by="slot", env=commbench_env(), timeout=1800, cwd=ROOT)
            if r.returncode:
                sys.exit(r.stdout[-2000:] + r.stderr[-4000:])
            print(f"measured {count} nodes × {q} ranks: {out}", file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", default="2", help="node counts, e.g. 2,3,4,5,6")
    ap.add_argument("--ranks-per-node", type=int, default=2)
    ap.add_argument("--rate", type=float, default=200e6, help="node egress, L2 bit/s")
    ap.add_argument("--sizes", default="64K:4M:4")
    ap.add_argument("--budget", type=float, default=0.6)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--ops", default="allreduce,allgather,reduce_scatter,broadcast,alltoall")
    ap.add_argument("--out", help="directory of the runs (default: a new temporary one)")
    ap.add_argument("--reuse", help="runs of an earlier call (DIR/n<ranks>): no new runs")
    ap.add_argument("--bootstrap", type=int, default=100)
    a = ap.parse_args()

    from analysis.fit_pipeline import fit_dir
    from analysis.run_frames import load_summary

    q = a.ranks_per_node
    nodes = sorted({int(x) for x in a.nodes.split(",")})
    if a.reuse:
        root = Path(a.reuse)
    else:
        root = Path(a.out or tempfile.mkdtemp(prefix="commbench-nodes-")) / "runs"
        measure(root, nodes, q, a)
    runs = run_counts(root)
    if not runs:
        sys.exit(f"{root}: no runs (n<ranks>/meta.json)")
    if len(runs) == 1:
        holdout, train = runs[0], root / f"n{runs[0]}"
    else:  # holding out one of two would leave one count: no algorithm fits
        holdout = held_out_count(root, "largest")
        train = training_dir(root, holdout)
    fits = fit_dir(train, n_boot=a.bootstrap)
    summary = load_summary(root / f"n{holdout}")
    whole = summary[summary.op.isin(a.ops.split(",")) & (summary.split == "all")]
    print(f"runs {root}; predicting n{holdout} ({holdout // q} nodes × {q}) from "
          f"{'itself' if len(runs) == 1 else trained_on(train)}"
          + ("" if a.reuse else f"; node egress {a.rate / 1e6:g} Mbit/s"))
    if len(runs) > 1:
        print("\nflat (the whole-world op's algorithm models across rank counts)")
        summarize(compare(fits, whole, holdout), "flat ")
    if q > 1:
        print(f"\nhierarchical (predict --ranks-per-node {q})")
        summarize(compare(fits, whole, holdout, ranks_per_node=q), "hierarchical ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
