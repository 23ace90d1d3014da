"""Cost models of collective algorithms (Thakur, Rabenseifner & Gropp 2005; see
../shared/reference.md), as a registry: (op, algorithm) -> coefficients of (α, β, γ).

Every model is linear in its parameters, t(p, n) = a(p)·α + b(p, n)·β + c(p, n)·γ, so fitting
one is one (non-negative, weighted) linear least squares over the design matrix [a, b, c].
Adding an op or an algorithm is one decorated function; nothing else changes.

α: seconds per message (latency), β: seconds per byte moved, γ: seconds per byte reduced.

Mapping of S (commbench's `nbytes`, results/README.md) to the n of the formulas: in every model
below n = S. That is the formulas' own convention: for allreduce, broadcast and reduce n is the
array on each rank; for allgather and reduce-scatter n is the whole gathered / scattered buffer
(per-rank count × p), which is S; for alltoall n is what one rank sends in total, which is S.

Rank counts that are not a power of two: Bruck, binomial trees and dissemination take ⌈lg p⌉
rounds. Recursive doubling and halving pair ranks up and cannot; MPICH and Open MPI fold the
r = p − p' ranks beyond the largest power of two p' into p' first (r ranks send their whole n
to a partner, which reduces it), run the algorithm on p' ranks, and send the results back: two
more rounds of n (one more reduction) on top of lg p' (`folded`), so 3 ranks take longer
than 4 (README: measured on emulated nodes).

Max-rate (Gropp, Olson & Samfass, EuroMPI 2016): k ranks of a node that send at once share
what the node can move in total, R (its memory for shared-memory transports, its NIC across
nodes), so one message of m bytes costs m / min(1/β, R/k) = m·max(β, kρ), ρ = 1/R. In a
collective every step's bytes pay that price with the k of that step:

    t = a(p)·α + b(p, n)·Σ_j w_j·max(β, k_j·ρ) + c(p, n)·γ

(w_j the step's share of the bytes b, k_j the ranks of one node sending in it; most algorithms
send from every rank in every step, one step with k = the communicator's ranks on the node;
binomial trees send from 2^i ranks in step i). With no limit (ρ = 0) this is the formula
above. The reduction (γ) runs on each rank's own core and is not shared. With k* = R·β, the
ranks that saturate the node, the byte term is b·β·Σ_j w_j·max(1, k_j/k*): for a fixed k*
the model stays linear in (α, β, γ), which is how it is fitted (analysis.algorithms).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from analysis.known_ops import canonical_name  # an op's other spellings live with the op

# (op, algorithm) -> function (p, n) -> (a, b, c), arrays broadcast from p and n
_MODELS: dict[tuple[str, str], Callable] = {}
_DOCS: dict[tuple[str, str], str] = {}
# (op, algorithm) -> function p -> [(w, f)]: the steps' shares of the bytes and the fraction
# of the ranks that send in them (absent: every rank sends in every step)
_STEPS: dict[tuple[str, str], Callable] = {}

PARAMS = ("alpha_s", "beta_s_per_byte", "gamma_s_per_byte")
RATE = "node_rate_Bps"  # R of the max-rate model: bytes per second a node moves in total


def lg(p):
    """Rounds of a tree or dissemination algorithm: ⌈log2 p⌉ (0 for one rank)."""
    return np.ceil(np.log2(np.maximum(np.asarray(p, dtype=float), 1.0)))


def pof2(p):
    """p', the largest power of two not above p (1 for one rank)."""
    return 2.0 ** np.floor(np.log2(np.maximum(np.asarray(p, dtype=float), 1.0)))


def folded(p):
    """1 where p is not a power of two (recursive doubling and halving fold ranks in and out
    again: two more rounds), else 0."""
    p = np.asarray(p, dtype=float)
    return (p > pof2(p)).astype(float)


