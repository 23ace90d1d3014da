"""`commbench triage`: one verdict per node and per link of a fleet (ok, warn, drain) with the
evidence next to it: the runs loaded, the evidence gathered, the verdicts, their output, the
drain list and the command. The rules are its help text: EPILOG below."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.robust_z import DRAIN_DROP, DRAIN_Z, WARN_DROP, WARN_Z, robust_z
from bench.core.hostlist import compress
from bench.core.errors import UsageError
from bench.core.units import human_bytes

MIN_VALUES = 3
MAX_LINKS_LISTED = 20   # links not ok listed one by one; the rest are counted (nodes: all)
MAX_TIME_LINES = 40
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


# --- runs ------------------------------------------------------------------------------------
@dataclass
class Run:
    name: str
    meta: dict
    samples: pd.DataFrame
    summary: pd.DataFrame

    @property
    def hosts(self) -> list:
        return list(self.meta.get("hosts") or [])

    def host(self, rank: int) -> str:
        hosts = self.hosts
        return hosts[rank] if 0 <= rank < len(hosts) else f"rank{rank}"


def load_runs(run_dirs) -> list[Run]:
    from analysis.meta_checks import load_checked_meta
    from analysis.run_frames import load_summary
    from analysis.runsamples import load_samples

    runs, names = [], set()
    for d in run_dirs:
        meta = load_checked_meta(d)
        name = Path(d).resolve().name or str(d)
        base, i = name, 2
        while name in names:
            name, i = f"{base}#{i}", i + 1
        names.add(name)
        runs.append(Run(name, meta, load_samples(d, meta), load_summary(d)))
    return runs


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


def fleet_map_figure(runs: list, result: Result):
    """A node x node map: each pair of nodes' link rate over the median link of the `pairs` case
    with the largest S (the median over rank pairs between the two nodes); node labels coloured
    by verdict (red drain, orange warn). None when no run has pairs between 3 or more nodes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from analysis.figures import plain
    from analysis.links import link_times

    best = None
    for run in runs:
        links = link_times(run.samples, run.hosts)
        links = links[links["kind"] == "inter"]
        if links.empty:
            continue
        top = links[links["nbytes"] == links["nbytes"].max()]
        top = top[top["backend"] == top["backend"].iloc[0]]
        if best is None or len(top) > len(best[1]):
            best = (run, top)
    if best is None:
        return None
    run, top = best
    nodes = list(dict.fromkeys(list(top["host_a"]) + list(top["host_b"])))
    if len(nodes) < 3:
        return None
    rate = np.where(top["nbytes"] > 0, top["nbytes"], 1) / top["median_s"]
    ratio = pd.Series(rate / np.median(rate), index=top.index)
    index = {n: i for i, n in enumerate(nodes)}
    m = np.full((len(nodes), len(nodes)), np.nan)
    pairs = top.assign(ratio=ratio).groupby(["host_a", "host_b"])["ratio"].median()
    for (a, b), v in pairs.items():
        m[index[a], index[b]] = m[index[b], index[a]] = v
    size = max(4.5, 1.5 + 0.28 * len(nodes))
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(m, cmap="RdYlGn", vmin=0, vmax=1.2)
    fig.colorbar(image, ax=ax, label="link rate / median link")
    labels = [plain(n) for n in nodes]
    ax.set_xticks(range(len(nodes)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(nodes)), labels, fontsize=7)
    colour = {"drain": "red", "warn": "darkorange"}
    for label in ax.get_xticklabels() + ax.get_yticklabels():
        verdict = result.verdict("node", nodes[labels.index(label.get_text())])
        if verdict in colour:
            label.set_color(colour[verdict])
            label.set_fontweight("bold")
    ax.set_title(plain(f"{run.name}: pairs, S = {human_bytes(int(top['nbytes'].iloc[0]))}"),
                 fontsize=9)
    fig.tight_layout()
    return fig


