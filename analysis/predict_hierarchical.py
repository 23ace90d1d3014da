"""Hierarchical (several nodes, --ranks-per-node q, N = P/q nodes), each op as two levels on the
grid of q local × N node ranks, the inter-node level run by the q local ranks at once (one
communicator per local rank, as `--split inter` measures):
  allreduce       intra allreduce (q ranks, S) + inter allreduce (N, S/q)
  reduce_scatter  intra reduce_scatter (q, S) + inter reduce_scatter (N, S/q)
  allgather       inter allgather (N, S/q) + intra allgather (q, S)
  alltoall        intra alltoall (q, S) + inter alltoall (N, S)
  broadcast       inter broadcast (N, S/q) + intra broadcast (q, S): the root's node scatters
                  S to its q ranks, each broadcasts its piece across the nodes, each node
                  gathers S back (scatter + allgather, costed as the intra broadcast of S)
Intra parameters come from fits with split `intra` (or `all` of single-node runs), inter from
fits with split `inter` (runs across nodes with `--split inter`); each level takes, in this
order, algorithm fits across rank counts, the Hockney fit at exactly that rank count, or the
ring formula with that split's pingpong α and β. The inter level's bytes cost at least
k/R_NIC per byte with k ranks of a node sending at once (the NIC's declared line rate, where
the runs recorded it and the times do not beat it).
"""
from __future__ import annotations

from analysis.predict_algorithm import predict_algorithm
from analysis.predict_interval import Prediction
from analysis.predict_link import predict_from_pingpong, predict_hockney
from bench.core.errors import UsageError
from bench.core.units import format_time, human_bytes

HIERARCHY = {  # op -> levels (split, ranks "q" or "N", bytes divided by q?, local ranks at once)
    "allreduce": (("intra", "q", False, None), ("inter", "N", True, "q")),
    "reduce_scatter": (("intra", "q", False, None), ("inter", "N", True, "q")),
    "allgather": (("inter", "N", True, "q"), ("intra", "q", False, None)),
    "alltoall": (("intra", "q", False, None), ("inter", "N", False, "q")),
    "broadcast": (("inter", "N", True, "q"), ("intra", "q", False, None)),
}


def predict_level(fits, op, nranks, nbytes, split, model=None, per_node=None,
                  spread=False) -> Prediction | None:
    """One level of a hierarchical model, from the best source the fits have for that split:
    algorithm fits across rank counts, else the Hockney fit at exactly nranks, else the ring
    formula with the split's pingpong link parameters. per_node, spread: the ranks of a node
    sending at once (analysis.models.senders)."""
    if nranks <= 1:
        return Prediction(0.0, 0.0, 0.0, "none", "one rank: nothing to do", [])
    return (predict_algorithm(fits, op, nranks, nbytes, model, split=split, per_node=per_node,
                              spread=spread)
            or (None if model else predict_hockney(fits, op, nranks, nbytes, split=split))
            or predict_from_pingpong(fits, op, nranks, nbytes, split, model or "ring",
                                     per_node=per_node, spread=spread))


def predict_hierarchical(fits, op, nranks, nbytes, ranks_per_node, model=None) -> Prediction:
    """A two-level op on N nodes × q ranks (HIERARCHY, see the module docstring). Intra
    parameters: split `intra` (or `all` of single-node runs); inter: split `inter` (runs
    across nodes), with the q local ranks' communicators at once sharing the NIC."""
    if op not in HIERARCHY:
        raise UsageError(f"the hierarchical model covers {', '.join(HIERARCHY)}; not {op}")
    q = ranks_per_node
    if nranks % q:
        raise UsageError(f"--nranks {nranks} is not a multiple of --ranks-per-node {q}")
    nodes = nranks // q
    if not (fits.split == "inter").any():
        raise UsageError("a hierarchical prediction needs inter-node fits (split 'inter', from "
                         "runs across nodes with --split inter); these fits have none")
    intra_split = "intra" if (fits.split == "intra").any() else "all"
    parts = []
    for split, ranks, divided, at_once in HIERARCHY[op]:
        p = q if ranks == "q" else nodes
        size = nbytes / q if divided else nbytes
        if split == "intra":
            got = predict_level(fits, op, p, size, intra_split)
            if got is None:
                raise UsageError(f"no intra-node {op} fits at {q} ranks (split {intra_split})")
        else:
            got = predict_level(fits, op, p, size, "inter", model,
                                per_node=q if at_once == "q" else 1, spread=True)
            if got is None:
                raise UsageError(f"no inter-node {op} or pingpong fits to cover {nodes} nodes")
        parts.append((split, p, size, got))
    detail = " + ".join(f"{split}: {g.model} on {p} {'ranks' if split == 'intra' else 'nodes'}, "
                        f"{human_bytes(size)} ({format_time(g.time_s)})"
                        for split, p, size, g in parts)
    detail += "; " + "; ".join(f"{split} {g.detail}" for split, _, _, g in parts)
    return Prediction(sum(g.time_s for *_, g in parts), sum(g.low_s for *_, g in parts),
                      sum(g.high_s for *_, g in parts),
                      f"hierarchical({', '.join(g.model for *_, g in parts)})", detail,
                      [w for *_, g in parts for w in g.warnings],
                      [f"{split}: {n}" for split, _, _, g in parts for n in g.notes])