def fold_steps(main_bytes: Callable, fold_bytes: Callable) -> Callable:
    """steps(p) of a folding algorithm: the main rounds run on p' of the p ranks, the fold-in
    and fold-out rounds on the p − p' folded ones; main_bytes(p), fold_bytes(p): their
    coefficients of n·β."""
    def steps(p: float) -> list:
        main, fold = float(main_bytes(p)), float(fold_bytes(p))
        total = main + fold
        if fold <= 0 or total <= 0:
            return [(1.0, 1.0)]
        q = float(pof2(p))
        return [(main / total, q / p), (fold / total, (p - q) / p)]
    return steps


def model(op: str, name: str, doc: str, steps: Callable | None = None):
    """Register the cost formula of algorithm `name` for `op`; steps(p) -> [(w, f)] where not
    every rank sends in every step (see the module's max-rate note)."""
    def register(fn):
        _MODELS[(op, name)] = fn
        _DOCS[(op, name)] = doc
        if steps is not None:
            _STEPS[(op, name)] = steps
        return fn
    return register


def algorithms(op: str) -> list[str]:
    """The algorithm names registered for op (canonical or alias spelling)."""
    op = canonical_name(op)
    return [name for (o, name) in _MODELS if o == op]


def describe(op: str, name: str) -> str:
    return _DOCS[(canonical_name(op), name)]


def step_table(op: str, name: str, p) -> tuple[np.ndarray, np.ndarray]:
    """(w, f): per point of p (rows) and step (columns), the step's share of the bytes and
    the fraction of the communicator's ranks sending in it; unused columns have w = 0."""
    p = np.atleast_1d(np.asarray(p, dtype=float))
    fn = _STEPS.get((canonical_name(op), name))
    if fn is None:
        return np.ones((p.size, 1)), np.ones((p.size, 1))
    table = {q: fn(q) for q in np.unique(p)}
    width = max(len(v) for v in table.values())
    w, f = np.zeros((p.size, width)), np.zeros((p.size, width))
    for i, q in enumerate(p):
        for j, (wj, fj) in enumerate(table[q]):
            w[i, j], f[i, j] = wj, fj
    return w, f


def senders(op: str, name: str, p, per_node=None, spread: bool = False) -> tuple:
    """(w, k): the steps' byte shares and the ranks of one node sending in each. per_node:
    ranks of the communicator on one node (default p: all of it on one node); spread: one
    rank per node of each of per_node communicators that run at once (`--split inter`, the
    inter-node level of a hierarchical model), so a node sends from all per_node ranks in
    every step in which its communicator's rank sends."""
    p = np.atleast_1d(np.asarray(p, dtype=float))
    k = p if per_node is None else np.broadcast_to(np.asarray(per_node, dtype=float), p.shape)
    w, f = step_table(op, name, p)
    if spread:
        f = (f > 0).astype(float)
    return w, f * k[:, None]


def byte_factor(op: str, name: str, p, kstar, per_node=None, spread=False) -> np.ndarray:
    """Σ_j w_j·max(1, k_j/k*): how much slower the bytes move than at the link rate when k*
    ranks saturate the node (1 when k* is infinite or not reached)."""
    w, k = senders(op, name, p, per_node, spread)
    if not np.isfinite(kstar):
        return w.sum(axis=1)
    return (w * np.maximum(1.0, k / kstar)).sum(axis=1)


def design_matrix(op: str, name: str, p, n, kstar: float = math.inf, per_node=None,
                  spread: bool = False) -> np.ndarray:
    """Columns (α, β, γ) coefficients, one row per (p, n) point; with k* finite the β column
    carries the max-rate factor (byte_factor)."""
    p, n = np.broadcast_arrays(np.atleast_1d(np.asarray(p, dtype=float)),
                               np.atleast_1d(np.asarray(n, dtype=float)))
    a, b, c = _MODELS[(canonical_name(op), name)](p, n)
    X = np.column_stack([np.broadcast_to(a, p.shape), np.broadcast_to(b, p.shape),
                         np.broadcast_to(c, p.shape)]).astype(float)
    if np.isfinite(kstar):
        X[:, 1] *= byte_factor(op, name, p.ravel(), kstar, per_node, spread)
    return X


