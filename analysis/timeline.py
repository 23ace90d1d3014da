"""Time in a run: per-sample analysis of the raw samples (`commbench triage`, the report's fleet
section).

For every sample (one case, round and sample index, all ranks that timed it):
- its time, the max over ranks (as everywhere in commbench), and which rank had it: the rank
  that finished last;
- whether it is a spike: its time above SPIKE_FACTOR × the median sample time of its case;
- a spike's label, after the ranks that spiked in it (a rank spiked when its own time is above
  SPIKE_FACTOR × its own median time in the case): `system-wide` when every rank did,
  `straggler` when one rank did (named), `partial` otherwise (k of n ranks); `unattributed`
  for imported rows with no per-rank times. The same convention as nccl-tests' per-iteration
  analyzer (2.19, threshold 1.5 × the average there, the median here).
- when it happened: `at_s`, the measured time before it in the run, summed in the order the
  cases ran (the order of samples.csv: a run appends each case when it finishes; an nccl-tests
  import keeps the tool's order). It excludes what is not timed (validation, warm-up, launch),
  so it is a lower bound of the wall-clock time into the run.

In a collective every rank waits for the slowest, so one late rank lengthens every rank's time:
such a spike reads `system-wide` though one rank caused it. Between independent pairs (`pairs`,
split groups) a late rank delays only its own communicator, and `straggler` names it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from bench.core.rundir import CASE

SPIKE_FACTOR = 1.5
RULE = (f"spike: a sample above {SPIKE_FACTOR} x its case's median sample time; a rank spiked in "
        f"it when above {SPIKE_FACTOR} x its own median; system-wide: every rank spiked, "
        "straggler: one rank did, partial: some did; at: measured time before it in the run")


def _chunks(samples: pd.DataFrame) -> np.ndarray:
    """A number per row, increasing in run order, for each stretch of one case: a run writes a
    case's rows together (by rank, then sample), so a stretch starts where the case or round
    changes; within it, the k-th row of the same (rank, sample) belongs to the k-th stretch
    (the pairing rounds of `pairs` share their case)."""
    keys = samples.groupby(CASE + ["round"], sort=False, dropna=False).ngroup().to_numpy()
    new = np.ones(len(samples), bool)
    new[1:] = keys[1:] != keys[:-1]
    run = np.cumsum(new)
    occurrence = samples.groupby([run, samples["rank"].to_numpy(), samples["sample"].to_numpy()]
                                 ).cumcount().to_numpy()
    order = run.astype(np.int64) * (int(occurrence.max()) + 1) + occurrence
    return np.unique(order, return_inverse=True)[1]


def per_sample(samples: pd.DataFrame, hosts: list | None = None) -> pd.DataFrame:
    """One row per sample in run order: CASE, round, sample, at_s, time_s, last_rank,
    last_host, ranks, spiked (ranks above their own threshold), spike, label, straggler."""
    cols = CASE + ["round", "sample", "at_s", "time_s", "last_rank", "last_host", "ranks",
                   "spiked", "spike", "label", "straggler"]
    if samples.empty:
        return pd.DataFrame(columns=cols)
    df = samples.reset_index(drop=True).copy()
    df["chunk"] = _chunks(df)
    df["calls"] = pd.to_numeric(df["calls"], errors="coerce").fillna(1.0).clip(lower=1.0)
    # per rank (and peer: a link of `pairs`): its own median, so ranks of different speed are judged apart
    own = df.groupby(CASE + ["rank", "peer"], sort=False)["time_s"].transform("median")
    df["rank_high"] = (df["time_s"] > SPIKE_FACTOR * own) & (df["rank"] >= 0)
    df = df.sort_values(["chunk", "sample"], kind="stable").reset_index(drop=True)
    by = df.groupby(["chunk", "sample"], sort=False)
    idx = by["time_s"].idxmax()
    out = df.loc[idx, CASE + ["round", "sample", "chunk"]].reset_index(drop=True)
    out["time_s"] = df.loc[idx, "time_s"].to_numpy()
    out["last_rank"] = df.loc[idx, "rank"].to_numpy().astype(int)
    out["ranks"] = by["rank"].nunique().to_numpy()
    out["spiked"] = by["rank_high"].sum().to_numpy().astype(int)
    duration = (df["time_s"] * df["calls"]).groupby([df["chunk"], df["sample"]], sort=False).max()
    out["at_s"] = np.concatenate([[0.0], np.cumsum(duration.to_numpy())[:-1]])
    hosts = list(hosts or [])
    out["last_host"] = [hosts[r] if 0 <= r < len(hosts) else "" for r in out["last_rank"]]
    case_median = out.groupby(CASE, sort=False)["time_s"].transform("median")
    out["spike"] = out["time_s"] > SPIKE_FACTOR * case_median
    attributed = out["last_rank"] >= 0
    out["label"] = np.select(
        [~out["spike"], ~attributed, out["spiked"] >= out["ranks"], out["spiked"] == 1],
        ["", "unattributed", "system-wide", "straggler"], "partial")
    # the straggler: the one rank that spiked in that sample
    high = df[df["rank_high"]].groupby(["chunk", "sample"])["rank"].first()
    keyed = list(zip(out["chunk"], out["sample"]))
    out["straggler"] = [int(high.get(k, -1)) if lab == "straggler" else -1
                        for k, lab in zip(keyed, out["label"])]
    return out[cols]


def last_shares(table: pd.DataFrame) -> pd.DataFrame:
    """Per case with per-rank times of 3 or more ranks: how often each rank was last, as a share
    of the case's samples (rank, host, share, samples, ranks)."""
    cols = CASE + ["rank", "host", "last", "share", "samples", "ranks"]
    t = table[(table["last_rank"] >= 0) & (table["ranks"] >= 3)]
    if t.empty:
        return pd.DataFrame(columns=cols)
    counts = t.groupby(CASE + ["last_rank", "last_host"], as_index=False).size().rename(
        columns={"last_rank": "rank", "last_host": "host", "size": "last"})
    per_case = t.groupby(CASE, as_index=False).agg(samples=("time_s", "size"), ranks=("ranks", "max"))
    out = counts.merge(per_case, on=CASE)
    out["share"] = out["last"] / out["samples"]
    return out[cols]