# --- output ----------------------------------------------------------------------------------
def format_text(result: Result) -> str:

    nodes, links = result.nodes, result.links
    lines = [(f"commbench triage: {len(result.runs)} run{'s' * (len(result.runs) != 1)} "
             f"({', '.join(result.runs)}), {len(nodes)} nodes, {len(result.link_names)} inter-node links"),
             "rules:"] + [f"  {r}" for r in RULES]
    bad = []
    for name in nodes:
        v = result.verdict("node", name)
        if v != "ok":
            bad += [(v, "node", name, e) for e in nodes[name] if e.verdict != "ok"]
    owned = 0
    for name in links:
        v = result.verdict("link", name)
        if v == "ok":
            continue
        if result.link_owner(name) is not None:
            owned += 1
            continue
        bad += [(v, "link", "-".join(name), e) for e in links[name] if e.verdict != "ok"]
    bad.sort(key=lambda b: (-VERDICTS.index(b[0]), b[1] != "node", b[2]))
    listed_links = list(dict.fromkeys(name for _, kind, name, _ in bad if kind == "link"))
    unlisted = set(listed_links[MAX_LINKS_LISTED:])
    if bad:
        lines.append("not ok:")
        last = None
        for verdict, kind, name, e in bad:
            if kind == "link" and name in unlisted:
                continue
            head = f"  {verdict:5}  {kind} {name}" if (verdict, kind, name) != last else " " * 7
            last = (verdict, kind, name)
            own = f"({e.verdict}) " if e.verdict != verdict else ""
            lines.append(f"{head}: {own}{e.text} [{e.run}]")
        if unlisted:
            lines.append(f"  ... and {len(unlisted)} more links not ok (the {MAX_LINKS_LISTED} "
                         "listed are the worst verdicts first)")
    count = {kind: {v: 0 for v in VERDICTS} for kind in ("node", "link")}
    for name in nodes:
        count["node"][result.verdict("node", name)] += 1
    for name in links:
        v = result.verdict("link", name)
        count["link"][v if v == "ok" or result.link_owner(name) is None else "ok"] += 1
    count["link"]["ok"] += len(result.link_names) - len(links)
    lines.append("nodes: " + ", ".join(f"{count['node'][v]} {v}" for v in VERDICTS)
                 + "; links: " + ", ".join(f"{count['link'][v]} {v}" for v in VERDICTS)
                 + (f" ({owned} slow through a warn/drain node, counted ok)" if owned else ""))
    if result.time_lines:
        lines.append("time (spikes):")
        lines += [f"  {line}" for line in result.time_lines[:MAX_TIME_LINES]]
        if len(result.time_lines) > MAX_TIME_LINES:
            lines.append(f"  ... {len(result.time_lines) - MAX_TIME_LINES} more lines")
    for note in result.notes:
        lines.append(f"note: {note}")
    drain = result.drain()
    lines.append(f"drain ({len(drain)}): {compress(drain) if drain else 'none'}")
    lines += [f"slurm: {line}" for line in scontrol_lines(drain_reasons(result))]
    return "\n".join(lines)


MAX_SCONTROL_LINES = 20  # one line a node (its own evidence) up to this many, then one for all


def drain_reasons(result: Result) -> dict:
    """{host to drain: the reason Slurm keeps, naming the evidence}."""
    reasons = {}
    for host in result.drain():
        worst = [e for e in result.nodes[host] if e.verdict == "drain"]
        reasons[host] = f"commbench triage: {worst[0].text} [{worst[0].run}]" if worst else \
            "commbench triage: drain"
    return reasons


def scontrol_lines(reasons: dict) -> list[str]:
    """Ready `scontrol update NodeName=... State=DRAIN Reason="..."` lines (analysis.slurm) of
    {host: reason}: one a node with its own evidence, or one for all when there are many."""
    from analysis import slurm

    if len(reasons) > MAX_SCONTROL_LINES:
        return [slurm.drain_line(list(reasons), f"commbench triage: {len(reasons)} nodes below "
                                 "the fleet (evidence: commbench triage output)")]
    return [slurm.drain_line([host], reason) for host, reason in reasons.items()]


