"""A transformer's parallel layout (tp, pp, dp, ep, ZeRO, batch, dtypes, buckets): checked
against the model, its groups placed as Megatron-LM places them (order tp, ep/dp, pp: tp = T
adjacent ranks; dp = D ranks T apart; pp = P ranks T·D apart; ep = E ranks T apart; edp = D/E
ranks T·E apart; bench.nodes group:SIZE:STRIDE splits), and what one rank of the busiest
pipeline stage holds (`Share`)."""
from __future__ import annotations

from dataclasses import dataclass, replace

from analysis.transformer import Model
from bench.core.errors import UsageError
from bench.core.units import human_bytes

ITEMSIZE = {"float64": 8, "float32": 4, "bfloat16": 2, "float16": 2, "float8": 1}
DEFAULT_BUCKET = "25M"  # PyTorch DDP's bucket_cap_mb = 25 (MiB)


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

    def groups(self) -> dict[str, tuple[int, int]]:
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
    assert best is not None  # pp >= 1 (check_layout): at least one stage
    return best


def scaled(lay: Layout, nranks: int) -> Layout:
    """The layout with dp scaled to nranks ranks."""
    per = lay.tp * lay.pp
    if nranks < 1 or nranks % per:
        raise UsageError(f"--nranks {nranks} is not a multiple of tp × pp = {per}")
    if (nranks // per) % lay.ep:
        raise UsageError(f"--nranks {nranks}: dp {nranks // per} is not a multiple of --ep {lay.ep}")
    return replace(lay, dp=nranks // per)
