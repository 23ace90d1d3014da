"""What the nodes allow, for the max-rate fits: the limits the runs' meta.json say of the
nodes (ranks per node, copy saturation, NIC rate) and the max-rate arguments of each split."""
from __future__ import annotations

import math
from pathlib import Path

from analysis.known_ops import known_op
from bench.core.errors import RunDirError
from bench.core.rundir import META
from bench.core.safe_text import one_line, path_text

__all__ = ["point_to_point", "RATE_ORIGINS", "SATURATED", "machine_limits", "node_loads"]


def point_to_point(op: str) -> bool:
    """One message between two ranks (bench.ops): its Hockney fit holds at any rank count."""
    found = known_op(op)
    return bool(found and found.point_to_point)


RATE_ORIGINS = ("fit", "ceiling", "nic")  # node_rate_origin 0, 1, 2
SATURATED = 0.8  # all ranks of a host copying at once below this share of k × one core's rate


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def machine_limits(runs, metas) -> dict:
    """What the runs' meta.json say of the nodes, for the max-rate fits:
    ranks_per_node {world ranks: ranks per node}, nodes {world ranks: nodes} (for the
    concurrency of each split), saturation (copies of a node's ranks at once that saturate
    it: copy_node_Bps / copy_one_core_Bps on the host with the most ranks, where that host's
    copies fell below SATURATED × ranks × one core's rate; None where they did not or no run
    measured it) and nic_Bps (the fastest declared NIC of each host, the slowest such host;
    None where none declares a rate). Runs from before the ceilings were measured, and
    imported ones, lack them: no ceiling then. A ceilings entry that is not what
    bench.ceilings writes is a RunDirError naming the file."""
    out: dict = {"ranks_per_node": {}, "nodes": {}, "saturation": None, "nic_Bps": None}
    copies, nics = [], []  # (ranks on the host, all of them at once, one core); NIC rates
    for run, meta in zip(runs, metas):
        nranks, nnodes = meta.get("nranks"), meta.get("nnodes") or 1
        if nranks:
            out["ranks_per_node"][int(nranks)] = -(-int(nranks) // int(nnodes))
            out["nodes"][int(nranks)] = int(nnodes)
        ceil = meta.get("ceilings")
        if not ceil:
            continue
        try:
            one = ceil["copy_one_core_Bps"]
            for host in (ceil.get("hosts") or {}).values():
                ranks, node = host["ranks"], host["copy_node_Bps"]
                rates = [nic["rate_Bps"] for nic in host.get("nics") or []]
                if not (isinstance(ranks, int) and ranks >= 1
                        and all(_positive(r) for r in rates)):
                    raise ValueError("a host entry out of range")
                if rates:
                    nics.append(max(rates))
                if _positive(one) and _positive(node) and ranks >= 2:
                    copies.append((ranks, node, one))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise RunDirError(f"{path_text(Path(run) / META)}: ceilings: malformed "
                              f"({type(exc).__name__}: {one_line(exc)[:80]})") from None
    if copies:
        top = max(c[0] for c in copies)
        saturated = [node / one for ranks, node, one in copies
                     if ranks == top and node < SATURATED * ranks * one]
        out["saturation"] = float(min(saturated)) if saturated else None
    if nics:
        out["nic_Bps"] = float(min(nics))
    return out


def node_loads(machine: dict, split: str) -> dict:
    """fit_algorithms' max-rate arguments for a split: the ranks of a node in each rank
    count's op, whether they are spread one per node (inter), and the ceiling that applies."""
    per_node, nodes = machine.get("ranks_per_node", {}), machine.get("nodes", {})
    if split == "inter":  # one rank per node, every local rank's communicator at once
        by_nodes = {nodes[w]: per_node[w] for w in per_node if nodes.get(w, 1) > 1}
        return dict(per_node=lambda q: by_nodes.get(q, 1), spread=True,
                    link_rate=machine.get("nic_Bps"))
    if split == "all" and any(nodes.get(w, 1) > 1 for w in nodes):
        # a flat communicator across nodes: the ranks of the fullest node share it
        return dict(per_node=lambda q: per_node.get(q, q))
    return dict(saturation=machine.get("saturation"))
