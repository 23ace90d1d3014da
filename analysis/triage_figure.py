"""The fleet map of the report's fleet section (`commbench triage` in a figure): each pair of
nodes' link rate over the median link, node labels coloured by verdict."""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.triage_verdicts import Result
from bench.core.units import human_bytes


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
