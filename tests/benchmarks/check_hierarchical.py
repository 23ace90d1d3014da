"""Benchmark (not a timed test; needs root, ip, tc): the hierarchical models on an emulated
2-node cluster (tests/netns_cluster.py), 2 ranks per node, shaped inter-node links.

One run measures the collectives (allreduce, allgather, reduce_scatter, broadcast, alltoall)
and pingpong with `--split all,intra,inter`; `commbench fit` fits each split;
`predict --ranks-per-node 2` composes the two levels of each op (analysis.predict.HIERARCHY:
e.g. allreduce = intra allreduce on 2 ranks of S + inter allreduce on 2 nodes of S/2) and is
compared with the measured whole-world op. Open MPI's flat algorithms are not the two-level
ones, so this checks the pipeline and shows how far the two-level models are from the
library's choice, not the models' accuracy for two-level implementations.

    .venv/bin/python tests/benchmarks/check_hierarchical.py [--rate 1e9] [--sizes 64K:4M:4]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=1e9, help="node egress, L2 bit/s")
    ap.add_argument("--sizes", default="64K:4M:4")
    ap.add_argument("--budget", type=float, default=0.3)
    ap.add_argument("--out", help="run directory (default: a new temporary one)")
    ap.add_argument("--ops", default="allreduce,allgather,reduce_scatter,broadcast,alltoall")
    a = ap.parse_args()

    from analysis.fitsfile import fit_dir
    from analysis.predict import predict
    from analysis.rundir import load_summary
    from tests.conftest import commbench_env, mpiexec
    from tests.netns_cluster import Cluster, why_not

    if why_not():
        sys.exit(f"no emulated cluster here: {why_not()}")
    out = Path(a.out or tempfile.mkdtemp(prefix="commbench-hier-")) / "run"
    command = [sys.executable, "-m", "bench.cli", "run", "--out", out, "--no-noise", "-q",
               "--ops", f"{a.ops},pingpong", "--split", "all,intra,inter", "--sizes", a.sizes,
               "--budget", str(a.budget), "--repeats", "2", "--min-samples", "5"]
    with Cluster(2, default_rate_bps=a.rate) as c:
        r = c.mpirun(mpiexec(), command, ranks_per_node=2, map_by="slot", env=commbench_env(),
                     timeout=900)
    if r.returncode:
        sys.exit(r.stdout[-2000:] + r.stderr[-4000:])
    fits = fit_dir(out, n_boot=100)
    summary = load_summary(out)
    whole = summary[summary.op.isin(a.ops.split(",")) & (summary.split == "all")]
    rows = []
    for case in whole.itertuples():
        try:
            p = predict(fits, case.op, 4, case.nbytes, ranks_per_node=2)
        except Exception as exc:  # a level without fits: say so, go on
            print(f"{case.op} {case.nbytes}: {exc}", file=sys.stderr)
            continue
        rows.append(dict(op=case.op, nbytes=case.nbytes, measured_us=case.median_s * 1e6,
                         hierarchical_us=p.time_s * 1e6, low_us=p.low_s * 1e6,
                         high_us=p.high_s * 1e6,
                         rel_error=(p.time_s - case.median_s) / case.median_s,
                         inside=p.low_s <= case.median_s <= p.high_s, model=p.model))
    res = pd.DataFrame(rows)
    print(f"run {out}; node egress {a.rate / 1e9:g} Gbit/s")
    print(res.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    if len(res):
        for op, g in res.groupby("op"):
            e = g.rel_error.abs()
            print(f"{op}: median |error| {100 * e.median():.0f}%, worst {100 * e.max():.0f}%, "
                  f"inside interval {g.inside.mean():.0%}")
    rate = fits[fits.param == "node_rate_Bps"]
    if len(rate):
        print(rate[["op", "split", "model", "segment", "value"]].drop_duplicates(
            ["op", "split", "value"]).to_string(index=False))
    hock = fits[(fits.model == "hockney") & (fits.param.isin(["alpha_s", "bandwidth_Bps"]))]
    print(hock[["op", "split", "nranks", "segment", "nbytes_lo", "nbytes_hi", "param",
                "value"]].to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