def node_rho(params) -> float:
    """ρ = 1/R of a parameter mapping or sequence (α, β, γ[, R]); 0 (no limit) where R is
    missing, infinite or not a positive number."""
    if isinstance(params, dict):
        rate: Any = params.get(RATE)
    else:
        rate = params[3] if len(params) > 3 else None
    try:
        rate = float(rate)
    except (TypeError, ValueError):
        return 0.0
    return 1.0 / rate if np.isfinite(rate) and rate > 0 else 0.0


def predict(op: str, name: str, p, n, params, per_node=None, spread: bool = False) -> np.ndarray:
    """t(p, n) = a·α + b·Σ_j w_j·max(β, k_j/R) + c·γ; params is a mapping or a sequence
    (α, β, γ[, R]) (missing γ = 0, missing R: no limit, the contention-free formula)."""
    rho = node_rho(params)
    if isinstance(params, dict):
        params = [params.get(k, 0.0) for k in PARAMS]
    params = [0.0 if (v is None or not np.isfinite(v)) else float(v) for v in list(params)[:3]]
    params += [0.0] * (3 - len(params))
    shape = np.broadcast(np.asarray(p), np.asarray(n)).shape
    X = design_matrix(op, name, p, n)
    alpha, beta, gamma = params
    if rho > 0:
        pp = np.broadcast_to(np.asarray(p, dtype=float), shape).ravel()
        w, k = senders(op, name, pp, per_node, spread)
        beta_eff = (w * np.maximum(beta, k * rho)).sum(axis=1)
    else:
        beta_eff = beta
    t = X[:, 0] * alpha + X[:, 1] * beta_eff + X[:, 2] * gamma
    return t.reshape(shape)  # scalar in, scalar out


def frac(p):
    return (p - 1.0) / p


def _rounds(p: float) -> int:
    return int(lg(p))


def binomial_steps(p: float) -> list:
    """A binomial tree: round i (of ⌈lg p⌉) moves the whole n from min(2^i, p − 2^i) ranks."""
    r = _rounds(p)
    return [(1.0 / r, min(2.0 ** i, p - 2.0 ** i) / p) for i in range(r)] or [(1.0, 1.0)]


def halving_tree_steps(p: float) -> list:
    """Half of the bytes in a binomial scatter (or gather) — round i moves n/2^(i+1) from 2^i
    ranks — the other half in an exchange in which every rank sends (ring allgather,
    reduce-scatter)."""
    r = _rounds(p)
    if r == 0:
        return [(1.0, 1.0)]
    weights = np.array([2.0 ** -(i + 1) for i in range(r)])
    weights = 0.5 * weights / weights.sum()
    tree = [(float(wi), min(2.0 ** i, p - 2.0 ** i) / p) for i, wi in enumerate(weights)]
    return tree + [(0.5, 1.0)]


# ---- allreduce (n = bytes of the array on each rank) --------------------------------------
def _rd_rounds(p):
    return np.log2(pof2(p)) + 2 * folded(p)


@model("allreduce", "recursive_doubling",
       "lg p·α + n lg p·(β+γ); p not a power of two: lg p' + 2 rounds, lg p' + 1 reductions",
       steps=fold_steps(lambda p: np.log2(pof2(p)), lambda p: 2 * folded(p)))
def _(p, n):
    return _rd_rounds(p), n * _rd_rounds(p), n * (np.log2(pof2(p)) + folded(p))


@model("allreduce", "rabenseifner",
       "2 lg p·α + 2n(p−1)/p·β + n(p−1)/p·γ (reduce-scatter by halving + allgather by "
       "doubling); p not a power of two: on p', plus 2α + 2nβ + nγ to fold",
       steps=fold_steps(lambda p: 2 * frac(pof2(p)), lambda p: 2 * folded(p)))
def _(p, n):
    q, f = pof2(p), folded(p)
    return 2 * np.log2(q) + 2 * f, 2 * n * (frac(q) + f), n * (frac(q) + f)


