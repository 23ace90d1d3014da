"""Forcing a collective algorithm of the MPI library: the library's own names and numbers of
the algorithms of each op commbench measures, and the environment that makes the library run
one of them (`commbench sweep --force-algorithms`). The environment lands in every run's
meta.json (bench.record.steering_env keeps OMPI_* and MPIR_CVAR_* variables), which is how the
analysis (analysis.library) knows which algorithm ran.

Open MPI coll/tuned: with OMPI_MCA_coll_tuned_use_dynamic_rules=1,
OMPI_MCA_coll_tuned_<coll>_algorithm=N runs algorithm N (0: the fixed decision). The numbers
are the ones `ompi_info --param coll tuned --level 9` lists (Open MPI 4.1 and 5.0; 5.0 adds
allreduce 7 allgather_reduce and allgather 7 sparbit).
MPICH 4: MPIR_CVAR_<COLL>_INTRA_ALGORITHM=<name> (`auto`: the selection tuning file).

Only the standard library here: the sweep (no ranks) and the analysis both read it.
"""
from __future__ import annotations

import re

OPEN_MPI, MPICH = "openmpi", "mpich"

# commbench op -> (coll/tuned collective name, {number: Open MPI's algorithm name})
# commbench's reduce_scatter calls MPI_Reduce_scatter_block (bench/backends/mpi.py)
OPEN_MPI_ALGORITHMS = {
    "allreduce": ("allreduce", {1: "basic_linear", 2: "nonoverlapping", 3: "recursive_doubling",
                                4: "ring", 5: "segmented_ring", 6: "rabenseifner",
                                7: "allgather_reduce"}),
    "allgather": ("allgather", {1: "linear", 2: "bruck", 3: "recursive_doubling", 4: "ring",
                                5: "neighbor", 6: "two_proc", 7: "sparbit"}),
    "reduce_scatter": ("reduce_scatter_block", {1: "basic_linear", 2: "recursive_doubling",
                                                3: "recursive_halving", 4: "butterfly"}),
    "broadcast": ("bcast", {1: "basic_linear", 2: "chain", 3: "pipeline",
                            4: "split_binary_tree", 5: "binary_tree", 6: "binomial",
                            7: "knomial", 8: "scatter_allgather", 9: "scatter_allgather_ring"}),
    "alltoall": ("alltoall", {1: "linear", 2: "pairwise", 3: "modified_bruck", 4: "linear_sync",
                              5: "two_proc"}),
    "reduce": ("reduce", {1: "linear", 2: "chain", 3: "pipeline", 4: "binary", 5: "binomial",
                          6: "in-order_binary", 7: "rabenseifner"}),
    "barrier": ("barrier", {1: "linear", 2: "double_ring", 3: "recursive_doubling", 4: "bruck",
                            5: "two_proc", 6: "tree"}),
}
# algorithms that exist only from Open MPI 5.0 on. allreduce 7 (allgather_reduce) is counted
# by ompi_info's allreduce_algorithm_count in 5.0.11 but its MCA variable rejects 7 ("invalid
# value ... for an enum variable", and the fixed decision runs): not forceable there
OPEN_MPI_SINCE_5 = {("allgather", 7)}
OPEN_MPI_UNFORCEABLE = {("allreduce", 7)}
# two_proc algorithms abort the job on any other communicator size
OPEN_MPI_TWO_RANKS = {("allgather", 6), ("alltoall", 5), ("barrier", 5)}

# commbench op -> (CVAR collective, MPICH's intra algorithm names)
MPICH_ALGORITHMS = {
    "allreduce": ("ALLREDUCE", ("recursive_doubling", "reduce_scatter_allgather", "ring")),
    "allgather": ("ALLGATHER", ("brucks", "recursive_doubling", "ring")),
    "reduce_scatter": ("REDUCE_SCATTER_BLOCK", ("noncommutative", "recursive_doubling",
                                                "pairwise", "recursive_halving")),
    "broadcast": ("BCAST", ("binomial", "scatter_recursive_doubling_allgather",
                            "scatter_ring_allgather")),
    "alltoall": ("ALLTOALL", ("brucks", "pairwise", "pairwise_sendrecv_replace", "scattered")),
    "reduce": ("REDUCE", ("binomial", "reduce_scatter_gather")),
    "barrier": ("BARRIER", ("k_dissemination", "recexch")),
}