# the help text (constants, not the docstring: python -OO strips docstrings)
EPILOG = """Evidence and rules (printed with every verdict list):
- links, from `pairs` (analysis.links: a link's time is the median over samples of the slower
  of its two ranks): per case (backend, dtype, split, S), the inter-node links' rates x = S /
  time (1 / time at S = 0) against each other; a node's rate is the median of its links' rates,
  set against the other nodes'.
- intra-node collectives (`--split intra`, 2 or more ranks per node): per case, a node's time
  in a sample is the max over its ranks; its rate x = S / (median over samples), against the
  other nodes'. With --expect/--min (as `commbench check`), its busbw (x × the op's bus factor)
  against the reference: below a minimum drains, below a typical figure (less --tolerance) warns.
- robust z = 0.6745 × (x − median) / MAD over the values compared (Iglewicz & Hoaglin's
  modified z; MAD the median absolute deviation; analysis.robust_z); at least 3 values. warn: z < −2 and
  x at least 10% below the median; drain: z < −3 and at least 20% below (the floors keep a fleet
  of near-identical values, MAD ≈ 0, from flagging noise).
- a link through a node that is itself warn or drain is that node's (counted apart, not listed).
- per-rank skew (analysis.timeline): a rank last in a share of a collective's samples above
  max(2/n, 50%), over at least 10 samples: warn (never drain: lateness is no rate).
- time (analysis.timeline): spikes per case, labelled system-wide / straggler / partial, with
  when they happened; printed, not judged.

Output: only what is not ok, plus counts; the hosts to drain, in Slurm hostlist form
(bench.core.hostlist) and, with --drain FILE, one per line. Exit 0 when nothing is to be
drained, 1 when something is, 2 on bad input.

--find HOSTS --launch TEMPLATE --out DIR: instead of judging runs, measure the hosts in rounds of
groups with `commbench run` (analysis.finder: screen in groups of k, bisect slow groups padded
with cleared nodes, confirm single suspects with fresh partners); 3 rounds for one bad node at
k = 2, whatever the fleet's size, where all pairs takes N − 1.
"""


def add_arguments(parser) -> None:
    import argparse

    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("run_dirs", nargs="*", metavar="RUN_DIR",
                        help="run directories of one fleet (e.g. a pairs run and a --split intra run)")
    parser.add_argument("--drain", metavar="FILE", help="write the hosts to drain here, one per line")
    parser.add_argument("--apply-drain", action="store_true",
                        help="also run the printed scontrol lines (Slurm: the nodes end up "
                        "drained, with the evidence as the reason); never done without this")
    parser.add_argument("--expect", metavar="SYSTEM", help="published figures of a system "
                        "(commbench check --list) for the intra-node collectives")
    parser.add_argument("--min", action="append", metavar="OP:SIZE=RATE", default=None,
                        help="a minimum busbw of the intra-node collectives (drain below it)")
    parser.add_argument("--tolerance", type=float, default=0.1,
                        help="share below a typical figure that still passes (default 0.1)")
    parser.add_argument("--nics", type=int, default=None, help="NICs per node (per-NIC figures)")
    find = parser.add_argument_group("faster than all pairs (instead of RUN_DIRs)")
    find.add_argument("--find", metavar="HOSTS", help="measure these hosts (Slurm hostlist) in "
                      "rounds of groups (analysis.finder) and name the slow ones")
    find.add_argument("--launch", metavar="TEMPLATE", help="the launcher command of a round, "
                      "{hosts} = the round's hosts in rank order (comma list), {n} = their count: "
                      "'mpirun -n {n} --host {hosts} --map-by node'")
    find.add_argument("-o", "--out", metavar="DIR", help="--find: the rounds' run directories go here "
                      "(DIR/round01, ...)")
    find.add_argument("--group-size", type=int, default=2, help="--find: nodes per group (default 2)")
    find.add_argument("--confirm", type=int, default=2,
                      help="--find: slow confirmations, each with other partners, to drain (default 2)")
    find.add_argument("--op", default=None, help="--find: the op every group runs (default "
                      "pingpong for groups of 2, which exercises both directions one at a time, "
                      "else allreduce)")
    find.add_argument("--size", default="4M", help="--find: its S (default 4M: long enough that "
                      "the links, not the CPUs, set the time)")
    find.add_argument("--run-args", default="", metavar="ARGS",
                      help="--find: more options of commbench run, one string ('--budget 0.2')")
    find.add_argument("--seed", type=int, default=0, help="--find: shuffles the screen round")


