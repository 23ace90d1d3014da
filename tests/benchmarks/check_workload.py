"""Benchmark (not a timed test): does `commbench workload` predict the communication of a
training step that it then measures on the same machine?

Runs a sweep over local ranks (2 and 4 by default) of the ops a step uses, then for several
layouts of a small model on 4 ranks `commbench workload --fits SWEEP --measure -n 4`, and
compares per layout and per group the measured per-step time with the predicted one (ratio,
and whether the measurement lies inside the predicted interval).

    .venv/bin/python tests/benchmarks/check_workload.py
    .venv/bin/python tests/benchmarks/check_workload.py --reuse DIR    # an existing sweep

What a 2-core machine can and cannot show: the chain works end to end (schedule -> distinct
cases -> layout sub-communicators -> per-step sums), and groups that span all ranks (tp 4,
dp 4) are measured under the same conditions the sweep's 4-rank runs had, so their
prediction should hold. Groups of 2 of 4 oversubscribed ranks run two at a time (as in
training: all tp groups at once) on 2 cores, while the sweep measured 2 ranks alone: their
measured times are expected to exceed the prediction, which is contention this machine has and
a cluster would not. Nothing here says anything about NICs, intra- versus inter-node links,
GPUs/NCCL, or how much of the step is hidden behind compute.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

MODEL = {"name": "bench-small", "layers": 4, "hidden": 512, "ffn": 1536, "heads": 8,
         "kv_heads": 8, "vocab": 8192}
LAYOUTS = {
    "tp4": ["--tp", "4"],
    "tp2-dp2": ["--tp", "2", "--dp", "2"],
    "dp4-zero1": ["--dp", "4", "--zero", "1"],
    "dp4-zero3": ["--dp", "4", "--zero", "3"],
    "tp2-pp2-sp": ["--tp", "2", "--pp", "2", "--sequence-parallel", "--grad-accum", "2"],
}


def swept(sweep: Path, op: str, nranks: int, nbytes: int) -> float:
    """The sweep's median time of op at nranks, interpolated log-log in S (nan: not swept)."""
    path = sweep / f"n{nranks}" / "summary.csv"
    if not path.exists():
        return float("nan")
    s = pd.read_csv(path)
    s = s[(s.op == op) & (s.split == "all")].sort_values("nbytes")
    if s.empty:
        return float("nan")
    x, y = np.log(s.nbytes.to_numpy(float)), np.log(s.median_s.to_numpy(float))
    return float(np.exp(np.interp(np.log(nbytes), x, y)))


def contended(measure: Path) -> dict:
    """{group: whether its measuring run saw other processes take the CPUs}."""
    out = {}
    for run in sorted(measure.iterdir()) if measure.is_dir() else []:
        try:
            hosts = json.loads((run / "meta.json").read_text())["contention"]["hosts"]
        except (OSError, KeyError, ValueError):
            continue
        out[run.name] = any(h.get("contended") for h in hosts.values())
    return out


def commbench(*args) -> int:
    cmd = [sys.executable, "-m", "bench.cli", *map(str, args)]
    print("$ commbench", " ".join(map(str, args)), file=sys.stderr)
    return subprocess.call(cmd)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", default="2,4")
    ap.add_argument("--sizes", default="4K:16M:4")
    ap.add_argument("--budget", type=float, default=0.3)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--bucket", default="8M", help="gradient buckets (default 8M: inside the sweep)")
    ap.add_argument("--reuse", help="an existing sweep directory: no new sweep")
    ap.add_argument("--out", help="working directory (default: a new temporary one)")
    a = ap.parse_args()
    work = Path(a.out or tempfile.mkdtemp(prefix="commbench-workload-"))
    work.mkdir(parents=True, exist_ok=True)
    sweep = Path(a.reuse) if a.reuse else work / "sweep"
    if not a.reuse:
        rc = commbench("sweep", "--nranks", a.counts, "--ops",
                       "allreduce,allgather,reduce_scatter,pingpong", "--sizes", a.sizes,
                       "--budget", a.budget, "--launches", "1", "-q", "--out", sweep)
        if rc:
            sys.exit(f"sweep failed with status {rc}")
    model = work / "model.json"
    model.write_text(json.dumps(MODEL))
    lines = []
    for name, layout in LAYOUTS.items():
        out = work / name
        rc = commbench("workload", "--model", model, "--seq", a.seq, *layout, "--bucket", a.bucket,
                       "--fits", sweep,
                       "--out", out, "--measure", "-n", "4", "--budget", a.budget,
                       "--launches", "1", "-q")
        if rc not in (0, 1):
            print(f"{name}: workload failed with status {rc}", file=sys.stderr)
            continue
        t = pd.read_csv(out / "workload_times.csv")
        keys = ["phase", "op", "group", "nbytes"]
        m = t[t.source == "measured"].set_index(keys)
        p = t[(t.source == "predicted") & (t.nranks == 4)].set_index(keys)
        both = m.join(p.add_suffix("_p"), how="inner")
        both["swept_s"] = [swept(sweep, op, int(r.group_size), nbytes) * r["count"]
                           for (_, op, _, nbytes), r in both.iterrows()]
        busy = contended(out / "measure")
        for group, g in list(both.groupby(level="group")) + [("all", both)]:
            lines.append((name, group, len(g), g.step_s.sum(), g.swept_s.sum(),
                          g.step_s_p.sum(), g.step_low_s_p.sum(), g.step_high_s_p.sum(),
                          busy.get(group, any(busy.values()))))
    print(f"\n{'layout':12} {'group':6} {'rows':>4} {'measured':>10} {'swept':>10} "
          f"{'predicted':>10} {'interval':>22} {'m/swept':>7} {'m/pred':>6} inside  contended")
    for name, group, n, meas, swept_s, pred, lo, hi, busy in lines:
        us = lambda x: f"{x * 1e6:8.0f}us"  # noqa: E731
        print(f"{name:12} {group:6} {n:4d} {us(meas)} {us(swept_s)} {us(pred)} "
              f"[{lo * 1e6:8.0f},{hi * 1e6:9.0f}]us {meas / swept_s:7.2f} {meas / pred:6.2f} "
              f"{'yes' if lo <= meas <= hi else 'no':6}  {'yes' if busy else 'no'}")
    whole = [x for x in lines if x[1] == "all"]
    inside = sum(x[6] <= x[3] <= x[7] for x in whole)
    print(f"\n{inside} of {len(whole)} layouts' measured per-step totals inside the predicted "
          f"interval; work directory {work}")
    print("measured: the step's rows on the layout's groups (all groups of a kind at once);\n"
          "swept: the sweep's own medians at the group's rank count, interpolated in S (no model);\n"
          "predicted: commbench's fitted models (analysis.predict) at the group's rank count;\n"
          "contended: other processes took more than 10% of the CPUs while the group's run "
          "measured (meta.json -> contention): its times are not this machine's own")
    return 0


if __name__ == "__main__":
    sys.exit(main())