@model("allreduce", "ring", "2(p−1)α + 2n(p−1)/p·β + n(p−1)/p·γ")
def _(p, n):
    return 2 * (p - 1), 2 * n * frac(p), n * frac(p)


# binomial reduce + binomial bcast, 2 lg p·(α + nβ) + n lg p·γ, is recursive doubling's
# formula times two: the same fit, so it is not a separate model.


# ---- allgather (n = S = the whole gathered buffer) -----------------------------------------
@model("allgather", "recursive_doubling", "lg p·α + n(p−1)/p·β (Bruck's allgather costs the same)")
def _(p, n):
    return lg(p), n * frac(p), 0 * n


@model("allgather", "ring", "(p−1)α + n(p−1)/p·β")
def _(p, n):
    return p - 1, n * frac(p), 0 * n


# ---- reduce-scatter (n = S = the whole input buffer) ---------------------------------------
@model("reduce_scatter", "ring", "(p−1)α + n(p−1)/p·(β+γ) (pairwise costs the same)")
def _(p, n):
    return p - 1, n * frac(p), n * frac(p)


@model("reduce_scatter", "recursive_halving",
       "lg p·α + n(p−1)/p·(β+γ); p not a power of two: on p', plus 2α + n(1 + 1/p)β + nγ to "
       "fold in the whole buffer and send each folded rank its block",
       steps=fold_steps(lambda p: frac(pof2(p)), lambda p: folded(p) * (1 + 1 / p)))
def _(p, n):
    q, f = pof2(p), folded(p)
    return np.log2(q) + 2 * f, n * (frac(q) + f * (1 + 1 / p)), n * (frac(q) + f)


# ---- alltoall (n = S = bytes one rank sends in total) ---------------------------------------
@model("alltoall", "pairwise", "(p−1)α + nβ")
def _(p, n):
    return p - 1, n, 0 * n


@model("alltoall", "bruck", "lg p·α + (n/2) lg p·β")
def _(p, n):
    return lg(p), n / 2 * lg(p), 0 * n


# ---- broadcast and reduce (n = bytes of the array) ---------------------------------------------
@model("broadcast", "binomial", "lg p·(α + nβ)", steps=binomial_steps)
def _(p, n):
    return lg(p), n * lg(p), 0 * n


@model("broadcast", "linear", "(p−1)(α + nβ) (the root sends n to every rank in turn)",
       steps=lambda p: [(1.0, 1.0 / p)])
def _(p, n):
    return p - 1, n * (p - 1), 0 * n


@model("broadcast", "scatter_allgather", "(lg p + p − 1)α + 2n(p−1)/p·β (scatter + ring allgather)",
       steps=halving_tree_steps)
def _(p, n):
    return lg(p) + p - 1, 2 * n * frac(p), 0 * n


@model("reduce", "binomial", "lg p·(α + nβ + nγ)", steps=binomial_steps)
def _(p, n):
    return lg(p), n * lg(p), n * lg(p)


def _folded_tree(p: float) -> list:
    """halving_tree_steps on p' ranks, after a fold-in round of n from the p − p' others."""
    q = float(pof2(p))
    if q == p:
        return halving_tree_steps(p)
    main = 2 * float(frac(q))
    return ([(w * main / (main + 1), f * q / p) for w, f in halving_tree_steps(q)]
            + [(1 / (main + 1), (p - q) / p)])


@model("reduce", "rabenseifner",
       "2 lg p·α + 2n(p−1)/p·β + n(p−1)/p·γ (reduce-scatter + gather); p not a power of two: "
       "on p', plus α + n(β+γ) to fold in",
       steps=_folded_tree)
def _(p, n):
    q, f = pof2(p), folded(p)
    return 2 * np.log2(q) + f, n * (2 * frac(q) + f), n * (frac(q) + f)


# ---- barrier (no payload) -------------------------------------------------------------------
@model("barrier", "dissemination", "lg p·α")
def _(p, n):
    return lg(p), 0 * n, 0 * n


@model("barrier", "linear", "2(p−1)α (gather to a root and release)")
def _(p, n):
    return 2 * (p - 1), 0 * n, 0 * n