def spike_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per case with spikes: samples, spikes, and the count of each label."""
    rows = []
    for key, g in table.groupby(CASE, sort=False):
        s = g[g["spike"]]
        if s.empty:
            continue
        labels = s["label"].value_counts().to_dict()
        rows.append(dict(zip(CASE, key), samples=len(g), spikes=len(s), **labels,
                         first_at_s=float(s["at_s"].min()), last_at_s=float(s["at_s"].max()),
                         stragglers=sorted({int(r) for r in s["straggler"] if r >= 0})))
    return pd.DataFrame(rows)


def describe(table: pd.DataFrame, hosts: list | None = None, limit: int = 8) -> list[str]:
    """Lines naming the spikes of each case (label, rank, when), at most `limit` per case."""
    from bench.core.units import format_time, human_bytes

    hosts = list(hosts or [])
    lines = []
    for key, g in table[table["spike"]].groupby(CASE, sort=False):
        row = dict(zip(CASE, key))
        n = int((table[CASE] == pd.Series(row)).all(axis=1).sum())
        split = "" if row["split"] == "all" else f" {row['split']}"
        med = float(table.loc[(table[CASE] == pd.Series(row)).all(axis=1), "time_s"].median())
        counts = ", ".join(f"{c} {lab}" for lab, c in g["label"].value_counts().items())
        lines.append(f"{row['op']}{split} {row['backend']} S={human_bytes(row['nbytes'])} "
                     f"n={row['nranks']}: {len(g)} of {n} samples spiked ({counts}), median "
                     f"{format_time(med)}")
        for r in g.head(limit).itertuples():
            who = ""
            if r.label == "straggler":
                host = f" ({hosts[r.straggler]})" if 0 <= r.straggler < len(hosts) else ""
                who = f" rank {r.straggler}{host}"
            elif r.label == "partial":
                who = f" {r.spiked} of {r.ranks} ranks"
            lines.append(f"  at {format_time(r.at_s)}: round {r.round} sample {r.sample} "
                         f"{format_time(r.time_s)} = {r.time_s / med:.1f}x, {r.label}{who}")
        if len(g) > limit:
            lines.append(f"  ... {len(g) - limit} more")
    return lines


def figure(table: pd.DataFrame, title: str = ""):
    """A matplotlib figure: every sample's time over its case's median against `at_s`; spikes
    marked by label. For the report's fleet section."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from analysis.figures import plain

    t = table.copy()
    t["ratio"] = t["time_s"] / t.groupby(CASE, sort=False)["time_s"].transform("median")
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    ax.plot(t["at_s"], t["ratio"], ".", ms=2, color="0.5", label="sample")
    marks = {"system-wide": ("s", "tab:red"), "straggler": ("^", "tab:blue"),
             "partial": ("D", "tab:orange"), "unattributed": ("o", "tab:purple")}
    for label, (marker, color) in marks.items():
        s = t[t["label"] == label]
        if not s.empty:
            ax.plot(s["at_s"], s["ratio"], marker, color=color, ms=5, ls="", label=label)
    ax.axhline(SPIKE_FACTOR, color="0.3", lw=0.8, ls="--")
    if t["ratio"].max() > 4:  # a few far spikes: log scale keeps the rest readable
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("measured time into the run (s)")
    ax.set_ylabel("sample time / case median")
    ax.set_title(plain(title), fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig
