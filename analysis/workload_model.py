"""The communication of one training step of a transformer, derived from its dimensions and
parallel layout as Megatron-LM and PyTorch DDP / FSDP do it: models (presets in
workload_models.json, or JSON files), parameter counts, the layout's groups, and the schedule —
one Row per distinct communication (phase, op, group, group size, S, count per step, overlap).

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

import csv
import io
import json
from dataclasses import dataclass, replace
from pathlib import Path

from bench.core.errors import UsageError
from bench.core.tables import text_table
from bench.core.units import human_bytes
from bench.ops import get_op

PRESETS = Path(__file__).with_name("workload_models.json")
ITEMSIZE = {"float64": 8, "float32": 4, "bfloat16": 2, "float16": 2, "float8": 1}
PHASES = ("forward", "backward", "step")
GROUPS = ("tp", "pp", "ep", "dp", "edp")
COLUMNS = ("phase", "op", "group", "group_size", "nbytes", "count", "overlap", "what")
DEFAULT_BUCKET = "25M"  # PyTorch DDP's bucket_cap_mb = 25 (MiB)


# ---------------------------------------------------------------- models
@dataclass(frozen=True)
class Model:
    name: str
    layers: int
    hidden: int
    ffn: int
    heads: int
    kv_heads: int
    vocab: int
    head_dim: int = 0          # 0: hidden / heads
    experts: int = 0           # 0: dense
    top_k: int = 0
    moe_ffn: int = 0           # an expert's ffn (0: ffn)
    moe_layers: tuple = ()     # indices of the MoE layers
    gated: bool = True         # SwiGLU-style MLP: 3 matrices (else 2)
    tied_embeddings: bool = False
    published_params: float = 0.0
    source: str = ""

    @property
    def d(self) -> int:
        return self.head_dim or self.hidden // self.heads

    def attention(self) -> int:
        """q, k, v and o projections of one layer."""
        return 2 * self.hidden * self.heads * self.d + 2 * self.hidden * self.kv_heads * self.d

    def mlp(self, ffn: int | None = None) -> int:
        return (3 if self.gated else 2) * self.hidden * (ffn or self.ffn)

    def is_moe(self, layer: int) -> bool:
        return layer in self.moe_layers


_INTS = ("layers", "hidden", "ffn", "heads", "kv_heads", "vocab")
_OPTIONAL = {"name": str, "head_dim": int, "experts": int, "top_k": int, "moe_ffn": int,
             "moe_layers": object, "gated": bool, "tied_embeddings": bool,
             "published_params": float, "source": str}


def presets() -> dict:
    data = json.loads(PRESETS.read_text())
    return {k: v for k, v in data.items() if not k.startswith("_")}


def load_model(spec: str) -> Model:
    """A preset by name (any case), or a JSON file of one model."""
    path = Path(spec)
    if spec.lower().endswith(".json") or path.is_file():
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise UsageError(f"--model {spec}: cannot read it ({exc.strerror or exc})") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise UsageError(f"--model {spec}: not JSON ({str(exc).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise UsageError(f"--model {spec}: expected a JSON object of the model's dimensions")
        return model_from_dict(data.get("name") or path.stem, data, f"--model {spec}")
    known = presets()
    found = {k.lower(): k for k in known}.get(spec.lower())
    if found is None:
        raise UsageError(f"--model {spec!r}: no such preset or file; presets: {', '.join(known)}")
    return model_from_dict(found, known[found], f"preset {found}")


def model_from_dict(name: str, data: dict, where: str) -> Model:
    """A Model from JSON keys; every bad key or value is one UsageError naming it."""
    unknown = [k for k in data if k not in _INTS and k not in _OPTIONAL]
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r}; known: "
                         f"{', '.join(_INTS + tuple(_OPTIONAL))}")
    missing = [k for k in _INTS if k not in data]
    if missing:
        raise UsageError(f"{where}: missing {', '.join(missing)}")

    def integer(key, lo=1):
        v = data.get(key, 0 if lo == 0 else None)
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise UsageError(f"{where}: {key} must be an integer ≥ {lo}, got {v!r}")
        return v

    dims = {k: integer(k) for k in _INTS}
    extra = {k: integer(k, 0) for k in ("head_dim", "experts", "top_k", "moe_ffn")}
    for key in ("gated", "tied_embeddings"):
        if key in data and not isinstance(data[key], bool):
            raise UsageError(f"{where}: {key} must be true or false, got {data[key]!r}")
    published = data.get("published_params", 0.0)
    if isinstance(published, bool) or not isinstance(published, (int, float)) or published < 0:
        raise UsageError(f"{where}: published_params must be a number ≥ 0, got {published!r}")
    h, a, k = dims["hidden"], dims["heads"], dims["kv_heads"]
    if a % k:
        raise UsageError(f"{where}: heads {a} is not a multiple of kv_heads {k}")
    if not extra["head_dim"] and h % a:
        raise UsageError(f"{where}: hidden {h} is not a multiple of heads {a}: give head_dim")
    experts, top_k = extra["experts"], extra["top_k"]
    moe_layers: tuple = ()
    if experts:
        if not 1 <= top_k <= experts:
            raise UsageError(f"{where}: top_k must be between 1 and experts ({experts}), got {top_k}")
        moe_layers = _moe_layers(data.get("moe_layers", 1), dims["layers"], where)
    elif top_k or "moe_layers" in data:
        raise UsageError(f"{where}: top_k and moe_layers need experts")
    return Model(name=str(data.get("name") or name), **dims, **extra, moe_layers=moe_layers,
                 gated=data.get("gated", True), tied_embeddings=data.get("tied_embeddings", False),
                 published_params=float(published), source=str(data.get("source", "")))


def _moe_layers(value, layers: int, where: str) -> tuple:
    """moe_layers: "all", N (every N-th layer from the first, as Megatron's --moe-layer-freq)
    or a list of layer indices (from 0)."""
    if value == "all":
        return tuple(range(layers))
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return tuple(range(0, layers, value))
    if isinstance(value, list) and value and all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < layers for i in value):
        return tuple(sorted(set(value)))
    raise UsageError(f"{where}: moe_layers must be \"all\", a step N ≥ 1 or a list of layer "
                     f"indices 0..{layers - 1}, got {value!r}")


def parameter_counts(model: Model) -> dict:
    """Parameters by part (attention, mlp, experts, router, norms, embedding, output), the
    total, and the parameters active per token (top_k of the experts)."""
    moe = len(model.moe_layers)
    dense = model.layers - moe
    h, v = model.hidden, model.vocab
    expert = model.mlp(model.moe_ffn or model.ffn)
    parts = {"attention": model.layers * model.attention(), "mlp": dense * model.mlp(),
             "experts": moe * model.experts * expert, "router": moe * model.experts * h,
             "norms": (2 * model.layers + 1) * h, "embedding": v * h,
             "output": 0 if model.tied_embeddings else v * h}
    total = sum(parts.values())
    active = total - moe * (model.experts - model.top_k) * expert
    return {**parts, "total": total, "active": active}


# ---------------------------------------------------------------- layout
@dataclass(frozen=True)
class Layout:
    tp: int = 1
    pp: int = 1
    dp: int = 1
    ep: int = 1
    zero: int = 0
    sequence_parallel: bool = False
    micro_batch: int = 1
    seq: int = 4096
    grad_accum: int = 1
    dtype: str = "bfloat16"
    grad_dtype: str = "bfloat16"
    bucket: int = 25 << 20

    @property
    def world(self) -> int:
        return self.tp * self.pp * self.dp

    def groups(self) -> dict:
        """group -> (size, stride) as Megatron-LM places ranks (tp fastest, then dp, then pp;
        ep inside dp)."""
        t, d, e = self.tp, self.dp, self.ep
        return {"tp": (t, 1), "pp": (self.pp, t * d), "ep": (e, t), "dp": (d, t),
                "edp": (d // e, t * e)}

    def describe(self) -> str:
        sp = ", sequence parallel" if self.sequence_parallel else ""
        return (f"tp {self.tp} × pp {self.pp} × dp {self.dp} = {self.world} ranks"
                + (f", ep {self.ep}" if self.ep > 1 else "") + f", ZeRO {self.zero}{sp}; "
                f"micro-batch {self.micro_batch} × seq {self.seq}, {self.grad_accum} "
                f"micro-batch{'es' if self.grad_accum > 1 else ''} per step; {self.dtype} "
                f"(gradients {self.grad_dtype})"
                + (f"; buckets of {human_bytes(self.bucket)}" if self.zero < 3 else ""))


def itemsize(dtype: str) -> int:
    try:
        return ITEMSIZE[dtype]
    except KeyError:
        raise UsageError(f"dtype {dtype!r}: known are {', '.join(ITEMSIZE)}") from None


def check_layout(model: Model, lay: Layout) -> None:
    for flag, value in (("--tp", lay.tp), ("--pp", lay.pp), ("--dp", lay.dp), ("--ep", lay.ep),
                        ("--micro-batch", lay.micro_batch), ("--seq", lay.seq),
                        ("--grad-accum", lay.grad_accum), ("--bucket", lay.bucket)):
        if value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}")
    if lay.zero not in (0, 1, 2, 3):
        raise UsageError(f"--zero must be 0, 1, 2 or 3, got {lay.zero}")
    itemsize(lay.dtype), itemsize(lay.grad_dtype)
    t = lay.tp
    for what, value in (("heads", model.heads), ("kv_heads", model.kv_heads), ("ffn", model.ffn),
                        ("moe_ffn", model.moe_ffn or model.ffn)):
        if value % t:
            raise UsageError(f"--tp {t} does not divide {model.name}'s {what} ({value})")
    if model.layers % lay.pp:
        raise UsageError(f"--pp {lay.pp} does not divide {model.name}'s {model.layers} layers")
    if lay.sequence_parallel and lay.seq % t:
        raise UsageError(f"--sequence-parallel: --seq {lay.seq} is not a multiple of --tp {t}")
    if lay.ep > 1:
        if not model.experts:
            raise UsageError(f"--ep {lay.ep}: {model.name} has no experts")
        if model.experts % lay.ep:
            raise UsageError(f"--ep {lay.ep} does not divide {model.name}'s {model.experts} experts")
        if lay.dp % lay.ep:
            raise UsageError(f"--ep {lay.ep} must divide --dp {lay.dp} (expert parallelism is "
                             "carved out of data parallelism)")


@dataclass(frozen=True)
class Share:
    """What one rank of the busiest pipeline stage holds: its layers, its MoE layers and its
    parameters (tensor- and expert-parallel shards), dense and expert, per layer and in all."""
    stage: int
    layers: int
    moe_layers: int
    dense_layer: int       # a dense layer's parameters on this rank
    moe_dense_layer: int   # a MoE layer's non-expert parameters (attention, router, norms)
    moe_expert_layer: int  # a MoE layer's expert parameters on this rank
    root: int              # embedding, output layer, final norm on this rank
    dense: int             # all non-expert parameters on this rank
    expert: int            # all expert parameters on this rank


def share_of(model: Model, lay: Layout) -> Share:
    t, p = lay.tp, lay.pp
    per_stage = model.layers // p
    vocab_shard = -(-model.vocab // t) * model.hidden  # vocab-parallel, padded
    dense_layer = model.attention() // t + model.mlp() // t + 2 * model.hidden
    moe_dense = model.attention() // t + model.hidden * model.experts + 2 * model.hidden
    moe_expert = ((model.experts // lay.ep) * model.mlp(model.moe_ffn or model.ffn) // t
                  if model.experts else 0)
    best = None
    for stage in range(p):
        layers = range(stage * per_stage, (stage + 1) * per_stage)
        moe = sum(model.is_moe(i) for i in layers)
        root = vocab_shard if stage == 0 else 0
        if stage == p - 1:
            root += model.hidden + (vocab_shard if not model.tied_embeddings or p > 1 else 0)
        dense = (per_stage - moe) * dense_layer + moe * moe_dense + root
        share = Share(stage, per_stage, moe, dense_layer, moe_dense, moe_expert, root, dense,
                      moe * moe_expert)
        if best is None or share.dense + share.expert > best.dense + best.expert:
            best = share
    return best


# ---------------------------------------------------------------- the schedule
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


def schedule(model: Model, lay: Layout) -> tuple[list[Row], Share]:
    """The distinct communications of one training step of a rank of the busiest stage."""
    check_layout(model, lay)
    share = share_of(model, lay)
    t, p, d, ep = lay.tp, lay.pp, lay.dp, lay.ep
    a, e, eg = lay.grad_accum, itemsize(lay.dtype), itemsize(lay.grad_dtype)
    tokens = lay.micro_batch * lay.seq
    act = tokens * model.hidden
    rows: list[Row] = []

    def add(phase, op, group, size, nbytes, count, overlap, what):
        if size > 1 and count > 0 and nbytes > 0:
            rows.append(Row(phase, op, group, size, int(nbytes), int(count), overlap, what))

    sp = lay.sequence_parallel and t > 1
    n = 2 * share.layers * a
    for phase in ("forward", "backward"):
        if sp:
            add(phase, "allgather", "tp", t, act * e, n, False,
                "sequence-parallel all-gather before attention and MLP")
            add(phase, "reduce_scatter", "tp", t, act * e, n, False,
                "sequence-parallel reduce-scatter after attention and MLP")
        else:
            add(phase, "allreduce", "tp", t, act * e, n, False,
                "tensor-parallel all-reduce of attention and MLP outputs" if phase == "forward"
                else "tensor-parallel all-reduce of attention and MLP input gradients")
    message = (act // t if sp else act) * e
    add("forward", "pingpong", "pp", p, message, a, False, "activations to the next stage")
    add("backward", "pingpong", "pp", p, message, a, False, "gradients to the previous stage")
    if ep > 1 and share.moe_layers:
        routed = (tokens // t if sp else tokens) * model.top_k * model.hidden
        for phase in ("forward", "backward"):
            add(phase, "alltoall", "ep", ep, _pad(routed, ep) * e, 2 * share.moe_layers * a,
                False, "MoE token dispatch and combine")

    # data parallel: (group, size, parameters of a layer kind or of the whole rank)
    split_experts = ep > 1 and share.expert > 0
    if lay.zero < 3:
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
                    add("backward", "allreduce", group, size, elements * eg, count, True,
                        f"{kind}gradient all-reduce, {label} (DDP: during the last backward)")
                    continue
                padded = _pad(elements, size)
                add("backward", "reduce_scatter", group, size, padded * eg,
                    count * (a if lay.zero == 2 else 1), True,
                    f"{kind}gradient reduce-scatter, {label}"
                    + (" (every micro-batch)" if lay.zero == 2 else ""))
                add("step", "allgather", group, size, padded * e, count, False,
                    f"{kind}parameter all-gather after the optimizer step, {label}")
    else:
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
            add("forward", "allgather", group, size, padded * e, per_mb * a, True,
                f"FSDP parameter all-gather of {what}")
            add("backward", "allgather", group, size, padded * e, per_mb * a, True,
                f"FSDP parameter re-gather of {what}")
            add("backward", "reduce_scatter", group, size, padded * eg, per_mb * a, True,
                f"FSDP gradient reduce-scatter of {what}")
        padded = _pad(share.root, d)
        add("forward", "allgather", "dp", d, padded * e, a, True,
            "FSDP root unit (embedding, output layer, final norm) all-gather")
        add("backward", "reduce_scatter", "dp", d, padded * eg, a, True,
            "FSDP root unit gradient reduce-scatter")
    return merge(rows), share


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


# ---------------------------------------------------------------- output
def csv_of(rows: list[Row]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([getattr(r, c) for c in COLUMNS])
    return buf.getvalue()


def read_csv(path) -> list[Row]:
    """workload.csv back as rows (for tests and tools)."""
    with open(path, newline="") as f:
        return [Row(r["phase"], r["op"], r["group"], int(r["group_size"]), int(r["nbytes"]),
                    int(r["count"]), r["overlap"] == "True", r["what"]) for r in csv.DictReader(f)]


def count_text(n: float) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f}"


def aligned(head, body, right) -> str:
    """A plain-text table (bench.core.tables.text_table) as one string."""
    return "\n".join(text_table(head, body, right))


def format_table(rows: list[Row]) -> str:
    head = ("phase", "op", "group", "size", "S", "count", "overlap", "bytes/step")
    body = [r.cells() + [human_bytes(r.bytes_per_step)] for r in rows]
    return aligned(head, body, {3, 4, 5, 7})


def describe_params(model: Model) -> str:
    c = parameter_counts(model)
    names = {"attention": "attention", "mlp": "MLP", "experts": "experts", "router": "router",
             "norms": "norms", "embedding": "embedding", "output": "output layer"}
    parts = ", ".join(f"{label} {count_text(c[k])}" for k, label in names.items() if c[k])
    text = f"{count_text(c['total'])} parameters ({parts})"
    if model.experts:
        text += f", {count_text(c['active'])} active per token"
    if model.published_params:
        text += f"; published {count_text(model.published_params)}"
    return text


# ---------------------------------------------------------------- derived
@dataclass
class Spec:
    """A derived workload: the model, the layout, the rows, where they go."""
    model: Model
    layout: Layout
    rows: list
    share: Share
    out: Path


def scaled(lay: Layout, nranks: int) -> Layout:
    """The layout with dp scaled to nranks ranks."""
    per = lay.tp * lay.pp
    if nranks < 1 or nranks % per:
        raise UsageError(f"--nranks {nranks} is not a multiple of tp × pp = {per}")
    if (nranks // per) % lay.ep:
        raise UsageError(f"--nranks {nranks}: dp {nranks // per} is not a multiple of --ep {lay.ep}")
    return replace(lay, dp=nranks // per)


def measured_size(row: Row, size_of: int) -> int:
    """S of the row as `commbench run` measures it (whole elements, whole per-rank blocks)."""
    return get_op(row.op).case(row.nbytes, row.group_size, size_of).nbytes
