"""Across nodes: the pairwise link map of the `pairs` op, slow links and nodes, and which
rank arrives last in collectives (per-rank skew). `commbench links RUN_DIR` prints all three;
`commbench run` prints them after its summary when the run has something to say.

Outlier rule (stated in every output): among comparable values x (links of one kind, intra-
or inter-node, at one size; or nodes at one size), a value is an outlier when
    |x - median| > K_MAD × 1.4826 × MAD   and   |x / median - 1| > MIN_REL,
with MAD the median absolute deviation (1.4826 × MAD estimates σ for normal data), K_MAD = 3.5
(Iglewicz & Hoaglin's modified z-score cut), and MIN_REL = 10% so that links that are all
alike (MAD ≈ 0) do not get flagged for noise. Robust: up to half the values may be outliers
without moving the median or MAD much. A link's time is the median over samples of the
slower of its two ranks' times in the same sample; a node's time at a size is the median
time of its inter-node links.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.figures import plain, png_bytes, safe_name, write_file
from analysis.meta_checks import load_checked_meta
from bench.core.safe_text import file_error, path_text
from analysis.runsamples import as_samples
from bench.core.errors import RunDirError
from bench.core.units import format_time

K_MAD = 3.5
MIN_REL = 0.10
MAD_TO_SIGMA = 1.4826
RULE = (f"outlier: |x - median| > {K_MAD} x 1.4826 x MAD and more than {MIN_REL:.0%} from the "
        "median, among links of the same kind (intra/inter-node) at the same size; nodes by the "
        "median of their inter-node links")
CASE_KEYS = ["backend", "dtype", "split", "nbytes"]
MAX_LINE = 200   # no printed line is longer: long lists are cut, with a count of the rest
MAX_LISTED = 20  # outlier links and skewed cases named one by one; the rest are counted


def host_map(hosts: list[str], nnodes: int | None = None) -> str:
    """The ranks' placement on one short line: '1024 ranks on 128 hosts × 8: node[0000-0127]'
    (hostlist notation, cut to fit MAX_LINE with a count of the hosts left out)."""
    from bench.core.hostlist import compress

    per = {h: hosts.count(h) for h in dict.fromkeys(hosts)} if len(hosts) < 4096 else \
        pd.Series(hosts).value_counts(sort=False).to_dict()
    counts = set(per.values())
    shape = (f" × {counts.pop()}" if len(counts) == 1 else
             f", {min(per.values())} to {max(per.values())} ranks each")
    head = f"{len(hosts)} ranks on {nnodes or len(per)} host{'s' if len(per) > 1 else ''}{shape}: "
    return head + cut_list(compress(list(per)), MAX_LINE - len(head) - 2, len(per), "hosts")


def cut_list(text: str, width: int, count: int, what: str) -> str:
    """A comma-separated list of `count` items (hostlist notation allowed) cut at an item to
    fit width, saying how many there are in all."""
    if len(text) <= width:
        return text
    kept = text[: max(8, width - 24)]
    kept = kept[: kept.rfind(",")] if "," in kept else kept
    kept += ",…]" if kept.count("[") > kept.count("]") else ", …"
    return f"{kept} ({count} {what} in all)"


def listed(lines: list, items: list, what: str) -> list:
    """lines plus the first MAX_LISTED items, and a line counting the rest."""
    more = len(items) - MAX_LISTED
    return lines + items[:MAX_LISTED] + ([f"#     … and {more} more {what}"] if more > 0 else [])


# --- pairwise link map -----------------------------------------------------------------------
def link_times(samples, hosts: list[str] | None = None) -> pd.DataFrame:
    """One row per link (a < b) and case of the `pairs` op: median_s, bandwidth_Bps (S /
    median_s), samples, hosts and kind (intra or inter). samples: RunSamples or a frame of
    sample rows (only the pairs op's rows are read)."""
    df = as_samples(samples).frame(ops={"pairs"})
    df = df[df["peer"] >= 0].copy()
    cols = CASE_KEYS + ["a", "b", "host_a", "host_b", "kind", "median_s", "bandwidth_Bps", "samples"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    df["a"] = np.minimum(df["rank"], df["peer"]).astype(int)
    df["b"] = np.maximum(df["rank"], df["peer"]).astype(int)
    # a sample of a link: the slower of its two ranks
    per_sample = df.groupby(CASE_KEYS + ["a", "b", "round", "sample"], as_index=False)["time_s"].max()
    links = per_sample.groupby(CASE_KEYS + ["a", "b"], as_index=False).agg(
        median_s=("time_s", "median"), samples=("time_s", "size"))
    links["bandwidth_Bps"] = np.where(links["nbytes"] > 0, links["nbytes"] / links["median_s"], np.nan)
    def host(r):
        return hosts[r] if hosts and r < len(hosts) else f"rank{r}"

    links["host_a"] = [host(r) for r in links["a"]]
    links["host_b"] = [host(r) for r in links["b"]]
    links["kind"] = np.where(links["host_a"] == links["host_b"], "intra", "inter")
    return links[cols]


def outliers(values) -> tuple[np.ndarray, float, float]:
    """(mask of outliers, median, threshold distance) of the values by the rule above."""
    x = np.asarray(values, dtype=float)
    if x.size < 3:  # no "rest" to compare with
        return np.zeros(x.size, bool), float(np.median(x)) if x.size else float("nan"), float("inf")
    med = float(np.median(x))
    mad = float(np.median(np.abs(x - med)))
    limit = max(K_MAD * MAD_TO_SIGMA * mad, MIN_REL * abs(med))
    return np.abs(x - med) > limit, med, limit


def flag_links(links: pd.DataFrame) -> pd.DataFrame:
    """links with `outlier` (bool) and `vs_median` (time / median time of its group)."""
    links = links.copy()
    links["outlier"], links["vs_median"] = False, np.nan
    for _, group in links.groupby(CASE_KEYS + ["kind"]):
        mask, med, _ = outliers(group["median_s"])
        links.loc[group.index, "outlier"] = mask
        links.loc[group.index, "vs_median"] = group["median_s"] / med
    return links


def node_times(links: pd.DataFrame) -> pd.DataFrame:
    """Per case and node: the median time of its inter-node links, flagged by the rule."""
    inter = links[links["kind"] == "inter"]
    rows = []
    for key, group in inter.groupby(CASE_KEYS):
        ends = pd.concat([group[CASE_KEYS + ["median_s"]].assign(node=group["host_a"]),
                          group[CASE_KEYS + ["median_s"]].assign(node=group["host_b"])])
        per_node = ends.groupby("node", sort=False)["median_s"].median()
        mask, med, _ = outliers(per_node.values)
        for (node, t), bad in zip(per_node.items(), mask):
            rows.append(dict(zip(CASE_KEYS, key), node=node, median_s=t, vs_median=t / med,
                             outlier=bool(bad)))
    return pd.DataFrame(rows, columns=CASE_KEYS + ["node", "median_s", "vs_median", "outlier"])


def matrix(links: pd.DataFrame, nranks: int, value: str = "median_s") -> np.ndarray:
    """nranks × nranks symmetric matrix of one case's links (NaN on the diagonal and where
    no pair was measured)."""
    m = np.full((nranks, nranks), np.nan)
    for r in links.itertuples():
        m[r.a, r.b] = m[r.b, r.a] = getattr(r, value)
    return m


def heatmap_figure(links: pd.DataFrame, hosts: list[str], title: str = ""):
    """A matplotlib figure: latency (µs) or bandwidth (GB/s) of every pair of ranks of one case
    (one backend, dtype, split, size); flagged links are boxed. For the report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(hosts)
    nbytes = int(links["nbytes"].iloc[0])
    big = nbytes >= 64 * 1024  # large messages: show bandwidth, small: latency
    m = matrix(links, n, "bandwidth_Bps" if big else "median_s") * (1e-9 if big else 1e6)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.8 + 0.3 * n), max(3.6, 1.2 + 0.3 * n)))
    image = ax.imshow(m, cmap="viridis" if big else "viridis_r")
    fig.colorbar(image, ax=ax, label="bandwidth (GB/s)" if big else "latency (µs)")
    labels = [plain(f"{r} {h}") for r, h in enumerate(hosts)]
    ax.set_xticks(range(n), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(n), labels, fontsize=7)
    if "outlier" in links:  # flagged nodes: red tick labels
        nodes = node_times(links)
        slow = {plain(h) for h in nodes.loc[nodes["outlier"], "node"]}
        for label in ax.get_xticklabels() + ax.get_yticklabels():
            if label.get_text().split(" ", 1)[-1] in slow:
                label.set_color("red")
    for r in links[links.get("outlier", False) == True].itertuples():  # noqa: E712
        for i, j in ((r.a, r.b), (r.b, r.a)):
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=2))
    ax.set_title(plain(title or f"pairs, S = {nbytes} B"), fontsize=9)
    fig.tight_layout()
    return fig


# --- per-rank skew ---------------------------------------------------------------------------
def last_ranks(samples, hosts: list[str] | None = None) -> pd.DataFrame:
    """Per case of a collective (every op with samples from 3 or more ranks and no peer): the
    rank most often slowest in a sample (its time is the sample's max: after the common
    barrier it finished last), how often, and the median spread (max - min) / max over ranks.
    samples: RunSamples or a frame of sample rows (analysis.runsamples.as_samples)."""
    t = as_samples(samples).times()
    keys = ["backend", "op", "dtype", "nbytes", "nranks", "split"]
    t = t[~t["paired"].astype(bool) & (t["last_rank"] >= 0)]
    rows = []
    for key, group in t.groupby(keys):
        ranks = int(group["ranks"].max())
        if ranks < 3:  # point to point: two ranks time one exchange
            continue
        counts = group["last_rank"].value_counts()
        spread = (group["time_s"] - group["min_s"]) / group["time_s"]
        rank = int(counts.index[0])
        rows.append(dict(zip(keys, key), last_rank=rank,
                         host=hosts[rank] if hosts and rank < len(hosts) else "",
                         share=float(counts.iloc[0] / counts.sum()), samples=int(counts.sum()),
                         ranks=ranks, spread=float(spread.median())))
    return pd.DataFrame(rows, columns=keys + ["last_rank", "host", "share", "samples", "ranks", "spread"])


def skewed(last: pd.DataFrame, factor: float = 2.0) -> pd.DataFrame:
    """Cases where one rank is last far more often than chance: share > factor / ranks
    (and at least half the samples when there are few ranks)."""
    if last.empty:
        return last
    limit = np.maximum(factor / last["ranks"], 0.5)
    return last[last["share"] > limit]


# --- text ------------------------------------------------------------------------------------
def _case(row) -> str:
    split = "" if row["split"] == "all" else f" {row['split']}-node"
    return f"{row['backend']}{split} S={int(row['nbytes'])} B"


def describe(samples, meta: dict) -> str:
    """The lines `commbench links` and `commbench run` print; '' when there is nothing.
    samples: RunSamples or a frame of sample rows."""
    samples = as_samples(samples)
    hosts = meta.get("hosts") or []
    lines = []
    if hosts:
        lines.append(f"# nodes: {host_map(hosts, meta.get('nnodes'))}")
    from bench.core.runmeta import describe_job

    if describe_job(meta.get("job")):  # the scheduler's job comes first
        lines.insert(0, f"# {describe_job(meta['job'])}")
    links = link_times(samples, hosts)
    if not links.empty:
        links = flag_links(links)
        nodes = node_times(links)
        lines += ["# link map of the pairs op", f"#   {RULE}"]
        for key, group in links.groupby(CASE_KEYS):
            row = dict(zip(CASE_KEYS, key))
            parts = []
            for kind, g in group.groupby("kind"):
                med = float(g["median_s"].median())
                bw = f", {row['nbytes'] / med / 1e9:.3g} GB/s" if row["nbytes"] > 0 else ""
                parts.append(f"{kind}-node {len(g)} links median {format_time(med)}{bw}")
            lines.append(f"#   {_case(row)}: " + "; ".join(parts))
            bad_nodes = nodes[(nodes[CASE_KEYS] == pd.Series(row)).all(axis=1) & nodes["outlier"]]
            lines = listed(lines, [
                f"#     {'slow' if r.vs_median > 1 else 'fast'} node {r.node}: "
                f"{format_time(r.median_s)}, {r.vs_median:.2f}x the median node"
                for r in bad_nodes.sort_values("vs_median", ascending=False).itertuples()], "nodes")
            bad = group[group["outlier"]].sort_values("vs_median", ascending=False)
            lines = listed(lines, [
                f"#     {'slow' if r.vs_median > 1 else 'fast'} link {r.a}-{r.b} "
                f"({r.host_a}-{r.host_b}, {r.kind}-node): {format_time(r.median_s)}, "
                f"{r.vs_median:.2f}x the median link" for r in bad.itertuples()], "links")
        lines.append("# " + flagged_line(links, nodes))
    last = skewed(last_ranks(samples, hosts))
    if not last.empty:
        lines.append("# skew: ranks last far more often than chance (rank: share of samples; "
                     "spread = median (max-min)/max over ranks)")
        lines = listed(lines, [
            f"#   {r.op} {_case(r._asdict())}: rank {r.last_rank}"
            f"{f' ({r.host})' if r.host else ''} last in {r.share:.0%} of {r.samples} samples, "
            f"spread {r.spread:.0%}" for r in last.sort_values("share", ascending=False).itertuples()],
            "cases")
    return "\n".join(line if len(line) <= MAX_LINE else line[:MAX_LINE - 1] + "…" for line in lines)


def flagged_line(links: pd.DataFrame, nodes: pd.DataFrame) -> str:
    """'slow: ...' naming the slow nodes and links of every case, or 'none flagged'."""
    parts = []
    for key, group in links.groupby(CASE_KEYS):
        row = dict(zip(CASE_KEYS, key))
        here = nodes[(nodes[CASE_KEYS] == pd.Series(row)).all(axis=1)]
        slow_nodes = list(here.loc[here["outlier"] & (here["vs_median"] > 1), "node"])
        slow_links = [f"{r.a}-{r.b}" for r in group.itertuples() if r.outlier and r.vs_median > 1]
        named = ([f"nodes {cut_list(', '.join(slow_nodes), 80, len(slow_nodes), 'nodes')}"]
                 if slow_nodes else []) + \
                ([f"links {cut_list(', '.join(slow_links), 80, len(slow_links), 'links')}"]
                 if slow_links else [])
        if named:
            parts.append(f"{_case(row)}: {'; '.join(named)}")
    return "slow: " + (" | ".join(parts) if parts else "none flagged")


# --- command ---------------------------------------------------------------------------------
def add_arguments(parser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (results/<run_id>)")
    parser.add_argument("--csv", help="also write the flagged link table (one row per link and case) here")
    parser.add_argument("--png", metavar="DIR", help="also draw each case's link map as a heatmap "
                        "into DIR (pairs-<backend>-<split>-<S>.png)")


def main(args) -> int:
    from analysis.runsamples import RunSamples

    meta = load_checked_meta(args.run_dir)
    samples = RunSamples(args.run_dir, meta)
    text = describe(samples, meta)
    print(text or "# no pairs and no skew to report (run --ops pairs for a link map)")
    links = link_times(samples, meta.get("hosts"))
    links = flag_links(links) if not links.empty else links
    if args.csv:
        try:
            links.to_csv(args.csv, index=False)
        except OSError as exc:
            raise file_error(f"--csv {args.csv}", exc, "write it") from None
    if args.png:
        for path in write_heatmaps(links, meta.get("hosts") or [], args.png):
            print(f"# heatmap: {path_text(path)}")
    return 0


MAX_MAP_RANKS = 4096  # a link map of more ranks is no picture (and n² cells of memory)


def map_hosts(links: pd.DataFrame, hosts: list[str]) -> list[str]:
    """hosts, extended by 'rank<r>' to every rank the links name."""
    n = max(len(hosts), int(links[["a", "b"]].max().max()) + 1 if not links.empty else 0)
    if n > MAX_MAP_RANKS:
        raise RunDirError(f"samples.csv: a link map of {n} ranks (at most {MAX_MAP_RANKS} are "
                          "drawn): rank numbers beyond any real run")
    return list(hosts) + [f"rank{r}" for r in range(len(hosts), n)]


def write_heatmaps(links: pd.DataFrame, hosts: list[str], out_dir) -> list:
    """One PNG per case of the link map, into out_dir and nowhere else: file names from
    sanitised names (analysis.figures.safe_name: pairs-<backend>-<split>-<S>.png when those are
    plain names), written through fresh files (a planted link is replaced, not followed).
    Returns the paths; RunDirError (one line) when out_dir cannot be written."""
    from pathlib import Path

    import matplotlib.pyplot as plt

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--png {path_text(out)}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise file_error(f"--png {out}", exc, "create it") from None
    paths: list = []
    used: set = set()
    hosts = map_hosts(links, hosts)
    for key, group in links.groupby(CASE_KEYS):
        row = dict(zip(CASE_KEYS, key))
        fig = heatmap_figure(group, hosts, title=f"pairs {_case(row)}")
        png = png_bytes(fig)
        plt.close(fig)
        path = out / safe_name("pairs", row["backend"], row["split"], int(row["nbytes"]), used=used)
        try:
            write_file(path, png)
        except OSError as exc:
            raise file_error(path, exc, "write it") from None
        paths.append(path)
    return paths
