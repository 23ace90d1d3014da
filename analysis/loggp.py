"""LogGP (Hoefler, Lichei & Rehm 2009, "LogGP in theory and practice") from the `prtt_*` ops,
Netgauge's parametrised round trip (bench/ops/prtt.py), measured with

    commbench run -n 2 --ops prtt_rtt1,prtt_rttn8,prtt_rtts8,prtt_rttr8 --sizes 4:1M:4

g and G piecewise in S (break points as for Hockney, analysis.robust.best_partition), o_s, o_r
and L per message; see `fit_loggp` for the method.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import numpy as np

from analysis.robust import (best_partition, bootstrap_medians, fit_relative, fit_segments,
                             percentile_ci, relative_residuals)
from bench.ops.prtt import PRTT_DELAY_BPS, PRTT_DELAY_S0

if TYPE_CHECKING:  # pandas is imported where used: `commbench run` ranks never need it
    import pandas as pd

PRTT_KINDS = ("rtt1", "rttn", "rtts", "rttr")
SMALL_SIZES = 3  # sizes behind LogGP's per-message o_s, o_r and L


def fit_loggp(prtt: dict, n_msgs: int, delay, n_boot: int = 200, seed: int = 0,
              max_segments: int = 3, min_points: int = 3):
    """LogGP parameters from Netgauge-style parametrised round trips (the `prtt_*` ops).

    prtt: {(kind, s): sample times} with kind
      "rtt1"  PRTT(1, 0, s): one s-byte message and its echo,
      "rttn"  PRTT(n, 0, s): n back-to-back s-byte messages, then one echo,
      "rtts"  PRTT(n, d, s): as rttn with the sender idle d(s) before every message but the first,
      "rttr"  as rttn with the receiver idle d(s) before every receive but the first (the
              messages wait for it: each later receive costs o_r).
    delay: s -> d(s) in seconds, as the ops used it.
    LogGP (Hoefler, Lichei & Rehm 2009, "LogGP in theory and practice"):
      G_all(s) = g + (s−1)·G = (PRTT(n,0,s) − PRTT(1,0,s)) / (n−1): a line in s, piecewise
        (protocol changes), break points chosen as for Hockney;
      o_s(s) = (PRTT_s(n,d,s) − PRTT(1,0,s)) / (n−1) − d(s), o_r(s) likewise from rttr,
        valid where d(s) ≥ G_all(s) (else the gap, not the overhead, paces the messages);
      L = PRTT(1,0,s)/2 − o_s(s) − o_r(s) − (s−1)·G.
    o_s, o_r and L are per message in LogGP: reported as the median over the three smallest
    sizes where d(s) ≥ G_all(s) (robust to one disturbed size).
    Returns {"segments": [Segment with theta (g, G)], "scalars": {param: (value, lo, hi)},
    "per_size": DataFrame of s, G_all, o_s, o_r, "note": why o_s, o_r and L are NaN, or None}."""
    sizes = sorted({s for (kind, s) in prtt if kind == "rtt1"})
    for kind in PRTT_KINDS:
        missing = [s for s in sizes if (kind, s) not in prtt]
        if missing:
            raise ValueError(f"prtt: no {kind} samples at sizes {missing}")
    if len(sizes) < 2:
        raise ValueError("prtt: LogGP needs at least 2 sizes")
    s = np.array(sizes, dtype=float)
    d = np.array([delay(x) for x in sizes], dtype=float)
    groups = {k: [np.asarray(prtt[(k, x)], float) for x in sizes] for k in PRTT_KINDS}
    med = {k: np.array([np.median(g) for g in v]) for k, v in groups.items()}
    rng = np.random.default_rng(seed)
    boot = ({k: bootstrap_medians(v, n_boot, rng) for k, v in groups.items()}
            if n_boot > 0 else None)

    def derived(m):
        gall = (m["rttn"] - m["rtt1"]) / (n_msgs - 1)
        o_s = (m["rtts"] - m["rtt1"]) / (n_msgs - 1) - d
        o_r = (m["rttr"] - m["rtt1"]) / (n_msgs - 1) - d
        return gall, o_s, o_r

    gall, o_s, o_r = derived(med)
    X = np.column_stack([np.ones_like(s), np.maximum(s - 1, 0)])  # columns (g, G)
    floor = 1e-3 * np.abs(gall).max()  # a non-positive difference is noise: keep it small
    y = np.maximum(gall, floor)

    def residuals(i, j):
        sl = slice(i, j + 1)
        return relative_residuals(X[sl], y[sl], fit_relative(X[sl], y[sl]))

    # the sampling error of G_all, from the bootstrap, is the floor of the jitter σ
    sd = 0.0
    if boot is not None:
        replicates = [{k: v[b] for k, v in boot.items()} for b in range(n_boot)]
        each = [derived(mb) for mb in replicates]  # (G_all, o_s, o_r) per replicate
        gb = np.array([g for g, _, _ in each])
        sd = float(np.median(np.std(gb, axis=0) / y))
    part = best_partition(len(s), residuals, max_segments, min(min_points, len(s)), sd)
    segments = fit_segments(part, X, y, s, None if boot is None else [np.maximum(g, floor) for g in gb])

    # LogGP's o and L are per message: take them at the smallest sizes, as the median over the
    # (up to) SMALL_SIZES smallest sizes where the delay exceeded the gap, so one disturbed
    # size cannot set them; L(s) = PRTT(1,0,s)/2 − o_s(s) − o_r(s) − (s−1)·G.
    G0 = segments[0].theta[1]
    small = np.flatnonzero(d >= gall)[:SMALL_SIZES]

    def scalars(m, o_s_, o_r_):
        if small.size == 0:
            return {"L_s": np.nan, "o_s_s": np.nan, "o_r_s": np.nan}
        L = m["rtt1"][small] / 2 - o_s_[small] - o_r_[small] - np.maximum(s[small] - 1, 0) * G0
        return {"L_s": float(np.median(L)), "o_s_s": float(np.median(o_s_[small])),
                "o_r_s": float(np.median(o_r_[small]))}

    point = scalars(med, o_s, o_r)
    out = {k: (v, float("nan"), float("nan")) for k, v in point.items()}
    if boot is not None and small.size:
        draws = [list(scalars(mb, ob, rb).values())
                 for mb, (_, ob, rb) in zip(replicates, each)]
        lo, hi = percentile_ci(np.array(draws))
        out = {k: (point[k], lo[i], hi[i]) for i, k in enumerate(point)}
    import pandas as pd

    per_size = pd.DataFrame({"nbytes": s, "delay_s": d, "G_all_s": gall, "o_s_s": o_s,
                             "o_r_s": o_r, "valid": d >= gall})
    note = None if small.size else ("o_s, o_r and L not fitted: at no size did the delay d(S) "
                                    "exceed the gap G_all(S) (a loaded machine stretches the gap)")
    return {"segments": segments, "scalars": out, "per_size": per_size, "note": note}


def loggp_from_times(df: pd.DataFrame, meta_ops: dict, n_boot=200, seed=0):
    """LogGP from the prtt ops of one run: `prtt_rtt1`, `prtt_rttn<n>`, `prtt_rtts<n>`,
    `prtt_rttr<n>` (bench/ops/prtt.py). The delay d(s) the ops used is read from the run's
    meta.json (ops → delay_s0, delay_Bps), with bench.ops.prtt's values as the fallback."""
    import re

    prtt, n_msgs = {}, None
    op_meta: dict = {}
    for (op, size), g in df.groupby(["op", "nbytes"]):
        m = re.fullmatch(r"prtt_(rtt1|rttn|rtts|rttr)(\d*)", op)
        if not m:
            continue
        if m.group(2):
            n_msgs = int(m.group(2))
            op_meta = meta_ops.get(op, op_meta)
        prtt[(m.group(1), size)] = g["time_s"].to_numpy()
    if not prtt or not n_msgs:
        return None
    d0 = float(op_meta.get("delay_s0", PRTT_DELAY_S0))
    bps = float(op_meta.get("delay_Bps", PRTT_DELAY_BPS))
    try:
        res = fit_loggp(prtt, n_msgs, lambda x: d0 + x / bps, n_boot=n_boot, seed=seed)
    except ValueError as exc:
        print(f"commbench fit: {exc}", file=sys.stderr)
        return None
    if res["note"]:
        nranks = int(df["nranks"].iloc[0]) if "nranks" in df else "?"
        print(f"commbench fit: LogGP on {nranks} ranks: {res['note']}", file=sys.stderr)
    return res

