"""Benchmark (not a timed test): does `commbench predict` get a held-out rank count right?

Runs `commbench sweep` over local ranks (e.g. 2,3,4, oversubscribed on a small machine), fits
the algorithm models on all counts but one (by default the largest: extrapolation, the case
that matters), predicts every measured case of the held-out count and compares with its
measured median. Prints per-case errors and the summary figures: median and worst relative
error, share within 25%, and coverage — the share of measured medians inside the predicted
interval, against the level the interval claims (analysis.predict_interval.LEVEL) — and whether the
targets hold (every case within 25%, median within 10%).

    .venv/bin/python tests/benchmarks/check_predict.py --counts 2,3,4            # holds out 4
    .venv/bin/python tests/benchmarks/check_predict.py --counts 2,4,8,16 --holdout largest
    .venv/bin/python tests/benchmarks/check_predict.py --reuse DIR --holdout 8    # no new runs

--reuse takes any sweep directory (DIR/n<count> runs), also one of imported OSU results
(`commbench import` of osu_allreduce at each count into DIR/n<count>).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd


def sweep(out: Path, counts: str, ops: str, sizes: str, budget: float, repeats: int,
          backend: str) -> None:
    cmd = [sys.executable, "-m", "bench.cli", "sweep", "--nranks", counts, "--backend", backend,
           "--ops", ops,
           "--sizes", sizes, "--budget", str(budget), "--repeats", str(repeats), "-q",
           "--out", str(out)]
    print("$", " ".join(cmd[2:]), file=sys.stderr)
    rc = subprocess.call(cmd)
    if rc:
        sys.exit(f"sweep failed with status {rc}")


def training_dir(sweep_dir: Path, holdout: int) -> Path:
    """A directory of links to every run of the sweep but the held-out count's (its default
    run n<count> and its forced-algorithm runs n<count>.<op>.<algorithm>)."""
    train = Path(tempfile.mkdtemp(prefix="commbench-train-"))
    for run in sorted(sweep_dir.iterdir()):
        if (run / "meta.json").exists() and run.name.split(".")[0] != f"n{holdout}":
            (train / run.name).symlink_to(run.resolve())
    return train


def trained_on(train: Path) -> list[str]:
    return sorted(x.name for x in train.iterdir() if (x / "meta.json").exists())


def run_counts(root: Path) -> list[int]:
    """The rank counts of the runs in a sweep directory (DIR/n<count>)."""
    if not root.is_dir():
        sys.exit(f"{root}: not a directory")
    return sorted(int(d.name[1:]) for d in root.iterdir()
                  if d.name[:1] == "n" and d.name[1:].isdigit() and (d / "meta.json").exists())



def held_out_count(root: Path, holdout: str) -> int:
    """The rank count to hold out: `holdout`, or the largest of the runs (DIR/n<count>)."""
    if holdout != "largest":
        return int(holdout)
    runs = run_counts(root)
    if len(runs) < 3:
        sys.exit(f"{root}: needs runs at 3 or more rank counts, has {sorted(runs)}")
    return max(runs)


def compare(fits, held, nranks: int, **predict_kw) -> pd.DataFrame:
    """Every case of `held` (a summary) predicted at nranks from the fits, against its median:
    errors, whether the interval holds it, its width, the model and what its notes say."""
    from analysis.predict_op import predict

    rows = []
    for r in held.itertuples():
        try:
            p = predict(fits, r.op, nranks, r.nbytes, backend=r.backend, **predict_kw)
        except Exception as exc:  # an op without algorithm models
            print(f"{r.op} {r.nbytes}: {exc}", file=sys.stderr)
            continue
        rows.append(dict(op=r.op, nbytes=r.nbytes, measured_us=r.median_s * 1e6,
                         predicted_us=p.time_s * 1e6, low_us=p.low_s * 1e6,
                         high_us=p.high_s * 1e6, model=p.model,
                         rel_error=(p.time_s - r.median_s) / r.median_s,
                         inside=p.low_s <= r.median_s <= p.high_s,
                         width=p.high_s / p.low_s if p.low_s > 0 else np.inf,
                         limit="binds" if any("limit binds" in x for x in p.notes) else "",
                         change="yes" if any("algorithm changes" in x for x in p.notes) else ""))
    return pd.DataFrame(rows)


def summarize(res: pd.DataFrame, label: str = "") -> bool:
    """Print the table, per-op and overall figures; whether the targets hold (every case
    within 25%, median within 10%)."""
    from analysis.predict_interval import LEVEL

    pd.set_option("display.width", 160)
    print(res.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    if res.empty:
        sys.exit("nothing predicted")
    err = np.abs(res.rel_error)
    for op, g in res.groupby("op"):
        e = np.abs(g.rel_error)
        print(f"{label}{op}: median |error| {100 * e.median():.1f}%, worst {100 * e.max():.1f}%, "
              f"within 25%: {(e <= 0.25).mean():.0%}, coverage {g.inside.mean():.0%} "
              f"(claimed {LEVEL:.0%}), median interval high/low {g.width.median():.2f}")
    print(f"{label}all: median |error| {100 * err.median():.1f}%, worst {100 * err.max():.1f}%, "
          f"within 25%: {(err <= 0.25).mean():.0%}, coverage {res.inside.mean():.0%} of "
          f"{len(res)} cases (claimed {LEVEL:.0%})")
    ok = bool((err <= 0.25).all() and err.median() <= 0.10)
    print(f"{label}targets (every case within 25%, median within 10%): "
          f"{'met' if ok else 'NOT met'}")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", default="2,3,4")
    ap.add_argument("--holdout", default="largest",
                    help="rank count to hold out, or 'largest' (default)")
    ap.add_argument("--ops", default="allreduce,allgather")
    ap.add_argument("--backend", default="mpi")
    ap.add_argument("--sizes", default="1K:1M")
    ap.add_argument("--budget", type=float, default=0.3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", help="sweep directory (default: a new temporary one)")
    ap.add_argument("--reuse", help="an existing sweep directory: no new runs")
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--no-library", action="store_true",
                    help="ignore the MPI library's decision rules (commbench's own selection, "
                    "as before they were known)")
    a = ap.parse_args()

    from analysis.fit_pipeline import fit_dir, fit_loaded
    from analysis.predict_op import library_of
    from analysis.run_times import load_sweep
    from analysis.run_frames import load_summary

    if a.reuse:
        root = Path(a.reuse)
    else:
        root = Path(a.out or tempfile.mkdtemp(prefix="commbench-sweep-")) / "sweep"
        sweep(root, a.counts, a.ops, a.sizes, a.budget, a.repeats, a.backend)
    holdout = held_out_count(root, a.holdout)
    train = training_dir(root, holdout)
    if a.no_library:
        runs, metas, times = load_sweep(train)
        fits = fit_loaded(runs, [{k: v for k, v in m.items() if k != "backend"} for m in metas],
                          times, n_boot=a.bootstrap)
        rules, why, size = None, "--no-library", 4
    else:
        fits = fit_dir(train, n_boot=a.bootstrap)
        rules, why, size = library_of(train)
    print(f"sweep {root}; trained on {trained_on(train)}, "
          f"held out n{holdout}; algorithms: "
          f"{rules.label + ' decision rules' if rules else why + ': commbench selection'}")
    summarize(compare(fits, load_summary(root / f"n{holdout}"), holdout, rules=rules,
                      itemsize=size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