def family(library_text: str) -> tuple[str, tuple[int, int]] | None:
    """(family, (major, minor)) of an MPI library's version string (MPI_Get_library_version,
    as meta.json's backend.library keeps it), or None when it is neither Open MPI nor MPICH."""
    text = str(library_text or "")
    m = re.search(r"Open MPI v?(\d+)\.(\d+)", text)
    if m:
        return OPEN_MPI, (int(m.group(1)), int(m.group(2)))
    m = re.search(r"MPICH Version:?\s*(\d+)\.(\d+)", text)
    if m:
        return MPICH, (int(m.group(1)), int(m.group(2)))
    return None


def forceable(fam: str, version: tuple, op: str, nranks: int = 2) -> list:
    """The algorithms of op that the library can be made to run on nranks ranks: Open MPI
    numbers or MPICH names, in the library's order; [] for an op or library it does not
    cover."""
    if fam == OPEN_MPI and op in OPEN_MPI_ALGORITHMS:
        return [n for n in OPEN_MPI_ALGORITHMS[op][1]
                if (version >= (5, 0) or (op, n) not in OPEN_MPI_SINCE_5)
                and (op, n) not in OPEN_MPI_UNFORCEABLE
                and (nranks == 2 or (op, n) not in OPEN_MPI_TWO_RANKS)]
    if fam == MPICH and op in MPICH_ALGORITHMS:
        return list(MPICH_ALGORITHMS[op][1])
    return []


def native_name(fam: str, op: str, algorithm) -> str:
    """The library's name of an algorithm (Open MPI: from its number)."""
    if fam == OPEN_MPI:
        return OPEN_MPI_ALGORITHMS[op][1].get(int(algorithm), str(algorithm))
    return str(algorithm)


def force_env(fam: str, op: str, algorithm) -> dict:
    """The environment that makes the library run `algorithm` for op."""
    if fam == OPEN_MPI:
        coll = OPEN_MPI_ALGORITHMS[op][0]
        return {"OMPI_MCA_coll_tuned_use_dynamic_rules": "1",
                f"OMPI_MCA_coll_tuned_{coll}_algorithm": str(int(algorithm))}
    if fam == MPICH:
        return {f"MPIR_CVAR_{MPICH_ALGORITHMS[op][0]}_INTRA_ALGORITHM": str(algorithm)}
    raise ValueError(f"cannot force algorithms of {fam!r}")


def forced_in(fam: str, env: dict) -> dict:
    """{op: algorithm (Open MPI number or MPICH name)} that a run's environment forced."""
    env = env or {}
    out: dict = {}
    if fam == OPEN_MPI:
        if str(env.get("OMPI_MCA_coll_tuned_use_dynamic_rules", "")).lower() not in (
                "1", "true", "yes", "t", "y"):
            return {}
        for op, (coll, names) in OPEN_MPI_ALGORITHMS.items():
            value = str(env.get(f"OMPI_MCA_coll_tuned_{coll}_algorithm", "")).strip()
            number = int(value) if value.isdigit() else next(
                (k for k, v in names.items() if v == value), 0)
            if number and (op, number) not in OPEN_MPI_UNFORCEABLE:  # rejected: default ran
                out[op] = number
    elif fam == MPICH:
        for op, (coll, _) in MPICH_ALGORITHMS.items():
            value = str(env.get(f"MPIR_CVAR_{coll}_INTRA_ALGORITHM", "")).strip()
            if value and value != "auto":
                out[op] = value
    return out


def mpi_library() -> str:
    """MPI_Get_library_version of the MPI mpi4py loads, without initializing MPI (the
    sweep's launcher process is no rank)."""
    import mpi4py

    mpi4py.rc.initialize = False
    mpi4py.rc.finalize = False
    from mpi4py import MPI

    return " ".join(MPI.Get_library_version().replace("\0", "").split())


def forced_runs(fam: str, version: tuple, ops, nranks: int) -> list:
    """(op, algorithm, run name suffix, environment) of every algorithm of every op that
    the library can be forced to run on nranks ranks."""
    return [(op, alg, f"{op}.{native_name(fam, op, alg)}", force_env(fam, op, alg))
            for op in ops for alg in forceable(fam, version, op, nranks)]