def main(args) -> int:
    from analysis import check_references

    if not 0 <= args.tolerance < 1:
        raise UsageError("--tolerance must be in [0, 1)")
    if args.find is not None:
        if args.run_dirs:
            raise UsageError("--find measures; give it no RUN_DIR")
        return find_main(args)
    if not args.run_dirs:
        raise UsageError("give RUN_DIRs to judge, or --find HOSTS --launch TEMPLATE --out DIR")
    refs = []
    if args.expect:
        refs += check_references.expected_for(args.expect)
    refs += [check_references.parse_min(m) for m in args.min or []]
    result = triage(args.run_dirs, refs, args.nics, args.tolerance)
    print(format_text(result))
    drain = result.drain()
    write_drain(args.drain, drain)
    if args.apply_drain:
        apply_drain(drain_reasons(result))
    return 1 if drain else 0


def apply_drain(reasons: dict) -> None:
    """Run the drain (analysis.slurm.drain, scontrol without a shell), only when asked."""
    from analysis import slurm

    hosts = list(reasons)
    if len(hosts) > MAX_SCONTROL_LINES:
        slurm.drain(hosts, f"commbench triage: {len(hosts)} nodes below the fleet", apply=True)
    else:
        for host, reason in reasons.items():
            slurm.drain([host], reason, apply=True)
    if hosts:
        print(f"drained {compress(hosts)} (scontrol; `sinfo -R` shows the reasons)")


def write_drain(path, hosts) -> None:
    from bench.core.safe_text import file_error

    if path:
        try:
            Path(path).write_text("".join(f"{h}\n" for h in hosts))
        except OSError as exc:
            raise file_error(f"--drain {path}", exc, "write it") from None


# --- faster than all pairs: driving analysis.finder with commbench run ---------------------
def launch_argv(template: str, hosts: list) -> list:
    """The launcher's argv for these hosts: {hosts} and {n} filled in, token by token."""
    import shlex

    try:
        words = shlex.split(template)
    except ValueError as exc:
        raise UsageError(f"--launch: {exc}") from None
    if not any("{hosts}" in w for w in words):
        raise UsageError("--launch: the template must place {hosts} (the round's hosts in rank order)")
    return [w.replace("{hosts}", ",".join(hosts)).replace("{n}", str(len(hosts))) for w in words]


