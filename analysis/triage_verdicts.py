"""The verdicts of `commbench triage`: the rules (robust z against the fleet, analysis.robust_z)
and the evidence they judge (inter-node links of `pairs` runs, intra-node collectives against
the fleet and references, per-rank skew, time spikes), one verdict per node and per link."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.robust_z import DRAIN_DROP, DRAIN_Z, WARN_DROP, WARN_Z, robust_z
from analysis.triage_run_set import Run, load_runs
from bench.core.errors import UsageError
from bench.core.units import human_bytes

MIN_VALUES = 3
SKEW_MIN_SAMPLES = 10
VERDICTS = ("ok", "warn", "drain")
RULES = [
    ("robust z = 0.6745 x (x - median) / MAD over the fleet's comparable values, x a rate "
    "(bytes/s; 1/s at S = 0); at least 3 values"),
    (f"warn: z < {WARN_Z:g} and x at least {WARN_DROP:.0%} below the median; drain: z < "
    f"{DRAIN_Z:g} and at least {DRAIN_DROP:.0%} below"),
    ("links: pairs' inter-node links per case; node: the median rate of its links, against "
    "the other nodes; a slow link through a warn/drain node is that node's"),
    ("intra-node collectives (--split intra): a node's time per sample is the max over its ranks; "
    "--min below: drain, --expect/baseline below (less --tolerance): warn"),
    (f"skew: a rank last in more than max(2/n, 50%) of a collective's samples (>= "
    f"{SKEW_MIN_SAMPLES}): warn only"),
    ("time: a spike is a sample above 1.5 x its case's median; 'at': the measured time before "
     "it in the run"),
    ("  system-wide: every rank above 1.5 x its own median, straggler: one rank (named), "
     "partial: some"),
]


@dataclass
class Evidence:
    kind: str       # node or link
    name: object    # host, or (host_a, host_b)
    verdict: str
    text: str
    run: str


@dataclass
class Result:
    runs: list
    nodes: dict = field(default_factory=dict)   # name -> [Evidence]
    links: dict = field(default_factory=dict)   # (host_a, host_b) -> [Evidence], not ok only
    link_names: set = field(default_factory=set)  # every link judged
    time_lines: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def verdict(self, kind: str, name) -> str:
        rows = (self.nodes if kind == "node" else self.links).get(name, [])
        return max((e.verdict for e in rows), key=VERDICTS.index, default="ok")

    def link_owner(self, name: tuple) -> str | None:
        """The warn/drain node a link runs through, or None."""
        for host in name:
            if self.verdict("node", host) != "ok":
                return host
        return None

    def drain(self) -> list[str]:
        return [n for n in self.nodes if self.verdict("node", n) == "drain"]


# --- rules -----------------------------------------------------------------------------------
def judged(values: pd.Series) -> pd.DataFrame:
    """value, z, ratio (to the median), verdict of each entry of a Series of rates."""
    z, med = robust_z(values.to_numpy())
    out = pd.DataFrame({"value": values.to_numpy(), "z": z}, index=values.index)
    out["ratio"] = out["value"] / med if med > 0 else np.nan
    out["verdict"] = np.select(
        [(out["z"] < DRAIN_Z) & (out["ratio"] <= 1 - DRAIN_DROP),
         (out["z"] < WARN_Z) & (out["ratio"] <= 1 - WARN_DROP)], ["drain", "warn"], "ok")  # verdict_of
    return out


def _rate(nbytes, seconds):
    return nbytes / seconds if nbytes > 0 else 1.0 / seconds


def _rate_text(value, nbytes) -> str:
    """A rate as people read it: GB/s (1e9 B/s) for bytes, ops per second at S = 0."""
    from bench.core.units import format_bw

    return format_bw(value) if nbytes > 0 else f"{value:.3g} ops/s"


def _z_text(z) -> str:
    return f"z = {z:.1f}" if math.isfinite(z) else "z = -inf (MAD 0)"


# --- evidence --------------------------------------------------------------------------------
def link_evidence(run: Run, result: Result) -> None:
    from analysis.links import CASE_KEYS, link_times

    links = link_times(run.samples, run.hosts)
    links = links[links["kind"] == "inter"]
    for key, g in links.groupby(CASE_KEYS):
        case = dict(zip(CASE_KEYS, key))
        what = f"pairs {case['backend']} S={human_bytes(case['nbytes'])}"
        if len(g) < MIN_VALUES:
            result.notes.append(f"{run.name}: {what}: {len(g)} inter-node links, too few to judge")
            continue
        rates = pd.Series([_rate(case["nbytes"], t) for t in g["median_s"]],
                          index=pd.MultiIndex.from_arrays([g["host_a"], g["host_b"]]))
        verdicts = judged(rates)
        result.link_names.update(verdicts.index)
        for name, r in verdicts[verdicts["verdict"] != "ok"].iterrows():  # ok links: counted
            result.links.setdefault(name, []).append(Evidence(
                "link", name, r.verdict, f"{what}: {_rate_text(r.value, case['nbytes'])}, {r.ratio:.2f}x the "
                f"median link, {_z_text(r.z)}", run.name))
        ends = pd.concat([pd.Series(rates.to_numpy(), index=g["host_a"].to_numpy()),
                          pd.Series(rates.to_numpy(), index=g["host_b"].to_numpy())])
        per_node = ends.groupby(level=0).median()
        if len(per_node) < MIN_VALUES:
            continue
        for name, r in judged(per_node).iterrows():
            result.nodes.setdefault(name, []).append(Evidence(
                "node", name, r.verdict, f"{what}: its links' median {_rate_text(r.value, case['nbytes'])}, "
                f"{r.ratio:.2f}x the median node, {_z_text(r.z)}", run.name))


def node_times(run: Run, case_rows: pd.DataFrame) -> pd.Series:
    """Per node: the median over samples of the max over its ranks."""
    df = case_rows.assign(node=[run.host(int(r)) for r in case_rows["rank"]])
    per = df.groupby(["round", "sample", "node"])["time_s"].max()
    return per.groupby(level="node").median()


def intra_evidence(run: Run, result: Result, refs, nics, tolerance) -> None:
    from analysis.check_verdicts import threshold_of
    from analysis.importers import bus_factor

    df = run.samples[(run.samples["split"] == "intra") & (run.samples["nranks"] >= 2)
                     & (run.samples["rank"] >= 0)]
    keys = ["backend", "op", "dtype", "nbytes", "nranks"]
    for key, g in df.groupby(keys):
        case = dict(zip(keys, key))
        what = (f"{case['op']} intra-node {case['backend']} S={human_bytes(case['nbytes'])} "
                f"n={case['nranks']}")
        times = node_times(run, g)
        rates = _rate(case["nbytes"], times)
        if len(rates) >= MIN_VALUES:
            for name, r in judged(rates).iterrows():
                result.nodes.setdefault(name, []).append(Evidence(
                    "node", name, r.verdict, f"{what}: {_rate_text(r.value, case['nbytes'])}, {r.ratio:.2f}x the "
                    f"median node, {_z_text(r.z)}", run.name))
        elif not refs:
            result.notes.append(f"{run.name}: {what}: {len(rates)} nodes, too few to compare")
        factor = bus_factor(case["op"], case["nranks"])
        sizes = df[df["op"] == case["op"]]["nbytes"]
        for ref in refs:
            at = ref.nbytes if ref.nbytes is not None else int(sizes.max())
            if ref.op != case["op"] or at != case["nbytes"] or (
                    ref.nranks is not None and ref.nranks != case["nranks"]):
                continue
            if not (factor > 0):
                continue
            figure, threshold = threshold_of(ref, nics, tolerance)
            bad = "drain" if ref.kind == "minimum" else "warn"
            for name, rate in rates.items():
                busbw = rate * factor
                verdict = bad if busbw < threshold else "ok"
                result.nodes.setdefault(name, []).append(Evidence(
                    "node", name, verdict, f"{what}: busbw {busbw / 1e9:.4g} GB/s against "
                    f"{ref.system} {ref.kind} {figure / 1e9:.4g} GB/s ({busbw / figure:.0%})",
                    run.name))


def skew_evidence(run: Run, result: Result, table: pd.DataFrame) -> None:
    from analysis.timeline import last_shares

    table = table[(table["op"] != "pairs") & (table["last_rank"] >= 0) & (table["ranks"] >= 3)]
    for host in {run.host(int(r)) for r in run.samples.loc[run.samples["peer"] < 0, "rank"]
                 if r >= 0} if len(table) >= SKEW_MIN_SAMPLES else ():
        result.nodes.setdefault(host, []).append(Evidence("node", host, "ok", "skew", run.name))
    coll = last_shares(table)
    for r in coll.itertuples():
        limit = max(2.0 / r.ranks, 0.5)
        if r.samples < SKEW_MIN_SAMPLES or r.share <= limit:
            continue
        split = "" if r.split == "all" else f" {r.split}"
        name = run.host(int(r.rank))
        result.nodes.setdefault(name, []).append(Evidence(
            "node", name, "warn", f"{r.op}{split} {r.backend} S={human_bytes(r.nbytes)}: rank "
            f"{r.rank} last in {r.share:.0%} of {r.samples} samples (chance {1 / r.ranks:.0%})",
            run.name))


def triage(run_dirs, refs=(), nics=None, tolerance=0.1) -> Result:
    return triage_runs(load_runs(run_dirs), refs, nics, tolerance)


def triage_runs(runs: list, refs=(), nics=None, tolerance=0.1) -> Result:
    """The verdicts of loaded runs (Run: name, meta, samples, summary)."""
    from analysis import timeline

    result = Result(runs=[r.name for r in runs])
    for run in runs:
        for host in run.hosts:
            result.nodes.setdefault(host, [])
        link_evidence(run, result)
        intra_evidence(run, result, list(refs), nics, tolerance)
        collectives = run.samples[run.samples["peer"] < 0]
        table = timeline.per_sample(collectives, run.hosts)
        if not table.empty:
            skew_evidence(run, result, table)
        both = timeline.per_sample(run.samples, run.hosts)
        lines = timeline.describe(both, run.hosts, limit=3)
        if lines:
            result.time_lines += [f"{run.name}: {line}" if not line.startswith(" ") else line
                                  for line in lines]
    judged_any = any(result.nodes.values()) or bool(result.link_names)
    if not judged_any:
        raise UsageError("triage: nothing to judge in " + ", ".join(result.runs) + " (needs a "
                         "pairs run of 3 or more nodes, collectives with --split intra on 3 or "
                         "more nodes, references (--min/--expect), or collectives of 3 or more "
                         "ranks for skew)")
    return result
