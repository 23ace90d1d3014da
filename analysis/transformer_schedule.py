"""The communication of one training step of a transformer, derived from its dimensions and
parallel layout as Megatron-LM and PyTorch DDP / FSDP do it: one Row per distinct
communication (phase, op, group, group size, S, count per step, overlap).

Conventions, per rank and training step (b micro-batch, s sequence, h hidden, A micro-batches
per step, e bytes per element of --dtype, e_g of --grad-dtype, ℓ = L/P layers of the rank's
pipeline stage, ℓ_moe of them MoE):
  tp (T > 1)   2ℓA all-reduces of b·s·h·e in forward and 2ℓA in backward (after attention and
               MLP; the conjugate operators in backward); --sequence-parallel: 2ℓA all-gathers
               and 2ℓA reduce-scatters of b·s·h·e (S: whole output / whole input) in each phase.
  pp (P > 1)   one message of b·s·h·e (÷T with sequence parallelism) per stage boundary and
               micro-batch each way: A in forward (activations), A in backward (their
               gradients); op pingpong (one message one way).
  ep (E > 1)   per MoE layer and micro-batch an all-to-all dispatch and combine of
               b·s·k·h·e (k = top_k; ÷T with sequence parallelism) in forward and again in
               backward: 4·ℓ_moe·A all-to-alls.
  dp           G = this rank's parameters (its stage, its tensor-parallel shard) × e_g, in
               buckets of --bucket: ZeRO 0 one all-reduce of every bucket per step (DDP: during
               the last backward); ZeRO 1 a reduce-scatter of every bucket per step and an
               all-gather of the updated parameters (× e) after the optimizer step; ZeRO 2 the
               same but the reduce-scatter every micro-batch (DeepSpeed reduces partitioned
               gradients per micro-batch); ZeRO 3 (FSDP, one unit per layer, no buckets) per
               layer and micro-batch an all-gather of its parameters in forward, another in
               backward and a reduce-scatter of its gradients in backward, plus the root unit
               (embedding, output layer, final norm) gathered once in forward and reduced in
               backward per micro-batch. Reduce-scatter and all-gather buffers are padded to a
               multiple of the group size, as the frameworks pad their flat buffers.
  edp          with E > 1 the experts' gradients go over the expert-data-parallel group of
               D/E ranks (Megatron-Core keeps them in their own buffers), the rest over dp.

Groups are placed as Megatron-LM places them (order tp, ep/dp, pp): tp = T adjacent ranks; dp =
D ranks T apart; pp = P ranks T·D apart; ep = E ranks T apart; edp = D/E ranks T·E apart
(bench.nodes group:SIZE:STRIDE splits). Parameters are counted from the dimensions: attention
(q, k, v, o projections: 2·h·heads·d + 2·h·kv_heads·d, d = head dimension), MLP (3·h·ffn gated,
2·h·ffn not), experts (experts × MLP) and router (h × experts), two norms of h per layer and a
final one, the embedding V·h and the output layer V·h (unless tied). No biases.
Not counted: the vocab-parallel embedding's and loss's small tp all-reduces, the embedding
gradient all-reduce between first and last stage of tied models, layer-norm gradient
all-reduces under sequence parallelism, the re-gather of sequence-parallel inputs for weight
gradients, DDP's small first bucket, optimizer-state and checkpoint traffic.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from analysis.transformer import Model
from analysis.transformer_layout import Layout, Share, check_layout, itemsize, share_of
from bench.core.units import human_bytes
from bench.ops import get_op

PHASES = ("forward", "backward", "step")
GROUPS = ("tp", "pp", "ep", "dp", "edp")


@dataclass
class Row:
    phase: str
    op: str
    group: str
    group_size: int
    nbytes: int
    count: int
    overlap: bool
    what: str

    @property
    def bytes_per_step(self) -> int:
        return self.nbytes * self.count

    def key(self):
        return (self.phase, self.op, self.group, self.group_size, self.nbytes, self.overlap)

    def cells(self) -> list[str]:
        """The row as the tables print it: phase, op, group, size, S, count, overlap."""
        return [self.phase, self.op, self.group, str(self.group_size), human_bytes(self.nbytes),
                str(self.count), "yes" if self.overlap else "no"]


def _pad(elements: int, multiple: int) -> int:
    return -(-elements // multiple) * multiple


class _Rows(list):
    """The rows of a schedule as they are derived; `add` leaves out what moves nothing."""

    def add(self, phase, op, group, size, nbytes, count, overlap, what):
        if size > 1 and count > 0 and nbytes > 0:
            self.append(Row(phase, op, group, size, int(nbytes), int(count), overlap, what))


def schedule(model: Model, lay: Layout) -> tuple[list[Row], Share]:
    """The distinct communications of one training step of a rank of the busiest stage."""
    check_layout(model, lay)
    share = share_of(model, lay)
    rows = _Rows()
    _model_parallel(rows, model, lay, share)
    if lay.zero < 3:
        _data_parallel(rows, lay, share)
    else:
        _fully_sharded(rows, lay, share)
    return merge(rows), share


def _model_parallel(rows: _Rows, model: Model, lay: Layout, share: Share) -> None:
    """tp's all-reduces (or sequence parallelism's all-gathers and reduce-scatters), pp's
    messages between stages and ep's all-to-alls, per micro-batch."""
    t, p, ep, a, e = lay.tp, lay.pp, lay.ep, lay.grad_accum, itemsize(lay.dtype)
    tokens = lay.micro_batch * lay.seq
    act = tokens * model.hidden
    sp = lay.sequence_parallel and t > 1
    n = 2 * share.layers * a
    for phase in ("forward", "backward"):
        if sp:
            rows.add(phase, "allgather", "tp", t, act * e, n, False,
                     "sequence-parallel all-gather before attention and MLP")
            rows.add(phase, "reduce_scatter", "tp", t, act * e, n, False,
                     "sequence-parallel reduce-scatter after attention and MLP")
        else:
            rows.add(phase, "allreduce", "tp", t, act * e, n, False,
                     "tensor-parallel all-reduce of attention and MLP outputs" if phase == "forward"
                     else "tensor-parallel all-reduce of attention and MLP input gradients")
    message = (act // t if sp else act) * e
    rows.add("forward", "pingpong", "pp", p, message, a, False, "activations to the next stage")
    rows.add("backward", "pingpong", "pp", p, message, a, False, "gradients to the previous stage")
    if ep > 1 and share.moe_layers:
        routed = (tokens // t if sp else tokens) * model.top_k * model.hidden
        for phase in ("forward", "backward"):
            rows.add(phase, "alltoall", "ep", ep, _pad(routed, ep) * e, 2 * share.moe_layers * a,
                     False, "MoE token dispatch and combine")


def _data_parallel(rows: _Rows, lay: Layout, share: Share) -> None:
    """ZeRO 0, 1 and 2: the gradients in buckets over dp (and edp for experts)."""
    d, ep, a = lay.dp, lay.ep, lay.grad_accum
    e, eg = itemsize(lay.dtype), itemsize(lay.grad_dtype)
    split_experts = ep > 1 and share.expert > 0
    # (group, size, parameters of the whole rank, what they are)
    whole = [("dp", d, share.dense + (0 if split_experts else share.expert), "")]
    if split_experts:
        whole.append(("edp", d // ep, share.expert, "expert "))
    for group, size, params, kind in whole:
        per = max(1, lay.bucket // eg)  # a bucket's elements
        full, rest = divmod(params, per)
        for elements, count in ((per, full), (rest, 1)):
            label = ("one bucket" if not full else "full buckets" if elements == per
                     else "last bucket")
            if lay.zero == 0:
                rows.add("backward", "allreduce", group, size, elements * eg, count, True,
                         f"{kind}gradient all-reduce, {label} (DDP: during the last backward)")
                continue
            padded = _pad(elements, size)
            rows.add("backward", "reduce_scatter", group, size, padded * eg,
                     count * (a if lay.zero == 2 else 1), True,
                     f"{kind}gradient reduce-scatter, {label}"
                     + (" (every micro-batch)" if lay.zero == 2 else ""))
            rows.add("step", "allgather", group, size, padded * e, count, False,
                     f"{kind}parameter all-gather after the optimizer step, {label}")


def _fully_sharded(rows: _Rows, lay: Layout, share: Share) -> None:
    """ZeRO 3 (FSDP): per layer and micro-batch, its parameters gathered in forward and again
    in backward and its gradients reduce-scattered; the root unit once per micro-batch."""
    d, ep, a = lay.dp, lay.ep, lay.grad_accum
    e, eg = itemsize(lay.dtype), itemsize(lay.grad_dtype)
    split_experts = ep > 1 and share.expert > 0
    units = []  # (group, size, parameters, units per micro-batch, what)
    dense_layers = share.layers - share.moe_layers
    units.append(("dp", d, share.dense_layer, dense_layers, "a layer"))
    moe_dense = share.moe_dense_layer + (0 if split_experts else share.moe_expert_layer)
    units.append(("dp", d, moe_dense, share.moe_layers,
                  "a MoE layer's non-expert part" if split_experts else "a MoE layer"))
    if split_experts:
        units.append(("edp", d // ep, share.moe_expert_layer, share.moe_layers,
                      "a MoE layer's experts"))
    for group, size, params, per_mb, what in units:
        padded = _pad(params, size)
        rows.add("forward", "allgather", group, size, padded * e, per_mb * a, True,
                 f"FSDP parameter all-gather of {what}")
        rows.add("backward", "allgather", group, size, padded * e, per_mb * a, True,
                 f"FSDP parameter re-gather of {what}")
        rows.add("backward", "reduce_scatter", group, size, padded * eg, per_mb * a, True,
                 f"FSDP gradient reduce-scatter of {what}")
    padded = _pad(share.root, d)
    rows.add("forward", "allgather", "dp", d, padded * e, a, True,
             "FSDP root unit (embedding, output layer, final norm) all-gather")
    rows.add("backward", "reduce_scatter", "dp", d, padded * eg, a, True,
             "FSDP root unit gradient reduce-scatter")


def merge(rows: list[Row]) -> list[Row]:
    """Rows of the same communication added up; in phase, group, op order, larger S first."""
    out: dict = {}
    for r in rows:
        if r.key() in out:
            m = out[r.key()]
            m.count += r.count
            if r.what not in m.what.split("; "):
                m.what += "; " + r.what
        else:
            out[r.key()] = replace(r)
    return sorted(out.values(), key=lambda r: (PHASES.index(r.phase), GROUPS.index(r.group),
                                               r.op, -r.nbytes))


def bytes_by(rows: list[Row], field: str) -> dict:
    out: dict = {}
    for r in rows:
        k = getattr(r, field)
        out[k] = out.get(k, 0) + r.bytes_per_step
    return out


@dataclass
class Spec:
    """A derived workload: the model, the layout, the rows, where they go."""
    model: Model
    layout: Layout
    rows: list
    share: Share
    out: Path


def measured_size(row: Row, size_of: int) -> int:
    """S of the row as `commbench run` measures it (whole elements, whole per-rank blocks)."""
    return get_op(row.op).case(row.nbytes, row.group_size, size_of).nbytes