def group_times(samples, k: int):
    """Per group of k consecutive ranks (group:k:1): the median over samples of the max over
    the group's ranks."""
    df = samples[samples["rank"] >= 0].assign(group=lambda d: d["rank"] // k)
    per = df.groupby(["round", "sample", "group"])["time_s"].max()
    return per.groupby(level="group").median()


def measure_round(args, groups, index: int) -> list:
    """Run the op on every group at once (one launch: --split group:k:1 over the round's hosts
    in group order); the groups' times, NaN for a group with no samples."""
    import subprocess
    import sys

    from analysis.meta_checks import load_checked_meta
    from analysis.runsamples import load_samples

    k = args.group_size
    hosts = [h for g in groups for h in g]
    out = Path(args.out) / f"round{index:02d}"
    argv = [*launch_argv(args.launch, hosts), sys.executable, "-m", "bench.cli", "run",
            "--out", str(out), "--force", "--ops", args.op, "--sizes", args.size,
            "--split", f"group:{k}:1", "--no-noise", "--no-ceilings", "-q",
            "--launches", "1", "--repeats", "1", *args.run_args.split()]
    try:
        r = subprocess.run(argv, check=False, capture_output=True, text=True)
    except OSError as exc:
        raise UsageError(f"--launch: cannot start {argv[0]!r} ({exc.strerror or exc})") from None
    if r.returncode not in (0, 1):
        tail = (r.stderr.strip().splitlines() or r.stdout.strip().splitlines() or ["no output"])[-1]
        raise UsageError(f"--find round {index}: the launch failed (exit {r.returncode}): {tail}")
    meta = load_checked_meta(out)
    if list(meta.get("hosts") or []) != hosts:
        raise UsageError(f"--find round {index}: the launcher placed ranks on "
                         f"{','.join(meta.get('hosts') or [])}, not on {','.join(hosts)} in that "
                         "order (use a launcher that keeps the host order, e.g. mpirun --host)")
    times = group_times(load_samples(out, meta), k)
    return [float(times.get(i, float("nan"))) for i in range(len(groups))]


def find_main(args) -> int:
    import time

    from analysis.finder import Finder, rounds_bound
    from bench.core.hostlist import expand_hostlist

    if not args.launch or not args.out:
        raise UsageError("--find needs --launch TEMPLATE and --out DIR")
    if args.op is None:
        args.op = "pingpong" if args.group_size == 2 else "allreduce"
    hosts = expand_hostlist(args.find)
    launch_argv(args.launch, hosts)  # a bad template fails before anything starts
    try:
        finder = Finder(hosts, group_size=args.group_size, confirm=args.confirm, seed=args.seed)
    except ValueError as exc:
        raise UsageError(f"--find: {exc}") from None
    Path(args.out).mkdir(parents=True, exist_ok=True)
    print(f"commbench triage --find: {len(hosts)} nodes, groups of {args.group_size}, "
          f"{args.op} S={args.size}, drain after {args.confirm} slow confirmations; rules:")
    print("\n".join(f"  {r}" for r in RULES[:2]))
    start = time.monotonic()
    while (groups := finder.plan()) is not None:
        index = finder.outcome.rounds + 1
        times = measure_round(args, groups, index)
        finder.record(groups, times)
        verdicts = finder.outcome.history[-1][2]
        slow = [f"{'-'.join(g)} ({v}, {t * 1e3:.3g} ms)" for g, t, v in zip(groups, times, verdicts)
                if v != "ok"]
        print(f"round {index}: {len(groups)} groups, median {np.nanmedian(times) * 1e3:.3g} ms; "
              f"not ok: {', '.join(slow) or 'none'}")
    out = finder.outcome
    all_pairs = len(hosts) - 1 if len(hosts) % 2 == 0 else len(hosts)
    print(f"rounds: {out.rounds} (one bad node: {rounds_bound(args.group_size, args.confirm)}; "
          f"all pairs: {all_pairs}), {time.monotonic() - start:.1f} s")
    for node in out.warn:
        print(f"warn: {node} (slow, not at the drain level, in a confirmation)")
    for combo in out.combos:
        print(f"slow combination: {'-'.join(combo)} (each member fine with other partners: a link?)")
    if out.unresolved:
        print(f"unresolved (not enough cleared partners or rounds): {compress(out.unresolved)}")
    drain = sorted(out.drain)
    print(f"drain ({len(drain)}): {compress(drain) if drain else 'none'}")
    reasons = {h: f"commbench triage --find: slow in {args.confirm} groups with other partners "
               f"({args.op} S={args.size})" for h in drain}
    for line in scontrol_lines(reasons):
        print(f"slurm: {line}")
    write_drain(args.drain, drain)
    if args.apply_drain:
        apply_drain(reasons)
    return 1 if drain else 0
